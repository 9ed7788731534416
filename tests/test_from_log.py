"""An offline engine rebuilt from a decision log: it reproduces what production decided, and
refuses, with a message naming the image, every call the log cannot honestly answer."""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import builders
import pytest
from images import animation

import moderation
from moderation import Decision, DetectorError, Engine, PolicyStore
from moderation.audit import GENESIS, TornNote, decisions, encode_record, parse_line
from moderation.errors import ModerationError
from moderation.image import ImageIntake
from moderation.testing import (
    DecisionLog,
    DetectionNotReplayable,
    FailingJudge,
    InMemoryAuditLog,
    LoggedDetector,
    LoggedJudge,
    NoLoggedVerdict,
    NoRecording,
    NotInLog,
    RecordedDetector,
    RecordedJudge,
    Recordings,
    StaticDetector,
    StaticJudge,
    VerdictNotReplayable,
    engine_from_log,
    offline_engine,
    use_engine,
)

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "examples" / "golden" / "decisions.jsonl"
IMAGES = ROOT / "examples" / "images"
LANDSCAPE = (IMAGES / "landscape.png").read_bytes()
BEACH = (IMAGES / "beach.jpg").read_bytes()
HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


def policy(
    min_confidence: int = 40, model_id: str = HAIKU, max_frames: int = 1, alcohol: int = 45
) -> str:
    return f"""
min_confidence: {min_confidence}
max_frames: {max_frames}
default: {{reject: 90, escalate: 60}}
categories:
  Weapons: {{escalate: 50}}
  Alcohol: {{reject: {alcohol}}}
escalation:
  judge: bedrock
  model_id: {model_id}
  on_error: review
"""


def store(**kwargs: object) -> PolicyStore:
    text = policy(**kwargs)  # type: ignore[arg-type]
    return builders.store(text, dating="extends: default\n")


def recorder(policies: PolicyStore, detector, judge=None, *, start: int = 0) -> Engine:
    """An engine that records into memory, with a clock starting `start` seconds after 2025."""
    ticks = itertools.count(start)
    numbers = itertools.count(start + 1)
    return builders.engine(
        policies,
        detector,
        judge,
        now=lambda: datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=next(ticks)),
        new_id=lambda: f"d{next(numbers)}",
        real=("timer",),
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the golden log ------------------------------------------------------------------------------


def test_the_engine_from_the_golden_log_reproduces_every_decision():
    images = {sha(p.read_bytes()): p for p in IMAGES.iterdir()}
    engine = engine_from_log(GOLDEN, ROOT / "policies")
    recorded = list(decisions(GOLDEN))
    assert len(recorded) == 12  # every example image the engine accepts, for default and kids
    for before in recorded:
        after = engine.moderate(images[before.image.sha256], tenant=before.tenant)
        assert (after.outcome, after.decided_by) == (before.outcome, before.decided_by), before.id
        assert after.reasons[-1] == before.reasons[-1], before.id
    # Every path of the engine is in the golden log: policy, judge verdicts, judge fallbacks.
    assert {(d.decided_by.value, d.outcome.value) for d in recorded} >= {
        ("policy", "approved"),
        ("policy", "rejected"),
        ("judge", "approved"),
        ("judge", "review"),
        ("fallback", "review"),  # a judge reply with no tool call: on_error
        ("fallback", "rejected"),  # the judge's content filter: on_blocked
    }
    assert all(d.detection.provider == "recorded" for d in engine.audit.decisions)
    assert all(d.cost.total_usd == 0.0 for d in engine.audit.decisions)


