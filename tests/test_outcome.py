"""The outcome rule (`moderation.outcome`), the cost of a decision (`Pricing.cost`) and the image's
identity (`ImageIdentity.of`): the pure pieces the engine, its shadows and replay share."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import builders
import pytest
from images import solid

from moderation import DecidedBy, Engine, Outcome, PolicyStore
from moderation.decision import (
    Escalation,
    ImageIdentity,
    S3Identity,
    TokenUsage,
    Verdict,
    VerdictKind,
)
from moderation.detection import Detection
from moderation.image import PreparedImage
from moderation.outcome import NO_JUDGE_NOTE, decide, escalation_record, reusable_answer
from moderation.policy import Policy
from moderation.ports import JudgeRequest, Judgment
from moderation.pricing import ModelPrice, Pricing
from moderation.replay import replay
from moderation.testing import StaticDetector
from moderation.triage import Action

MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
IMAGE = solid("jpeg", (120, 90))
ROOT = Path(__file__).resolve().parents[1]


def policy(judge: str = "bedrock", on_error: str = "review", on_blocked: str = "review") -> Policy:
    model = f", model_id: {MODEL}" if judge == "bedrock" else ""
    text = (
        "default: {reject: 90, escalate: 50}\n"
        f"escalation: {{judge: {judge}{model}, on_error: {on_error}, on_blocked: {on_blocked}}}\n"
    )
    return PolicyStore.from_sources({"default": text}).get("default")


def answered(kind: VerdictKind) -> Escalation:
    return Escalation(
        judge="bedrock",
        provider="bedrock",
        model_id=MODEL,
        verdict=Verdict(verdict=kind, rationale="why"),
        stop_reason="tool_use",
    )


BLOCKED = Escalation(
    judge="bedrock", provider="bedrock", model_id=MODEL, stop_reason="content_filtered", error="cf"
)
INVALID = Escalation(
    judge="bedrock", provider="bedrock", model_id=MODEL, stop_reason="max_tokens", error="cut"
)
FAILED = Escalation(judge="bedrock", model_id=MODEL, error="JudgeError: timeout")
SKIPPED = Escalation(judge="bedrock", model_id=MODEL, skipped="escalation budget exhausted")

# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("action", "outcome"),
    [
        (Action.APPROVE, Outcome.APPROVED),
        (Action.REVIEW, Outcome.REVIEW),
        (Action.REJECT, Outcome.REJECTED),
    ],
)
def test_a_band_decides_by_policy_whatever_the_judge_said(action, outcome):
    for answer in (None, answered(VerdictKind.APPROVE), BLOCKED, FAILED):
        ruling = decide(policy(), action, answer)
        assert (ruling.outcome, ruling.decided_by, ruling.reason) == (
            outcome,
            DecidedBy.POLICY,
            None,
        )
        assert not ruling.asks_judge


@pytest.mark.parametrize(
    ("answer", "on_error", "on_blocked", "outcome", "decided_by", "reason"),
    [
        (answered(VerdictKind.APPROVE), "reject", "reject", Outcome.APPROVED, DecidedBy.JUDGE,
         f"judge {MODEL} answered approve: why"),
        (answered(VerdictKind.REJECT), "review", "review", Outcome.REJECTED, DecidedBy.JUDGE,
         f"judge {MODEL} answered reject: why"),
        (answered(VerdictKind.UNSURE), "reject", "reject", Outcome.REVIEW, DecidedBy.JUDGE,
         f"judge {MODEL} answered unsure: why"),
        (BLOCKED, "review", "reject", Outcome.REJECTED, DecidedBy.FALLBACK,
         "judge gave no verdict (cf); policy on_blocked=reject"),
        (INVALID, "reject", "review", Outcome.REJECTED, DecidedBy.FALLBACK,
         "judge gave no verdict (cut); policy on_error=reject"),
        (FAILED, "reject", "review", Outcome.REJECTED, DecidedBy.FALLBACK,
         "judge failed (JudgeError: timeout); policy on_error=reject"),
        (SKIPPED, "reject", "reject", Outcome.REVIEW, DecidedBy.FALLBACK,
         "escalation budget exhausted"),
    ],
    ids=["approve", "reject", "unsure", "blocked", "invalid", "failed", "skipped"],
)  # fmt: skip
def test_an_escalation_is_decided_by_the_judges_answer(
    answer, on_error, on_blocked, outcome, decided_by, reason
):
    ruling = decide(policy(on_error=on_error, on_blocked=on_blocked), Action.ESCALATE, answer)
    assert (ruling.outcome, ruling.decided_by, ruling.reason) == (outcome, decided_by, reason)
    assert ruling.asks_judge and ruling.judged


def test_a_ruling_is_immutable_even_when_shared():
    # A band decision's ruling is one object per action, handed to every caller.
    ruling = decide(policy(), Action.REJECT, None)
    assert decide(policy("none"), Action.REJECT, answered(VerdictKind.APPROVE)) is ruling
    with pytest.raises(AttributeError):
        ruling.outcome = Outcome.APPROVED  # type: ignore[misc]
    assert ruling.action is Action.REJECT and ruling.outcome is Outcome.REJECTED


def test_no_failure_approves_under_any_fallback():
    for on_error in ("review", "reject"):
        for on_blocked in ("review", "reject"):
            rules = policy(on_error=on_error, on_blocked=on_blocked)
            for answer in (BLOCKED, INVALID, FAILED, SKIPPED):
                assert decide(rules, Action.ESCALATE, answer).outcome is not Outcome.APPROVED


def test_a_policy_without_a_judge_reviews_whatever_answer_is_at_hand():
    for answer in (None, answered(VerdictKind.APPROVE), BLOCKED, FAILED):
        ruling = decide(policy("none"), Action.ESCALATE, answer)
        assert (ruling.outcome, ruling.decided_by, ruling.reason) == (
            Outcome.REVIEW,
            DecidedBy.POLICY,
            NO_JUDGE_NOTE,
        )
        assert not ruling.asks_judge


def test_an_escalation_without_an_answer_is_undecided_never_invented():
    ruling = decide(policy(), Action.ESCALATE, None)
    assert (ruling.outcome, ruling.decided_by, ruling.asks_judge, ruling.judged) == (
        None,
        None,
        True,
        False,
    )


def test_what_a_re_evaluation_may_reuse():
    verdict = answered(VerdictKind.REJECT)
    assert [reusable_answer(e) for e in (verdict, BLOCKED, INVALID, FAILED, SKIPPED, None)] == [
        verdict,
        BLOCKED,
        INVALID,
        None,
        None,
        None,
    ]
    assert [reusable_answer(e, replies=False) for e in (verdict, BLOCKED, INVALID)] == [
        verdict,
        None,
        None,
    ]


# --------------------------------------------------------------------------- engine and replay


@dataclass
class OddJudge:
    """A judge whose reply is not what its status says: a verdict carried by an unusable reply,
    or a refusal whose stop reason is not a refusal's."""

    status: str
    stop_reason: str | None
    verdict: Verdict | None = None

    def judge(self, image: PreparedImage, request: JudgeRequest) -> Judgment:
        return Judgment(
            status=self.status,  # type: ignore[arg-type]
            verdict=self.verdict,
            detail=f"odd {self.status}",
            model_id=request.model_id,
            prompt_sha256="0" * 64,
            stop_reason=self.stop_reason,
        )


