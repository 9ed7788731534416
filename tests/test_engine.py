"""The engine end to end with fake ports: every outcome, every fallback, and the audit log.

Fakes stand in for Rekognition and Bedrock here; the adapters have their own contract and wire
tests. What matters here is that no failure path approves and every decision is audited.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import builders
import pytest
from images import solid

from moderation import (
    AuditError,
    DecidedBy,
    Decision,
    Detection,
    DetectorError,
    Engine,
    InvalidImage,
    InvalidTenant,
    JudgeError,
    Outcome,
    PolicyStore,
)
from moderation.audit import InMemoryAuditLog, JsonlAuditLog, decisions
from moderation.aws.s3 import S3ImageReader
from moderation.budget import EscalationBudget
from moderation.decision import TokenUsage, Verdict, VerdictKind
from moderation.ports import JudgeRequest, Judgment

POLICY = """
min_confidence: 40
default: {reject: 90, escalate: 60}
categories:
  Explicit: {reject: 80, escalate: 40}
  Hate Symbols: {review: 40}
escalation:
  judge: bedrock
  model_id: us.anthropic.claude-haiku-4-5-20251001-v1:0
  guidance: Art is fine.
  on_error: review
  on_blocked: reject
"""
REJECTING = "escalation: {on_error: reject}\n"
NO_JUDGE = "escalation: {judge: none}\n"
REVIEW_ON_DETECTOR = "on_detector_error: review\n"
BUDGETED = "escalation: {budget: {calls: 2, per: 1m}}\n"

IMAGE = solid("jpeg", (120, 90))


CLEAN = builders.detection()
EXPLICIT = builders.detection(("Explicit Nudity", "Explicit", 95.0), ("Explicit", "", 95.0))
BORDERLINE = builders.detection(("Explicit Nudity", "Explicit", 55.0), ("Explicit", "", 55.0))
HATE = builders.detection(("Nazi Party", "Hate Symbols", 50.0), ("Hate Symbols", "", 50.0))


class FakeDetector:
    def __init__(self, result: Detection | Exception) -> None:
        self.result = result
        self.calls: list[float] = []

    def detect(self, image, *, min_confidence):
        self.calls.append(min_confidence)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def judgment(status="verdict", verdict=VerdictKind.APPROVE, detail=None, stop="tool_use"):
    return Judgment(
        status=status,
        verdict=Verdict(verdict=verdict, rationale="because") if status == "verdict" else None,
        detail=detail,
        model_id="us.anthropic.claude-haiku-4-5-20251001-v1:0",
        prompt_sha256="ab" * 32,
        stop_reason=stop,
        usage=TokenUsage(input_tokens=1000, output_tokens=100, total_tokens=1100),
        latency_ms=900.0,
        attempts=1,
    )


class FakeJudge:
    def __init__(self, result: Judgment | Exception) -> None:
        self.result = result
        self.requests: list[JudgeRequest] = []

    def judge(self, image, request):
        self.requests.append(request)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class BrokenAudit:
    def append(self, decision):
        raise OSError("disk full")


def engine(detector, judge=None, *, tenant_yaml=None, audit=None, budget=None):
    """An engine on POLICY, with `tenant_yaml` as the policy of tenant `t` if given."""
    tenants = {"t": tenant_yaml} if tenant_yaml else {}
    return builders.engine(builders.store(POLICY, **tenants), detector, judge, audit, budget=budget)


# -- outcomes decided by the policy -------------------------------------------------------------


@pytest.mark.parametrize(
    ("detection", "outcome"),
    [(CLEAN, Outcome.APPROVED), (EXPLICIT, Outcome.REJECTED), (HATE, Outcome.REVIEW)],
    ids=["clean", "explicit", "hate-symbol"],
)
def test_clear_cases_are_decided_by_policy_without_the_judge(detection, outcome):
    judge = FakeJudge(judgment())
    e = engine(FakeDetector(detection), judge)
    decision = e.moderate(IMAGE, context={"upload_id": "u-1"})
    assert (decision.outcome, decision.decided_by) == (outcome, DecidedBy.POLICY)
    assert judge.requests == []
    assert e.audit.decisions == [decision]
    assert decision.context == {"upload_id": "u-1"}
    assert decision.escalation is None


def test_min_confidence_comes_from_the_tenant_policy():
    detector = FakeDetector(CLEAN)
    engine(detector, tenant_yaml="min_confidence: 55\n").moderate(IMAGE, tenant="t")
    assert detector.calls == [55.0]


def test_decision_is_complete_and_round_trips():
    decision = engine(FakeDetector(EXPLICIT)).moderate(IMAGE)
    assert decision.image.sha256 is not None and decision.image.format == "jpeg"
    assert (decision.image.width, decision.image.height) == (120, 90)
    assert decision.policy.chain == ("default",) and len(decision.policy.sha256) == 64
    assert decision.detection == EXPLICIT
    assert decision.triage is not None and decision.triage.action == "reject"
    assert decision.reasons[0].startswith("rejected by policy: Explicit Nudity 95.0% >= reject 80")
    assert set(decision.timings_ms) == {"policy", "intake", "detect", "triage", "total"}
    assert decision.cost is not None and decision.cost.rekognition_usd == pytest.approx(0.001)
    assert Decision.model_validate_json(decision.model_dump_json()) == decision
    assert "Bytes" not in decision.model_dump_json()


# -- escalation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verdict", "outcome"),
    [
        (VerdictKind.APPROVE, Outcome.APPROVED),
        (VerdictKind.REJECT, Outcome.REJECTED),
        (VerdictKind.UNSURE, Outcome.REVIEW),
    ],
)
def test_borderline_goes_to_the_judge_and_its_verdict_decides(verdict, outcome):
    judge = FakeJudge(judgment(verdict=verdict))
    decision = engine(FakeDetector(BORDERLINE), judge).moderate(IMAGE)
    assert (decision.outcome, decision.decided_by) == (outcome, DecidedBy.JUDGE)
    [request] = judge.requests
    assert request.guidance == "Art is fine."
    assert [f.label for f in request.findings] == ["Explicit Nudity"]  # the covered parent is not
    assert decision.escalation is not None
    assert (
        decision.escalation.verdict is not None and decision.escalation.verdict.verdict == verdict
    )
    assert decision.escalation.usage == TokenUsage(
        input_tokens=1000, output_tokens=100, total_tokens=1100
    )
    # Haiku 4.5: $1 per million input tokens, $5 per million output tokens.
    assert decision.cost is not None and decision.cost.bedrock_usd == pytest.approx(0.0015)
    assert "judge" in decision.timings_ms


@pytest.mark.parametrize(
    ("result", "tenant_yaml", "outcome", "knob"),
    [
        (judgment(status="blocked", stop="content_filtered"), None, Outcome.REJECTED, "on_blocked"),
        (judgment(status="invalid", detail="text-only reply"), None, Outcome.REVIEW, "on_error"),
        (
            judgment(status="invalid", detail="text-only reply"),
            REJECTING,
            Outcome.REJECTED,
            "on_error",
        ),
        (JudgeError("ThrottlingException after 4 attempts"), None, Outcome.REVIEW, "on_error"),
        (JudgeError("ThrottlingException"), REJECTING, Outcome.REJECTED, "on_error"),
        (RuntimeError("a bug in a judge"), None, Outcome.REVIEW, "on_error"),
    ],
    ids=["blocked", "invalid", "invalid-reject", "error", "error-reject", "unexpected-exception"],
)
def test_judge_failures_fail_closed_by_policy(result, tenant_yaml, outcome, knob):
    e = engine(FakeDetector(BORDERLINE), FakeJudge(result), tenant_yaml=tenant_yaml)
    decision = e.moderate(IMAGE, tenant="t" if tenant_yaml else "default")
    assert decision.outcome == outcome
    assert decision.outcome != Outcome.APPROVED
    assert decision.decided_by == DecidedBy.FALLBACK
    assert knob in decision.reasons[-1]
    assert decision.escalation is not None and decision.escalation.error
    assert e.audit.decisions == [decision]


def test_judge_none_sends_borderline_to_review():
    judge = FakeJudge(judgment())
    decision = engine(FakeDetector(BORDERLINE), judge, tenant_yaml=NO_JUDGE).moderate(
        IMAGE, tenant="t"
    )
    assert (decision.outcome, decision.decided_by) == (Outcome.REVIEW, DecidedBy.POLICY)
    assert judge.requests == []
    assert decision.escalation is not None and decision.escalation.skipped


def test_engine_without_a_judge_sends_borderline_to_review():
    decision = engine(FakeDetector(BORDERLINE), None).moderate(IMAGE)
    assert (decision.outcome, decision.decided_by) == (Outcome.REVIEW, DecidedBy.FALLBACK)


def test_escalation_budget_caps_judge_calls_per_tenant_and_window():
    now = [0.0]
    budget = EscalationBudget(clock=lambda: now[0])
    judge = FakeJudge(judgment())
    e = engine(FakeDetector(BORDERLINE), judge, tenant_yaml=BUDGETED, budget=budget)
    outcomes = [e.moderate(IMAGE, tenant="t").outcome for _ in range(3)]
    assert outcomes == [Outcome.APPROVED, Outcome.APPROVED, Outcome.REVIEW]
    assert len(judge.requests) == 2
    last = e.audit.decisions[-1]
    assert last.decided_by == DecidedBy.FALLBACK and "budget exhausted" in last.reasons[-1]
    # Another tenant has its own budget (default has none); the window slides.
    assert e.moderate(IMAGE).outcome == Outcome.APPROVED
    now[0] = 61.0
    assert e.moderate(IMAGE, tenant="t").outcome == Outcome.APPROVED


# -- detector failures --------------------------------------------------------------------------


def test_detector_error_raises_by_default_and_is_not_a_decision():
    e = engine(FakeDetector(DetectorError("ThrottlingException after 4 attempts")))
    with pytest.raises(DetectorError, match="Throttling"):
        e.moderate(IMAGE)
    assert e.audit.decisions == []


def test_unexpected_detector_exception_becomes_detector_error():
    e = engine(FakeDetector(KeyError("boom")))
    with pytest.raises(DetectorError) as info:
        e.moderate(IMAGE)
    assert isinstance(info.value.__cause__, KeyError)


def test_on_detector_error_review_returns_an_audited_review():
    e = engine(FakeDetector(DetectorError("down")), tenant_yaml=REVIEW_ON_DETECTOR)
    decision = e.moderate(IMAGE, tenant="t")
    assert (decision.outcome, decision.decided_by) == (Outcome.REVIEW, DecidedBy.FALLBACK)
    assert decision.detection is None and decision.error == "down"
    assert decision.cost is not None and decision.cost.rekognition_usd == 0.0
    assert e.audit.decisions == [decision]


def test_invalid_image_from_the_service_is_raised_not_reviewed():
    e = engine(
        FakeDetector(InvalidImage("InvalidImageFormatException")), tenant_yaml=REVIEW_ON_DETECTOR
    )
    with pytest.raises(InvalidImage):
        e.moderate(IMAGE, tenant="t")


# -- bad input never reaches the detector -------------------------------------------------------


@pytest.mark.parametrize(
    "bad", [b"", b"plain text, not an image", IMAGE[: len(IMAGE) // 2], solid("png", (50, 50))]
)
def test_invalid_images_are_refused_before_any_detector_call(bad):
    detector = FakeDetector(CLEAN)
    with pytest.raises(InvalidImage):
        engine(detector).moderate(bad)
    assert detector.calls == []


@pytest.mark.parametrize("tenant", ["../etc", "", "A", "a/b"])
def test_bad_tenant_ids_are_refused_before_any_detector_call(tenant):
    detector = FakeDetector(CLEAN)
    with pytest.raises(InvalidTenant):
        engine(detector).moderate(IMAGE, tenant=tenant)
    assert detector.calls == []


@pytest.mark.parametrize(
    "context",
    [
        {"blob": "x" * 10_000},
        {"k": b"bytes"},
        {0: 1},
        {f"k{i}": i for i in range(40)},
    ],
    ids=["long-text", "bytes", "non-str-key", "too-many-keys"],
)
def test_bad_context_is_refused_before_any_detector_call(context):
    detector = FakeDetector(CLEAN)
    with pytest.raises(ValueError, match="context"):
        engine(detector).moderate(IMAGE, context=context)
    assert detector.calls == []


# -- the audit log ------------------------------------------------------------------------------


def test_a_decision_that_cannot_be_audited_is_raised_not_returned():
    with pytest.raises(AuditError) as info:
        engine(FakeDetector(CLEAN), audit=BrokenAudit()).moderate(IMAGE)
    assert isinstance(info.value.decision, Decision)
    assert info.value.decision.outcome == Outcome.APPROVED


def test_jsonl_audit_log_keeps_every_decision_replayable(tmp_path: Path):
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    e = engine(FakeDetector(BORDERLINE), FakeJudge(JudgeError("down")), audit=log)
    first = e.moderate(IMAGE)
    second = e.moderate(io.BytesIO(IMAGE))
    assert list(decisions(tmp_path / "audit.jsonl")) == [first, second]
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()[1:]  # after the file header
    assert all("Bytes" not in json.loads(line)["decision"]["image"] for line in lines)


def test_file_object_position_is_restored():
    stream = io.BytesIO(b"xx" + IMAGE)
    stream.seek(2)
    engine(FakeDetector(CLEAN)).moderate(stream)
    assert stream.tell() == 2


# -- S3 images ----------------------------------------------------------------------------------


class Spy:
    """Records the S3 calls a client receives, and passes them on."""

    def __init__(self, client):
        self.client = client
        self.calls: list[str] = []

    def __getattr__(self, name):
        attr = getattr(self.client, name)
        if callable(attr) and not name.startswith("_") and name != "meta":

            def call(*args, **kwargs):
                self.calls.append(name)
                return attr(*args, **kwargs)

            return call
        return attr


def test_s3_image_is_passed_by_reference_and_downloaded_only_for_the_judge(versioned_s3):
    s3 = versioned_s3
    from moderation.image import ImageIntake

    big = solid("jpeg", (2000, 1500))
    version = s3.put_object(Bucket="uploads", Key="u/1.jpg", Body=big)["VersionId"]
    spy = Spy(s3)
    seen = []

    class S3Detector(FakeDetector):
        def detect(self, image, *, min_confidence):
            seen.append((image.detect_bytes, image.s3_object()))
            return super().detect(image, min_confidence=min_confidence)

    judge = FakeJudge(judgment())

    class DownloadingJudge:
        def judge(self, image, request):
            fmt, data = image.judge_image()
            assert fmt == "jpeg" and len(data) < len(big)
            return judge.judge(image, request)

    e = engine(S3Detector(CLEAN), DownloadingJudge())
    e.intake = ImageIntake(s3=S3ImageReader(spy))
    decision = e.moderate("s3://uploads/u/1.jpg")
    assert seen == [(None, {"Bucket": "uploads", "Name": "u/1.jpg", "Version": version})]
    assert spy.calls == ["head_object", "get_object"]  # HEAD and one ranged GET, no download
    assert decision.image.s3 is not None
    assert (decision.image.s3.bucket, decision.image.s3.key) == ("uploads", "u/1.jpg")
    assert decision.image.s3.version_id == version and decision.image.s3.etag

    e2 = engine(S3Detector(BORDERLINE), DownloadingJudge())
    e2.intake = ImageIntake(s3=S3ImageReader(spy))
    spy.calls.clear()
    assert e2.moderate("s3://uploads/u/1.jpg").decided_by == DecidedBy.JUDGE
    assert spy.calls.count("get_object") == 2  # the ranged sniff, then the download for the judge


# -- from_env and the module-level engine -------------------------------------------------------


def test_from_env_builds_the_aws_engine_without_network(tmp_path: Path, monkeypatch):
    from moderation.audit import JsonlAuditLog
    from moderation.aws.bedrock import BedrockJudge
    from moderation.aws.rekognition import RekognitionDetector

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    root = Path(__file__).resolve().parent.parent
    e = Engine.from_env(
        {
            "MODERATION_POLICIES": str(root / "policies"),
            "MODERATION_REGION": "eu-west-1",
            "MODERATION_AUDIT": str(tmp_path / "audit.jsonl"),
        }
    )
    assert isinstance(e.detector, RekognitionDetector)
    assert isinstance(e.judge, BedrockJudge)
    assert isinstance(e.audit, JsonlAuditLog)
    assert e.detector.client.meta.region_name == "eu-west-1"
    assert not e.policies.fallback_to_default
    no_judge = Engine.from_env(
        {
            "MODERATION_POLICIES": str(root / "policies"),
            "MODERATION_REGION": "us-east-1",
            "MODERATION_JUDGE": "none",
        }
    )
    assert no_judge.judge is None
    with pytest.raises(ValueError, match="MODERATION_JUDGE"):
        Engine.from_env({"MODERATION_POLICIES": str(root / "policies"), "MODERATION_JUDGE": "gpt"})


def test_module_level_engine_is_built_once_under_concurrency(monkeypatch):
    import threading

    import moderation
    from moderation import engine as engine_module

    built = []
    barrier = threading.Barrier(8)

    def from_env(cls=None):
        built.append(1)
        return engine(FakeDetector(CLEAN))

    monkeypatch.setattr(engine_module.Engine, "from_env", classmethod(lambda cls: from_env()))
    moderation.configure(None)
    results = []

    def worker():
        barrier.wait()
        results.append(moderation.moderate(IMAGE).outcome)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    moderation.configure(None)
    assert built == [1]
    assert results == [Outcome.APPROVED] * 8


def test_configure_replaces_the_module_level_engine():
    import moderation

    e = engine(FakeDetector(EXPLICIT))
    moderation.configure(e)
    try:
        assert moderation.moderate(IMAGE).outcome == Outcome.REJECTED
        assert len(e.audit.decisions) == 1
    finally:
        moderation.configure(None)


def test_public_names_import():
    from moderation import (  # noqa: F401
        BedrockJudge,
        Decision,
        DetectorError,
        Engine,
        Finding,
        InvalidImage,
        JudgeError,
        ModerationError,
        Outcome,
        Policy,
        PolicyError,
        PolicyStore,
        RekognitionDetector,
        Triage,
        evaluate,
        moderate,
    )

    assert issubclass(DetectorError, ModerationError) and issubclass(JudgeError, ModerationError)
    assert issubclass(PolicyError, ModerationError) and issubclass(InvalidImage, ModerationError)


# -- what the record says, and that it cannot be edited -------------------------------------------


def test_reasons_end_with_the_one_that_decided():
    # GIVEN two rejecting labels: the more confident one decides
    two = builders.detection(
        ("Explicit Nudity", "Explicit", 85.0),
        ("Nazi Party", "Hate Symbols", 99.0),
        ("Hate Symbols", "", 99.0),
        ("Explicit Sexual Activity", "Explicit", 97.0),
        ("Explicit", "", 97.0),
    )
    decision = engine(FakeDetector(two), tenant_yaml="categories: {Hate Symbols: {reject: 90}}\n")
    decision = decision.moderate(IMAGE, tenant="t")
    assert decision.triage is not None and decision.triage.deciding is not None
    assert decision.triage.deciding.label == "Nazi Party"
    # THEN the reasons run from the least to the most confident, and `reason` is the last
    assert [r.split(": ", 1)[1].split(" ")[0] for r in decision.reasons] == [
        "Explicit",
        "Explicit",
        "Nazi",
    ]
    assert decision.reason == decision.reasons[-1]
    assert decision.reason.startswith("rejected by policy: Nazi Party 99.0% >= reject 90")


def test_the_judge_verdict_is_the_last_reason():
    decision = engine(FakeDetector(BORDERLINE), FakeJudge(judgment())).moderate(IMAGE)
    assert decision.reasons[0].startswith("escalated: ")
    assert decision.reason.startswith("judge us.anthropic.claude-haiku-4-5-20251001-v1:0 answered")


def test_a_decision_cannot_be_edited_through_its_mappings():
    decision = engine(FakeDetector(CLEAN)).moderate(IMAGE, context={"upload_id": "u-1"})
    with pytest.raises(TypeError, match="read-only"):
        decision.context["upload_id"] = "u-2"  # type: ignore[index]
    with pytest.raises(TypeError, match="read-only"):
        decision.timings_ms.clear()
    assert decision.context == {"upload_id": "u-1"}
    # and it still round-trips through JSON, pickle and copy as before
    import copy
    import pickle

    assert Decision.model_validate_json(decision.model_dump_json()) == decision
    assert pickle.loads(pickle.dumps(decision)) == decision
    assert copy.deepcopy(decision) == decision


def test_a_fallback_to_the_default_policy_is_recorded():
    e = Engine(
        PolicyStore.from_sources({"default": POLICY}, fallback_to_default=True),
        FakeDetector(CLEAN),
        audit=InMemoryAuditLog(),
    )
    decision = e.moderate(IMAGE, tenant="unknown-shop")
    assert decision.policy.id == "default" and decision.policy_fallback
    assert decision.reasons[0] == (
        "tenant 'unknown-shop' has no policy of its own: the 'default' policy applied "
        "(fallback_to_default)"
    )
    assert not e.moderate(IMAGE, tenant="default").policy_fallback


# -- animated images: every selected frame is moderated ---------------------------------------


def animation(colors: list[tuple[int, int, int]], fmt: str = "GIF") -> bytes:
    from PIL import Image

    frames = [Image.new("RGB", (120, 90), c) for c in colors]
    out = io.BytesIO()
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


class ColourDetector:
    """Explicit when the picture it is sent is red: a detector that really looks at each frame."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []

    def detect(self, image, *, min_confidence):
        from PIL import Image

        r, g, b = Image.open(io.BytesIO(image.detect_bytes)).convert("RGB").getpixel((60, 45))
        self.calls.append((r, g, b))
        return EXPLICIT if r > 200 and g < 60 and b < 60 else CLEAN


