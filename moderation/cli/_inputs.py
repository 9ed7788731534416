"""The INPUT arguments of `moderation check`, expanded lazily into the images to moderate.

An INPUT is one of:

- a file: one image;
- a directory: every file under it, recursively, in sorted order; names starting with `.`
  (hidden files and directories) are skipped, nothing else is: a file that is not an image is
  reported as an error, so that nothing under the directory escapes moderation unseen;
- `s3://bucket/key`: one object (`s3://bucket/key?versionId=V`: one version of it);
  `s3://bucket/prefix/` (ending in `/`) or `s3://bucket`: every object under the prefix, listed
  page by page as the run goes. Parsed by `S3Location.parse` / `S3Prefix.parse`, with S3's own
  bucket-name rule; an object is handed to the engine as its `S3Location` (a listed key such as
  `cat.png?versionId=null` is that object, never version `null` of `cat.png`);
- `@FILE`: one INPUT per line (files, directories, S3 objects or prefixes); blank lines and lines
  starting with `#` are ignored, surrounding whitespace is stripped, relative paths are relative to
  the current directory. `@-` reads the lines from stdin.

Nothing is expanded up front: a directory of a million files or a prefix of a million objects is
walked or listed as the images are moderated, so memory stays bounded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TextIO

from moderation.errors import InvalidS3Location
from moderation.s3location import SCHEME, S3Location, S3Prefix

if TYPE_CHECKING:
    from moderation.cli._s3 import S3Lister

__all__ = ["Arg", "Image", "UsageProblems", "expand", "parse_args", "s3_input"]

Kind = Literal["file", "dir", "object", "prefix", "list"]

_S3_SHAPES = (
    "expected s3://bucket/key for one object, or s3://bucket/prefix/ ending in / for every "
    "object under a prefix"
)


@dataclass(frozen=True, slots=True)
class Arg:
    """One INPUT argument and what kind of input it is."""

    text: str
    kind: Kind


@dataclass(frozen=True, slots=True)
class Image:
    """One image to moderate: `source` is what the output shows.

    For an S3 object, `location` (what the engine is given); `etag` when it came from a listing.
    """

    source: str
    location: S3Location | None = None
    etag: str | None = None

    @property
    def local(self) -> bool:
        """True for a local file."""
        return self.location is None

    @property
    def bucket(self) -> str | None:
        return None if self.location is None else self.location.bucket

    @property
    def key(self) -> str | None:
        return None if self.location is None else self.location.key

    @property
    def target(self) -> S3Location | str:
        """What the engine is given: the S3 object's location, or the file's path."""
        return self.source if self.location is None else self.location


class UsageProblems(ValueError):
    """INPUT arguments that cannot be used; the message names each one and what is wrong."""


def s3_input(text: str) -> S3Location | S3Prefix:
    """The object or the prefix (`s3://bucket`, or ending in `/`) an `s3://` INPUT names;
    ValueError naming what is wrong."""
    try:
        prefix = S3Prefix.parse(text)
    except InvalidS3Location:
        prefix = None  # a version (an object), or not an S3 location: parsed as an object below
    if prefix is not None and (prefix.prefix == "" or prefix.prefix.endswith("/")):
        return prefix
    try:
        return S3Location.parse(text)
    except InvalidS3Location as exc:
        why = str(exc).removeprefix(f"{text}: ")
        raise ValueError(f"{text}: not an S3 location: {why} ({_S3_SHAPES})") from None


def _kind(text: str) -> Kind:
    if text.startswith(SCHEME):
        return "prefix" if isinstance(s3_input(text), S3Prefix) else "object"
    return "dir" if os.path.isdir(text) else "file"


def parse_args(args: Sequence[str]) -> list[Arg]:
    """What each INPUT is; `UsageProblems` naming every path that does not exist and every
    argument that is not an input (nothing has been moderated yet when it is raised)."""
    parsed: list[Arg] = []
    missing: list[str] = []
    problems: list[str] = []
    for text in args:
        if text.startswith("@"):
            name = text[1:]
            if not name:
                problems.append("'@' names no list file (use @FILE, or @- to read stdin)")
            elif name != "-" and not os.path.exists(name):
                missing.append(name)
            elif os.path.isdir(name):
                problems.append(f"{text}: a directory is an INPUT of its own (without @)")
            else:
                parsed.append(Arg(name, "list"))
            continue
        try:
            kind = _kind(text)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if kind == "file" and not os.path.exists(text):
            missing.append(text)
            continue
        parsed.append(Arg(text, kind))
    if missing:
        problems.insert(0, "no such file: " + ", ".join(missing))
    if problems:
        raise UsageProblems("\n".join(problems))
    return parsed


OnError = Callable[[str, Exception], None]


def expand(
    args: Iterable[Arg],
    *,
    lister: Callable[[], S3Lister],
    on_error: OnError,
    stdin: TextIO | None = None,
) -> Iterator[Image]:
    """The images `args` name, in order, lazily. An input that cannot be expanded (a listing
    that fails, a directory or list file that cannot be read) goes to `on_error(input, error)`
    and the next input is expanded; whatever it yielded before failing stands."""
    for arg in args:
        yield from _one(arg, lister, on_error, stdin)


def _one(
    arg: Arg, lister: Callable[[], S3Lister], on_error: OnError, stdin: TextIO | None
) -> Iterator[Image]:
    if arg.kind == "file":
        yield Image(arg.text)
    elif arg.kind == "dir":
        yield from _walk(arg.text, on_error)
    elif arg.kind == "object":
        location = s3_input(arg.text)
        assert isinstance(location, S3Location)
        yield Image(arg.text, location=location)
    elif arg.kind == "prefix":
        prefix = s3_input(arg.text)
        assert isinstance(prefix, S3Prefix)
        try:
            for obj in lister().objects(prefix.bucket, prefix.prefix):
                listed = S3Location(prefix.bucket, obj.key)
                yield Image(listed.uri, location=listed, etag=obj.etag)
        except Exception as exc:  # reported; the next input is still expanded
            on_error(arg.text, exc)
    else:
        yield from _list(arg.text, lister, on_error, stdin)


def _list(
    name: str, lister: Callable[[], S3Lister], on_error: OnError, stdin: TextIO | None
) -> Iterator[Image]:
    shown = "@-" if name == "-" else f"@{name}"
    try:
        if name == "-":
            import sys

            stream = stdin if stdin is not None else sys.stdin
            lines: Iterable[str] = stream
            yield from _entries(lines, shown, lister, on_error)
        else:
            # A line is a path: bytes that are not UTF-8 stay the path they name, as in argv.
            with open(name, encoding="utf-8", errors="surrogateescape") as fh:
                yield from _entries(fh, shown, lister, on_error)
    except (OSError, UnicodeDecodeError) as exc:
        on_error(shown, exc)


def _entries(
    lines: Iterable[str], shown: str, lister: Callable[[], S3Lister], on_error: OnError
) -> Iterator[Image]:
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            kind = _kind(text)
        except ValueError as exc:
            on_error(f"{shown}:{number}", exc)
            continue
        # A file that does not exist is still an input: the engine reports it like any other
        # image that cannot be moderated, so every line is accounted for.
        yield from _one(Arg(text, kind), lister, on_error, None)


def _walk(top: str, on_error: OnError) -> Iterator[Image]:
    """Every non-hidden file under `top`, depth first in sorted name order. Symbolic links to
    directories are followed once each (a link back up the tree is not a loop)."""
    seen: set[tuple[int, int]] = set()

    def walk(directory: str) -> Iterator[Image]:
        try:
            info = os.stat(directory)
            if (info.st_dev, info.st_ino) in seen:
                return
            seen.add((info.st_dev, info.st_ino))
            with os.scandir(directory) as it:
                entries = sorted(
                    (e for e in it if not e.name.startswith(".")), key=lambda e: e.name
                )
        except OSError as exc:
            on_error(directory, exc)
            return
        for entry in entries:
            try:
                is_dir = entry.is_dir()  # follows symbolic links
            except OSError:
                is_dir = False
            if is_dir:
                yield from walk(entry.path)
            else:
                yield Image(entry.path)

    yield from walk(top)
