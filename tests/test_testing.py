"""The test kit users rely on: static and failing fakes, use_engine, per-tenant recordings,
malformed recordings, offline provenance, the documented examples, and a boto3-free import.

Names are reached as `testing.X` (not imported at the top) so that each test stands or falls on
its own.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import builders
import pytest
from images import solid

import moderation
import moderation.engine
from moderation import (
    DecidedBy,
    Detection,
    DetectorError,
    Engine,
    JudgeError,
    Label,
    ModerationError,
    Outcome,
    PolicyStore,
    testing,
)
from moderation.audit import InMemoryAuditLog
from moderation.decision import TokenUsage, VerdictKind
from moderation.detection import ContentType
from moderation.ports import Detector, Judge, JudgeRequest, Judgment

ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = ROOT / "examples/recordings"
IMAGES = ROOT / "examples/images"
HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"

POLICY = f"""
min_confidence: 40
default: {{reject: 90, escalate: 60}}
categories:
  Explicit: {{reject: 80, escalate: 40}}
  Hate Symbols: {{review: 40}}
escalation:
  judge: bedrock
  model_id: {HAIKU}
  guidance: Art is fine.
  on_error: review
  on_blocked: reject
"""
SOURCES = {
    "default": POLICY,
    "strict": "extends: default\nescalation: {on_error: reject}\n",
    "lenient": "extends: default\non_detector_error: review\n",
}

IMAGE = solid("jpeg", (120, 90))
OTHER = solid("png", (90, 120))


def store() -> PolicyStore:
    return builders.store(**SOURCES)


def prepared(data: bytes = IMAGE):
    return builders.prepared(data)


def request(tenant: str = "default") -> JudgeRequest:
    return JudgeRequest(tenant=tenant, model_id=HAIKU, guidance="Art is fine.", findings=())


def tool_reply(verdict: str, rationale: str = "because", categories=()) -> dict:
    return {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {
                        "toolUse": {
                            "toolUseId": "tooluse_t1",
                            "name": "record_verdict",
                            "input": {
                                "verdict": verdict,
                                "categories": list(categories),
                                "rationale": rationale,
                            },
                        }
                    }
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 1000, "outputTokens": 100, "totalTokens": 1100},
    }


def detect_response(*labels: tuple[str, str, float]) -> dict:
    return {
        "ModerationLabels": [{"Name": n, "ParentName": p, "Confidence": c} for n, p, c in labels],
        "ModerationModelVersion": "7.0",
    }


BORDERLINE = detect_response(("Explicit Nudity", "Explicit", 55.0), ("Explicit", "", 55.0))


def make_engine(detector, judge=None, audit=None) -> Engine:
    """An engine on SOURCES with the engine's own clock, timer and ids, as a user builds it."""
    return builders.engine(store(), detector, judge, audit, real=("now", "timer", "new_id"))


@pytest.fixture
def no_default_engine():
    """Module-level engine state cleared for the test and put back after it."""
    with moderation.engine._default_lock:
        saved = moderation.engine._default
        moderation.engine._default = None
    yield
    with moderation.engine._default_lock:
        moderation.engine._default = saved


# -- 1. static and failing fakes ----------------------------------------------------------------


def test_static_detector_derives_parent_and_level_from_the_taxonomy():
    detector = testing.StaticDetector([("Explicit Nudity", 92.0), ("Explicit", 92.0)])
    detection = detector.detect(prepared(), min_confidence=40.0)
    assert detection.labels == (
        Label(name="Explicit Nudity", parent="Explicit", level=2, confidence=92.0),
        Label(name="Explicit", parent=None, level=1, confidence=92.0),
    )
    assert detection.model_version == "7.0"
    assert detection.min_confidence == 40.0
    deep = testing.StaticDetector([("Blood & Gore", 70)]).detect(prepared(), min_confidence=40)
    assert deep.labels[0].parent == "Graphic Violence" and deep.labels[0].level == 3