GREEN, RED = (20, 160, 40), (230, 10, 10)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_a_harmless_first_frame_does_not_hide_explicit_later_frames(fmt):
    # GIVEN an animation whose first three frames are harmless and last three explicit (each a
    # slightly different shade: a GIF writer merges identical consecutive frames)
    greens = [(20, 120, 40), (20, 170, 40), (60, 210, 60)]
    reds = [(240, 10, 10), (220, 40, 20), (250, 30, 45)]
    data = animation(greens + reds, fmt)
    detector = ColourDetector()
    # WHEN it is moderated under a policy that sends up to 4 frames
    decision = engine(detector, tenant_yaml="max_frames: 4\n").moderate(data, tenant="t")
    # THEN later frames reach the detector, and the explicit ones reject the animation
    assert decision.outcome == Outcome.REJECTED
    # (six distinct frames on four detector images: two sheets of two frames, then two alone)
    assert decision.detection is not None and decision.detection.frames == (0, 2, 4, 5)
    assert len(detector.calls) == 4
    assert decision.image.n_frames == 6
    # each frame is one billed call
    assert decision.cost is not None and decision.cost.rekognition_usd == pytest.approx(0.004)


def test_max_frames_one_is_the_old_first_frame_only_behaviour():
    data = animation([GREEN, RED, RED])
    detector = ColourDetector()
    decision = engine(detector, tenant_yaml="max_frames: 1\n").moderate(data, tenant="t")
    assert decision.outcome == Outcome.APPROVED and len(detector.calls) == 1
    assert decision.detection is not None and decision.detection.frames == ()


