"""Structured log lines: one JSON object per line on stdout, like the audit records and metrics.

The handler logs on the `moderation.aws_lambda` logger. At cold start, unless that logger already
has a handler (configure it before the first invocation to send its lines elsewhere), it gets one
that writes JSON lines to whatever `sys.stdout` is at the time (CloudWatch Logs in Lambda), at
INFO, without propagating to the root logger (whose Lambda handler would print them again).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

__all__ = ["LOGGER_NAME", "install", "log"]

LOGGER_NAME = "moderation.aws_lambda"
_logger = logging.getLogger(LOGGER_NAME)
_FIELDS = "moderation_fields"


class JsonLines(logging.Handler):
    """Writes each record as one JSON object: level, time, logger, message and its fields."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line: dict[str, Any] = {
                "level": record.levelname,
                "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                    timespec="milliseconds"
                ),
                "logger": record.name,
                "message": record.getMessage(),
            }
            line.update(getattr(record, _FIELDS, None) or {})
            if record.exc_info and record.exc_info[1] is not None:
                line["exception"] = self.format_exception(record)
            stream = sys.stdout
            stream.write(json.dumps(line, default=str, ensure_ascii=False) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)

    @staticmethod
    def format_exception(record: logging.LogRecord) -> str:
        """The record's traceback as text."""
        return logging.Formatter().formatException(record.exc_info)  # type: ignore[arg-type]


def install() -> None:
    """Give the logger its JSON-lines handler, unless it already has one."""
    if not _logger.handlers:
        _logger.addHandler(JsonLines())
        _logger.setLevel(logging.INFO)
        _logger.propagate = False


def log(level: int, message: str, *, exc_info: bool = False, **fields: Any) -> None:
    """Log `message` with `fields` as keys of the JSON line (None values left out)."""
    clean = {k: v for k, v in fields.items() if v is not None}
    _logger.log(level, message, extra={_FIELDS: clean}, exc_info=exc_info)