def engine(sources: dict[str, str], judge: OddJudge) -> Engine:
    """An engine on the policies `sources` whose detector sees Violence at 70%."""
    return builders.engine(
        builders.store(**sources), StaticDetector([("Violence", 70.0)]), judge, real=("timer",)
    )


@pytest.mark.parametrize(
    "judge",
    [
        OddJudge("invalid", "end_turn", Verdict(verdict=VerdictKind.APPROVE)),
        OddJudge("blocked", "end_turn"),
        OddJudge("invalid", "content_filtered"),
    ],
    ids=["unusable-reply-carrying-approve", "blocked-by-status-only", "invalid-by-status-only"],
)
def test_what_the_engine_decided_from_a_reply_replay_decides_the_same(judge):
    # GIVEN a policy whose two fallbacks differ, and a reply whose parts disagree
    sources = {
        "default": "default: {reject: 90, escalate: 50}\n"
        f"escalation: {{judge: bedrock, model_id: {MODEL}, on_error: review, on_blocked: reject}}\n"
    }
    decision = engine(sources, judge).moderate(IMAGE)
    # THEN the engine fell back (an unusable reply never approves) ...
    assert decision.decided_by is DecidedBy.FALLBACK
    assert decision.outcome is not Outcome.APPROVED
    # ... AND replaying its record under the same policy gives the same outcome
    report = replay([decision], PolicyStore.from_sources(sources))
    assert (report.unchanged, report.flipped, report.needs_judgment) == (1, 0, 0)


