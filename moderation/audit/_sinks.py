"""Audit logs: where every decision goes before `moderate()` returns it."""

from __future__ import annotations

import logging
import sys
import threading
from typing import TYPE_CHECKING, TextIO, TypeAlias

from moderation.audit._format import Entry
from moderation.decision import Decision
from moderation.errors import ConfigurationError, InvalidS3Location
from moderation.s3location import SCHEME, S3Prefix

__all__ = [
    "AuditSink",
    "InMemoryAuditLog",
    "LoggingAuditLog",
    "StreamAuditLog",
    "audit_log_from_spec",
]


class StreamAuditLog:
    """Writes each decision as one JSON line to a text stream: the default sink is stdout.

    Stdout is what Lambda (CloudWatch Logs), containers and process managers collect without any
    configuration, so no decision is dropped by default. With `stream=None` the line goes to
    whatever `sys.stdout` is at the time of writing (a test's capture, a redirected stdout).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def append(self, decision: Decision) -> None:
        """Write and flush one line; raises if the stream cannot take it."""
        self.append_record(decision)

    def append_record(self, record: Entry) -> None:
        """Write and flush one bare JSON line (a review or appeal record starts with its
        `kind`); raises if the stream cannot take it."""
        stream = self.stream if self.stream is not None else sys.stdout
        if stream is None:  # pythonw, or a daemon that closed stdout
            raise OSError("there is no stdout to write the audit record to")
        with self._lock:
            stream.write(record.model_dump_json() + "\n")
            stream.flush()


def _would_emit(logger: logging.Logger, level: int) -> bool:
    """True when a record at `level` on `logger` reaches at least one real handler.

    The same walk `Logger.callHandlers` makes; logging's last-resort handler does not count: it
    prints warnings and above only, so INFO records with no handler configured simply vanish.
    """
    if not logger.isEnabledFor(level):
        return False
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if not isinstance(handler, logging.NullHandler) and handler.level <= level:
                return True
        if not current.propagate:
            return False
        current = current.parent
    return False


class LoggingAuditLog:
    """Emits each decision as JSON at INFO on a logger (`moderation.audit` by default).

    Python drops INFO records when logging is not configured (a plain script, uvicorn's default),
    and an audit record that is dropped is lost. So this sink refuses to be built, and refuses each
    write, unless the record would reach a handler: configure logging first (e.g.
    `logging.basicConfig(level=logging.INFO)`), or use the stdout or file sinks.
    """

    LEVEL = logging.INFO

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("moderation.audit")
        if not _would_emit(self.logger, self.LEVEL):
            raise ConfigurationError([self._unheard()])

    def _unheard(self) -> str:
        return (
            f"MODERATION_AUDIT=log: the {self.logger.name!r} logger would drop INFO records (no "
            "handler at INFO, or its level is above INFO); configure logging before the engine "
            "is built, or use MODERATION_AUDIT=stdout or a file path"
        )

    def append(self, decision: Decision) -> None:
        """Log one decision; raises if logging was reconfigured so that it would be dropped."""
        self.append_record(decision)

    def append_record(self, record: Entry) -> None:
        """Log one decision, review or appeal record as JSON; raises as `append` does."""
        if not _would_emit(self.logger, self.LEVEL):
            raise RuntimeError(self._unheard())
        self.logger.log(self.LEVEL, "%s", record.model_dump_json())


class InMemoryAuditLog:
    """Keeps decisions in a list (`decisions`), and every record, reviews and appeals too, in
    order (`records`): for tests and replays."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self.records: list[Entry] = []
        self._lock = threading.Lock()

    def append(self, decision: Decision) -> None:
        """Keep one decision."""
        self.append_record(decision)

    def append_record(self, record: Entry) -> None:
        """Keep one decision, review or appeal record."""
        with self._lock:
            self.records.append(record)
            if isinstance(record, Decision):
                self.decisions.append(record)


if TYPE_CHECKING:  # both are imported when a spec names them: a stdout sink loads neither
    from moderation.audit._jsonl import JsonlAuditLog
    from moderation.audit._s3 import S3AuditLog

AuditSink: TypeAlias = "JsonlAuditLog | S3AuditLog | StreamAuditLog | LoggingAuditLog"


def audit_log_from_spec(
    spec: str,
    *,
    key: str | bytes | None = None,
    rotate_bytes: int | None = None,
    region: str | None = None,
) -> AuditSink:
    """The sink `spec` names: `stdout`, `stderr`, `log` (the `moderation.audit` logger),
    `s3://bucket/prefix` (one object per decision), or a file path (a hash-chained JSON lines log).

    `key` and `rotate_bytes` are the file log's (MODERATION_AUDIT_KEY,
    MODERATION_AUDIT_ROTATE_BYTES) and are ignored by the other sinks, which have no chain and no
    files; `region` is the S3 sink's.
    """
    if spec == "log":
        return LoggingAuditLog()
    if spec in ("stdout", "-"):
        return StreamAuditLog()
    if spec == "stderr":
        return StreamAuditLog(sys.stderr)
    if not spec.strip():
        raise ValueError(
            "audit destination is empty; use log, stdout, stderr, s3://bucket/prefix or a file path"
        )
    if spec.startswith(SCHEME):
        try:
            where = S3Prefix.parse(spec)
        except InvalidS3Location as exc:
            raise ConfigurationError([f"audit destination: {exc}"]) from None
        from moderation.audit._s3 import S3AuditLog

        return S3AuditLog(where.bucket, where.prefix, region=region)
    from moderation.audit._jsonl import JsonlAuditLog

    return JsonlAuditLog(spec, key=key, rotate_bytes=rotate_bytes)