def test_static_detector_takes_label_objects_content_types_and_unknown_names():
    own = Label(name="Custom Thing", parent="Mine", level=2, confidence=80.0)
    detector = testing.StaticDetector(
        [own, ("Not In The Taxonomy", 70.0)],
        content_types=[("Animated", 97.0), ContentType(name="Illustrated", confidence=60.0)],
        model_version="6.1",
    )
    detection = detector.detect(prepared(), min_confidence=50.0)
    assert detection.labels[0] == own
    assert detection.labels[1] == Label(
        name="Not In The Taxonomy", parent=None, level=1, confidence=70.0
    )
    assert [c.name for c in detection.content_types] == ["Animated", "Illustrated"]
    assert detection.model_version == "6.1"


def test_static_detector_leaves_out_labels_below_min_confidence_like_rekognition():
    detector = testing.StaticDetector([("Explicit Nudity", 35.0), ("Weapons", 75.0)])
    assert [x.name for x in detector.detect(prepared(), min_confidence=40.0).labels] == ["Weapons"]
    assert len(detector.detect(prepared(), min_confidence=30.0).labels) == 2


def test_static_detector_gives_the_same_answer_to_the_same_question_and_keeps_every_call():
    detector = testing.StaticDetector([("Explicit Nudity", 35.0), ("Weapons", 75.0)])
    first = detector.detect(prepared(), min_confidence=40.0)
    assert detector.detect(prepared(), min_confidence=40.0) is first  # frozen: no copy per call
    assert len(detector.detect(prepared(), min_confidence=30.0).labels) == 2
    assert len(detector.calls) == 3
    # a default given afterwards is the answer from then on
    detector.default = testing.static_detection([("Alcohol", 90.0)])
    assert [x.name for x in detector.detect(prepared(), min_confidence=40.0).labels] == ["Alcohol"]


def test_static_detector_answers_per_image_by_sha256_or_bytes():
    import hashlib

    explicit = testing.static_detection([("Explicit Nudity", 95.0)])
    detector = testing.StaticDetector(
        [],
        images={
            hashlib.sha256(IMAGE).hexdigest().upper(): explicit,
            OTHER: [("Weapons", 75.0)],
        },
    )
    assert detector.detect(prepared(IMAGE), min_confidence=40).labels == explicit.labels
    assert [x.name for x in detector.detect(prepared(OTHER), min_confidence=40).labels] == [
        "Weapons"
    ]
    third = solid("png", (100, 100), color=(1, 2, 3))
    assert detector.detect(prepared(third), min_confidence=40).labels == ()  # labels=[]: clean


def test_static_detector_with_only_per_image_answers_refuses_an_unlisted_image():
    detector = testing.StaticDetector(images={IMAGE: [("Weapons", 75.0)]})
    with pytest.raises(testing.NoRecording, match="StaticDetector has no detection for sha256"):
        detector.detect(prepared(OTHER), min_confidence=40)
    # Through the engine this is a detector failure: raised, never approved.
    with pytest.raises(DetectorError):
        make_engine(detector).moderate(OTHER)


@pytest.mark.parametrize(
    "bad",
    [("Explicit", 120.0), ("Explicit", float("nan")), ("Explicit", True), ("", 50.0), ("X",)],
)
def test_static_detector_refuses_a_malformed_label(bad):
    with pytest.raises(ValueError, match=r"confidence|pair|non-empty"):
        testing.StaticDetector([bad])


def test_static_detector_refuses_an_image_key_that_is_not_a_sha256():
    with pytest.raises(ValueError, match="64-hex-digit sha256"):
        testing.StaticDetector(images={"examples/images/beach.jpg": []})


@pytest.mark.parametrize(
    ("verdict", "outcome"),
    [("approve", Outcome.APPROVED), ("reject", Outcome.REJECTED), ("unsure", Outcome.REVIEW)],
)
def test_static_judge_verdict_decides_a_borderline_image(verdict, outcome):
    judge = testing.StaticJudge(verdict, rationale="Looked at it.", categories=["Explicit"])
    decision = make_engine(testing.StaticDetector([("Explicit Nudity", 55.0)]), judge).moderate(
        IMAGE, tenant="strict"
    )
    assert (decision.outcome, decision.decided_by) == (outcome, DecidedBy.JUDGE)
    assert decision.escalation is not None and decision.escalation.verdict is not None
    assert decision.escalation.verdict.categories == ("Explicit",)
    assert decision.escalation.verdict.rationale == "Looked at it."
    [call] = judge.calls
    assert call.tenant == "strict"
    assert call.sha256 == decision.image.sha256
    assert [f.label for f in call.request.findings] == ["Explicit Nudity"]


