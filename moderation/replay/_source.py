"""Where replay reads decisions from: named logs (with their rotated predecessors) or objects."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from moderation.audit import log_files, read_log
from moderation.audit._s3read import is_s3
from moderation.decision import Decision

__all__ = ["Item", "Source", "items"]

#: A log path, several log paths, or decisions themselves.
Source = str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | Iterable[Decision]


@dataclass(frozen=True, slots=True)
class Item:
    """One record: a decision, a bad record (`error` set), or neither (a chained log's file
    header or torn-record note, which replay skips)."""

    file: str | None
    line: int
    decision: Decision | None = None
    error: str | None = None


def items(source: Source) -> Iterator[Item]:
    """The records of `source`, in order, streaming.

    A path is read with its rotated predecessors (`moderation.audit.read_log`); every named path
    is checked before anything is read, so a missing log fails at once (FileNotFoundError) rather
    than after the others were replayed. Only the named files and their predecessors are opened:
    nothing in a record names a file replay would read.
    """
    if isinstance(source, str | os.PathLike):
        return _from_logs([source])
    if isinstance(source, Decision | bytes):
        raise TypeError(
            f"replay takes a log path, several paths or decisions, not one {type(source).__name__}"
            " (pass [decision])"
        )
    iterator = iter(source)
    first = next(iterator, None)
    if first is None:
        return iter(())
    rest = itertools.chain([first], iterator)
    if isinstance(first, Decision):
        return _from_decisions(rest)
    if isinstance(first, str | os.PathLike):
        return _from_logs(list(rest))
    raise TypeError(f"replay takes log paths or Decision objects, not {type(first).__name__} items")


def _from_logs(paths: list[object]) -> Iterator[Item]:
    files: list[Path | str] = []
    for path in paths:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"a log path is text or os.PathLike, not {type(path).__name__}")
        if is_s3(path):  # an S3 trail (`s3://bucket/prefix`): read_log lists it
            files.append(str(path))
        else:
            files.extend(log_files(path))
    return _read(files)


def _read(files: list[Path | str]) -> Iterator[Item]:
    for entry in read_log(files, predecessors=False):
        file = entry.uri or str(entry.file)
        if entry.error is not None:
            yield Item(file, entry.line, error=entry.error)
        else:
            yield Item(file, entry.line, decision=entry.decision)


def _from_decisions(decisions: Iterable[object]) -> Iterator[Item]:
    for line, decision in enumerate(decisions, start=1):
        if not isinstance(decision, Decision):
            raise TypeError(
                f"item {line} of the decisions is a {type(decision).__name__}, not a Decision"
            )
        yield Item(None, line, decision=decision)
