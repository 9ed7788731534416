"""Replay: recorded decisions triaged again under changed policies, with hand-computed answers.

The recorded log comes from the real engine (StaticDetector, StaticJudge, FailingJudge), so the
records are what production writes; the expected flips are worked out by hand from the label
confidences and the thresholds below. The helpers here are shared by tests/test_replay_*.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import builders
import pytest
from images import animated_gif, solid
from pydantic import ValidationError

import moderation
from moderation import Engine, InMemoryAuditLog, PolicyStore
from moderation.audit import FileHeader, TornNote, encode_record, read_log
from moderation.audit._format import GENESIS
from moderation.decision import Cost, Decision, Outcome, ShadowResult, TokenUsage
from moderation.errors import ReplayError
from moderation.policy import PolicyRef
from moderation.replay import DEFAULT_KEEP, Flip, ReplayReport, replay, replay_shadow
from moderation.testing import FailingDetector, FailingJudge, StaticDetector, StaticJudge
from moderation.triage import Action

MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"

# The policy the log was recorded under.
DEFAULT = f"""\
id: default
min_confidence: 40
max_frames: 2
default: {{reject: 90, escalate: 60}}
categories:
  Explicit: {{reject: 80, escalate: 50}}
  Violence: {{reject: 95, escalate: 60}}
  Hate Symbols: {{review: 40}}
escalation:
  judge: bedrock
  model_id: {MODEL}
  on_error: review
  on_blocked: reject
on_detector_error: review
"""
KIDS = """\
extends: default
min_confidence: 30
categories:
  Explicit: {reject: 50, escalate: 30}
escalation:
  on_error: reject