def test_static_judge_is_not_called_when_the_policy_decides():
    judge = testing.StaticJudge("approve")
    detector = testing.StaticDetector([("Explicit Nudity", 95.0)])
    decision = make_engine(detector, judge).moderate(IMAGE)
    assert (decision.outcome, decision.decided_by) == (Outcome.REJECTED, DecidedBy.POLICY)
    assert judge.calls == []
    [call] = detector.calls
    assert call.min_confidence == 40.0 and call.sha256 == decision.image.sha256


def test_static_judge_gives_the_request_model_and_the_real_prompt_hash():
    from moderation.judge import build_converse_request, prompt_sha256

    usage = TokenUsage(input_tokens=10, output_tokens=2, total_tokens=12)
    image = prepared()
    judgment = testing.StaticJudge("reject", usage=usage).judge(image, request())
    fmt, data = image.judge_image()
    expected = prompt_sha256(
        build_converse_request(request(), fmt, data, max_tokens=512, temperature=0.0)
    )
    assert (judgment.model_id, judgment.prompt_sha256) == (HAIKU, expected)
    assert judgment.verdict is not None and judgment.verdict.verdict is VerdictKind.REJECT
    assert judgment.usage == usage and judgment.stop_reason == "tool_use"


@pytest.mark.parametrize(
    ("answer", "tenant", "outcome"),
    [
        ("blocked", "default", Outcome.REJECTED),  # on_blocked: reject
        ("invalid", "default", Outcome.REVIEW),  # on_error: review
        ("invalid", "strict", Outcome.REJECTED),  # on_error: reject
    ],
)
def test_static_judge_blocked_and_invalid_follow_the_policy(answer, tenant, outcome):
    judge = getattr(testing.StaticJudge, answer)()
    detector = testing.StaticDetector([("Explicit Nudity", 55.0)])
    decision = make_engine(detector, judge).moderate(IMAGE, tenant=tenant)
    assert (decision.outcome, decision.decided_by) == (outcome, DecidedBy.FALLBACK)
    assert len(judge.calls) == 1


def test_static_judge_refuses_an_unknown_verdict():
    with pytest.raises(ValueError, match="maybe"):
        testing.StaticJudge("maybe")  # type: ignore[arg-type]


def test_failing_detector_raises_the_given_error_and_never_approves():
    error = DetectorError("Rekognition is down")
    detector = testing.FailingDetector(error)
    engine = make_engine(detector)
    for _ in range(2):
        with pytest.raises(DetectorError) as raised:
            engine.moderate(IMAGE)
        assert raised.value is error
    assert len(detector.calls) == 2
    decision = engine.moderate(IMAGE, tenant="lenient")  # on_detector_error: review
    assert (decision.outcome, decision.decided_by) == (Outcome.REVIEW, DecidedBy.FALLBACK)
    assert "Rekognition is down" in (decision.error or "")


def test_failing_detector_default_error_and_any_exception():
    with pytest.raises(DetectorError, match="FailingDetector"):
        make_engine(testing.FailingDetector()).moderate(IMAGE)
    with pytest.raises(DetectorError, match="TimeoutError"):  # the engine wraps other errors
        make_engine(testing.FailingDetector(TimeoutError("slow"))).moderate(IMAGE)


@pytest.mark.parametrize(
    ("tenant", "outcome"), [("default", Outcome.REVIEW), ("strict", Outcome.REJECTED)]
)
def test_failing_judge_falls_back_to_the_policy_on_error(tenant, outcome):
    judge = testing.FailingJudge(JudgeError("ThrottlingException"))
    detector = testing.StaticDetector([("Explicit Nudity", 55.0)])
    decision = make_engine(detector, judge).moderate(IMAGE, tenant=tenant)
    assert (decision.outcome, decision.decided_by) == (outcome, DecidedBy.FALLBACK)
    assert decision.error == "JudgeError: ThrottlingException"
    [call] = judge.calls
    assert call.tenant == tenant
    with pytest.raises(JudgeError, match="FailingJudge"):
        testing.FailingJudge().judge(prepared(), request())


