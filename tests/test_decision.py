"""The Decision record: frozen, exact JSON round trip, schema version, bounded context."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from moderation.decision import (
    SCHEMA_VERSION,
    Cost,
    DecidedBy,
    Decision,
    Escalation,
    ImageIdentity,
    Outcome,
    S3Identity,
    ShadowResult,
    TokenUsage,
    Verdict,
    VerdictKind,
)
from moderation.detection import Detection
from moderation.policy import PolicyStore
from moderation.triage import Action, evaluate

POLICY = """\
id: default
min_confidence: 40
default: {reject: 90, escalate: 60}
categories:
  Violence:
    reject: 95
    escalate: 60
    illustrated: {reject: 99, escalate: 85}
  Hate Symbols: {review: 40}
escalation: {judge: bedrock, model_id: us.anthropic.claude-haiku-4-5-20251001-v1:0}
"""

RESPONSE = {
    "ModerationLabels": [
        {
            "Name": "Physical Violence",
            "ParentName": "Graphic Violence",
            "Confidence": 88.71234,
            "TaxonomyLevel": 3,
        },
        {
            "Name": "Graphic Violence",
            "ParentName": "Violence",
            "Confidence": 88.71234,
            "TaxonomyLevel": 2,
        },
        {"Name": "Violence", "ParentName": "", "Confidence": 88.71234, "TaxonomyLevel": 1},
        {"Name": "Brand New Label", "ParentName": "", "Confidence": 41.0},
    ],
    "ModerationModelVersion": "7.0",
    "ContentTypes": [{"Name": "Illustrated", "Confidence": 94.1}],
    "ProjectVersion": "arn:aws:rekognition:us-east-1:123456789012:project/p/version/v/1",
}


def full_fields() -> dict:
    """Every field of a Decision populated, the nested records too."""
    store = PolicyStore.from_sources({"default": POLICY, "strict": "min_confidence: 30\n"})
    policy = store.get("default")
    detection = Detection.from_rekognition(RESPONSE, min_confidence=40, latency_ms=212.25)
    triage = evaluate(policy, detection)
    assert triage.action == Action.ESCALATE  # the escalation below is then consistent
    return {
        "id": "01JD5Z3K8Q6V9W2X4Y7Z0A1B2C",
        "created_at": datetime(2026, 11, 22, 1, 2, 3, 456789, tzinfo=UTC),
        "tenant": "kids",
        "context": {"upload_id": "u-123", "user_id": 42, "score": 0.5, "beta": True, "x": None},
        "outcome": Outcome.REJECTED,
        "decided_by": DecidedBy.JUDGE,
        "reasons": ("Physical Violence 88.7% >= escalate 85", "judge: reject"),
        "image": ImageIdentity(
            sha256="ab" * 32,
            size=123_456,
            format="jpeg",
            width=1024,
            height=768,
            s3=S3Identity(bucket="uploads", key="a/b c.jpg", version_id="v1", etag='"abc"'),
            converted=True,
        ),
        "policy": policy.ref,
        "detection": detection,
        "triage": triage,
        "escalation": Escalation(
            judge="bedrock",
            model_id="us.anthropic.claude-haiku-4-5-20251001-v1:0",
            prompt_sha256="cd" * 32,
            verdict=Verdict(
                verdict=VerdictKind.REJECT,
                categories=("Graphic Violence",),
                rationale="Realistic blood — «not» a cartoon.",
            ),
            stop_reason="tool_use",
            usage=TokenUsage(input_tokens=1500, output_tokens=80, total_tokens=1580),
            latency_ms=1234.5,
            attempts=2,
            error=None,
            skipped=None,
        ),
        "shadow": (
            ShadowResult(policy=store.get("strict").ref, action=Action.REJECT),
            ShadowResult(policy=policy.ref, action=Action.ESCALATE),
        ),
        "timings_ms": {"intake": 1.25, "detect": 212.25, "judge": 1234.5, "total": 1460.0},
        "cost": Cost(rekognition_usd=0.001, bedrock_usd=0.00123),
        "engine_version": "0.1.0",
        "error": None,
    }


@pytest.fixture
def decision() -> Decision:
    return Decision(**full_fields())


def test_json_round_trip_is_exact(decision):
    text = decision.model_dump_json()
    again = Decision.model_validate_json(text)
    assert again == decision
    assert again.model_dump_json() == text
    # every nested record survived with its type
    assert again.triage is not None
    assert again.triage.findings == decision.triage.findings
    assert again.detection is not None
    assert again.detection.labels[0].confidence == 88.71234
    assert again.image.s3 == S3Identity(
        bucket="uploads", key="a/b c.jpg", version_id="v1", etag='"abc"'
    )
    assert again.shadow[0].action is Action.REJECT
    assert again.created_at == decision.created_at


def test_round_trip_through_plain_json_data(decision):
    data = json.loads(decision.model_dump_json())
    assert Decision.model_validate(data) == decision
    assert data["schema_version"] == 1
    assert data["created_at"] == "2026-11-22T01:02:03.456789Z"
    assert data["outcome"] == "rejected"
    assert data["decided_by"] == "judge"
    assert data["triage"]["action"] == "escalate"


def test_round_trip_keeps_a_non_utc_offset():
    fields = full_fields()
    fields["created_at"] = datetime(
        2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))
    )
    decision = Decision(**fields)
    text = decision.model_dump_json()
    assert '"created_at":"2026-01-02T03:04:05+05:30"' in text
    assert Decision.model_validate_json(text).model_dump_json() == text


def test_minimal_decision_round_trips():
    fields = full_fields()
    minimal = Decision(
        id="01",
        created_at=fields["created_at"],
        tenant="default",
        outcome=Outcome.APPROVED,
        decided_by=DecidedBy.POLICY,
        image=ImageIdentity(),
        policy=fields["policy"],
        engine_version="0.1.0",
    )
    assert minimal.schema_version == SCHEMA_VERSION == 1
    assert minimal.context == {}
    assert minimal.approved is True
    assert Decision.model_validate_json(minimal.model_dump_json()) == minimal


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("outcome", Outcome.APPROVED),
        ("tenant", "other"),
        ("reasons", ()),
        ("context", {}),
        ("schema_version", 2),
    ],
    ids=["outcome", "tenant", "reasons", "context", "schema_version"],
)
def test_decision_is_frozen(decision, field, value):
    with pytest.raises(ValidationError):
        setattr(decision, field, value)


def test_nested_records_are_frozen(decision):
    with pytest.raises(ValidationError):
        decision.image.size = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        decision.escalation.attempts = 9  # type: ignore[union-attr]


def test_schema_version_other_than_1_is_refused(decision):
    data = json.loads(decision.model_dump_json())
    data["schema_version"] = 2
    with pytest.raises(ValidationError, match="schema_version"):
        Decision.model_validate(data)


@pytest.mark.parametrize(
    "context",
    [
        {f"k{i}": i for i in range(32)},
        {"k" * 64: "v"},
        {"upload": "x" * 256},
        {"n": -1, "f": 1e300, "b": False, "none": None},
    ],
    ids=["32-keys", "64-char-key", "256-char-value", "scalars"],
)
def test_context_within_bounds(context):
    fields = full_fields() | {"context": context}
    assert Decision(**fields).context == context


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({f"k{i}": i for i in range(33)}, "33 keys; at most 32"),
        ({"k" * 65: "v"}, "context key"),
        ({"upload": "x" * 257}, "257 characters; at most 256"),
        ({"doc": {"nested": 1}}, "context.doc"),
        ({"ids": [1, 2]}, "context.ids"),
        ({"score": math.nan}, "context.score"),
        ({"score": math.inf}, "context.score"),
        ("u-123", "context"),
    ],
    ids=["33-keys", "65-char-key", "257-char-value", "dict", "list", "nan", "inf", "not-a-dict"],
)
def test_context_out_of_bounds_is_refused(context, message):
    fields = full_fields() | {"context": context}
    with pytest.raises(ValidationError, match=message.replace("[", r"\[")):
        Decision(**fields)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ((), {"colour": "red"}),
        (("image",), {"bytes": "aGVsbG8="}),
        (("policy",), {"description": "x"}),
        (("detection",), {"raw": {}}),
        (("detection", "labels", 0), {"Instances": []}),
        (("triage", "findings", 0), {"extra": 1}),
        (("escalation",), {"api_key": "secret"}),
        (("escalation", "verdict"), {"confidence": 0.9}),
        (("cost",), {"currency": "EUR"}),
        (("shadow", 0), {"note": "x"}),
    ],
    ids=lambda v: ".".join(map(str, v)) or "root" if isinstance(v, tuple) else next(iter(v)),
)
def test_extra_fields_are_refused_everywhere(decision, path, value):
    data = json.loads(decision.model_dump_json())
    target = data
    for step in path:
        target = target[step]
    target.update(value)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Decision.model_validate_json(json.dumps(data))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("created_at", datetime(2026, 1, 1, 0, 0, 0)),  # naive: which zone?
        ("timings_ms", {"detect": -1.0}),
        ("timings_ms", {"detect": math.inf}),
        ("outcome", "escalate"),  # not an outcome: escalate is a triage action
        ("decided_by", "human"),
        ("image", b"\xff\xd8\xff"),
    ],
    ids=["naive-datetime", "negative-timing", "infinite-timing", "escalate", "human", "bytes"],
)
def test_invalid_values_are_refused(field, value):
    with pytest.raises(ValidationError, match=field):
        Decision(**(full_fields() | {field: value}))


def test_non_finite_numbers_cannot_enter_the_record():
    # JSON has no NaN: a record holding one would not load back from the audit log.
    with pytest.raises(ValidationError):
        Cost(rekognition_usd=math.nan)
    with pytest.raises(ValidationError):
        Escalation(judge="bedrock", latency_ms=math.inf)


@pytest.mark.parametrize(
    ("outcome", "approved"),
    [(Outcome.APPROVED, True), (Outcome.REJECTED, False), (Outcome.REVIEW, False)],
    ids=str,
)
def test_approved_only_for_approved(outcome, approved):
    assert Decision(**(full_fields() | {"outcome": outcome})).approved is approved


def test_cost_total():
    assert Cost(rekognition_usd=0.001, bedrock_usd=0.002).total_usd == pytest.approx(0.003)
    assert Cost().total_usd == 0.0


def test_the_recorded_judge_answer_reads_blocked_from_the_same_stop_reasons_as_the_judge():
    from moderation.decision import BLOCKED_STOP_REASONS, Escalation
    from moderation.judge._verdict import _BLOCKED_STOPS

    assert set(_BLOCKED_STOPS) == BLOCKED_STOP_REASONS
    answered = {"judge": "bedrock", "provider": "bedrock", "model_id": "m"}
    assert Escalation(**answered, stop_reason="content_filtered").answer == "blocked"
    assert Escalation(**answered, stop_reason="max_tokens", error="cut").answer == "invalid"
    assert Escalation(judge="bedrock", error="ReadTimeout").answer == "failed"
    assert Escalation(judge="bedrock", skipped="budget", error=None).answer is None
