"""The demo's learning loop (examples/backlog.py, then review stats and tune, as `make demo` runs
them): the generated day gives one category a supported proposal and leaves another for lack of
labels, and the next day under the proposal as a shadow is compared by replay --shadow."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import builders
from clirunner import runner

from moderation.cli import main
from moderation.tuning import tune

QA = "\nreview: {qa_sample: {approved: 0.2, rejected: 0.2}}\n"


def backlog() -> ModuleType:
    spec = importlib.util.spec_from_file_location("backlog", builders.ROOT / "examples/backlog.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demo_day_supports_violence_and_refuses_visually_disturbing(tmp_path: Path):
    policies = tmp_path / "policies"
    shutil.copytree(builders.ROOT / "policies", policies)
    forum = policies / "tenants" / "forum.yaml"
    forum.write_text(forum.read_text() + QA)
    desk, log = f"sqlite:///{tmp_path / 'desk.db'}", tmp_path / "audit.jsonl"
    generate = backlog()
    generate.main(str(policies), desk, str(log))
    proposal = tune(
        log, policies, "forum", max_false_approve=0.05, max_false_reject=0.05, confidence=0.9
    )
    status = {rule.rule: rule for rule in proposal.rules}
    violence, disturbing = status["Violence"], status["Visually Disturbing"]
    assert violence.status == "changed" and violence.after["escalate"] > 80
    assert violence.review_share_after < violence.review_share_before  # type: ignore[operator]
    assert disturbing.status == "insufficient" and disturbing.after == disturbing.before
    assert any("more QA samples" in note for note in disturbing.notes)
    # AND the review stats of the same log count the day's labels
    result = runner().invoke(
        main, ["review", "stats", str(log), "--tenant", "forum", "--json"],
        env={"MODERATION_REVIEW": None, "MODERATION_AUDIT_KEY": None},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (stats,) = json.loads(result.stdout)["tenants"]
    assert stats["total"]["decisions"] == 1560 and stats["total"]["labels"]["qa"] > 100
    # WHEN the proposal runs as a shadow of the live policy on the next day
    assert proposal.shadow_text is not None
    (policies / "tenants" / "forum-tuned.yaml").write_text(proposal.shadow_text)
    forum.write_text(forum.read_text() + "shadow: [forum-tuned]\n")
    generate.main(str(policies), desk, str(log), "2")
    result = runner().invoke(
        main,
        ["replay", str(log), "--shadow", "--tenant", "forum", "--json"],
        env={"MODERATION_POLICIES": None},
    )
    assert result.exit_code == 0, result.stderr
    # THEN replay compares live and shadow on that day only, and the shadow sends fewer to review
    shadow = json.loads(result.stdout)["shadows"]["forum-tuned"]
    assert (shadow["decisions"], shadow["replayed"]) == (390, 390) and shadow["flipped"] > 0
    assert shadow["escalations_after"] < shadow["escalations_before"]
