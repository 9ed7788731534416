"""Review and appeal records: their format, the audit chain holding them, the final outcome."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clirunner import runner
from pydantic import ValidationError
from test_audit_log import make_decision

from moderation.audit import (
    GENESIS,
    AuditRecord,
    InMemoryAuditLog,
    JsonlAuditLog,
    S3AuditLog,
    StreamAuditLog,
    VerifiedRecords,
    encode_record,
    history,
    labels,
    parse_line,
    read_log,
    records,
    verify_log,
)
from moderation.audit._format import not_a_crash
from moderation.cli import main
from moderation.cli._resume import ResumeIndex
from moderation.decision import Decision, Outcome
from moderation.replay import replay
from moderation.review._records import (
    AppealRecord,
    DecisionHistory,
    ReviewRecord,
    final_outcome,
)

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2025, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODERATION_AUDIT_KEY", raising=False)


def review(decision_id: str, verdict: str, *, minutes: int = 0, **fields: Any) -> ReviewRecord:
    data: dict[str, Any] = {
        "decision_id": decision_id,
        "item_id": f"item-{decision_id}",
        "reviewer": "alice",
        "verdict": verdict,
        "at": T0 + timedelta(minutes=minutes),
        **fields,
    }
    return ReviewRecord.model_validate(data)


def appeal(decision_id: str, *, minutes: int = 0) -> AppealRecord:
    return AppealRecord(
        decision_id=decision_id,
        item_id=f"appeal-{decision_id}",
        reason="it is a cartoon",
        at=T0 + timedelta(minutes=minutes),
        by="user-9",
    )


def mixed_log(path: Path, key: str | None = None) -> list[Decision | ReviewRecord | AppealRecord]:
    """Three decisions; the second reviewed twice (a final reject), then appealed."""
    d0, d1, d2 = (make_decision(n) for n in range(3))
    written: list[Decision | ReviewRecord | AppealRecord] = [
        d0,
        d1,
        review(d1.id, "skip", reviewer="bob"),
        review(d1.id, "reject", minutes=1, note="blood", categories=("Violence",), final=True),
        d2,
        appeal(d1.id, minutes=2),
    ]
    log = JsonlAuditLog(path, key=key, fsync=False)
    for record in written:
        log.append_record(record)
    return written


# -- the records --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        review("d1", "reject", note='ü "quoted"\n', categories=("Violence", "Gore"), final=True),
        review("d1", "skip"),
        appeal("d1"),
    ],
)
def test_a_record_round_trips_through_json_exactly(record: ReviewRecord | AppealRecord):
    text = record.model_dump_json()
    assert type(record).model_validate_json(text) == record
    assert type(record).model_validate_json(text).model_dump_json() == text
    assert text.startswith(f'{{"kind":"{record.kind}","schema_version":1,')


@pytest.mark.parametrize(
    ("fields", "wrong"),
    [
        ({"verdict": "maybe"}, "verdict"),
        ({"verdict": "skip", "final": True}, "a skip puts the item back"),
        ({"reviewer": ""}, "reviewer"),
        ({"decision_id": "d\n1"}, "decision_id"),
        ({"at": datetime(2025, 3, 2, 9, 0)}, "at"),  # naive: no time zone
        ({"extra": 1}, "extra"),
    ],
)
def test_a_bad_review_record_is_refused_naming_what_is_wrong(fields: dict[str, Any], wrong: str):
    with pytest.raises(ValidationError, match=wrong):
        review(**{"decision_id": "d1", "verdict": "approve", **fields})


def test_records_are_frozen():
    with pytest.raises(ValidationError):
        review("d1", "approve").verdict = "reject"  # type: ignore[misc]


# -- the chain ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "s3cret"])
def test_a_log_mixing_decisions_reviews_and_appeals_verifies(tmp_path: Path, key: str | None):
    path = tmp_path / "audit.jsonl"
    written = mixed_log(path, key)
    report = verify_log(path, key=key)
    assert report.ok, report.failure
    assert (report.records, report.decisions, report.reviews, report.appeals) == (7, 3, 2, 1)
    assert "(3 decisions, 2 reviews, 1 appeal, " in report.summary()
    # AND the records are chained as decisions are: one seq after another, each under the key
    chained = [e.parsed for e in read_log(path) if isinstance(e.parsed, AuditRecord)]
    assert [r.kind for r in chained] == [
        "file", "decision", "decision", "review", "review", "decision", "appeal",
    ]  # fmt: skip
    assert [r.seq for r in chained] == list(range(1, 8))
    assert {r.alg for r in chained} == {"hmac-sha256" if key else "sha256"}
    assert [r.entry for r in chained[1:]] == written
    assert list(records(path)) == written


@pytest.mark.parametrize("key", [None, "s3cret"])
def test_an_edited_review_record_fails_verify_at_its_line(tmp_path: Path, key: str | None):
    path = tmp_path / "audit.jsonl"
    mixed_log(path, key)
    lines = path.read_bytes().splitlines(keepends=True)
    assert b'"kind":"review"' in lines[4] and b'"verdict":"reject"' in lines[4]
    lines[4] = lines[4].replace(b'"verdict":"reject"', b'"verdict":"approve"')
    path.write_bytes(b"".join(lines))
    report = verify_log(path, key=key)
    assert not report.ok
    assert report.failure_line == 5
    assert report.failure is not None and "hash mismatch" in report.failure


def test_a_deleted_appeal_record_fails_verify(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    mixed_log(path)
    JsonlAuditLog(path, fsync=False).append(make_decision(9))
    lines = path.read_bytes().splitlines(keepends=True)
    del lines[6]  # the appeal
    path.write_bytes(b"".join(lines))
    report = verify_log(path)
    assert report.failure is not None and "1 record is missing" in report.failure


def test_a_bare_review_line_in_a_chained_log_fails_verify_and_is_ignored_by_readers(
    tmp_path: Path,
):
    path = tmp_path / "audit.jsonl"
    mixed_log(path)
    with path.open("ab") as fh:
        fh.write(review("d000000", "approve", final=True).model_dump_json().encode() + b"\n")
    report = verify_log(path)
    assert report.failure == "line 8: a bare review line, not a chained record (inserted, or " \
        "written by a sink that does not chain)"  # fmt: skip
    verified = VerifiedRecords(path)
    assert [r.kind for _, r in verified][-1] == "appeal"
    assert verified.ignored_count == 1
    assert verified.ignored[0].problem == "line 8: a bare review line, not a record"


def test_the_stream_and_memory_sinks_keep_review_records_readable(tmp_path: Path):
    decision = make_decision(0)
    written = [decision, review(decision.id, "approve", final=True), appeal(decision.id)]
    stream = io.StringIO()
    sink, memory = StreamAuditLog(stream), InMemoryAuditLog()
    for record in written:
        sink.append_record(record)
        memory.append_record(record)
    assert [parse_line(line.encode()) for line in stream.getvalue().splitlines()] == written
    assert memory.records == written and memory.decisions == [decision]
    path = tmp_path / "stdout.log"
    path.write_text(stream.getvalue())
    assert list(records(path)) == written


# -- readers that act on decisions skip the records ---------------------------------------------


@pytest.mark.parametrize("key", [None, "s3cret"])
def test_resume_indexes_the_decisions_and_counts_no_review_record_as_ignored(
    tmp_path: Path, key: str | None
):
    path = tmp_path / "audit.jsonl"
    written = mixed_log(path, key)
    first = written[0]
    assert isinstance(first, Decision)
    index = ResumeIndex.load(
        str(path), tenant=first.tenant, policy_sha256=first.policy.sha256, key=key
    )
    assert index.records == 3
    assert index.ignored_count == 0


def test_replay_reads_the_decisions_and_counts_no_bad_record(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    mixed_log(path)
    report = replay(path, ROOT / "policies")
    assert report.decisions == 3
    assert report.error_count == 0
    assert report.flipped == 0


# -- history, labels and the final outcome ------------------------------------------------------


def test_history_gathers_a_decisions_reviews_and_appeals(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    written = mixed_log(path)
    found = history("d000001", path)
    assert found is not None
    assert found.decision == written[1]
    assert found.reviews == (written[2], written[3])
    assert found.appeals == (written[5],)
    assert found.final == written[3]
    assert found.outcome is Outcome.REJECTED
    assert found.appealed_after_final
    assert history("d000000", path) == DecisionHistory(make_decision(0))
    assert history("nope", path) is None


def test_labels_are_the_reviewed_or_appealed_decisions_with_their_final_outcome(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    mixed_log(path)
    JsonlAuditLog(path, fsync=False).append_record(review("d000002", "approve", final=True))
    JsonlAuditLog(path, fsync=False).append_record(review("elsewhere", "approve", final=True))
    found = [(h.decision.id, h.outcome, h.final is not None) for h in labels([path])]
    assert found == [("d000001", Outcome.REJECTED, True), ("d000002", Outcome.APPROVED, True)]


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ([], Outcome.APPROVED),  # no person: the machine's outcome
        ([("reject", False)], Outcome.APPROVED),  # a first verdict awaiting consensus
        ([("reject", True)], Outcome.REJECTED),
        ([("reject", True), ("skip", False)], Outcome.REJECTED),
        ([("reject", True), ("approve", False)], Outcome.REJECTED),  # not final: no change
        ([("reject", True), ("approve", True)], Outcome.APPROVED),  # an appeal overturned it
        ([("approve", True), ("reject", True), ("approve", True)], Outcome.APPROVED),
    ],
)
def test_the_final_outcome_follows_the_latest_final_verdict(
    verdicts: list[tuple[str, bool]], expected: Outcome
):
    decision = make_decision(0)
    assert decision.outcome is Outcome.APPROVED
    reviews = [review(decision.id, v, minutes=n, final=f) for n, (v, f) in enumerate(verdicts)]
    assert final_outcome(decision, reviews) is expected
    assert DecisionHistory(decision, tuple(reviews)).outcome is expected


# -- moderation audit show ----------------------------------------------------------------------


def test_audit_show_prints_a_reviewed_decision_with_its_records_and_final_outcome(
    tmp_path: Path,
):
    path = tmp_path / "audit.jsonl"
    mixed_log(path)
    result = runner().invoke(main, ["audit", "show", "d000001", str(path)])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert out.startswith("decision d000001\n")
    tail = out[out.index("review records:") :]
    assert tail == (
        "review records:\n"
        "  - 2025-03-02T09:00:00+00:00 review by bob (item item-d000001): skip\n"
        "  - 2025-03-02T09:01:00+00:00 review by alice (item item-d000001): reject (final); "
        "categories: Violence; note: blood\n"
        "  - 2025-03-02T09:02:00+00:00 appeal by user-9 (item appeal-d000001): it is a cartoon\n"
        "final outcome: rejected (final verdict by alice at 2025-03-02T09:01:00+00:00)\n"
        "  appealed since: the outcome may change when the appeal is decided\n"
    )
    plain = runner().invoke(main, ["audit", "show", "d000000", str(path)])
    assert plain.stdout.endswith("final outcome: approved (the machine's: no final verdict)\n")
    assert json.loads(runner().invoke(main, ["audit", "show", "d000001", str(path), "--json"])
                      .stdout)["id"] == "d000001"  # fmt: skip


def test_the_audit_record_schema_holds_review_and_appeal_bodies():
    committed = json.loads((ROOT / "docs/audit-record.schema.json").read_text())
    assert set(committed["properties"]["kind"]["enum"]) == {
        "decision", "review", "appeal", "file", "torn",
    }  # fmt: skip
    assert {"ReviewRecord", "AppealRecord"} <= set(committed["$defs"])


# -- the S3 sink --------------------------------------------------------------------------------


def test_the_s3_sink_stores_each_record_once_under_its_day_with_the_decisions_others(
    s3: Any,
):
    sink = S3AuditLog("uploads", "audit", client=s3)
    decision = make_decision(1)
    written: list[ReviewRecord | AppealRecord] = [
        review(decision.id, "skip"),
        review(decision.id, "reject", minutes=1, final=True),
        appeal(decision.id, minutes=2),
    ]
    sink.append(decision)
    for record in written:
        sink.append_record(record)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="uploads", Prefix="audit/reviews/")[
        "Contents"
    ]]  # fmt: skip
    assert keys == [sink.key_for_record(r) for r in written]
    assert keys[0].startswith("audit/reviews/2025/03/02/d000001/20250302T090000.000000Z-review-")
    assert keys[2].startswith("audit/reviews/2025/03/02/d000001/20250302T090200.000000Z-appeal-")
    bodies = [s3.get_object(Bucket="uploads", Key=k)["Body"].read() for k in keys]
    assert [parse_line(b) for b in bodies] == written
    with pytest.raises(ValueError, match="cannot be part of an S3 key"):
        sink.key_for_record(review("../d1", "approve"))


def test_replay_exposes_the_labels():
    from moderation.replay import labels as replay_labels

    assert replay_labels is labels


# -- crashes and hidden records -----------------------------------------------------------------


def test_a_torn_review_record_is_set_aside_by_the_next_writer(tmp_path: Path):
    # GIVEN a log whose writer was killed while writing a review record
    path = tmp_path / "audit.jsonl"
    mixed_log(path)
    other = tmp_path / "other.jsonl"
    mixed_log(other)
    JsonlAuditLog(other, fsync=False).append_record(review("d000002", "approve", final=True))
    torn = other.read_bytes().splitlines(keepends=True)[-1][:90]
    with path.open("ab") as fh:
        fh.write(torn)
    assert verify_log(path).crash_tail
    # WHEN the desk appends its next verdict
    JsonlAuditLog(path, fsync=False).append_record(review("d000002", "approve", final=True))
    # THEN the torn bytes are set aside and the chain verifies, with a warning
    report = verify_log(path)
    assert report.ok, report.failure
    assert report.reviews == 3 and len(report.warnings) == 1


def test_two_review_record_starts_on_one_line_are_not_a_crash():
    # A crash leaves a prefix of one line; two records starting on one line were joined by hand.
    first, second = (
        encode_record(seq=n, prev=GENESIS, kind="review", body_json=r.model_dump_json(), key=None)
        for n, r in ((5, review("d1", "reject")), (6, review("d1", "approve")))
    )
    joined = first[:180] + second[:180]
    assert not_a_crash(joined) == "2 records starting on one line (the second at byte 180 of them)"
    assert not_a_crash(first[:180]) is None


def test_labels_and_history_with_the_key_read_only_records_that_verify(tmp_path: Path):
    # GIVEN a keyed log, and a final verdict forged onto its end by someone without the key
    path = tmp_path / "audit.jsonl"
    mixed_log(path, "s3cret")
    last = [e.parsed for e in read_log(path) if isinstance(e.parsed, AuditRecord)][-1]
    forged = review("d000002", "reject", final=True, reviewer="mallory")
    with path.open("ab") as fh:
        fh.write(
            encode_record(
                seq=last.seq + 1,
                prev=last.hash,
                kind="review",
                body_json=forged.model_dump_json(),
                key=b"guessed",
            )
        )
    # THEN read without the key, the forged verdict is a label
    assert [h.decision.id for h in labels(path)] == ["d000001", "d000002"]
    # AND read with the key, it is not, and the genuine labels remain
    assert [h.decision.id for h in labels(path, key="s3cret")] == ["d000001"]
    kept = history("d000002", path, key="s3cret")
    assert kept is not None and kept.reviews == () and kept.outcome is Outcome.APPROVED
    assert history("d000001", path, key="s3cret") == history("d000001", path)