def test_make_golden_writes_the_same_log_every_time(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "make_golden", ROOT / "examples" / "golden" / "make_golden.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    written = []
    for run in ("first", "second"):
        (tmp_path / run).mkdir()
        script.main(tmp_path / run / "decisions.jsonl")
        written.append(list(decisions(tmp_path / run / "decisions.jsonl")))
    assert written[0] == written[1]  # ids, timestamps and timings included
    assert [d.id for d in decisions(tmp_path / "first" / "decisions.jsonl")] == [
        f"golden-{n:04d}" for n in range(1, 13)
    ]


# -- the detector ------------------------------------------------------------------------------


def test_an_image_the_log_does_not_hold_is_refused_naming_its_sha256():
    engine = engine_from_log(GOLDEN, ROOT / "policies")
    data = animation("gif", [(1, 2, 3), (4, 5, 6)])
    with pytest.raises(NotInLog, match=f"no recorded detection for sha256 {sha(data)} in .*golden"):
        engine.moderate(data)
    assert isinstance(NotInLog("x"), NoRecording)  # what a test of the recorded fakes catches


def test_a_recorded_detector_failure_is_named_when_no_detection_exists():
    policies = PolicyStore.from_sources({"default": policy() + "on_detector_error: review\n"})
    failed = recorder(policies, StaticDetector(images={BEACH: []})).moderate(LANDSCAPE)
    assert failed.error is not None
    with pytest.raises(NotInLog, match="only a detector failure is recorded for it"):
        LoggedDetector([failed]).detect(ImageIntake().prepare(LANDSCAPE), min_confidence=40)


def test_a_lower_min_confidence_than_recorded_is_refused():
    made = recorder(store(min_confidence=40), StaticDetector([("Weapons", 35.0)]))
    made.moderate(LANDSCAPE)
    engine = engine_from_log(made.audit.decisions, store(min_confidence=30))
    with pytest.raises(DetectionNotReplayable) as info:
        engine.moderate(LANDSCAPE)
    message = str(info.value)
    assert f"sha256 {sha(LANDSCAPE)}" in message
    assert "min_confidence 30, lower than the log's detections were made with (lowest 40" in message
    assert "labels between 30 and 40 were never reported" in message
    assert isinstance(info.value, DetectorError)  # the engine raises it, never approves
    assert engine.audit.decisions == []


def test_a_higher_min_confidence_drops_the_labels_below_it():
    # GIVEN a log where Alcohol 48 was below its band and the judge approved Weapons 55
    labels = [("Weapons", 55.0), ("Alcohol", 48.0)]
    made = recorder(store(alcohol=50), StaticDetector(labels), StaticJudge("approve"))
    assert made.moderate(LANDSCAPE).decided_by == "judge"
    # WHEN a policy rejects Alcohol from 45 but asks the detector for labels from 50 only
    engine = engine_from_log(made.audit.decisions, store(min_confidence=50, alcohol=45))
    decision = engine.moderate(LANDSCAPE)
    # THEN Rekognition would not have reported Alcohol 48: the logged verdict decides
    assert [x.name for x in decision.detection.labels] == ["Weapons"]
    assert decision.detection.min_confidence == 50
    assert (decision.outcome, decision.decided_by) == ("approved", "judge")  # the logged verdict


def test_the_latest_of_several_detections_of_one_image_answers():
    later = recorder(store(), StaticDetector([("Alcohol", 80.0)]), start=100)
    earlier = recorder(store(), StaticDetector([]), start=0)
    # Written out of order: created_at decides, not the order of the lines.
    log = [later.moderate(LANDSCAPE), earlier.moderate(LANDSCAPE)]
    decision = engine_from_log(log, store()).moderate(LANDSCAPE)
    assert [x.name for x in decision.detection.labels] == ["Alcohol"]
    assert decision.outcome == "rejected"


def test_a_detection_made_below_the_asked_min_confidence_answers_when_a_later_one_cannot():
    # The same image moderated for a strict tenant (30) and later for the default one (50): a
    # policy asking for 40 is answered by the detection made at 30, with labels from 40 up.
    strict = recorder(store(min_confidence=30), StaticDetector([("Alcohol", 35.0)]), start=0)
    lenient = recorder(store(min_confidence=50), StaticDetector([("Alcohol", 35.0)]), start=10)
    log = [strict.moderate(LANDSCAPE), lenient.moderate(LANDSCAPE)]
    decision = engine_from_log(log, store(min_confidence=40)).moderate(LANDSCAPE)
    assert decision.detection.labels == ()
    assert decision.outcome == "approved"


def test_an_animation_is_answered_once_per_frame_with_the_recorded_detection():
    data = animation("gif", [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0)])
    made = recorder(store(max_frames=4), StaticDetector(images={data: [("Alcohol", 70.0)]}))
    before = made.moderate(data)
    assert before.detection.frames == (0, 1, 2, 3)
    engine = engine_from_log([before], store(max_frames=4))
    after = engine.moderate(data)
    assert (after.outcome, after.detection.frames) == ("rejected", (0, 1, 2, 3))
    # A frame image carries the whole animation's sha256: one call per frame, each answered.
    assert [call.sha256 for call in engine.detector.calls] == [sha(data)] * 4


