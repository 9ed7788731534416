"""Audit logs: where every decision goes before `moderate()` returns it, and how to read them back.

docs/audit.md documents the file format (hash-chained JSON lines) and its guarantees.
"""

from moderation.audit._format import (
    GENESIS,
    AuditRecord,
    FileHeader,
    RecordError,
    TornNote,
    encode_record,
    parse_line,
)
from moderation.audit._read import LogEntry, decisions, log_files, read_log
from moderation.audit._sinks import (
    InMemoryAuditLog,
    JsonlAuditLog,
    LoggingAuditLog,
    StreamAuditLog,
    audit_log_from_spec,
)

__all__ = [
    "GENESIS",
    "AuditRecord",
    "FileHeader",
    "InMemoryAuditLog",
    "JsonlAuditLog",
    "LogEntry",
    "LoggingAuditLog",
    "RecordError",
    "StreamAuditLog",
    "TornNote",
    "audit_log_from_spec",
    "decisions",
    "encode_record",
    "log_files",
    "parse_line",
    "read_log",
]
