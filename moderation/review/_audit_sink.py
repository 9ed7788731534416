"""The desk's verdicts, skips and appeals as records of the audit log: `AuditRecordSink`.

The desk hands its sink a `ReviewVerdict`, a `Skip` or an `Appeal` (what the desk knows); the
audit log holds a `ReviewRecord` or an `AppealRecord` (what the chain promises to keep). This is
the one place one becomes the other.
"""

from __future__ import annotations

from moderation.errors import ReviewError
from moderation.ports import RecordingAuditLog
from moderation.review._desk import DeskRecord
from moderation.review._model import Appeal, ItemKind, ReviewVerdict, Skip
from moderation.review_records import AppealRecord, ReviewRecord

__all__ = ["APPEAL_FILED_BY", "AuditRecordSink", "audit_record"]

#: Who an appeal record says filed it when the desk's `appeal()` was not told (`by` empty).
APPEAL_FILED_BY = "unknown"


def audit_record(record: DeskRecord) -> ReviewRecord | AppealRecord:
    """The audit log's record of a desk verdict, skip (a `skip` review, never final) or appeal.
    A verdict or skip on a golden item's showing is a `golden` record with its known answer,
    never final."""
    if isinstance(record, ReviewVerdict):
        golden = record.golden_answer
        return ReviewRecord(
            decision_id=record.decision_id,
            item_id=record.item_id,
            reviewer=record.reviewer,
            verdict=record.verdict.value,
            note=record.note,
            categories=record.categories,
            final=record.final and golden is None,  # a golden verdict settles nothing
            at=record.at,
            item_kind="golden" if golden is not None else record.kind.value,
            qa_rate=record.qa_rate if record.kind is ItemKind.QA and golden is None else None,
            golden_answer=None if golden is None else golden.value,
        )
    if isinstance(record, Skip):
        golden = record.golden_answer
        return ReviewRecord(
            decision_id=record.decision_id,
            item_id=record.item_id,
            reviewer=record.reviewer,
            verdict="skip",
            at=record.at,
            item_kind="golden" if golden is not None else record.kind.value,
            golden_answer=None if golden is None else golden.value,
        )
    if isinstance(record, Appeal):
        return AppealRecord(
            decision_id=record.decision_id,
            item_id=record.item_id,
            reason=record.reason,
            at=record.at,
            by=record.by or APPEAL_FILED_BY,
        )
    raise ReviewError(
        f"a desk record is a ReviewVerdict, a Skip or an Appeal, not {type(record).__name__}"
    )


class AuditRecordSink:
    """A desk's record sink that appends each verdict, skip and appeal to `log`, in the same
    chain as the decisions (`log.append_record`). A failure to append raises, so the desk keeps
    nothing the log lacks."""

    def __init__(self, log: RecordingAuditLog) -> None:
        if not callable(getattr(log, "append_record", None)):
            raise ReviewError(
                f"the audit log {type(log).__name__} cannot record review verdicts "
                "(it has no append_record)"
            )
        self.log = log

    def append_review(self, record: DeskRecord) -> None:
        """Append `record` to the audit log as a review or appeal record."""
        self.log.append_record(audit_record(record))

    def __repr__(self) -> str:
        return f"AuditRecordSink({self.log!r})"