def test_an_animation_seen_through_other_frames_is_refused():
    data = animation("gif", [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0)])
    made = recorder(store(max_frames=4), StaticDetector(images={data: [("Alcohol", 70.0)]}))
    log = [made.moderate(data)]
    with pytest.raises(DetectionNotReplayable, match=r"frames \[0, 2\] of this animation.*"):
        engine_from_log(log, store(max_frames=2)).moderate(data)
    with pytest.raises(DetectionNotReplayable, match=r"frames \[\] of this animation"):
        engine_from_log(log, store(max_frames=1)).moderate(data)


def test_an_s3_uri_is_refused_by_the_offline_engine():
    engine = engine_from_log(GOLDEN, ROOT / "policies")
    with pytest.raises(ModerationError, match=r"s3://uploads/a\.jpg: an engine from a decision"):
        engine.moderate("s3://uploads/a.jpg")


# -- the judge ---------------------------------------------------------------------------------


def test_the_judge_answers_per_tenant():
    detector = StaticDetector([("Weapons", 75.0)])
    log = [
        recorder(store(), detector, StaticJudge("approve", "fine here")).moderate(
            LANDSCAPE, tenant="dating"
        ),
        recorder(store(), detector, StaticJudge("reject", "not here")).moderate(LANDSCAPE),
    ]
    engine = engine_from_log(log, store())
    dating = engine.moderate(LANDSCAPE, tenant="dating")
    default = engine.moderate(LANDSCAPE, tenant="default")
    assert (dating.outcome, dating.decided_by) == ("approved", "judge")
    assert (default.outcome, default.decided_by) == ("rejected", "judge")
    assert default.escalation.verdict.rationale == "not here"
    assert default.escalation.provider == "recorded"
    assert [call.tenant for call in engine.judge.calls] == ["dating", "default"]


def test_a_tenant_without_a_logged_answer_gets_no_made_up_one():
    detector = StaticDetector([("Weapons", 75.0)])
    log = [recorder(store(), detector, StaticJudge("approve")).moderate(LANDSCAPE, tenant="dating")]
    judge = LoggedJudge(log)
    engine = Engine(store(), LoggedDetector(log), judge, InMemoryAuditLog())
    decision = engine.moderate(LANDSCAPE, tenant="default")
    assert (decision.outcome, decision.decided_by) == ("review", "fallback")  # on_error: review
    assert decision.error.startswith("NoLoggedVerdict: no recorded judge answer for sha256 ")
    assert "tenant default" in decision.error
    assert "(it has answers for this image for dating)" in decision.error


def test_a_verdict_of_another_model_is_refused_unless_allowed():
    detector = StaticDetector([("Weapons", 75.0)])
    log = [recorder(store(), detector, StaticJudge("reject")).moderate(LANDSCAPE)]
    refused = engine_from_log(log, store(model_id=SONNET)).moderate(LANDSCAPE)
    assert (refused.outcome, refused.decided_by) == ("review", "fallback")
    assert refused.error.startswith("VerdictNotReplayable: ")
    assert f"the policy asks model {SONNET}, the log's answer (decision d1) came from {HAIKU}" in (
        refused.error
    )
    assert "allow_other_model=True" in refused.error
    allowed = engine_from_log(log, store(model_id=SONNET), allow_other_model=True)
    decision = allowed.moderate(LANDSCAPE)
    assert (decision.outcome, decision.decided_by) == ("rejected", "judge")
    assert decision.escalation.model_id == HAIKU  # the model that gave the verdict


