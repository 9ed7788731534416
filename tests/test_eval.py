"""`moderation eval` and `moderation.evaluate`: labels, exact counts and rates, intervals from
`moderation.stats`, models side by side, the judge call limit, the cost estimate, JSON, errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import builders
import pytest
from clirunner import runner
from images import solid

from moderation import Engine, PolicyStore
from moderation.audit import InMemoryAuditLog
from moderation.budget import EscalationBudget
from moderation.cli import main
from moderation.decision import Outcome
from moderation.evaluate import (
    Confusion,
    LabelsError,
    estimate,
    percentile,
    read_labels,
    report,
    run_model,
)
from moderation.image import ImageIntake, PreparedImage
from moderation.ports import JudgeRequest, Judgment
from moderation.pricing import Pricing
from moderation.recorded import RecordedDetector, Recordings
from moderation.replay import DEFAULT_JUDGE_USAGE
from moderation.stats import clopper_pearson
from moderation.testing import StaticJudge

HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
NOVA = "amazon.nova-lite-v1:0"
POLICY = f"""\
min_confidence: 40
default: {{reject: 90, escalate: 50}}
categories:
  Violence: {{reject: 90, escalate: 50}}
escalation:
  judge: bedrock
  model_id: {HAIKU}
  guidance: A test site.
