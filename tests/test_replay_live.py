"""`--live`: needs-judgment cases judged for real, within a call limit, images only from a dir."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from clirunner import runner
from test_replay import (
    CASES,
    DEFAULT,
    MODEL,
    STRICTER,
    image,
    record,
    recorded_log,
    store,
    write_bare,
)
from test_replay_cli import policies

from moderation.cli import main
from moderation.decision import Decision, TokenUsage
from moderation.errors import JudgeError
from moderation.pricing import Pricing
from moderation.replay import DEFAULT_JUDGE_USAGE, LiveJudging, LivePlan, replay
from moderation.testing import FailingJudge, StaticJudge

# The stricter policy asks the judge about C (Explicit Nudity 45): C needs judgment; so does a
# second case G (48), recorded approved by policy too.
G = ((10, 20, 30), [("Explicit Nudity", 48.0)])


@pytest.fixture(scope="module")
def log() -> dict[str, Decision]:
    decisions = recorded_log()
    decisions["G"] = record([G])[0]
    return decisions


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """The original images of C and G (and an unrelated file), under names that say nothing."""
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    (root / "one.png").write_bytes(image(CASES["C"][0]))
    (root / "sub" / "two.bin").write_bytes(image(G[0]))
    (root / "notes.txt").write_text("not an image")
    return root


def test_a_live_verdict_decides_a_needs_judgment_case(
    log: dict[str, Decision], images: Path
) -> None:
    judge = StaticJudge("reject", rationale="nudity")
    plans: list[LivePlan] = []
    live = LiveJudging(judge=judge, max_calls=10, images=images, on_plan=plans.append)
    report = replay(list(log.values()), store(STRICTER), live=live)
    assert len(judge.calls) == 2
    assert {call.request.model_id for call in judge.calls} == {MODEL}
    assert judge.calls[0].request.findings[0].label == "Explicit Nudity"
    assert judge.calls[0].image.sha256 == log["C"].image.sha256
    assert report.needs_judgment == 0 and report.needs_judgment_ids == ()
    judged = {f.decision_id: f for f in report.flips if f.judged_live}
    assert set(judged) == {log["C"].id, log["G"].id}
    flip = judged[log["C"].id]
    assert (flip.before.value, flip.after.value) == ("approved", "rejected")
    assert flip.reasons[-1] == f"live judge {MODEL} answered reject: nudity"
    assert flip.category == "Explicit"
    assert report.flipped == 4  # B and F by policy, C and G by the live judge
    assert report.matrix["approved"]["needs_judgment"] == 0
    assert report.matrix["approved"]["rejected"] == 3
    assert report.live is not None
    assert (report.live.needed, report.live.with_image, report.live.made) == (2, 2, 2)
    (plan,) = plans
    assert (plan.needed, plan.with_image, plan.planned, plan.max_calls) == (2, 2, 2, 10)


def test_an_approving_live_verdict_leaves_the_case_unchanged(
    log: dict[str, Decision], images: Path
) -> None:
    live = LiveJudging(judge=StaticJudge("approve"), max_calls=5, images=images)
    report = replay(list(log.values()), store(STRICTER), live=live)
    assert report.needs_judgment == 0
    assert report.unchanged == 3 + 2  # A, D, E, then C and G
    assert not any(f.judged_live for f in report.flips)
    assert report.matrix["approved"]["approved"] == 3  # D, C, G


@pytest.mark.parametrize(
    ("judge", "expected"),
    [
        (FailingJudge(JudgeError("Throttling after 4 attempts", attempts=4)), "review"),
        (StaticJudge.invalid(), "review"),
        (StaticJudge.blocked(), "rejected"),
    ],
)
def test_a_failing_judge_follows_the_policy_never_approves(
    log: dict[str, Decision], images: Path, judge: object, expected: str
) -> None:
    # on_error: review, on_blocked: reject; every case was approved before.
    live = LiveJudging(judge=judge, max_calls=5, images=images)  # type: ignore[arg-type]
    report = replay(list(log.values()), store(STRICTER), live=live)
    judged = [f for f in report.flips if f.judged_live]
    assert [f.after.value for f in judged] == [expected, expected]
    assert report.live is not None and report.live.failed == 2
    assert report.matrix["approved"]["approved"] == 1  # D only: no judged case approved
    assert "policy on_" in judged[0].reasons[-1]


def test_at_most_max_calls_are_made(log: dict[str, Decision], images: Path) -> None:
    judge = StaticJudge("reject")
    report = replay(
        list(log.values()), store(STRICTER), live=LiveJudging(judge, max_calls=1, images=images)
    )
    assert len(judge.calls) == 1
    assert report.needs_judgment == 1
    assert report.needs_judgment_ids == (log["G"].id,)
    assert report.live is not None and report.live.not_judged_ids == (log["G"].id,)
    none = StaticJudge("reject")
    report = replay(list(log.values()), store(STRICTER), live=LiveJudging(none, 0, images=images))
    assert none.calls == []
    assert report.needs_judgment == 2


def test_a_case_without_its_image_stays_needs_judgment(
    log: dict[str, Decision], tmp_path: Path
) -> None:
    only_g = tmp_path / "only"
    only_g.mkdir()
    (only_g / "g.png").write_bytes(image(G[0]))
    judge = StaticJudge("reject")
    report = replay(
        list(log.values()), store(STRICTER), live=LiveJudging(judge, max_calls=5, images=only_g)
    )
    assert len(judge.calls) == 1
    assert report.needs_judgment_ids == (log["C"].id,)
    assert report.live is not None and report.live.without_image_ids == (log["C"].id,)
    assert "no image given for 1" in report.render()


def test_the_plan_prices_calls_with_the_logs_mean_usage_else_the_default(
    log: dict[str, Decision], images: Path
) -> None:
    plans: list[LivePlan] = []
    judge = StaticJudge("reject")
    # The log's judge calls (B, and F's failed call recorded no usage) used 1000 in, 100 out.
    replay(
        list(log.values()),
        store(STRICTER),
        live=LiveJudging(judge, max_calls=5, images=images, on_plan=plans.append),
    )
    # haiku 4.5: $1 in, $5 out per million tokens.
    assert plans[0].estimated_usd == pytest.approx(2 * (1000 * 1 + 100 * 5) / 1e6)
    assert "mean usage of 1 recorded calls" in plans[0].usage[MODEL]
    other = "anthropic.claude-sonnet-4-5-20250929-v1:0"
    plans.clear()
    replay(
        list(log.values()),
        store(STRICTER.replace(MODEL, other)),
        live=LiveJudging(judge, max_calls=5, images=images, on_plan=plans.append),
    )
    default = DEFAULT_JUDGE_USAGE
    per_call = (default.input_tokens * 3 + default.output_tokens * 15) / 1e6
    assert plans[0].estimated_usd == pytest.approx(2 * per_call)
    assert "default usage" in plans[0].usage[other]
    unpriced = Pricing(models={})
    plans.clear()
    replay(
        list(log.values()),
        store(STRICTER),
        live=LiveJudging(judge, 5, images=images, pricing=unpriced, on_plan=plans.append),
    )
    assert plans[0].estimated_usd is None
    assert "estimated cost unknown" in plans[0].describe()


def test_the_spend_is_priced_from_the_judges_reported_usage(
    log: dict[str, Decision], images: Path
) -> None:
    from moderation.ports import Judgment

    class Billed(StaticJudge):
        def judge(self, image: object, request: object) -> Judgment:  # type: ignore[override]
            found = super().judge(image, request)  # type: ignore[arg-type]
            return found.model_copy(update={"provider": "bedrock"})

    judge = Billed("approve", usage=TokenUsage(input_tokens=2000, output_tokens=200))
    report = replay(
        list(log.values()), store(STRICTER), live=LiveJudging(judge, max_calls=5, images=images)
    )
    assert report.live is not None
    assert report.live.spent_usd == pytest.approx(2 * (2000 + 200 * 5) / 1e6)


def test_live_opens_only_the_logs_and_the_images_directory(
    log: dict[str, Decision], images: Path, tmp_path: Path, opened: list[Path]
) -> None:
    bait = tmp_path / "bait.png"
    bait.write_bytes(image(CASES["B"][0]))
    tricky = log["C"].model_copy(update={"context": {"file": str(bait)}})
    (tmp_path / "logs").mkdir()
    path = write_bare(tmp_path / "logs" / "audit.jsonl", [tricky, log["G"]])
    policies = store(STRICTER)
    opened.clear()
    replay(path, policies, live=LiveJudging(StaticJudge("reject"), max_calls=5, images=images))
    allowed = {path.resolve(), *(p.resolve() for p in images.rglob("*") if p.is_file())}
    assert opened and set(opened) <= allowed
    assert bait.resolve() not in opened


def test_live_judging_refuses_a_bad_limit() -> None:
    with pytest.raises(ValueError, match="max_calls"):
        LiveJudging(StaticJudge("approve"), max_calls=-1)
    with pytest.raises(TypeError, match="max_calls"):
        LiveJudging(StaticJudge("approve"), max_calls=2.5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the command line


def test_cli_live_prints_the_plan_first_and_judges(
    log: dict[str, Decision], images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    judge = StaticJudge("reject")
    regions: list[str | None] = []

    def fake_judge(region: str | None) -> StaticJudge:
        regions.append(region)
        return judge

    # The module, not the command of the same name that `moderation.cli` exports.
    command_module = importlib.import_module("moderation.cli.replay")
    monkeypatch.setattr(command_module, "_bedrock_judge", fake_judge)
    path = write_bare(tmp_path / "audit.jsonl", log.values())
    args = ["replay", str(path), "--policies", str(policies(tmp_path, STRICTER))]
    live = ["--live", "--images", str(images), "--region", "eu-west-1"]
    result = runner().invoke(main, [*args, *live, "--max-judge-calls", "1", "--json"])
    assert result.exit_code == 0, result.stderr
    assert "2 cases need judgment, 2 with an image given; making 1 judge calls" in result.stderr
    assert "estimated cost $0.0015" in result.stderr
    assert regions == ["eu-west-1"]
    assert len(judge.calls) == 1
    data = json.loads(result.stdout)
    assert data["needs_judgment"] == 1
    assert data["live"]["made"] == 1


def test_cli_live_needs_a_limit_and_images(tmp_path: Path, log: dict[str, Decision]) -> None:
    path = write_bare(tmp_path / "audit.jsonl", log.values())
    args = ["replay", str(path), "--policies", str(policies(tmp_path, DEFAULT)), "--live"]
    no_limit = runner().invoke(main, [*args, "--images", str(tmp_path)])
    assert no_limit.exit_code == 2 and "--max-judge-calls" in no_limit.stderr
    no_images = runner().invoke(main, [*args, "--max-judge-calls", "3"])
    assert no_images.exit_code == 2 and "--images" in no_images.stderr


def test_cli_live_refuses_when_the_judge_is_off(
    tmp_path: Path, log: dict[str, Decision], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODERATION_JUDGE", "none")
    path = write_bare(tmp_path / "audit.jsonl", log.values())
    result = runner().invoke(
        main,
        [
            "replay", str(path), "--policies", str(policies(tmp_path, STRICTER)),
            "--live", "--max-judge-calls", "3", "--images", str(tmp_path),
        ],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "MODERATION_JUDGE=none" in result.stderr