def test_the_judge_refusals_are_judge_errors():
    image = ImageIntake().prepare(LANDSCAPE)
    detector = StaticDetector([("Weapons", 75.0)])
    log = [recorder(store(), detector, StaticJudge("reject")).moderate(LANDSCAPE)]
    from moderation.ports import JudgeRequest

    request = JudgeRequest(tenant="default", model_id=SONNET, guidance="", findings=())
    with pytest.raises(VerdictNotReplayable):
        LoggedJudge(log).judge(image, request)
    with pytest.raises(NoLoggedVerdict, match="tenant kids"):
        LoggedJudge(log).judge(image, request.model_copy(update={"tenant": "kids"}))
    assert issubclass(VerdictNotReplayable, moderation.JudgeError)
    assert issubclass(NoLoggedVerdict, moderation.JudgeError)


def test_a_failed_judge_call_is_replayed_as_a_failure():
    detector = StaticDetector([("Weapons", 75.0)])
    log = [
        recorder(store(), detector, FailingJudge(TimeoutError("read timed out"))).moderate(BEACH)
    ]
    decision = engine_from_log(log, store()).moderate(BEACH)
    assert (decision.outcome, decision.decided_by) == ("review", "fallback")
    assert "the judge's call failed when decision d1 was made" in decision.error
    assert "TimeoutError: read timed out" in decision.error


def test_the_recorded_judge_answers_per_tenant():
    # The recorded judge (Recordings with converse_by_tenant): surgery.jpg is blocked by the
    # model's filter for the default tenant and approved for the medical one.
    engine = offline_engine(ROOT / "policies", ROOT / "examples" / "recordings")
    default = engine.moderate(IMAGES / "surgery.jpg", tenant="default")
    medical = engine.moderate(IMAGES / "surgery.jpg", tenant="medical")
    assert (default.outcome, default.decided_by) == ("rejected", "fallback")
    assert default.escalation.stop_reason == "content_filtered"
    assert (medical.outcome, medical.decided_by) == ("approved", "judge")
    assert [call.tenant for call in engine.judge.calls] == ["default", "medical"]
    # ... and the engine from their log answers per tenant the same way.
    replayed = engine_from_log(engine.audit.decisions, ROOT / "policies")
    again = [replayed.moderate(IMAGES / "surgery.jpg", tenant=t) for t in ("default", "medical")]
    assert [(d.outcome, d.decided_by) for d in again] == [
        ("rejected", "fallback"),
        ("approved", "judge"),
    ]


# -- sources -----------------------------------------------------------------------------------


def write(path: Path, items: list[Decision]) -> None:
    """Bare decision lines: what the stdout sink writes, and file logs before the chain."""
    with path.open("a") as fh:
        fh.writelines(item.model_dump_json() + "\n" for item in items)


def write_chained(path: Path, bodies: list[Decision | TornNote | str]) -> None:
    """Hash-chained audit records (a str is written as it is: a damaged line)."""
    prev, seq, lines = GENESIS, 0, []
    for body in bodies:
        if isinstance(body, str):
            lines.append(body.encode())
            continue
        seq += 1
        kind = "decision" if isinstance(body, Decision) else "torn"
        line = encode_record(
            seq=seq, prev=prev, kind=kind, body_json=body.model_dump_json(), key=None
        )
        prev = parse_line(line).hash  # type: ignore[union-attr]
        lines.append(line)
    path.write_bytes(b"".join(lines))


