"""Where the audit commands read records from: a log file, or an S3 trail (`s3://bucket/prefix`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from moderation.audit._s3read import is_s3
from moderation.errors import InvalidS3Location
from moderation.s3location import S3Prefix

__all__ = ["LOG_SOURCE", "LogSource", "Source"]

#: A log path, or an `s3://bucket/prefix` string (a Path would fold its `//`).
Source = Path | str

if TYPE_CHECKING:
    _ParamType = click.ParamType[Source]  # generic in the click the type checker reads
else:
    _ParamType = click.ParamType  # not subscriptable in click 8.0


class LogSource(_ParamType):
    """A log file's path (a Path), or an S3 trail `s3://bucket/prefix` (kept as the string)."""

    name = "path"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Source:
        if isinstance(value, Path):
            return value
        text = str(value)
        if not is_s3(text):
            return Path(text)
        try:
            S3Prefix.parse(text)
        except InvalidS3Location as exc:
            self.fail(str(exc), param, ctx)
        return text


LOG_SOURCE = LogSource()