def test_fakes_satisfy_the_ports():
    recordings = testing.Recordings({})
    for detector in (
        testing.StaticDetector(),
        testing.FailingDetector(),
        testing.RecordedDetector(recordings),
    ):
        assert isinstance(detector, Detector)
    for judge in (
        testing.StaticJudge("approve"),
        testing.FailingJudge(),
        testing.RecordedJudge(recordings),
    ):
        assert isinstance(judge, Judge)


def test_recorded_fakes_keep_their_calls_too():
    recordings = testing.Recordings.of(
        {IMAGE: {"detect_moderation_labels": BORDERLINE, "converse": tool_reply("approve")}}
    )
    detector, judge = testing.RecordedDetector(recordings), testing.RecordedJudge(recordings)
    make_engine(detector, judge).moderate(IMAGE, tenant="strict")
    assert [c.min_confidence for c in detector.calls] == [40.0]
    assert [c.tenant for c in judge.calls] == ["strict"]


# -- 2. use_engine and offline_engine -----------------------------------------------------------


def test_use_engine_installs_the_engine_and_restores_none_without_building_one(
    no_default_engine, monkeypatch
):
    def from_env(*args, **kwargs):
        raise AssertionError("an engine was built from the environment")

    monkeypatch.setattr(Engine, "from_env", classmethod(from_env))
    engine = testing.offline_engine(SOURCES)
    with testing.use_engine(engine) as installed:
        assert installed is engine
        assert moderation.engine.get_engine() is engine
        decision = moderation.moderate(IMAGE)
    assert engine.audit.decisions == [decision]
    assert moderation.engine._default is None


def test_use_engine_restores_the_previous_engine_after_an_exception(no_default_engine):
    before, inside = testing.offline_engine(SOURCES), testing.offline_engine(SOURCES)
    moderation.configure(before)
    seen = []

    def work() -> None:
        with testing.use_engine(inside):
            seen.append(moderation.engine.get_engine())
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        work()
    assert seen == [inside]
    assert moderation.engine._default is before


def test_use_engine_nests(no_default_engine):
    outer, inner = testing.offline_engine(SOURCES), testing.offline_engine(SOURCES)
    with testing.use_engine(outer):
        with testing.use_engine(inner):
            assert moderation.engine._default is inner
        assert moderation.engine._default is outer
    assert moderation.engine._default is None


def test_use_engine_as_a_decorator_also_on_failure_and_recursion(no_default_engine):
    engine = testing.offline_engine(SOURCES)
    use = testing.use_engine(engine)

    @use
    def moderate_twice(depth: int) -> list[Outcome]:
        assert moderation.engine._default is engine
        outcomes = [moderation.moderate(IMAGE).outcome]
        return outcomes + (moderate_twice(depth - 1) if depth else [])

    @use
    def fails() -> None:
        raise ValueError("inside")

    assert moderate_twice(1) == [Outcome.APPROVED, Outcome.APPROVED]
    assert moderation.engine._default is None
    with pytest.raises(ValueError, match="inside"):
        fails()
    assert moderation.engine._default is None


def test_use_engine_decorates_a_coroutine_function_for_its_whole_run(no_default_engine):
    engine = testing.offline_engine(SOURCES)

    @testing.use_engine(engine)
    async def handler() -> Engine:
        await asyncio.sleep(0)
        return moderation.engine.get_engine()

    assert asyncio.run(handler()) is engine
    assert moderation.engine._default is None


def test_offline_engine_without_recordings_sees_nothing_and_judges_unsure(tmp_path):
    engine = testing.offline_engine(ROOT / "policies")
    assert isinstance(engine.detector, testing.StaticDetector)
    assert isinstance(engine.judge, testing.StaticJudge)
    assert isinstance(engine.audit, InMemoryAuditLog)
    decision = engine.moderate(IMAGE, tenant="kids")
    assert decision.outcome == Outcome.APPROVED
    assert engine.audit.decisions == [decision]
    borderline = testing.offline_engine(
        SOURCES, detector=testing.StaticDetector([("Explicit Nudity", 55.0)])
    ).moderate(IMAGE)
    assert (borderline.outcome, borderline.decided_by) == (Outcome.REVIEW, DecidedBy.JUDGE)