def test_a_log_is_read_with_its_rotated_predecessors(tmp_path):
    made = recorder(store(), StaticDetector([]))
    first, second = made.moderate(LANDSCAPE), made.moderate(BEACH)
    write(tmp_path / "audit.jsonl.1", [first])
    write(tmp_path / "audit.jsonl", [second])
    log = DecisionLog(tmp_path / "audit.jsonl")
    assert set(log.detections) == {sha(LANDSCAPE), sha(BEACH)}
    assert log.size == 2


def test_several_paths_and_decisions_in_memory_make_one_log(tmp_path):
    made = recorder(store(), StaticDetector([]))
    first, second = made.moderate(LANDSCAPE), made.moderate(BEACH)
    write(tmp_path / "a.jsonl", [first])
    log = DecisionLog([tmp_path / "a.jsonl", str(tmp_path / "a.jsonl"), second])
    assert set(log.detections) == {sha(LANDSCAPE), sha(BEACH)}
    assert log.size == 2  # the file named twice is read once
    assert log.source == f"{tmp_path / 'a.jsonl'}, {tmp_path / 'a.jsonl'}, 1 decision in memory"
    with pytest.raises(TypeError, match=r"log paths or moderation\.Decision objects, not int"):
        DecisionLog([tmp_path / "a.jsonl", 3])  # type: ignore[list-item]


def test_an_unreadable_line_is_refused_with_file_and_line(tmp_path):
    made = recorder(store(), StaticDetector([]))
    path = tmp_path / "audit.jsonl"
    write(path, [made.moderate(LANDSCAPE)])
    with path.open("a") as fh:
        fh.write('{"not": "a decision"}\n')
    with pytest.raises(
        ModerationError, match=rf"1 unreadable line in the decision log: {path}:2: "
    ):
        DecisionLog(path)


def test_chained_records_are_read_and_a_noted_torn_record_is_skipped(tmp_path):
    made = recorder(store(), StaticDetector([]))
    first, second = made.moderate(LANDSCAPE), made.moderate(BEACH)
    torn = '{"audit":1,"seq":2,"prev":"00'
    note = TornNote(line=2, offset=0, length=len(torn), sha256="ab" * 32, found_at=first.created_at)
    path = tmp_path / "audit.jsonl"
    write_chained(path, [first, torn + "\n", note, second])
    log = DecisionLog(path)
    assert (log.size, set(log.detections)) == (2, {sha(LANDSCAPE), sha(BEACH)})
    # The same damaged line without the writer's note is an unreadable record.
    write_chained(path, [first, torn + "\n", second])
    with pytest.raises(ModerationError, match=rf"{path}:2: "):
        DecisionLog(path)


def test_a_torn_last_line_is_skipped(tmp_path):
    made = recorder(store(), StaticDetector([]))
    path = tmp_path / "audit.jsonl"
    write(path, [made.moderate(LANDSCAPE)])
    with path.open("a") as fh:
        fh.write('{"schema_version":1,"id":"d2","crea')  # a writer stopped mid-record
    assert DecisionLog(path).size == 1


def test_use_engine_makes_module_level_moderate_answer_from_the_log():
    images = {sha(p.read_bytes()): p for p in IMAGES.iterdir()}
    [first, *_] = decisions(GOLDEN)
    with use_engine(engine_from_log(GOLDEN, ROOT / "policies")) as engine:
        decision = moderation.moderate(images[first.image.sha256], tenant=first.tenant)
    assert engine.audit.decisions == [decision]
    assert decision.outcome == first.outcome


def test_the_recorded_detector_and_judge_still_answer_from_recordings():
    # The engine from a log sits beside the recorded fakes; they are unchanged.
    recordings = Recordings.load(ROOT / "examples" / "recordings")
    engine = Engine(
        PolicyStore(ROOT / "policies"),
        RecordedDetector(recordings),
        RecordedJudge(recordings),
        InMemoryAuditLog(),
    )
    assert engine.moderate(BEACH, tenant="kids").outcome == "rejected"
