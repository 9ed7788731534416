"""Audit logs: where every decision goes before `moderate()` returns it, and how to read them back.

docs/audit.md documents the file format (hash-chained JSON lines) and its guarantees, and the S3
trail's digests (`write_digest`, `verify_s3`).
"""

from typing import Any

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
from moderation.audit._labels import golden_verdicts, history, labels
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


def audit_record_schema() -> dict[str, Any]:
    """The JSON Schema of one chained audit record (docs/audit-record.schema.json is this)."""
    return AuditRecord.model_json_schema()