def test_identical_frames_are_sent_once():
    # GIVEN 7 alternating frames: two scenes, green and red, each shown three or four times
    detector = ColourDetector()
    decision = engine(detector, tenant_yaml="max_frames: 4\n").moderate(
        animation([GREEN, RED] * 3 + [GREEN]), tenant="t"
    )
    # THEN each scene is sent once (positions 0, 2, 4, 6 would have been green four times)
    assert len(detector.calls) == 2
    assert decision.detection is not None and decision.detection.frames == (0, 1)
    assert decision.outcome == Outcome.REJECTED


def test_the_judge_sees_the_frame_the_borderline_label_came_from():
    # GIVEN an animation whose only borderline frame is the last one
    class Borderline(ColourDetector):
        def detect(self, image, *, min_confidence):
            return (
                BORDERLINE
                if super().detect(image, min_confidence=min_confidence) is EXPLICIT
                else CLEAN
            )

    class Looking(FakeJudge):
        def judge(self, image, request):
            from PIL import Image

            _, data = image.judge_image()
            self.seen = Image.open(io.BytesIO(data)).convert("RGB").getpixel((60, 45))
            return super().judge(image, request)

    judge = Looking(judgment(verdict=VerdictKind.REJECT))
    decision = engine(Borderline(), judge).moderate(animation([GREEN, GREEN, RED]))
    assert decision.outcome == Outcome.REJECTED and decision.decided_by == DecidedBy.JUDGE
    assert judge.seen[0] > 200 and judge.seen[1] < 60  # red: the frame it was asked about


def test_a_detector_failure_on_any_frame_fails_closed():
    class FailsOnRed(ColourDetector):
        def detect(self, image, *, min_confidence):
            if super().detect(image, min_confidence=min_confidence) is EXPLICIT:
                raise DetectorError("throttled")
            return CLEAN

    with pytest.raises(DetectorError):
        engine(FailsOnRed()).moderate(animation([GREEN, RED]))
    decision = engine(FailsOnRed(), tenant_yaml=REVIEW_ON_DETECTOR).moderate(
        animation([GREEN, RED]), tenant="t"
    )
    assert decision.outcome == Outcome.REVIEW and decision.decided_by == DecidedBy.FALLBACK