def test_an_escalation_record_keeps_a_verdict_only_from_a_verdict():
    reply = Judgment(
        status="invalid",
        verdict=Verdict(verdict=VerdictKind.APPROVE),
        detail="no tool call",
        model_id=MODEL,
        prompt_sha256="0" * 64,
        stop_reason="end_turn",
    )
    record = escalation_record("bedrock", reply)
    assert (record.verdict, record.answer, record.error) == (None, "invalid", "no tool call")


# --------------------------------------------------------------------------- cost and identity


def test_the_cost_of_a_decision():
    pricing = Pricing(rekognition_per_image=0.001, models={MODEL: ModelPrice(1.0, 5.0)})
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=200_000)
    billed = Escalation(judge="bedrock", provider="bedrock", model_id=MODEL, usage=usage)
    service = Detection(provider="rekognition")
    # each detector call of the service, and the judge's tokens
    assert pricing.cost(service, 3, billed).model_dump() == {
        "rekognition_usd": 0.003,
        "bedrock_usd": 2.0,
    }
    # offline answers, a cached detection (no call) and no judge cost nothing
    offline = billed.model_copy(update={"provider": "static"})
    assert pricing.cost(Detection(provider="static"), 3, offline).total_usd == 0.0
    assert pricing.cost(service, 0, None).total_usd == 0.0
    # a model without a price: unknown, not free
    unpriced = billed.model_copy(update={"model_id": "acme.model-v1"})
    assert pricing.cost(service, 1, unpriced).bedrock_usd is None


@dataclass(frozen=True)
class Where:
    bucket: str
    key: str
    version_id: str | None
    etag: str | None


@dataclass(frozen=True)
class Prepared:
    sha256: str | None
    size: int
    format: str
    width: int
    height: int
    s3: Where | None
    converted: bool
    n_frames: int


def test_an_image_identity_is_taken_from_what_intake_prepared():
    image = Prepared(None, 10, "png", 100, 80, Where("b", "k", "v1", '"e"'), True, 3)
    assert ImageIdentity.of(image) == ImageIdentity(
        size=10,
        format="png",
        width=100,
        height=80,
        s3=S3Identity(bucket="b", key="k", version_id="v1", etag='"e"'),
        converted=True,
        n_frames=3,
    )
    decision = engine({"default": "default: {reject: 90}\n"}, OddJudge("verdict", None)).moderate(
        IMAGE
    )
    assert decision.image.sha256 is not None
    assert (decision.image.format, decision.image.width, decision.image.s3) == ("jpeg", 120, None)


@pytest.mark.parametrize("module", ["outcome", "decision", "pricing"])
def test_the_rule_and_its_records_are_pure(module):
    """No SDK, no Pillow, no image package and no I/O module in the pure core's own imports."""
    tree = ast.parse((ROOT / "moderation" / f"{module}.py").read_text())
    named: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            named |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            named.add(node.module)
    banned = ("boto3", "botocore", "PIL", "moderation.image", "moderation.aws", "os", "io")
    assert not {n for n in named if n.split(".")[0] in banned or n.startswith(banned)}