"""
# Stricter on Explicit: reject from 60, escalate from 40.
STRICTER = DEFAULT.replace(
    "Explicit: {reject: 80, escalate: 50}", "Explicit: {reject: 60, escalate: 40}"
)
assert STRICTER != DEFAULT

# One image per case, told apart by colour. Confidences are the labels the detector reports.
CASES: dict[str, tuple[tuple[int, int, int], list[tuple[str, float]]]] = {
    "A": ((200, 0, 0), [("Explicit Nudity", 85.0)]),  # reject (>= 80)
    "B": ((0, 200, 0), [("Explicit Nudity", 70.0)]),  # escalate (50..80): the judge approves
    "C": ((0, 0, 200), [("Explicit Nudity", 45.0)]),  # approve (below escalate 50)
    "D": ((200, 200, 0), [("Violence", 30.0)]),  # below min_confidence 40: never reported
    "E": ((0, 200, 200), [("Hate Symbols", 50.0)]),  # review (>= 40)
}
# Escalates too (65), but its judge fails: review by on_error, no verdict in the record.
FAILED = ((200, 0, 200), [("Explicit Nudity", 65.0)])


def image(color: tuple[int, int, int]) -> bytes:
    return solid("png", color=color)


def store(default: str = DEFAULT, **tenants: str) -> PolicyStore:
    """DEFAULT (or `default`) and the `tenants` policies."""
    return builders.store(default, **tenants)


def record(
    cases: Iterable[tuple[tuple[int, int, int], list[tuple[str, float]]]],
    *,
    policies: PolicyStore | None = None,
    judge: object = None,
    tenant: str = "default",
) -> list[Decision]:
    """The decisions the engine records for these images (their labels given per image)."""
    cases = list(cases)
    audit = InMemoryAuditLog()
    detector = StaticDetector(images={image(color): labels for color, labels in cases})
    engine = builders.engine(
        policies or store(),
        detector,
        judge if judge is not None else StaticJudge("approve", usage=USAGE),  # type: ignore[arg-type]
        audit,
        real=("now", "timer", "new_id"),  # a log of distinct decisions made at their own times
    )
    for color, _ in cases:
        engine.moderate(image(color), tenant=tenant)
    return list(audit.decisions)


USAGE = TokenUsage(input_tokens=1000, output_tokens=100, total_tokens=1100)


def recorded_log() -> dict[str, Decision]:
    """Cases A-E and the failed-judge case F, by letter."""
    decisions = record(CASES.values()) + record([FAILED], judge=FailingJudge())
    return dict(zip([*CASES, "F"], decisions, strict=True))


def chained_lines(decisions: Iterable[Decision], *, start: int = 1) -> list[bytes]:
    """A chained log: a file header, then one record per decision, hash-linked."""
    header = FileHeader(created_at=datetime.now(UTC), engine_version="test")
    lines = [
        encode_record(
            seq=start, prev=GENESIS, kind="file", body_json=header.model_dump_json(), key=None
        )
    ]
    for decision in decisions:
        prev = json.loads(lines[-1])["hash"]
        lines.append(
            encode_record(
                seq=start + len(lines),
                prev=prev,
                kind="decision",
                body_json=decision.model_dump_json(),
                key=None,
            )
        )
    return lines


def write_chained(path: Path, decisions: Iterable[Decision], extra: Sequence[bytes] = ()) -> Path:
    path.write_bytes(b"".join(chained_lines(decisions)) + b"".join(extra))
    return path


def write_bare(path: Path, decisions: Iterable[Decision], extra: Sequence[bytes] = ()) -> Path:
    path.write_bytes(
        b"".join(d.model_dump_json().encode() + b"\n" for d in decisions) + b"".join(extra)
    )
    return path


def flips(report: ReplayReport) -> dict[str, tuple[str, str]]:
    return {f.decision_id: (f.before.value, f.after.value) for f in report.flips}


@pytest.fixture(scope="module")
def log() -> dict[str, Decision]:
    return recorded_log()


@pytest.fixture(params=["chained", "bare"])
def log_path(request: pytest.FixtureRequest, tmp_path: Path, log: dict[str, Decision]) -> Path:
    """The recorded log on disk, in both line formats replay reads."""
    write = write_chained if request.param == "chained" else write_bare
    return write(tmp_path / "audit.jsonl", log.values())


# --------------------------------------------------------------------------- the recorded log


def test_the_recorded_log_is_what_the_hand_computation_assumes(log: dict[str, Decision]) -> None:
    outcomes = {k: d.outcome.value for k, d in log.items()}
    assert outcomes == {
        "A": "rejected",
        "B": "approved",
        "C": "approved",
        "D": "approved",
        "E": "review",
        "F": "review",
    }
    assert log["B"].escalation is not None and log["B"].escalation.verdict is not None
    assert log["F"].escalation is not None and log["F"].escalation.verdict is None
    assert log["D"].detection is not None and log["D"].detection.labels == ()


# --------------------------------------------------------------------------- flips


def test_replayed_under_its_own_policies_nothing_flips(
    log_path: Path, log: dict[str, Decision]
) -> None:
    report = replay(log_path, store())
    assert (report.decisions, report.replayed, report.unchanged) == (6, 6, 5)
    assert report.flipped == 0 and report.flips == ()
    # F escalates again and its judge call had failed: no verdict to reuse, so not provable.
    assert report.needs_judgment_ids == (log["F"].id,)
    assert report.reused == 1  # B: the judge's approval reused, not re-asked
    assert report.reused_from_other_model == 0
    assert report.error_count == 0
    assert report.escalation_rate_before == report.escalation_rate_after == pytest.approx(2 / 6)


def test_a_stricter_policy_flips_exactly_the_cases_worked_out_by_hand(
    log_path: Path, log: dict[str, Decision]
) -> None:
    # Explicit now rejects from 60 and escalates from 40:
    #   A 85 -> reject (unchanged), B 70 -> reject (was approved by the judge),
    #   C 45 -> escalate, no verdict recorded -> needs judgment, F 65 -> reject (was review),
    #   D (no labels) and E (Hate Symbols) do not change.
    report = replay(log_path, store(STRICTER))
    assert flips(report) == {
        log["B"].id: ("approved", "rejected"),
        log["F"].id: ("review", "rejected"),
    }
    assert report.needs_judgment_ids == (log["C"].id,)
    assert (report.replayed, report.unchanged, report.flipped, report.needs_judgment) == (
        6,
        3,
        2,
        1,
    )
    flip = next(f for f in report.flips if f.decision_id == log["B"].id)
    assert flip.category == "Explicit"
    assert flip.reasons == (
        "Explicit Nudity 70.0% >= reject 60 (rule 'Explicit', matched by parent)",
    )
    assert [f.label for f in flip.findings] == ["Explicit Nudity"]
    assert flip.findings[0].thresholds.reject == 60
    assert (flip.verdict_reused, flip.incomplete) == (False, False)
    assert flip.file == str(log_path)
    # Line numbers count the chained log's header line.
    offset = 1 if log_path.read_bytes().startswith(b'{"audit":') else 0
    assert flip.line == 2 + offset
    assert report.flips_by_tenant == {"default": 2}
    assert report.flips_by_category == {"Explicit": 2}


def test_needs_judgment_calls_no_judge_and_invents_no_outcome(log: dict[str, Decision]) -> None:
    judge = FailingJudge()  # would fail loudly were it asked: replay has no judge to ask
    report = replay(list(log.values()), store(STRICTER))
    assert judge.calls == []
    assert log["C"].id in report.needs_judgment_ids
    assert log["C"].id not in flips(report)
    assert report.matrix["approved"]["needs_judgment"] == 1


def test_the_matrix_counts_before_by_after(log_path: Path) -> None:
    report = replay(log_path, store(STRICTER))
    assert report.matrix == {
        "approved": {
            "approved": 1,
            "rejected": 1,
            "review": 0,
            "needs_judgment": 1,
            "not_replayable": 0,
        },
        "rejected": {
            "approved": 0,
            "rejected": 1,
            "review": 0,
            "needs_judgment": 0,
            "not_replayable": 0,
        },
        "review": {
            "approved": 0,
            "rejected": 1,
            "review": 1,
            "needs_judgment": 0,
            "not_replayable": 0,
        },
    }


def test_a_flip_to_approved_names_the_recorded_findings_that_no_longer_act(
    log: dict[str, Decision],
) -> None:
    lenient = DEFAULT.replace(
        "Explicit: {reject: 80, escalate: 50}", "Explicit: {reject: 95, escalate: 90}"
    )
    report = replay(list(log.values()), store(lenient))
    # A 85 -> below escalate 90: approved; B 70 and F 65 too (B was approved already).
    assert flips(report) == {
        log["A"].id: ("rejected", "approved"),
        log["F"].id: ("review", "approved"),
    }
    flip = next(f for f in report.flips if f.decision_id == log["A"].id)
    assert flip.reasons == (
        "Explicit Nudity 85.0% >= reject 80 (rule 'Explicit', matched by parent)",
    )
    assert flip.findings[0].thresholds.reject == 80  # as recorded: the rule that acted then
    assert flip.category == "Explicit"
    # Of several recorded findings, those that acted, most severe first; ignored ones are left out.
    labels = [("Violence", 45.0), ("Explicit Nudity", 60.0), ("Explicit Sexual Activity", 85.0)]
    (mixed,) = record([((9, 9, 9), labels)])
    assert mixed.outcome is Outcome.REJECTED
    report = replay([mixed], store(lenient))
    (flip,) = report.flips
    assert [(f.label, f.band.value) for f in flip.findings] == [
        ("Explicit Sexual Activity", "reject"),
        ("Explicit Nudity", "escalate"),
    ]
    assert flip.category == "Explicit"


def test_a_policy_without_judge_sends_escalations_to_review(log: dict[str, Decision]) -> None:
    no_judge = DEFAULT.replace("  judge: bedrock\n", "  judge: none\n")
    report = replay(list(log.values()), store(no_judge))
    # B escalates as before but is no longer the judge's: review, as the engine would do.
    assert flips(report) == {log["B"].id: ("approved", "review")}
    assert report.reused == 0
    assert report.needs_judgment == 0
    flip = report.flips[0]
    assert flip.reasons == (
        "Explicit Nudity 70.0% >= escalate 50 (rule 'Explicit', matched by parent)",
    )


def test_a_reused_verdict_from_another_model_is_counted_and_listed(
    log: dict[str, Decision],
) -> None:
    other = DEFAULT.replace(MODEL, "anthropic.claude-sonnet-4-5-20250929-v1:0")
    report = replay(list(log.values()), store(other))
    assert report.flipped == 0
    assert report.reused == 1
    assert report.reused_from_other_model == 1
    assert report.reused_from_other_model_ids == (log["B"].id,)


def test_a_flip_by_a_reused_verdict_says_so(log: dict[str, Decision]) -> None:
    # E (Hate Symbols 50) now escalates instead of review; no verdict recorded: needs judgment.
    # B (70) still escalates; its verdict (approve) decides: unchanged.
    escalate_hate = DEFAULT.replace("Hate Symbols: {review: 40}", "Hate Symbols: {escalate: 40}")
    report = replay(list(log.values()), store(escalate_hate))
    assert report.needs_judgment_ids == (log["E"].id, log["F"].id)
    # A verdict that now flips: B was approved; recorded again as rejected-by-judge it flips back.
    rejected_b = record([CASES["B"]], judge=StaticJudge("reject"))[0]
    report = replay([rejected_b], store())
    assert report.flipped == 0 and report.reused == 1
    report = replay(
        [rejected_b],
        store(
            DEFAULT.replace(
                "Explicit: {reject: 80, escalate: 50}", "Explicit: {reject: 80, escalate: 60}"
            )
        ),
    )
    assert report.flipped == 0 and report.reused == 1  # 70 still escalates: the verdict stands
    forced = rejected_b.model_copy(update={"outcome": Outcome.REVIEW})  # as if sent to review
    report = replay([forced], store())
    assert flips(report) == {forced.id: ("review", "rejected")}
    assert report.flips[0].verdict_reused is True
    assert report.flips[0].reasons == (
        "Explicit Nudity 70.0% >= escalate 50 (rule 'Explicit', matched by parent)",
    )


# ------------------------------------------------------------------------- what cannot be replayed


def test_a_decision_whose_detector_failed_is_not_replayable(log: dict[str, Decision]) -> None:
    audit = InMemoryAuditLog()
    Engine(store(), FailingDetector(), None, audit).moderate(image((1, 2, 3)))
    failed = audit.decisions[0]
    assert failed.detection is None and failed.outcome is Outcome.REVIEW
    report = replay([*log.values(), failed], store(STRICTER))
    assert report.not_replayable == 1
    assert report.not_replayable_ids == (failed.id,)
    assert report.decisions == 7 and report.replayed == 6
    assert report.matrix["review"]["not_replayable"] == 1
    assert failed.id not in flips(report)


def test_labels_below_the_recorded_min_confidence_make_a_replay_incomplete(
    log: dict[str, Decision],
) -> None:
    # Recorded with min_confidence 40; a policy at 30 would have been sent labels from 30 up.
    lower = DEFAULT.replace("min_confidence: 40", "min_confidence: 30")
    report = replay(list(log.values()), store(lower))
    assert report.incomplete == 6
    assert set(report.incomplete_ids) == {d.id for d in log.values()}
    # At 40 or above nothing is missing.
    assert replay(list(log.values()), store()).incomplete == 0
    higher = DEFAULT.replace("min_confidence: 40", "min_confidence: 45")
    assert replay(list(log.values()), store(higher)).incomplete == 0


def test_an_incomplete_flip_is_marked() -> None:
    decisions = record([CASES["B"]], judge=StaticJudge("approve"))
    stricter_lower = STRICTER.replace("min_confidence: 40", "min_confidence: 20")
    report = replay(decisions, store(stricter_lower))
    assert report.flipped == 1
    assert report.flips[0].incomplete is True
    assert report.incomplete_ids == (decisions[0].id,)


def test_an_animation_replayed_under_other_max_frames_is_complete_once_frames_were_chosen() -> None:
    gif = animated_gif([(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0)])  # 4 frames
    short = animated_gif([(200, 0, 0), (0, 200, 0)])  # 2 frames
    audit = InMemoryAuditLog()
    engine = Engine(store(), StaticDetector([("Explicit Nudity", 85.0)]), None, audit)
    long_one, short_one = engine.moderate(gif), engine.moderate(short)
    # max_frames 2: the four distinct frames went to the detector on two sheets of two
    assert long_one.detection is not None and long_one.detection.frames == (0, 2)
    assert long_one.image.n_frames == 4
    assert short_one.detection is not None and short_one.detection.frames == (0, 1)
    more = DEFAULT.replace("max_frames: 2", "max_frames: 4")
    report = replay([long_one, short_one], store(more))
    # Frames are chosen by content: every frame of both was seen, whatever max_frames says.
    assert report.incomplete_ids == ()
    assert replay([long_one, short_one], store()).incomplete == 0  # same max_frames
    fewer = DEFAULT.replace("max_frames: 2", "max_frames: 1")
    assert replay([long_one, short_one], store(fewer)).incomplete == 0


def test_an_animation_recorded_from_its_first_frame_alone_is_incomplete() -> None:
    # GIVEN a 10-frame animation recorded under max_frames 4: all ten frames were shown, on four
    # images (sheets of 3, 3, 2 and 2 frames)
    gif = animated_gif([(25 * i, 200 - 20 * i, 0) for i in range(10)])
    four = DEFAULT.replace("max_frames: 2", "max_frames: 4")
    audit = InMemoryAuditLog()
    Engine(store(four), StaticDetector([("Explicit Nudity", 85.0)]), None, audit).moderate(gif)
    [recorded] = audit.decisions
    assert recorded.detection is not None and recorded.detection.frames == (0, 3, 6, 8)
    # WHEN it is replayed under max_frames 3 or 2 THEN nothing was left unseen
    three = DEFAULT.replace("max_frames: 2", "max_frames: 3")
    assert replay([recorded], store(three)).incomplete == 0
    assert replay([recorded], store()).incomplete == 0
    # BUT recorded from its first frame alone (max_frames 1), any policy looking further is not
    one = DEFAULT.replace("max_frames: 2", "max_frames: 1")
    audit = InMemoryAuditLog()
    Engine(store(one), StaticDetector([("Explicit Nudity", 85.0)]), None, audit).moderate(gif)
    [first_only] = audit.decisions
    assert replay([first_only], store(three)).incomplete_ids == (first_only.id,)
    assert replay([first_only], store(one)).incomplete == 0


def test_a_still_image_is_never_incomplete_for_frames(log: dict[str, Decision]) -> None:
    more = DEFAULT.replace("max_frames: 2", "max_frames: 8")
    assert replay(list(log.values()), store(more)).incomplete == 0


# --------------------------------------------------------------------------- tenants and policies


def test_a_fallback_record_replays_under_the_default_policy() -> None:
    recorded_store = PolicyStore.from_sources({"default": DEFAULT}, fallback_to_default=True)
    decisions = record([CASES["B"]], policies=recorded_store, tenant="newco")
    assert decisions[0].policy_fallback is True and decisions[0].policy.id == "default"
    report = replay(decisions, store(STRICTER))  # a store that does not fall back
    assert report.error_count == 0
    assert flips(report) == {decisions[0].id: ("approved", "rejected")}


def test_a_fallback_record_uses_the_tenant_policy_once_it_has_one() -> None:
    recorded_store = PolicyStore.from_sources({"default": DEFAULT}, fallback_to_default=True)
    decisions = record([CASES["B"]], policies=recorded_store, tenant="newco")
    newco = "extends: default\ncategories:\n  Explicit: {reject: 65, escalate: 30}\n"
    report = replay(decisions, store(newco=newco))
    assert flips(report) == {decisions[0].id: ("approved", "rejected")}
    assert report.flips[0].category == "Explicit"
    assert report.flips[0].findings[0].thresholds.reject == 65


def test_a_tenant_without_a_policy_now_is_an_error_with_file_and_line(tmp_path: Path) -> None:
    kids = record([CASES["A"]], policies=store(kids=KIDS), tenant="kids")
    path = write_bare(tmp_path / "audit.jsonl", [*record([CASES["C"]]), *kids])
    report = replay(path, store())
    assert report.error_count == 1
    (error,) = report.errors
    assert (error.file, error.line) == (str(path), 2)
    assert kids[0].id in error.message and "'kids'" in error.message
    assert report.decisions == 2 and report.replayed == 1
    with pytest.raises(ReplayError) as caught:
        replay(path, store(), strict=True)
    assert (caught.value.file, caught.value.line) == (str(path), 2)
    assert f"{path}:2:" in str(caught.value)


def test_the_tenant_filter_replays_one_tenant(log: dict[str, Decision]) -> None:
    policies = store(kids=KIDS)
    kids = record([CASES["B"], CASES["C"]], policies=policies, tenant="kids")
    mixed = [*log.values(), *kids]
    report = replay(mixed, store(STRICTER, kids=KIDS), tenant="kids")
    assert report.decisions == 2
    assert report.tenant == "kids"
    assert all(f.tenant == "kids" for f in report.flips)
    assert replay(mixed, store(STRICTER, kids=KIDS), tenant="default").decisions == 6
    assert replay(mixed, store(STRICTER, kids=KIDS)).decisions == 8
    # A filter on a tenant the policies lack is not an error: it only selects.
    assert replay(mixed, store(STRICTER), tenant="default").error_count == 0


def test_policies_may_be_a_directory(tmp_path: Path, log: dict[str, Decision]) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "default.yaml").write_text(STRICTER)
    report = replay(list(log.values()), tmp_path / "policies")
    assert report.flipped == 2
    assert report.policies == str(tmp_path / "policies")


def test_invalid_policies_raise_policy_error(tmp_path: Path, log: dict[str, Decision]) -> None:
    (tmp_path / "default.yaml").write_text("min_confidence: 400\ndefault: {reject: 90}\n")
    with pytest.raises(moderation.PolicyError):
        replay(list(log.values()), tmp_path)


# --------------------------------------------------------------------------- costs and rates


def with_costs(log: dict[str, Decision]) -> dict[str, Decision]:
    """Every decision billed 0.001 for Rekognition; B's judge call 0.004, F's failed call 0.002."""
    bedrock = {"B": 0.004, "F": 0.002}
    return {
        k: d.model_copy(
            update={"cost": Cost(rekognition_usd=0.001, bedrock_usd=bedrock.get(k, 0.0))}
        )
        for k, d in log.items()
    }


def test_cost_and_escalation_rate_before_and_after(log: dict[str, Decision]) -> None:
    report = replay(list(with_costs(log).values()), store(STRICTER))
    # Before: 6 x 0.001 + 0.004 + 0.002. After: 6 x 0.001 for Rekognition, and one new judge
    # call (C escalates, with no call recorded) at the log's mean judge call (0.004+0.002)/2;
    # B and F no longer escalate, so their judge calls are gone.
    assert report.cost_before_usd == pytest.approx(0.012)
    assert report.mean_judge_call_usd == pytest.approx(0.003)
    assert report.judge_calls_at_mean == 1
    assert report.cost_after_usd == pytest.approx(0.006 + 0.003)
    # Escalations: B and F before, C after, of 6 replayed.
    assert (report.escalations_before, report.escalations_after) == (2, 1)
    assert report.escalation_rate_before == pytest.approx(2 / 6)
    assert report.escalation_rate_after == pytest.approx(1 / 6)


def test_a_case_that_still_escalates_keeps_its_recorded_judge_cost(
    log: dict[str, Decision],
) -> None:
    report = replay(list(with_costs(log).values()), store())
    assert report.cost_after_usd == pytest.approx(report.cost_before_usd) == pytest.approx(0.012)
    assert report.judge_calls_at_mean == 0


def test_an_unknown_cost_is_left_out_and_counted(log: dict[str, Decision]) -> None:
    priced = with_costs(log)
    priced["A"] = priced["A"].model_copy(
        update={"cost": Cost(rekognition_usd=0.001, bedrock_usd=None)}
    )
    report = replay(list(priced.values()), store())
    assert report.cost_unknown == 1
    assert report.cost_before_usd == pytest.approx(0.011)


# ------------------------------------------------------------------------- sources and bad records


def test_rotated_logs_are_read_oldest_first_with_the_live_file(
    tmp_path: Path, log: dict[str, Decision]
) -> None:
    decisions = list(log.values())
    live = tmp_path / "audit.jsonl"
    write_bare(tmp_path / "audit.jsonl.1", decisions[:2])
    write_chained(tmp_path / "audit.jsonl.2", decisions[2:4])
    write_bare(live, decisions[4:])
    report = replay(live, store(STRICTER))
    assert report.decisions == 6
    assert flips(report) == {
        log["B"].id: ("approved", "rejected"),
        log["F"].id: ("review", "rejected"),
    }
    where = {f.decision_id: f.file for f in report.flips}
    assert where == {log["B"].id: str(tmp_path / "audit.jsonl.1"), log["F"].id: str(live)}


def test_several_paths_are_one_replay(tmp_path: Path, log: dict[str, Decision]) -> None:
    decisions = list(log.values())
    first = write_bare(tmp_path / "a.jsonl", decisions[:3])
    second = write_chained(tmp_path / "b.jsonl", decisions[3:])
    report = replay([first, str(second)], store(STRICTER))
    assert report.decisions == 6 and report.flipped == 2


def test_a_missing_log_raises_before_anything_is_replayed(
    tmp_path: Path, log: dict[str, Decision]
) -> None:
    present = write_bare(tmp_path / "a.jsonl", log.values())
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl"):
        replay([present, tmp_path / "missing.jsonl"], store())


def test_bad_records_are_listed_with_file_and_line_and_the_replay_goes_on(
    tmp_path: Path, log: dict[str, Decision]
) -> None:
    decisions = list(log.values())
    newer = json.loads(decisions[0].model_dump_json())
    newer["schema_version"] = 2
    path = write_bare(
        tmp_path / "audit.jsonl",
        decisions[:3],
        [
            b"this is not json\n",  # line 4
            json.dumps(newer).encode() + b"\n",  # line 5
            decisions[3].model_dump_json().encode() + b"\n",  # line 6
            decisions[4].model_dump_json().encode()[:40],  # line 7: torn, no newline
        ],
    )
    report = replay(path, store(STRICTER))
    assert report.records_read == 7
    assert report.decisions == 4
    assert report.error_count == 3
    where = [(e.file, e.line) for e in report.errors]
    assert where == [(str(path), 4), (str(path), 5), (str(path), 7)]
    messages = [e.message for e in report.errors]
    assert messages[0].startswith("not JSON")
    assert "schema_version 2 is newer" in messages[1]
    assert messages[2].startswith("torn")
    assert report.flipped == 1  # B still replayed


def test_a_newer_record_format_is_a_bad_record(tmp_path: Path, log: dict[str, Decision]) -> None:
    line = chained_lines([log["A"]])[1].replace(b'{"audit":1,', b'{"audit":2,')
    path = tmp_path / "audit.jsonl"
    path.write_bytes(line)
    report = replay(path, store())
    assert report.error_count == 1
    assert "audit record format 2 is newer" in report.errors[0].message


def test_a_chained_record_whose_decision_does_not_validate_is_a_bad_record_as_read_log_says(
    tmp_path: Path, log: dict[str, Decision]
) -> None:
    # GIVEN a record in the writer's exact form (its hash too) whose decision is not valid
    lines = chained_lines([log["A"], log["B"]])
    body = json.loads(lines[2])["decision"]
    body["outcome"] = "maybe"
    prev = json.loads(lines[1])["hash"]
    lines[2] = encode_record(seq=3, prev=prev, kind="decision", body_json=json.dumps(body),
                             key=None)  # fmt: skip
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"".join(lines))
    # THEN replay lists it with what read_log says of it, and replays the rest
    report = replay(path, store())
    (expected,) = [e.error for e in read_log(path) if e.error is not None]
    assert [(e.line, e.message) for e in report.errors] == [(3, expected)]
    assert "not a valid audit record: decision.outcome" in expected
    assert report.decisions == 1


def test_strict_raises_on_the_first_bad_record(tmp_path: Path, log: dict[str, Decision]) -> None:
    path = write_bare(tmp_path / "audit.jsonl", [log["A"]], [b"{oops\n", b"nope\n"])
    with pytest.raises(ReplayError) as caught:
        replay(path, store(), strict=True)
    assert (caught.value.file, caught.value.line) == (str(path), 2)
    assert str(caught.value).startswith(f"{path}:2: not JSON")
    assert isinstance(caught.value, moderation.ModerationError)


def test_a_torn_note_is_skipped_and_the_torn_line_reported(
    tmp_path: Path, log: dict[str, Decision]
) -> None:
    lines = chained_lines([log["A"], log["B"]])
    torn = lines[2][:50] + b"\n"  # the writer stopped mid-record; a newline was added after it
    note = TornNote(
        line=3, offset=len(lines[0]) + len(lines[1]), length=50,
        sha256=hashlib.sha256(lines[2][:50]).hexdigest(), found_at=datetime.now(UTC),
    )  # fmt: skip
    prev = json.loads(lines[1])["hash"]
    note_line = encode_record(
        seq=3, prev=prev, kind="torn", body_json=note.model_dump_json(), key=None
    )
    path = tmp_path / "audit.jsonl"
    path.write_bytes(lines[0] + lines[1] + torn + note_line)
    report = replay(path, store())
    assert report.records_read == 4
    assert report.decisions == 1
    assert [(e.line, e.message.split(" ")[0]) for e in report.errors] == [(3, "not")]


def test_lists_are_bounded_by_keep_and_counts_stay_exact(log: dict[str, Decision]) -> None:
    many = [d.model_copy(update={"id": f"{d.id}-{i}"}) for i in range(3) for d in log.values()]
    report = replay(many, store(STRICTER), keep=2)
    assert report.flipped == 6 and len(report.flips) == 2
    assert report.needs_judgment == 3 and len(report.needs_judgment_ids) == 2
    assert report.truncated is True
    assert report.keep == 2
    assert replay(many, store(STRICTER)).truncated is False
    assert DEFAULT_KEEP == 100_000
    with pytest.raises(ValueError, match="keep"):
        replay(many, store(), keep=-1)


def test_errors_are_bounded_by_keep_too(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"bad\n" * 5)
    report = replay(path, store(), keep=3)
    assert report.error_count == 5 and len(report.errors) == 3 and report.truncated


def test_nothing_in_a_log_makes_replay_open_another_file(
    tmp_path: Path, log: dict[str, Decision], opened: list[Path]
) -> None:
    bait = tmp_path / "bait.jsonl"
    write_bare(bait, log.values())
    (tmp_path / "bait.png").write_bytes(image((1, 1, 1)))
    tricky = log["A"].model_copy(
        update={"context": {"path": str(bait), "image": str(tmp_path / "bait.png")}}
    )
    header = FileHeader(created_at=datetime.now(UTC), continues=str(bait), engine_version="x")
    path = tmp_path / "logs" / "audit.jsonl"
    path.parent.mkdir()
    lines = chained_lines([tricky, log["B"]])
    lines[0] = encode_record(
        seq=1, prev=GENESIS, kind="file", body_json=header.model_dump_json(), key=None
    )
    path.write_bytes(b"".join(lines) + json.dumps({"path": str(bait)}).encode() + b"\n")
    policies = store(STRICTER)
    opened.clear()
    report = replay(path, policies)
    assert report.decisions == 2
    assert set(opened) == {path.resolve()}


def test_decisions_given_as_objects_have_no_file(log: dict[str, Decision]) -> None:
    report = replay(iter(log.values()), store(STRICTER))  # any iterable, read once
    assert report.flipped == 2
    assert {(f.file, f.line) for f in report.flips} == {(None, 2), (None, 6)}
    with pytest.raises(TypeError, match="Decision"):
        replay(log["A"], store())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        replay([1, 2], store())  # type: ignore[list-item]


def test_an_empty_source_is_an_empty_report() -> None:
    report = replay([], store())
    assert (report.records_read, report.decisions, report.replayed) == (0, 0, 0)
    assert report.escalation_rate_before is None


# --------------------------------------------------------------------------- the report


def test_the_report_is_frozen_and_round_trips_through_json(log: dict[str, Decision]) -> None:
    report = replay(list(with_costs(log).values()), store(STRICTER))
    assert ReplayReport.model_validate_json(report.model_dump_json()) == report
    with pytest.raises(ValidationError, match="frozen"):
        report.flipped = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        report.matrix["approved"]["approved"] = 9  # type: ignore[index]
    data = report.to_json()
    json.dumps(data)  # serialisable as it is
    assert data["total"] == 6 and data["flipped"] == 2
    assert {f["id"] for f in data["flips"]} == {log["B"].id, log["F"].id}
    assert all(
        {"tenant", "before", "after", "reasons", "category"} <= f.keys() for f in data["flips"]
    )
    assert data["needs_judgment"] == 1 and data["needs_judgment_ids"] == [log["C"].id]
    assert data["matrix"]["review"]["rejected"] == 1
    assert data["errors"] == []


def test_the_text_report_shows_totals_matrix_flips_and_ids(
    tmp_path: Path, log: dict[str, Decision]
) -> None:
    path = write_bare(tmp_path / "audit.jsonl", log.values(), [b"garbage\n"])
    text = replay(path, store(STRICTER)).render()
    assert "replayed 6 of 6 decisions" in text
    assert "flipped 2" in text and "needs judgment 1" in text and "bad records 1" in text
    assert "before \\ after" in text and "needs_judgment" in text and "not_replayable" in text
    assert f"{log['B'].id}  default  approved -> rejected  [Explicit]" in text
    assert "Explicit Nudity 70.0% >= reject 60" in text
    assert log["C"].id in text  # needs-judgment ids
    assert f"{path}:7: not JSON" in text
    lenient = DEFAULT.replace(
        "Explicit: {reject: 80, escalate: 50}", "Explicit: {reject: 95, escalate: 90}"
    )
    text = replay(list(log.values()), store(lenient)).render()
    assert "was: Explicit Nudity 85.0% >= reject 80" in text


def test_the_text_report_lists_the_first_twenty_flips_by_id(log: dict[str, Decision]) -> None:
    many = [log["B"].model_copy(update={"id": f"id-{i:03d}"}) for i in range(25)]
    text = replay(list(reversed(many)), store(STRICTER)).render()
    assert "first 20 of 25" in text
    assert "id-000" in text and "id-019" in text and "id-020" not in text


# --------------------------------------------------------------------------- shadows


def shadow(
    decision: Decision, policy_id: str, action: Action, outcome: Outcome | None, **kw: object
) -> Decision:
    result = ShadowResult(
        policy=PolicyRef(id=policy_id, chain=(policy_id,), sha256="0" * 64),
        action=action,
        outcome=outcome,
        **kw,  # type: ignore[arg-type]
    )
    return decision.model_copy(update={"shadow": (*decision.shadow, result)})


def test_shadow_replay_compares_live_outcomes_with_recorded_shadows(
    log: dict[str, Decision],
) -> None:
    decisions = [
        shadow(log["A"], "strict", Action.REJECT, Outcome.REJECTED, reasons=("Explicit 85",)),
        shadow(log["B"], "strict", Action.REJECT, Outcome.REJECTED, reasons=("Explicit 70 >= 60",)),
        shadow(log["C"], "strict", Action.ESCALATE, None),  # would escalate: needs judgment
        shadow(
            shadow(log["E"], "strict", Action.REVIEW, Outcome.REVIEW, incomplete=True),
            "lenient",
            Action.APPROVE,
            Outcome.APPROVED,
            reasons=("nothing acts",),
        ),
        shadow(log["F"], "lenient", Action.ESCALATE, Outcome.APPROVED, verdict_reused=True),
        log["D"],  # no shadow
    ]
    reports = replay_shadow(decisions)
    assert sorted(reports) == ["lenient", "strict"]
    strict = reports["strict"]
    assert strict.decisions == 4
    assert flips(strict) == {log["B"].id: ("approved", "rejected")}
    assert strict.flips[0].reasons == ("Explicit 70 >= 60",)
    assert strict.needs_judgment_ids == (log["C"].id,)
    assert strict.incomplete_ids == (log["E"].id,)
    assert strict.matrix["approved"]["needs_judgment"] == 1
    lenient = reports["lenient"]
    assert flips(lenient) == {
        log["E"].id: ("review", "approved"),
        log["F"].id: ("review", "approved"),
    }
    assert lenient.reused == 1
    assert next(f for f in lenient.flips if f.decision_id == log["F"].id).verdict_reused is True
    assert lenient.policies == "shadow policy lenient"
    text = lenient.render()
    assert "nothing acts" in text and "was:" not in text  # the shadow's own reasons, as they are


def test_shadow_replay_reads_logs_filters_tenants_and_reports_bad_records(
    tmp_path: Path, log: dict[str, Decision]
) -> None:
    kids = record([CASES["C"]], policies=store(kids=KIDS), tenant="kids")[0]
    assert kids.outcome is Outcome.APPROVED  # 45: kids escalate from 30, the judge approved
    decisions = [
        shadow(log["B"], "strict", Action.REJECT, Outcome.REJECTED),
        shadow(kids, "strict", Action.REJECT, Outcome.REJECTED),
    ]
    path = write_chained(tmp_path / "audit.jsonl", decisions, [b"broken\n"])
    reports = replay_shadow(path, tenant="kids")
    assert reports["strict"].decisions == 1
    assert flips(reports["strict"]) == {kids.id: ("approved", "rejected")}
    assert [(e.line, e.file) for e in reports["strict"].errors] == [(4, str(path))]
    assert reports["strict"].records_read == 4
    with pytest.raises(ReplayError):
        replay_shadow(path, strict=True)
    assert replay_shadow([log["A"]]) == {}
    # Bad records beyond `keep` mark every shadow report truncated.
    noisy = write_chained(tmp_path / "noisy.jsonl", decisions[:1], [b"one\n", b"two\n"])
    bounded = replay_shadow(noisy, keep=1)["strict"]
    assert (bounded.error_count, len(bounded.errors), bounded.truncated) == (2, 1, True)


def test_the_package_exports_replay() -> None:
    assert moderation.replay is replay
    assert moderation.replay_shadow is replay_shadow
    assert moderation.ReplayReport is ReplayReport
    assert moderation.Flip is Flip
    assert moderation.ReplayError is ReplayError
    for name in ("replay", "replay_shadow", "ReplayReport", "Flip", "ReplayError"):
        assert name in moderation.__all__


@pytest.mark.parametrize(
    ("judge", "on_error", "on_blocked", "before", "after"),
    [
        # A reply the content filter stopped: the policy's on_blocked, then and now.
        (StaticJudge.blocked(), "review", "reject", "rejected", "rejected"),
        (StaticJudge.blocked(), "review", "review", "rejected", "review"),
        # A reply with no usable verdict: the policy's on_error, then and now.
        (StaticJudge.invalid(), "review", "reject", "review", "review"),
        (StaticJudge.invalid(), "reject", "reject", "review", "rejected"),
    ],
)
def test_a_recorded_reply_without_a_verdict_is_reused_under_the_fallback_the_policy_has_now(
    judge: StaticJudge, on_error: str, on_blocked: str, before: str, after: str
) -> None:
    # GIVEN a decision whose judge replied but gave no verdict (on_error review, on_blocked reject)
    [decision] = record([CASES["B"]], judge=judge)
    assert decision.outcome == before and decision.escalation is not None
    # WHEN it is replayed under a policy whose fallbacks are the ones given
    changed = DEFAULT.replace("on_error: review", f"on_error: {on_error}").replace(
        "on_blocked: reject", f"on_blocked: {on_blocked}"
    )
    report = replay([decision], store(changed))
    # THEN the recorded reply is reused, not sent for judgment, and today's fallback decides
    assert report.needs_judgment == 0 and report.reused == 1
    assert flips(report) == ({decision.id: (before, after)} if before != after else {})
