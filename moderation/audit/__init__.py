"""Audit logs: where every decision goes before `moderate()` returns it."""

from moderation.audit._sinks import (
    InMemoryAuditLog,
    JsonlAuditLog,
    LoggingAuditLog,
    StreamAuditLog,
    audit_log_from_spec,
)

__all__ = [
    "InMemoryAuditLog",
    "JsonlAuditLog",
    "LoggingAuditLog",
    "StreamAuditLog",
    "audit_log_from_spec",
]