def test_offline_engine_with_recordings_and_replacements():
    engine = testing.offline_engine(ROOT / "policies", RECORDINGS)
    assert isinstance(engine.detector, testing.RecordedDetector)
    assert isinstance(engine.judge, testing.RecordedJudge)
    assert engine.moderate(IMAGES / "beach.jpg", tenant="kids").outcome == Outcome.REJECTED

    audit = InMemoryAuditLog()
    judge = testing.StaticJudge("reject")
    recordings = testing.Recordings.load(RECORDINGS)
    mixed = testing.offline_engine(
        PolicyStore(ROOT / "policies"), recordings, judge=judge, audit=audit
    )
    assert mixed.detector.recordings is recordings
    decision = mixed.moderate(IMAGES / "cartoon-fight.png")  # escalated; recorded judge approves
    assert (decision.outcome, decision.decided_by) == (Outcome.REJECTED, DecidedBy.JUDGE)
    assert audit.decisions == [decision] and len(judge.calls) == 1


# -- 3. recordings per tenant -------------------------------------------------------------------


def per_tenant_recordings(**extra) -> testing.Recordings:
    return testing.Recordings.of(
        {
            IMAGE: {
                "detect_moderation_labels": BORDERLINE,
                "converse_by_tenant": {
                    "strict": tool_reply("reject", "no"),
                    "lenient": tool_reply("approve", "fine"),
                },
                **extra,
            }
        }
    )


def test_recorded_judge_answers_with_the_tenants_own_recording():
    recordings = per_tenant_recordings(converse=tool_reply("unsure", "hm"))
    engine = make_engine(testing.RecordedDetector(recordings), testing.RecordedJudge(recordings))
    outcomes = {t: engine.moderate(IMAGE, tenant=t).outcome for t in ("strict", "lenient")}
    assert outcomes == {"strict": Outcome.REJECTED, "lenient": Outcome.APPROVED}
    # A tenant without its own entry gets the top-level one.
    assert engine.moderate(IMAGE, tenant="default").outcome == Outcome.REVIEW


def test_recorded_judge_without_an_answer_for_the_tenant_names_sha_and_tenant():
    recordings = per_tenant_recordings()
    judge = testing.RecordedJudge(recordings)
    image = prepared()
    assert judge.judge(image, request("strict")).verdict is not None
    with pytest.raises(JudgeError) as raised:
        judge.judge(image, request("default"))
    assert str(raised.value).startswith(
        f"no recorded Converse response for sha256 {image.sha256} and tenant default"
    )
    # In the engine, the missing answer is a judge failure: the policy's on_error.
    engine = make_engine(testing.RecordedDetector(recordings), judge)
    decision = engine.moderate(IMAGE, tenant="default")
    assert (decision.outcome, decision.decided_by) == (Outcome.REVIEW, DecidedBy.FALLBACK)


def test_detection_recording_is_per_image_whatever_the_tenant():
    recordings = per_tenant_recordings()
    detector = testing.RecordedDetector(recordings)
    engine = make_engine(detector, testing.RecordedJudge(recordings))
    first = engine.moderate(IMAGE, tenant="strict").detection
    second = engine.moderate(IMAGE, tenant="lenient").detection
    assert first is not None and first.labels == second.labels


def test_example_recordings_answer_the_medical_tenant_differently():
    engine = testing.offline_engine(ROOT / "policies", RECORDINGS)
    surgery = IMAGES / "surgery.jpg"
    default = engine.moderate(surgery)
    medical = engine.moderate(surgery, tenant="medical")
    assert (default.outcome, default.decided_by) == (Outcome.REJECTED, DecidedBy.FALLBACK)
    assert default.escalation is not None and default.escalation.stop_reason == "content_filtered"
    assert (medical.outcome, medical.decided_by) == (Outcome.APPROVED, DecidedBy.JUDGE)


# -- 4. malformed recordings --------------------------------------------------------------------


def write_recording(directory: Path, **entry) -> Path:
    import hashlib

    path = directory / "bad.json"
    path.write_text(json.dumps({"sha256": hashlib.sha256(IMAGE).hexdigest(), **entry}))
    return path


