"""The demo's proposed policy change does, on the golden decisions, what the demo says it does."""

from __future__ import annotations

import shutil
from pathlib import Path

from moderation import replay

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "examples/golden/decisions.jsonl"


def test_the_proposed_kids_policy_flips_two_decisions_and_needs_one_judgment(tmp_path: Path):
    # GIVEN policies/ with tenants/kids.yaml replaced by the proposal, as examples/demo.sh does
    changed = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", changed)
    shutil.copy(ROOT / "examples/policy-change/kids.yaml", changed / "tenants/kids.yaml")
    # WHEN the golden decisions are replayed under it
    report = replay(GOLDEN, changed)
    # THEN only kids decisions move: the cartoon fight (illustrated Violence now rejects from 85)
    # and the kiss (Kissing on the Lips now rejects from 70) flip to rejected; the game screenshot
    # (Weapons now escalates below 95) needs a judgment the log does not hold
    assert {(f.decision_id, f.before, f.after) for f in report.flips} == {
        ("golden-0004", "approved", "rejected"),
        ("golden-0006", "review", "rejected"),
    }
    assert list(report.needs_judgment_ids) == ["golden-0008"]
    assert list(report.errors) == []
    # AND under the unchanged policies nothing moves
    same = replay(GOLDEN, ROOT / "policies")
    assert same.flipped == 0 and same.needs_judgment == 0 and same.replayed == 12
