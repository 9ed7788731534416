"""The reviewers file: who may log in to the review page, with what token, for which tenants.

A YAML file holding a list under `reviewers:`, each with `name`, `token_sha256` (the sha256 in
hex of the reviewer's token: the token itself is never stored), `tenants` (a list of tenant ids,
or `"*"`) and `role`. `load_reviewers(path)` reads and checks it; `add_reviewer` creates or
updates it atomically and hands back the new token once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from moderation.errors import ReviewError
from moderation.policy._model import TENANT_PATTERN
from moderation.review._model import ALL_TENANTS, Reviewer, Role

__all__ = [
    "ReviewerEntry",
    "Reviewers",
    "ReviewersFile",
    "add_reviewer",
    "load_reviewers",
    "new_token",
    "token_hash",
]

_log = logging.getLogger("moderation.review")

_TENANT = re.compile(TENANT_PATTERN)


def new_token() -> str:
    """A fresh random token: 32 bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The sha256 in hex of `token`, as the reviewers file stores it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ReviewerEntry(BaseModel):
    """One reviewer as the file holds them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    tenants: Literal["*"] | list[str]
    role: Role = Role.REVIEWER

    @field_validator("tenants", mode="plain")
    @classmethod
    def _tenants(cls, value: object) -> Literal["*"] | list[str]:
        if value == ALL_TENANTS:
            return ALL_TENANTS
        if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
            raise ValueError("a list of tenant ids, or '*' for every tenant")
        for tenant in value:
            if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
                raise ValueError(f"{tenant!r} is not a tenant id (a-z, 0-9, _ and -)")
        return sorted(set(value))

    def reviewer(self) -> Reviewer:
        """The desk's `Reviewer` for this entry."""
        tenants = ALL_TENANTS if self.tenants == ALL_TENANTS else frozenset(self.tenants)
        return Reviewer(self.name, tenants, self.role)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reviewers: list[ReviewerEntry] = []


@dataclass(frozen=True)
class Reviewers:
    """The reviewers of one file: found by token (constant time per entry) or by name."""

    entries: tuple[ReviewerEntry, ...]
    path: Path | None = None

    def by_token(self, token: str) -> tuple[Reviewer, str] | None:
        """The reviewer whose token this is, and its hash; None for a token nobody holds.

        Every entry is compared, with `hmac.compare_digest`, so the time taken does not say
        which entry came close."""
        given = token_hash(token)
        found: ReviewerEntry | None = None
        for entry in self.entries:
            if hmac.compare_digest(entry.token_sha256, given):
                found = entry
        return None if found is None else (found.reviewer(), found.token_sha256)

    def by_name(self, name: str) -> ReviewerEntry | None:
        """The entry named `name`, or None."""
        return next((e for e in self.entries if e.name == name), None)


class ReviewersFile:
    """The reviewers file at `path`, read again when it changes (its size or modification time),
    so that a reviewer added or rotated takes effect without a restart. A change that does not
    parse is logged and the reviewers read before are kept."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stamp = self._stat()
        self._reviewers = load_reviewers(self.path)

    def _stat(self) -> tuple[int, int]:
        try:
            info = self.path.stat()
        except OSError:
            return (-1, -1)
        return (info.st_mtime_ns, info.st_size)

    def current(self) -> Reviewers:
        """The reviewers as the file holds them now (or as last read, if it no longer parses)."""
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._reviewers = load_reviewers(self.path)
            except ReviewError as exc:
                _log.error("%s; keeping the reviewers read before", exc)
        return self._reviewers


def load_reviewers(path: str | os.PathLike[str]) -> Reviewers:
    """The reviewers in the file at `path`; ReviewError naming the file and the entry at fault."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReviewError(f"reviewers file {path}: cannot read it: {exc.strerror or exc}") from exc
    return parse_reviewers(text, path)