@pytest.mark.parametrize("value", [[], "a response", None, 3, True])
@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("detect_moderation_labels", "'detect_moderation_labels'"),
        ("converse", "'converse'"),
        ("converse_by_tenant.kids", "'converse_by_tenant.kids'"),
    ],
)
def test_load_refuses_a_response_that_is_not_a_json_object(tmp_path, key, shown, value):
    if key.startswith("converse_by_tenant."):
        entry = {"converse_by_tenant": {key.split(".", 1)[1]: value}}
    else:
        entry = {key: value}
    path = write_recording(tmp_path, **entry)
    with pytest.raises(ModerationError) as raised:
        testing.Recordings.load(tmp_path)
    message = str(raised.value)
    assert str(path) in message and shown in message and "JSON object" in message
    assert "no recorded" not in message


@pytest.mark.parametrize("value", [[], "kids", None])
def test_load_refuses_a_converse_by_tenant_that_is_not_a_mapping(tmp_path, value):
    path = write_recording(tmp_path, converse_by_tenant=value)
    with pytest.raises(ModerationError, match=re.escape(f"{path}: 'converse_by_tenant'")):
        testing.Recordings.load(tmp_path)


def test_load_refuses_an_unknown_key_such_as_a_misspelling(tmp_path):
    path = write_recording(tmp_path, converse_by_tenants={"kids": tool_reply("approve")})
    with pytest.raises(ModerationError, match=re.escape(f"{path}: unknown key(s) 'converse_by")):
        testing.Recordings.load(tmp_path)


def test_load_refuses_a_recording_that_is_not_an_object(tmp_path):
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ModerationError, match=r"list\.json: a recording is a JSON object"):
        testing.Recordings.load(tmp_path)


def test_in_memory_recordings_are_checked_too():
    with pytest.raises(ModerationError, match="'converse' must be a Converse response"):
        testing.Recordings.of({IMAGE: {"converse": None}})


def test_a_well_formed_recording_with_a_bad_reply_loads_and_is_judged_invalid(tmp_path):
    text_only = {
        "output": {"message": {"role": "assistant", "content": [{"text": "APPROVE"}]}},
        "stopReason": "end_turn",
    }
    write_recording(tmp_path, detect_moderation_labels=BORDERLINE, converse=text_only)
    recordings = testing.Recordings.load(tmp_path)
    judgment = testing.RecordedJudge(recordings).judge(prepared(), request())
    assert judgment.status == "invalid"


def test_shipped_example_recordings_load():
    recordings = testing.Recordings.load(RECORDINGS)
    assert len(recordings.entries) == len(list(RECORDINGS.glob("*.json")))


# -- 5. offline decisions say they were offline -------------------------------------------------


def test_judgment_provider_defaults_to_bedrock():
    judgment = Judgment(status="invalid", model_id=HAIKU, prompt_sha256="ab" * 32)
    assert judgment.provider == "bedrock"


def test_recorded_decisions_say_recorded():
    recordings = testing.Recordings.of(
        {IMAGE: {"detect_moderation_labels": BORDERLINE, "converse": tool_reply("approve")}}
    )
    judge = testing.RecordedJudge(recordings)
    decision = make_engine(testing.RecordedDetector(recordings), judge).moderate(IMAGE)
    assert decision.decided_by == DecidedBy.JUDGE
    assert decision.detection is not None and decision.detection.provider == "recorded"
    assert judge.judge(prepared(), request()).provider == "recorded"
    assert Detection.model_validate_json(decision.detection.model_dump_json()).provider == (
        "recorded"
    )


def test_static_decisions_say_static():
    detector = testing.StaticDetector(images={IMAGE: Detection(labels=())}, labels=[])
    decision = make_engine(detector).moderate(IMAGE)
    assert decision.detection is not None and decision.detection.provider == "static"
    assert testing.static_detection().provider == "static"
    for judge in (
        testing.StaticJudge("approve"),
        testing.StaticJudge.blocked(),
        testing.StaticJudge.invalid(),
    ):
        assert judge.judge(prepared(), request()).provider == "static"