"""
USAGE = {"inputTokens": 1000, "outputTokens": 100, "totalTokens": 1100}

# file: (Violence confidence or None, the recorded judge's verdict or None, expected, category)
# a, b rejected by policy; c, d, i approved by policy; e..h escalated to the judge.
CASES: dict[str, tuple[float | None, str | None, str, str]] = {
    "a.png": (95.0, None, "reject", "gore"),
    "b.png": (95.0, None, "approve", "gore"),
    "c.png": (None, None, "approve", ""),
    "d.png": (None, None, "reject", ""),
    "e.png": (70.0, "reject", "reject", ""),
    "f.png": (70.0, "reject", "approve", ""),
    "g.png": (70.0, "approve", "approve", ""),
    "h.png": (70.0, "unsure", "reject", ""),
    "i.png": (None, None, "approve", ""),
}


def _detect(confidence: float | None) -> dict[str, Any]:
    labels = []
    if confidence is not None:
        labels = [
            {"Confidence": confidence, "Name": "Violence", "ParentName": "", "TaxonomyLevel": 1}
        ]
    return {"ModerationLabels": labels, "ModerationModelVersion": "7.0"}


def _converse(verdict: str) -> dict[str, Any]:
    tool = {"verdict": verdict, "categories": [], "rationale": f"test: {verdict}"}
    content = [{"toolUse": {"toolUseId": "t1", "name": "record_verdict", "input": tool}}]
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": "tool_use",
        "usage": USAGE,
    }


@pytest.fixture
def labelled(tmp_path: Path) -> dict[str, Path]:
    """Images, their recordings, a labels CSV and a policy directory, as CASES describes."""
    images, recordings = tmp_path / "images", tmp_path / "recordings"
    images.mkdir()
    recordings.mkdir()
    rows = ["file,expected,category"]
    for n, (name, (confidence, verdict, expected, category)) in enumerate(CASES.items()):
        data = solid("png", (200 + n, 150))
        (images / name).write_bytes(data)
        entry: dict[str, Any] = {"sha256": hashlib.sha256(data).hexdigest()}
        entry["detect_moderation_labels"] = _detect(confidence)
        if verdict is not None:
            entry["converse"] = _converse(verdict)
        (recordings / f"{name}.json").write_text(json.dumps(entry))
        rows.append(f"{name},{expected},{category}")
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    policies = builders.policies_dir(tmp_path / "policies", default=POLICY)
    return {"images": images, "recordings": recordings, "labels": labels, "policies": policies}


def _eval(paths: dict[str, Path], *args: str):
    return runner().invoke(
        main,
        [
            "eval", "--labels", str(paths["labels"]), "--images", str(paths["images"]),
            "--offline", str(paths["recordings"]), "--policies", str(paths["policies"]),
            "--workers", "1", *args,
        ],
        catch_exceptions=False,
    )  # fmt: skip


def _interval(k: int, n: int) -> dict[str, Any]:
    cp = clopper_pearson(k, n, 0.95)
    return {"k": k, "n": n, "rate": cp.rate, "low": cp.low, "high": cp.high}


# -- the pipeline and the judge, counted exactly -------------------------------------------------


def test_json_counts_rates_and_intervals_are_exact(labelled: dict[str, Path]) -> None:
    result = _eval(labelled, "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    body = json.loads(result.stdout)
    [run] = body["models"]
    assert run["model"] == HAIKU  # the policy's model
    assert run["judge_calls"] == 4
    every = run["all"]
    assert (every["images"], every["failed"], every["decided"]) == (9, 0, 9)
    pipeline = every["pipeline"]
    # a, e rejected and harmful; b, f rejected and harmless; d approved and harmful;
    # c, g, i approved and harmless; h (judge unsure) sent to people.
    assert (pipeline["tp"], pipeline["fp"], pipeline["fn"], pipeline["tn"]) == (2, 2, 1, 3)
    assert pipeline["precision"] == _interval(2, 4)
    assert pipeline["recall"] == _interval(2, 3)
    assert pipeline["f1"] == pytest.approx(4 / 7)
    assert pipeline["sent_to_people"] == {"harmful": 1, "harmless": 0, "share": _interval(1, 9)}
    judge = every["judge"]
    assert judge["escalated"] == _interval(4, 9)
    assert (judge["calls"], judge["not_called"], judge["no_verdict"], judge["unsure"]) == (
        4,
        0,
        0,
        1,
    )
    assert (judge["tp"], judge["fp"], judge["fn"], judge["tn"]) == (1, 1, 0, 1)
    assert judge["precision"] == _interval(1, 2)
    assert judge["recall"] == _interval(1, 1)
    assert judge["f1"] == pytest.approx(2 / 3)
    per_call = (1000 * 1.00 + 100 * 5.00) / 1_000_000  # Haiku 4.5: $1 in, $5 out per Mtok
    assert every["cost_per_1000_usd"] == {
        "billed": 0.0,  # recorded answers bill nothing
        "judge_priced": pytest.approx(4 * per_call / 9 * 1000),
    }
    assert every["latency_ms"]["p50"] is not None
    assert every["latency_ms"]["p95"] >= every["latency_ms"]["p50"]


def test_categories_come_from_the_csv_else_the_rule_that_decided(labelled: dict[str, Path]) -> None:
    body = json.loads(_eval(labelled, "--json").stdout)
    categories = body["models"][0]["categories"]
    assert sorted(categories) == ["(no rule)", "Violence", "gore"]
    gore = categories["gore"]["pipeline"]
    assert (gore["tp"], gore["fp"], gore["fn"], gore["tn"]) == (1, 1, 0, 0)
    violence = categories["Violence"]
    assert violence["images"] == 4  # e..h
    assert violence["judge"]["escalated"] == _interval(4, 4)
    assert categories["(no rule)"]["images"] == 3  # c, d, i: nothing reached a band


def test_json_shape(labelled: dict[str, Path]) -> None:
    body = json.loads(_eval(labelled, "--json", "--model", HAIKU).stdout)
    assert set(body) == {
        "tenant", "labels", "images", "confidence", "models", "max_judge_calls", "estimate",
    }  # fmt: skip
    assert (body["tenant"], body["images"], body["confidence"]) == ("default", 9, 0.95)
    assert set(body["estimate"]) == {
        "images", "runs", "judge_calls_per_run", "rekognition_usd", "judge_usd", "total_usd",
    }  # fmt: skip
    [run] = body["models"]
    assert set(run) == {"model", "judge_calls", "failed", "all", "categories"}
    assert run["model"] == HAIKU
    assert set(run["all"]) == {
        "images", "failed", "decided", "pipeline", "judge", "cost_per_1000_usd", "latency_ms",
    }  # fmt: skip
    assert set(run["all"]["latency_ms"]) == {"p50", "p95", "judge_p50", "judge_p95"}
    assert set(run["all"]["pipeline"]) == {
        "tp", "fp", "fn", "tn", "precision", "recall", "f1", "sent_to_people",
    }  # fmt: skip


def test_text_report_puts_models_side_by_side(labelled: dict[str, Path]) -> None:
    result = _eval(labelled, "--model", HAIKU, "--model", NOVA)
    assert result.exit_code == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if HAIKU in line)
    assert NOVA in header
    precision = next(line for line in result.stdout.splitlines() if "pipeline precision" in line)
    cp = clopper_pearson(2, 4)
    assert precision.count(f"0.500 [{cp.low:.3f}, {cp.high:.3f}] 2/4") == 2
    assert "category Violence" in result.stdout and "category gore" in result.stdout


def test_each_model_is_priced_as_itself(labelled: dict[str, Path]) -> None:
    body = json.loads(_eval(labelled, "--json", "--model", HAIKU, "--model", NOVA).stdout)
    haiku, nova = body["models"]
    assert (haiku["model"], nova["model"]) == (HAIKU, NOVA)
    pricing = Pricing()
    from moderation.decision import TokenUsage

    usage = TokenUsage(input_tokens=1000, output_tokens=100, total_tokens=1100)
    for run, model in ((haiku, HAIKU), (nova, NOVA)):
        per_call = pricing.bedrock(model, usage)
        assert per_call is not None
        assert run["all"]["cost_per_1000_usd"]["judge_priced"] == pytest.approx(
            4 * per_call / 9 * 1000
        )


# -- models side by side, through the engine -------------------------------------------------------


class ByModel:
    """A judge whose answer depends on the model the request names (as Bedrock's does): the
    recordings hold one answer per image, so this is how a test makes two models differ."""

    def __init__(self, **judges: StaticJudge) -> None:
        self.judges = judges
        self.models: list[str] = []

    def judge(self, image: PreparedImage, request: JudgeRequest) -> Judgment:
        self.models.append(request.model_id)
        return self.judges[request.model_id].judge(image, request)


def _engine(paths: dict[str, Path], judge: Any) -> Engine:
    recorded = Recordings.load(paths["recordings"])
    return Engine(
        PolicyStore(paths["policies"]),
        RecordedDetector(recorded),
        judge,
        InMemoryAuditLog(),
        intake=ImageIntake(),
    )


def test_two_models_side_by_side_each_asked_by_its_own_run(labelled: dict[str, Path]) -> None:
    images = read_labels(labelled["labels"], labelled["images"])
    judge = ByModel(strict=StaticJudge("reject"), lenient=StaticJudge("approve"))
    runs = [
        run_model(_engine(labelled, judge), images, tenant="default", model=m, max_judge_calls=100)
        for m in ("strict", "lenient")
    ]
    assert judge.models == ["strict"] * 4 + ["lenient"] * 4
    body = report(runs, Pricing())
    strict, lenient = (run["all"] for run in body["models"])
    # Escalated: e (harmful), f (harmless), g (harmless), h (harmful).
    assert (strict["judge"]["tp"], strict["judge"]["fp"]) == (2, 2)
    assert (lenient["judge"]["fn"], lenient["judge"]["tn"]) == (2, 2)
    assert strict["judge"]["recall"] == _interval(2, 2)
    assert lenient["judge"]["recall"] == _interval(0, 2)
    assert strict["pipeline"]["precision"] == _interval(1 + 2, 2 + 4)  # a, e, h of a, b, e..h
    assert lenient["pipeline"]["recall"] == _interval(1, 4)  # a of a, d, e, h
    decisions = [r.decision for r in runs[0].results if r.decision and r.decision.escalation]
    assert {d.escalation.model_id for d in decisions if d.escalation} == {"strict"}


# -- the judge call limit ------------------------------------------------------------------------


def test_the_engine_never_calls_the_judge_past_the_limit(labelled: dict[str, Path]) -> None:
    images = read_labels(labelled["labels"], labelled["images"])
    judge = StaticJudge("reject")
    run = run_model(
        _engine(labelled, judge), images, tenant="default", model=None, max_judge_calls=2,
        workers=4,
    )  # fmt: skip
    assert len(judge.calls) == 2
    assert run.judge_calls == 2
    skipped = [r.decision for r in run.results if r.decision and r.decision.escalation]
    notes = [d.escalation.skipped for d in skipped if d.escalation and d.escalation.skipped]
    assert len(notes) == 2
    assert all(note.startswith("judge call limit reached (2 judge calls") for note in notes)
    assert all(
        d.outcome is Outcome.REVIEW for d in skipped if d.escalation and d.escalation.skipped
    )


def test_cli_limit_reports_escalations_not_called(labelled: dict[str, Path]) -> None:
    body = json.loads(_eval(labelled, "--json", "--max-judge-calls", "1").stdout)
    [run] = body["models"]
    assert run["judge_calls"] == 1
    judge = run["all"]["judge"]
    assert (judge["calls"], judge["not_called"]) == (1, 3)
    assert body["max_judge_calls"] == 1
    assert body["estimate"]["judge_calls_per_run"] == 1


def test_zero_judge_calls_sends_every_escalation_to_people(labelled: dict[str, Path]) -> None:
    body = json.loads(_eval(labelled, "--json", "--max-judge-calls", "0").stdout)
    every = body["models"][0]["all"]
    assert (every["judge"]["calls"], every["judge"]["not_called"]) == (0, 4)
    assert every["pipeline"]["sent_to_people"]["share"] == _interval(4, 9)


def test_budget_max_calls_is_shared_by_every_tenant() -> None:
    budget = EscalationBudget(max_calls=2)
    assert budget.acquire("a", None) is None
    assert budget.acquire("b", None) is None
    refused = budget.acquire("a", None)
    assert refused is not None and "judge call limit reached (2" in refused
    assert budget.granted == 2
    with pytest.raises(ValueError, match="max_calls"):
        EscalationBudget(max_calls=-1)


# -- the cost estimate -----------------------------------------------------------------------------


def test_the_estimate_is_printed_before_the_first_call(
    labelled: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import click

    detect = RecordedDetector.detect

    def noisy(self: RecordedDetector, image: PreparedImage, *, min_confidence: float) -> Any:
        click.echo("DETECT-CALLED", err=True)
        return detect(self, image, min_confidence=min_confidence)

    monkeypatch.setattr(RecordedDetector, "detect", noisy)
    result = _eval(labelled, "--model", HAIKU, "--model", NOVA, "--max-judge-calls", "3")
    assert result.exit_code == 0, result.stderr
    assert (
        0 <= result.stderr.index("estimated cost: at most") < result.stderr.index("DETECT-CALLED")
    )
    pricing = Pricing()
    haiku, nova = (pricing.bedrock(m, DEFAULT_JUDGE_USAGE) for m in (HAIKU, NOVA))
    assert haiku is not None and nova is not None
    total = 9 * 2 * pricing.rekognition_per_image + 3 * (haiku + nova)
    assert f"at most ${total:.4f} (2 run(s) of 9 image(s))" in result.stderr


def test_estimate_counts_at_most_one_call_per_image_and_an_unknown_price() -> None:
    plan = estimate(5, ["no-such-model", HAIKU], 100, Pricing())
    assert plan.judge_calls == 5
    assert plan.judge_usd["no-such-model"] is None
    assert plan.total_usd is None
    assert "no price for this model" in plan.describe()
    assert estimate(5, [None], 100, Pricing()).judge_calls == 0


# -- labels and errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a.png,maybe,", "labels.csv:3: unknown verdict 'maybe' for a.png"),
        ("zz.png,reject,", "labels.csv:3: zz.png: no such file in"),
        ("a.png,reject,x,y", "labels.csv:3: 4 column(s), the header has 3"),
        ("b.png,reject,", "labels.csv:3: b.png is labelled twice (line 2)"),
        (",reject,", "labels.csv:3: the file name is empty"),
    ],
)
def test_a_bad_row_names_its_line(labelled: dict[str, Path], row: str, message: str) -> None:
    labelled["labels"].write_text(f"file,expected,category\nb.png,approve,\n{row}\n")
    result = _eval(labelled)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "estimated cost" not in result.stderr  # nothing started


def test_bad_header_and_empty_labels(labelled: dict[str, Path]) -> None:
    labelled["labels"].write_text("name,verdict\na.png,reject\n")
    result = _eval(labelled)
    assert result.exit_code == 2
    assert "labels.csv:1: the header must be `file,expected`" in result.stderr
    labelled["labels"].write_text("file,expected\n")
    assert "no labelled images" in _eval(labelled).stderr


def test_accepted_spellings(labelled: dict[str, Path]) -> None:
    labelled["labels"].write_text("File,Expected\na.png,Rejected\nc.png,APPROVED\n")
    rows = read_labels(labelled["labels"], labelled["images"])
    assert [(r.file, r.harmful, r.category, r.line) for r in rows] == [
        ("a.png", True, None, 2),
        ("c.png", False, None, 3),
    ]
    with pytest.raises(LabelsError, match="images directory not found"):
        read_labels(labelled["labels"], labelled["images"] / "nope")


def test_an_image_without_recording_exits_3_and_is_listed(labelled: dict[str, Path]) -> None:
    (labelled["recordings"] / "d.png.json").unlink()
    result = _eval(labelled, "--json")
    assert result.exit_code == 3
    [run] = json.loads(result.stdout)["models"]
    assert [f["file"] for f in run["failed"]] == ["d.png"]
    assert "NoRecording" in run["failed"][0]["error"]
    assert (run["all"]["images"], run["all"]["failed"], run["all"]["decided"]) == (9, 1, 8)
    assert run["all"]["pipeline"]["fn"] == 0  # d was the one false negative


def test_model_for_a_policy_without_judge_is_a_usage_error(labelled: dict[str, Path]) -> None:
    (labelled["policies"] / "default.yaml").write_text(builders.DEFAULT_POLICY)
    result = _eval(labelled, "--model", HAIKU)
    assert result.exit_code == 2
    assert "has `judge: none`" in result.stderr


def test_help_lists_exit_codes() -> None:
    result = runner().invoke(main, ["eval", "--help"])
    assert result.exit_code == 0
    assert "Exit codes:" in result.stdout and "3  the report is printed" in result.stdout


# -- the arithmetic --------------------------------------------------------------------------------


def test_confusion_and_percentile_follow_their_definitions() -> None:
    counts = Confusion()
    for predicted, harmful in [(True, True), (True, False), (False, True), (False, False)] * 2:
        counts = counts.add(predicted, harmful)
    assert (counts.tp, counts.fp, counts.fn, counts.tn) == (2, 2, 2, 2)
    assert counts.f1 == pytest.approx(0.5)
    assert Confusion(tn=3).f1 is None
    assert counts.precision(0.9) == clopper_pearson(2, 4, 0.9)
    # nearest rank: the smallest value with at least q% of the values at or below it
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile([float(v) for v in range(1, 21)], 95) == 19.0
    assert percentile([float(v) for v in range(1, 101)], 95) == 95.0
    assert percentile([], 50) is None
