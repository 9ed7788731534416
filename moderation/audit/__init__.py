"""Audit logs: where every decision goes before `moderate()` returns it, and how to read them back.

docs/audit.md documents the file format (hash-chained JSON lines) and its guarantees, and the S3
trail's digests (`write_digest`, `verify_s3`).
"""

from typing import TYPE_CHECKING, Any

from moderation._lazy import by_name, load

if TYPE_CHECKING:
    from moderation.audit._digest import DigestError, DigestRun, write_digest
    from moderation.audit._format import (
        GENESIS,
        AuditRecord,
        Entry,
        FileHeader,
        RecordError,
        TornNote,
        encode_record,
        parse_line,
    )
    from moderation.audit._jsonl import JsonlAuditLog
    from moderation.audit._labels import golden_verdicts, history, history_of, labels
    from moderation.audit._read import LogEntry, decisions, log_files, read_log, records
    from moderation.audit._s3 import S3AuditError, S3AuditLog
    from moderation.audit._s3read import S3Store
    from moderation.audit._s3verify import Finding, S3VerifyReport, verify_s3
    from moderation.audit._sinks import (
        AuditSink,
        InMemoryAuditLog,
        LoggingAuditLog,
        StreamAuditLog,
        audit_log_from_spec,
    )
    from moderation.audit._verify import (
        Head,
        Ignored,
        VerifiedRecords,
        VerifyReport,
        parse_head,
        verify_log,
    )

_MODULES: dict[str, tuple[str, ...]] = {
    "moderation.audit._digest": (
        "DigestError",
        "DigestRun",
        "write_digest",
    ),
    "moderation.audit._format": (
        "GENESIS",
        "AuditRecord",
        "Entry",
        "FileHeader",
        "RecordError",
        "TornNote",
        "encode_record",
        "parse_line",
    ),
    "moderation.audit._jsonl": ("JsonlAuditLog",),
    "moderation.audit._labels": (
        "golden_verdicts",
        "history",
        "history_of",
        "labels",
    ),
    "moderation.audit._read": (
        "LogEntry",
        "decisions",
        "log_files",
        "read_log",
        "records",
    ),
    "moderation.audit._s3": (
        "S3AuditError",
        "S3AuditLog",
    ),
    "moderation.audit._s3read": ("S3Store",),
    "moderation.audit._s3verify": (
        "Finding",
        "S3VerifyReport",
        "verify_s3",
    ),
    "moderation.audit._sinks": (
        "AuditSink",
        "InMemoryAuditLog",
        "LoggingAuditLog",
        "StreamAuditLog",
        "audit_log_from_spec",
    ),
    "moderation.audit._verify": (
        "Head",
        "Ignored",
        "VerifiedRecords",
        "VerifyReport",
        "parse_head",
        "verify_log",
    ),
}
_LAZY = by_name(_MODULES)

__all__ = [
    "GENESIS",
    "AuditRecord",
    "AuditSink",
    "DigestError",
    "DigestRun",
    "Entry",
    "FileHeader",
    "Finding",
    "Head",
    "Ignored",
    "InMemoryAuditLog",
    "JsonlAuditLog",
    "LogEntry",
    "LoggingAuditLog",
    "RecordError",
    "S3AuditError",
    "S3AuditLog",
    "S3Store",
    "S3VerifyReport",
    "StreamAuditLog",
    "TornNote",
    "VerifiedRecords",
    "VerifyReport",
    "audit_log_from_spec",
    "audit_record_schema",
    "decisions",
    "encode_record",
    "golden_verdicts",
    "history",
    "history_of",
    "labels",
    "log_files",
    "parse_head",
    "parse_line",
    "read_log",
    "records",
    "verify_log",
    "verify_s3",
    "write_digest",
]


def __getattr__(name: str) -> Any:
    return load(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def audit_record_schema() -> dict[str, Any]:
    """The JSON Schema of one chained audit record (docs/audit-record.schema.json is this)."""
    from moderation.audit._format import AuditRecord

    return AuditRecord.model_json_schema()
