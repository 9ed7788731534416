"""What a policy source hands the store: a `Snapshot` (a version and the policy files), and the
`PolicySource` port every source implements."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from moderation.errors import Problem
from moderation.policy._yaml import Excerpt

__all__ = [
    "Content",
    "Entry",
    "PolicySource",
    "Snapshot",
    "content_bytes",
    "digest",
    "files_version",
]


#: What a source gives for one policy: its bytes (or text), an excerpt, or why it cannot be read.
Content = str | bytes | Excerpt | Problem
#: (the name shown in messages, the content).
Entry = tuple[str, Content]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One version of the policies: `files` maps a policy name (`default`, a tenant id) to
    (shown name, content). Names that start with a NUL carry a problem of the whole source."""

    version: str
    files: Mapping[str, Entry]

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))


@runtime_checkable
class PolicySource(Protocol):
    """A place policies are read from, polled for new versions."""

    def describe(self) -> str:
        """Where the policies are, for messages: a path, `s3://bucket/prefix`, ..."""
        ...

    def fetch(self, known: str | None) -> Snapshot | None:
        """The current version, or None when it is still `known`. PolicyError if the place
        cannot be read at all (what is wrong in a single file is a Problem in the snapshot)."""
        ...


def digest(parts: Iterable[tuple[str, bytes]]) -> str:
    """`sha256:` and 12 hex digits of a digest over (name, data) pairs, in name order."""
    h = hashlib.sha256()
    for name, data in sorted(parts):
        encoded = name.encode("utf-8", "surrogateescape")
        for piece in (encoded, data):
            h.update(len(piece).to_bytes(8, "big"))
            h.update(piece)
    return "sha256:" + h.hexdigest()[:12]


def content_bytes(content: Content) -> bytes:
    if isinstance(content, Problem):
        return b"\0problem\0" + content.message.encode()
    if isinstance(content, Excerpt):
        return f"{content.first_line}\0{content.text}".encode("utf-8", "surrogatepass")
    return content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content


def files_version(files: Mapping[str, Entry], root: Path | None = None) -> str:
    """The version of a set of policy files: a digest over each file's name (relative to `root`
    when given) and content, unreadable files by what is wrong with them."""

    def name(shown: str) -> str:
        return os.path.relpath(shown, root) if root is not None else shown

    return digest((name(shown), content_bytes(content)) for shown, content in files.values())