def test_offline_decisions_cost_nothing_and_say_who_answered():
    detector = testing.StaticDetector([("Explicit Nudity", 55.0)])
    usage = TokenUsage(input_tokens=1000, output_tokens=100, total_tokens=1100)
    decision = make_engine(detector, testing.StaticJudge("approve", usage=usage)).moderate(IMAGE)
    assert decision.cost is not None
    assert (decision.cost.rekognition_usd, decision.cost.bedrock_usd) == (0.0, 0.0)
    assert decision.escalation is not None and decision.escalation.provider == "static"
    assert decision.detection is not None and decision.detection.provider == "static"


# -- 6. the documentation -----------------------------------------------------------------------


DOC = ROOT / "docs/testing.md"


def doc_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.mark.slow
def test_docs_python_examples_run_as_written_under_pytest(tmp_path):
    blocks = doc_blocks("python")
    assert len(blocks) >= 3
    files = []
    for i, block in enumerate(blocks):
        path = tmp_path / f"test_docs_testing_{i}.py"
        path.write_text(block)
        files.append(str(path))
    expected = sum(len(re.findall(r"^(?:async )?def test_", b, flags=re.M)) for b in blocks)
    # In a child pytest, from the repository root as the docs say: the examples are test modules
    # with fixtures, and their paths are relative to the root.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            *files,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{expected} passed" in result.stdout, result.stdout


def test_docs_recording_example_is_a_valid_recording_with_every_key():
    from moderation.testing.recorded import KNOWN_KEYS

    recording, reply = (json.loads(b) for b in doc_blocks("json"))
    assert set(recording) == set(KNOWN_KEYS)
    sha = recording["sha256"]
    recordings = testing.Recordings({sha: recording}, "docs/testing.md")
    image = prepared((ROOT / recording["image"]).read_bytes())
    assert image.sha256 == sha
    detection = testing.RecordedDetector(recordings).detect(image, min_confidence=40)
    assert detection.labels[0].name == "Blood & Gore"
    judge = testing.RecordedJudge(recordings)
    assert judge.judge(image, request("default")).status == "blocked"
    medical = judge.judge(image, request("medical"))
    assert medical.verdict is not None and medical.verdict.verdict is VerdictKind.APPROVE
    for key in KNOWN_KEYS:
        assert f"| `{key}` |" in DOC.read_text()

    from moderation.judge import interpret_converse

    judged = interpret_converse(reply, model_id=HAIKU, prompt_sha256="ab" * 32, latency_ms=None,
                                attempts=1)  # fmt: skip
    assert judged.status == "verdict" and judged.verdict is not None
    assert judged.verdict.verdict is VerdictKind.REJECT
    assert judged.verdict.categories == ("Explicit Nudity",)


def test_docs_name_every_export():
    text = DOC.read_text()
    for name in testing.__all__:
        if name in {"ContentTypeSpec", "LabelSpec", "ImageKey"}:
            continue  # type aliases, described in prose
        assert f"{name}" in text, name


# -- 7. exports and a boto3-free import ---------------------------------------------------------


def test_all_exports_everything():
    assert set(testing.__all__) == {
        "AWSEndpoint",
        "ContentTypeSpec",
        "DecisionLog",
        "DetectCall",
        "DetectionNotReplayable",
        "FailingDetector",
        "FailingJudge",
        "ImageKey",
        "InMemoryAuditLog",
        "JudgeCall",
        "LabelSpec",
        "LogSource",
        "LoggedDetector",
        "LoggedJudge",
        "NoLoggedVerdict",
        "NoRecording",
        "NotInLog",
        "RecordedDetector",
        "RecordedJudge",
        "Recordings",
        "Reply",
        "StaticDetector",
        "StaticJudge",
        "VerdictNotReplayable",
        "engine_from_log",
        "assert_replay",
        "offline_engine",
        "static_detection",
        "use_engine",
    }
    for name in testing.__all__:
        assert getattr(testing, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = testing.Nope  # type: ignore[attr-defined]


def test_importing_the_test_kit_does_not_import_boto3():
    code = (
        "import sys, moderation.testing; "
        "assert 'botocore' not in sys.modules and 'boto3' not in sys.modules, 'imported'; "
        "from moderation.testing import AWSEndpoint, Reply; "
        "assert 'botocore' in sys.modules; "
        "from moderation.testing.endpoint import AWSEndpoint as E; assert AWSEndpoint is E"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