def parse_reviewers(text: str, path: Path) -> Reviewers:
    """The reviewers in `text` (the content of `path`, named in errors)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ReviewError(f"reviewers file {path}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ReviewError(
            f"reviewers file {path}: must be a mapping with a `reviewers:` list, "
            f"got {type(raw).__name__}"
        )
    try:
        parsed = _File.model_validate(raw)
    except ValidationError as exc:
        raise ReviewError(_problems(path, raw, exc)) from None
    seen: set[str] = set()
    for index, entry in enumerate(parsed.reviewers, start=1):
        if entry.name in seen:
            raise ReviewError(
                f"reviewers file {path}: entry {index} ({entry.name!r}): the name is already "
                "used by an earlier entry; each reviewer is listed once"
            )
        seen.add(entry.name)
    return Reviewers(tuple(parsed.reviewers), path)


def _problems(path: Path, raw: dict[str, object], exc: ValidationError) -> str:
    """One line per problem: the entry (its number and name) and the field."""
    listed = raw.get("reviewers")
    lines = []
    for error in exc.errors():
        where, message = error["loc"], error["msg"].removeprefix("Value error, ")
        if len(where) >= 2 and where[0] == "reviewers" and isinstance(where[1], int):
            index = where[1]
            entry = listed[index] if isinstance(listed, list) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            label = f"entry {index + 1}" + (f" ({name!r})" if isinstance(name, str) else "")
            field = ".".join(str(p) for p in where[2:])
            lines.append(f"{label}: {field or 'the entry'}: {message}")
        else:
            lines.append(f"{'.'.join(str(p) for p in where) or 'the file'}: {message}")
    return f"reviewers file {path}: " + "; ".join(dict.fromkeys(lines))


def add_reviewer(
    path: str | os.PathLike[str],
    name: str,
    tenants: Iterable[str] | Literal["*"],
    *,
    role: Role | str = Role.REVIEWER,
    rotate: bool = False,
    make_token: Callable[[], str] = new_token,
) -> str:
    """Add the reviewer `name` to the file (created when missing) and return their new token.

    Only the token's sha256 is written. A name already in the file is refused unless `rotate`:
    then the entry is replaced (new token, the given tenants and role) and the old token stops
    working. The file is replaced atomically (a temporary file, fsync, rename), mode 0600.
    """
    path = Path(path)
    current = load_reviewers(path).entries if path.exists() else ()
    token = make_token()
    entry = _entry(path, name, tenants, role, token_hash(token))
    if any(e.name == entry.name for e in current) and not rotate:
        raise ReviewError(
            f"reviewers file {path}: reviewer {name!r} is already there; pass --rotate to give "
            "them a new token (their old token stops working)"
        )
    kept = [e for e in current if e.name != entry.name]
    _write(path, [*kept, entry] if len(kept) == len(current) else _replace(current, entry))
    return token


def _entry(
    path: Path, name: str, tenants: Iterable[str] | str, role: Role | str, digest: str
) -> ReviewerEntry:
    listed: Literal["*"] | list[str] = ALL_TENANTS if tenants == ALL_TENANTS else list(tenants)
    try:
        return ReviewerEntry(name=name, token_sha256=digest, tenants=listed, role=Role(str(role)))
    except ValueError as exc:  # pydantic's ValidationError, or Role's
        raise ReviewError(f"reviewers file {path}: reviewer {name!r}: {_short(exc)}") from None


def _short(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][:1])}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)


def _replace(entries: Sequence[ReviewerEntry], entry: ReviewerEntry) -> list[ReviewerEntry]:
    return [entry if e.name == entry.name else e for e in entries]


def _write(path: Path, entries: Sequence[ReviewerEntry]) -> None:
    body = {"reviewers": [e.model_dump(mode="json") for e in entries]}
    text = "# Reviewers of the review page (moderation review reviewer add). Tokens are stored\n"
    text += "# as their sha256 only.\n" + yaml.safe_dump(body, sort_keys=False)
    folder = path.parent if str(path.parent) else Path(".")
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
