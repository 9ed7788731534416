"""Where replay reads decisions from: named logs (with their rotated predecessors) or objects."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from moderation.audit import log_files, read_log
from moderation.audit._format import exact_decision
from moderation.audit._read import READ_BUFFER, entry_of
from moderation.audit._s3read import is_s3
from moderation.decision import Decision

__all__ = ["Item", "Source", "items"]

#: A log path, several log paths, or decisions themselves.
Source = str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | Iterable[Decision]


#: One record: (file, line, decision, error): a decision, a bad record (`error` set), or neither
#: (a chained log's file header or torn-record note, which replay skips). A plain tuple, the
#: cheapest to make: one is made per record (a frozen dataclass took 0.9 µs).
Item = tuple[str | None, int, Decision | None, str | None]


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


def _read(files: Sequence[Path | str]) -> Iterator[Item]:
    """Each record of `files` as an Item, each file once."""
    seen: set[Path] = set()
    for file in files:
        if not isinstance(file, Path):  # not a local file: read_log reads it
            for entry in read_log([file], predecessors=False):
                yield (entry.uri or str(entry.file), entry.line, entry.decision, entry.error)
        elif file.resolve() not in seen:
            seen.add(file.resolve())
            yield from _lines(file)


def _lines(file: Path) -> Iterator[Item]:
    """Each line of `file` as an Item: a decision record in the writer's exact form is read
    straight into its Decision; any other line is parsed whole, as `read_log` parses it."""
    name = str(file)
    with file.open("rb", buffering=READ_BUFFER) as fh:
        offset = 0
        for number, raw in enumerate(fh, start=1):
            decision = exact_decision(raw)
            if decision is not None:
                yield (name, number, decision, None)
            else:
                entry = entry_of(file, number, offset, raw)
                yield (name, number, entry.decision, entry.error)
            offset += len(raw)


def _from_decisions(decisions: Iterable[object]) -> Iterator[Item]:
    for line, decision in enumerate(decisions, start=1):
        if not isinstance(decision, Decision):
            raise TypeError(
                f"item {line} of the decisions is a {type(decision).__name__}, not a Decision"
            )
        yield (None, line, decision, None)
