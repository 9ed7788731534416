"""Audit logs: where every decision goes before `moderate()` returns it."""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import TextIO

from moderation.decision import Decision

__all__ = [
    "InMemoryAuditLog",
    "JsonlAuditLog",
    "LoggingAuditLog",
    "StreamAuditLog",
    "audit_log_from_spec",
]


class JsonlAuditLog:
    """Appends each decision as one JSON line to a file, flushed (and fsynced) before returning."""

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._lock = threading.Lock()

    def append(self, decision: Decision) -> None:
        """Write one line; raises OSError if it could not be stored."""
        line = decision.model_dump_json() + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            if self.fsync:
                os.fsync(fh.fileno())


class StreamAuditLog:
    """Writes each decision as one JSON line to a text stream (stdout for Lambda/CloudWatch)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def append(self, decision: Decision) -> None:
        """Write and flush one line."""
        with self._lock:
            self.stream.write(decision.model_dump_json() + "\n")
            self.stream.flush()


class LoggingAuditLog:
    """Emits each decision as JSON at INFO on the `moderation.audit` logger: the default sink."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("moderation.audit")

    def append(self, decision: Decision) -> None:
        """Log one decision."""
        self.logger.info("%s", decision.model_dump_json())


class InMemoryAuditLog:
    """Keeps decisions in a list: for tests and replays."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self._lock = threading.Lock()

    def append(self, decision: Decision) -> None:
        """Keep one decision."""
        with self._lock:
            self.decisions.append(decision)


def audit_log_from_spec(spec: str) -> JsonlAuditLog | StreamAuditLog | LoggingAuditLog:
    """`log` (the `moderation.audit` logger), `stdout`, `stderr`, or a file path for JSON lines."""
    if spec == "log":
        return LoggingAuditLog()
    if spec in ("stdout", "-"):
        return StreamAuditLog(sys.stdout)
    if spec == "stderr":
        return StreamAuditLog(sys.stderr)
    if not spec.strip():
        raise ValueError("audit destination is empty; use log, stdout, stderr or a file path")
    return JsonlAuditLog(spec)
