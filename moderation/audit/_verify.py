"""Verifying a chained audit log: every record, every link, every file, and where it first breaks.

`verify_log(path)` walks the live file's rotated predecessors (oldest first) and the live file,
streaming, and checks what the writer promises: each file starts with a header that names the file
before it; every record's hash covers its bytes (SHA-256, or HMAC-SHA256 under the key); its
`prev` is the previous record's hash and its `seq` the previous one's plus one. A torn line (a
writer stopped mid-record) is accepted only when a chained `torn` note right after it describes
exactly those bytes and they are what a crash leaves (no whole record); it is then a warning, not
a failure. A torn tail no writer has set aside yet is reported as an unrepaired crash tail
(`VerifyReport.crash_tail`), apart from tampering. The report names the first failure by file and
1-based line, and says what kind of change it looks like.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from moderation.audit._format import (
    EXACT_RECORD,
    GENESIS,
    AuditRecord,
    not_a_crash,
    parse_line,
    record_hash,
    signed_prefix,
)
from moderation.audit._jsonl import MAX_SKIPPED_LINES, audit_key_bytes
from moderation.audit._read import LogEntry, entry_of, log_files, read_log
from moderation.decision import Decision
from moderation.review_records import AppealRecord, ReviewRecord

# What the stream sinks write: one bare JSON line per record, outside any chain.
_BARE = (Decision, ReviewRecord, AppealRecord)

__all__ = [
    "Head",
    "Ignored",
    "LogHead",
    "VerifiedRecords",
    "VerifyReport",
    "parse_head",
    "read_head",
    "verify_log",
]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
KEY_NEEDED = (
    "the log is keyed (hmac-sha256): verifying it needs the key (set MODERATION_AUDIT_KEY, or "
    "--key-file on the command line)"
)


@dataclass(frozen=True, slots=True)
class Head:
    """A record an operator anchored elsewhere: its hash, and its seq when known."""

    hash: str
    seq: int | None = None

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}" if self.seq is not None else self.hash


def parse_head(text: str) -> Head:
    """`HASH` or `SEQ:HASH` as a Head; ValueError naming what is wrong."""
    seq_text, sep, digest = text.strip().rpartition(":")
    digest = digest.lower()
    if not _HEX64.match(digest):
        raise ValueError(f"head {text!r}: expected a 64-hex-digit record hash, or SEQ:HASH")
    if not sep:
        return Head(digest)
    if not seq_text.isdigit() or int(seq_text) < 1:
        raise ValueError(f"head {text!r}: SEQ must be a positive record number")
    return Head(digest, int(seq_text))


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What `verify_log` found: counts, the chain's last record, warnings and the first failure.

    `ok` is true only when every record of every file verified (and the head, if one was asked
    for, is in the chain). `failure` says what is wrong; `failure_file` and `failure_line` where.
    """

    files: tuple[Path, ...]
    records: int
    decisions: int
    last_seq: int
    last_hash: str | None
    warnings: tuple[str, ...] = ()
    failure: str | None = None
    failure_file: Path | None = None
    failure_line: int | None = None
    head_found: bool | None = None  # None: no head was asked for
    keyed: bool = False
    reviews: int = 0  # review records among `records`
    appeals: int = 0  # appeal records among `records`
    # The failure is only an unrepaired crash tail: a writer stopped mid-record at the very end
    # of the log, every record before it verified, and the next writer sets it aside.
    crash_tail: bool = False
    # The seq the verified chain starts at: 1, or where the first kept file of a pruned log
    # starts (`verify_log(pruned=True)`).
    first_seq: int = 1

    @property
    def ok(self) -> bool:
        """True when the whole log verified."""
        return self.failure is None

    @property
    def where(self) -> str | None:
        """`file:line` of the first failure (just the file when no line applies)."""
        if self.failure_file is None:
            return None
        if self.failure_line is None:
            return str(self.failure_file)
        return f"{self.failure_file}:{self.failure_line}"

    def summary(self) -> str:
        """One line: `ok: 2 files, 130 records (127 decisions), last seq 130 <hash>, 1 warning`,
        or `FAILED at file:line: what`."""
        if self.failure is not None:
            where = self.where
            head = "UNREPAIRED CRASH TAIL" if self.crash_tail else "FAILED"
            return f"{head} at {where}: {self.failure}" if where else f"{head}: {self.failure}"
        n = len(self.files)
        w = len(self.warnings)
        alg = "hmac-sha256" if self.keyed else "sha256"
        people = "".join(
            f", {count} {name}{'s' if count != 1 else ''}"
            for count, name in ((self.reviews, "review"), (self.appeals, "appeal"))
            if count
        )
        text = (
            f"ok: {n} file{'s' if n != 1 else ''}, {self.records} records "
            f"({self.decisions} decisions{people}, {alg}), last seq {self.last_seq} "
            f"{self.last_hash or '-'}, {w} warning{'s' if w != 1 else ''}"
        )
        if self.head_found:
            text += ", head found"
        if self.first_seq > 1:
            text += f", verified from seq {self.first_seq} (older files pruned)"
        return text


def _bare_kind(entry: Decision | ReviewRecord | AppealRecord) -> str:
    return "decision" if isinstance(entry, Decision) else entry.kind


def _is_json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False


class _Failed(Exception):
    def __init__(
        self,
        message: str,
        entry: LogEntry | None = None,
        file: Path | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = entry.file if entry is not None else file
        self.line = entry.line if entry is not None else line


@dataclass
class _Region:
    """Lines that did not verify, waiting for a torn note right after them to set them aside."""

    first: LogEntry
    problem: str
    last_line: int
    hasher: hashlib._Hash = field(default_factory=hashlib.sha256)
    length: int = 0
    pending_newline: bool = False
    lines: int = 0
    # Why these lines are not what a crash leaves (a whole record among them), if they are not.
    not_a_crash: str | None = None
    last: LogEntry | None = None
    json_line: bool = False  # a complete JSON object line: a writer does not set it aside

    @property
    def span(self) -> str:
        """`line 7` or `lines 7-9`."""
        if self.last_line == self.first.line:
            return f"line {self.first.line}"
        return f"lines {self.first.line}-{self.last_line}"

    def add(self, entry: LogEntry) -> None:
        self.lines += 1
        self.last = entry
        self.json_line = self.json_line or (not entry.torn and _is_json_object(entry.raw))
        if self.not_a_crash is None:
            problem = not_a_crash(entry.raw)
            if problem is not None:
                self.not_a_crash = f"line {entry.line} holds {problem}"
        # The note covers the bytes up to, not including, the newline that ends the last line.
        if self.pending_newline:
            self.hasher.update(b"\n")
            self.length += 1
        raw = entry.raw
        self.pending_newline = raw.endswith(b"\n")
        body = raw[:-1] if self.pending_newline else raw
        self.hasher.update(body)
        self.length += len(body)
        self.last_line = entry.line


class _Walk:
    """The state of one chain's verification, fed one line at a time."""

    def __init__(self, key: bytes | None, head: Head | None, *, pruned: bool = False) -> None:
        self.key = key
        self.head = head
        self.head_found = False
        self.head_mismatch: _Failed | None = None  # the record at the head's seq, if it differs
        # Older files may have been deleted: the chain starts at the first file read, anchored
        # by `head` (a record recorded before they were).
        self.pruned = pruned
        self.first_seq = 1
        self.seq = 0
        self.hash = GENESIS
        self.last_hash: str | None = None
        self.where_last: tuple[Path, int] | None = None  # file and line of the last record
        self.records = 0
        self.decisions = 0
        self.reviews = 0
        self.appeals = 0
        self.warnings: list[str] = []
        self.files: list[Path] = []
        self.expect_header = False
        self.file_lines = 0
        self.region: _Region | None = None

    # -- files ---------------------------------------------------------------------------------

    def start_file(self, file: Path) -> None:
        self.end_file()
        self.files.append(file)
        self.expect_header = True
        self.file_lines = 0

    def end_file(self, *, last: bool = False) -> _Failed | None:
        """Close the current file; at the end of the log (`last`), an unrepaired crash tail is
        returned rather than raised."""
        if self.region is not None:
            region = self.region
            tail = self._crash_tail(region) if last else None
            if tail is None:
                problem = region.problem
                if region.not_a_crash is not None and region.first.parsed is None:
                    problem = (
                        f"{region.span}: {region.length} bytes after the last record that a "
                        f"crash cannot leave ({region.not_a_crash}): a crash leaves at most one "
                        "partial record, so records were hidden here (tampering: lines joined "
                        "into one)"
                    )
                raise _Failed(problem, region.first)
            self.region = None
            return tail
        if self.files and self.expect_header:
            if self.file_lines:
                raise _Failed(
                    f"{self.files[-1].name} has no file header (its records were deleted?)",
                    file=self.files[-1],
                )
            self.warnings.append(f"{self.files[-1]}: empty (a writer created it and stopped)")
        return None

    def _crash_tail(self, region: _Region) -> _Failed | None:
        """The failure naming `region` (the end of the log) as an unrepaired crash tail, or None
        when it is not one. A crash cuts one write short: the log then ends in a partial record
        (or, after a repair cut short too, a few lines of them), or in a whole record missing
        only its newline that is the next link."""
        last = region.last
        if last is None:
            return None
        if region.lines == 1 and last.torn:
            whole = self._completes_chain(last)
            if whole is not None:
                return whole
        # What a writer sets aside: a torn line after at most MAX_SKIPPED_LINES complete lines
        # that are not JSON (repairs a full disk cut short), holding no whole record.
        if region.not_a_crash is not None or region.lines > MAX_SKIPPED_LINES + 1:
            return None
        if region.json_line:
            return None
        return _Failed(
            f"{region.span}: unrepaired crash tail: a torn record of {region.length} bytes after "
            "the last record (a writer stopped mid-record: a crash, or a full disk) that no "
            "writer has set aside yet; every record before it verified, and the next writer to "
            "append sets it aside with a torn note",
            region.first,
        )

    def _completes_chain(self, entry: LogEntry) -> _Failed | None:
        try:
            record = parse_line(entry.raw)
        except ValueError:
            return None
        if not isinstance(record, AuditRecord) or record.kind == "file":
            return None
        if self._check_hash(entry, record) is not None or self._check_link(entry, record):
            return None
        return _Failed(
            f"line {entry.line}: the last record lacks only its newline: a writer stopped just "
            "before it; the next writer to append completes it",
            entry,
        )

    # -- lines ---------------------------------------------------------------------------------

    def feed(self, entry: LogEntry) -> None:
        self.file_lines += 1
        parsed = entry.parsed
        if isinstance(parsed, AuditRecord):
            problem = self._check_hash(entry, parsed)
            if problem is None and parsed.kind == "torn":
                self._torn_note(entry, parsed)
                return
            if problem is None:
                problem = self._check_place(entry, parsed)
            if problem is None:
                if self.region is not None:
                    region = self.region
                    raise _Failed(region.problem, region.first)
                self._accept(entry, parsed)
                return
            self._set_aside(entry, problem)
            return
        if isinstance(parsed, _BARE):
            if self.region is not None:
                raise _Failed(self.region.problem, self.region.first)
            raise _Failed(
                f"line {entry.line}: a bare {_bare_kind(parsed)} line, not a chained record "
                "(inserted, or written by a sink that does not chain)",
                entry,
            )
        if entry.torn:
            problem = (
                f"line {entry.line}: torn record of {len(entry.raw)} bytes (a writer stopped "
                "mid-record, or the file was truncated), not set aside by a torn note"
            )
        else:
            problem = f"line {entry.line}: not a record: {entry.error}"
        self._set_aside(entry, problem)

    def _set_aside(self, entry: LogEntry, problem: str) -> None:
        if self.region is None:
            self.region = _Region(entry, problem, entry.line)
        self.region.add(entry)

    def _check_hash(self, entry: LogEntry, record: AuditRecord) -> str | None:
        line = entry.line
        if self.key is None and record.alg == "hmac-sha256":
            raise _Failed(f"line {line}: {KEY_NEEDED}", entry)
        if self.key is not None and record.alg != "hmac-sha256":
            return (
                f"line {line}: a {record.alg} record in a keyed log: every record must be "
                "hmac-sha256 under the key (re-hashed by someone without the key?)"
            )
        signed = signed_prefix(entry.raw)
        if signed is None:  # the model parsed, so a hash is there; this is a spacing change
            return f"line {line}: the record's bytes are not in the writer's exact form (edited)"
        prefix, stated = signed
        if record_hash(prefix, self.key) != stated:
            if self.key is not None:
                return (
                    f"line {line}: hash mismatch: the record was edited, or the key is wrong "
                    "(the HMAC does not match under this key)"
                )
            return f"line {line}: hash mismatch: the record was edited after it was written"
        return None

    def _check_place(self, entry: LogEntry, record: AuditRecord) -> str | None:
        line = entry.line
        if self.expect_header and record.kind != "file":
            return (
                f"line {line}: the file does not start with a file header (a {record.kind} "
                "record comes first: the file's first lines were deleted?)"
            )
        if not self.expect_header and record.kind == "file":
            return f"line {line}: a file header in the middle of a file (inserted?)"
        # A header's own claim first: a missing file explains the seq gap that follows.
        if record.kind == "file":
            assert record.file is not None
            continues = record.file.continues
            before = self.files[-2] if len(self.files) > 1 else None
            if before is None and continues is not None and self.pruned:
                self._start_pruned(entry, record, continues)
            elif before is None and continues is not None:
                raise _Failed(
                    f"line {line}: the header continues {continues}, which was not read: a "
                    f"rotated predecessor is missing (deleted?); {continues} must sit beside "
                    f"{entry.file.name}",
                    entry,
                )
            if before is not None and continues != before.name:
                if continues is None:
                    raise _Failed(
                        f"line {line}: the header starts a new log, but {before.name} was read "
                        "before it (two logs mixed?)",
                        entry,
                    )
                raise _Failed(
                    f"line {line}: the header continues {continues}, but the file read before "
                    f"it is {before.name}: {continues} is missing (deleted?)",
                    entry,
                )
        return self._check_link(entry, record)

    def _start_pruned(self, entry: LogEntry, record: AuditRecord, continues: str) -> None:
        """Start the chain at this header, whose predecessors were deleted, provided the head
        (recorded before they were) is this header's `prev` or still lies ahead."""
        head = self.head
        assert head is not None
        assert head.seq is not None
        start, name = record.seq, entry.file.name
        if head.seq < start - 1:
            raise _Failed(
                f"line {entry.line}: head {head} is in a pruned file: the oldest file here, "
                f"{name}, starts at seq {start} (it continues {continues}, which is gone), so "
                f"records {head.seq + 1}-{start - 1} are gone too and nothing links {name} to "
                "the head; verify from a head recorded in a file that is still kept",
                entry,
            )
        if head.seq == start - 1:
            if record.prev != head.hash:
                raise _Failed(
                    f"line {entry.line}: head {head} does not match: {name} continues the chain "
                    f"from seq {head.seq} with hash {record.prev} (the log was rewritten, or the "
                    "head is another log's)",
                    entry,
                )
            self.head_found = True
        self.seq, self.hash, self.first_seq = start - 1, record.prev, start
        self.warnings.append(
            f"{continues} and the files before it are not here (pruned): verified from seq "
            f"{start} in {name}, anchored by head {head}"
        )

    def _check_link(self, entry: LogEntry, record: AuditRecord) -> str | None:
        line = entry.line
        if record.seq == self.seq + 1 and record.prev == self.hash:
            return None
        after = f"seq {self.seq}" if self.seq else "the start of the log"
        if record.seq > self.seq + 1:
            missing = record.seq - self.seq - 1
            return (
                f"line {line}: seq {record.seq} follows {after}: {missing} record"
                f"{'s are' if missing != 1 else ' is'} missing (deleted, or moved?) before it"
            )
        if record.seq <= self.seq:
            return (
                f"line {line}: seq {record.seq} follows seq {self.seq}: a repeated or earlier "
                "record (inserted, or reordered?)"
            )
        where = (
            f"line {self.where_last[1]} of {self.where_last[0].name}"
            if self.where_last is not None
            else "the start of the log"
        )
        return (
            f"line {line}: prev does not match the hash of the record before it ({where}): "
            "that record was replaced, or this one was inserted"
        )

    def _torn_note(self, entry: LogEntry, record: AuditRecord) -> None:
        note = record.torn
        assert note is not None
        region = self.region
        if region is None:
            raise _Failed(
                f"line {entry.line}: a torn note for line {note.line}, but no torn line comes "
                "right before it (inserted?)",
                entry,
            )
        if note.line != region.first.line:
            # The note is about some other line: the region's first problem is the failure.
            raise _Failed(region.problem, region.first)
        mismatch = []
        if note.offset != region.first.offset:
            mismatch.append(f"offset {note.offset} != {region.first.offset}")
        if note.length != region.length:
            mismatch.append(f"length {note.length} != {region.length}")
        if not mismatch and note.sha256 != region.hasher.hexdigest():
            mismatch.append("sha256 differs (the torn bytes were changed)")
        if mismatch:
            raise _Failed(
                f"{region.problem}; the torn note on line {entry.line} does not match it: "
                + ", ".join(mismatch),
                region.first,
            )
        if region.not_a_crash is not None:
            raise _Failed(
                f"{region.span}: set aside as a torn record by the torn note on line "
                f"{entry.line}, but {region.not_a_crash}: a crash leaves at most one partial "
                "record, so records were hidden here (tampering: lines joined, or a record "
                "passed off as torn)",
                region.first,
            )
        chain = self._check_link(entry, record)
        if chain is not None:
            raise _Failed(chain, entry)
        self.warnings.append(
            f"{entry.file}: {region.span}: torn record of {note.length} bytes, set aside by line "
            f"{entry.line}"
        )
        self.region = None
        self._accept(entry, record)

    def _accept(self, entry: LogEntry, record: AuditRecord) -> None:
        self._advance(entry.file, entry.line, record.seq, record.hash, record.kind)

    def _advance(self, file: Path, line: int, seq: int, digest: str, kind: str) -> None:
        """Take the record at `file:line` as the chain's new end."""
        if kind == "file":
            self.expect_header = False
        self.seq, self.hash = seq, digest
        self.last_hash = digest
        self.where_last = (file, line)
        self.records += 1
        if kind == "decision":
            self.decisions += 1
        elif kind == "review":
            self.reviews += 1
        elif kind == "appeal":
            self.appeals += 1
        head = self.head
        if head is not None and (digest == head.hash or seq == head.seq):
            self._check_head(file, line, seq, digest)

    def _check_head(self, file: Path, line: int, seq: int, digest: str) -> None:
        head = self.head
        assert head is not None
        if digest != head.hash:  # at the head's seq: said at the end, unless found elsewhere
            self.head_mismatch = _Failed(
                f"line {line}: head {head} does not match: record seq {seq} has hash {digest} "
                "(the log was rewritten up to there, or the head is another log's)",
                file=file,
                line=line,
            )
            return
        if head.seq is not None and head.seq != seq:
            raise _Failed(
                f"line {line}: head {head.hash} is record seq {seq}, not seq {head.seq}",
                file=file,
                line=line,
            )
        self.head_found = True

    def fast(self, file: Path, line: int, raw: bytes) -> bool:
        """Accept `raw` as the next decision, review or appeal record when its bytes, hash,
        `seq` and `prev` say so, without parsing its body; False sends it to `feed` (a record
        of another kind, in another form, or one that does not verify: `feed` says why)."""
        if self.region is not None or self.expect_header:
            return False
        match = EXACT_RECORD.match(raw)
        if match is None or (match[3] == b"hmac-sha256") != (self.key is not None):
            return False
        seq = int(match[1])
        if seq != self.seq + 1 or match[2] != self.hash.encode() or not raw.endswith(b"\n"):
            return False
        signed = signed_prefix(raw)
        if signed is None:
            return False
        prefix, digest = signed
        if record_hash(prefix, self.key) != digest:
            return False
        self._advance(file, line, seq, digest, _KINDS[match[4]])
        return True


_KINDS = {b"decision": "decision", b"review": "review", b"appeal": "appeal"}


def _files_of(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every file of the named logs, oldest first, each once; FileNotFoundError for a path that
    names no log."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    files: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        for file in log_files(path):
            if file.resolve() not in seen:
                seen.add(file.resolve())
                files.append(file)
    return files


@dataclass(frozen=True, slots=True)
class Ignored:
    """A line that `VerifiedRecords` passed over, and why (what `verify_log` would say)."""

    file: Path
    line: int
    problem: str

    @property
    def where(self) -> str:
        """`file:line`, for messages."""
        return f"{self.file}:{self.line}"


class VerifiedRecords:
    """The records of a log that verify, in order, for a reader that acts on them (resuming a
    batch skips what they decided): each record's hash checks out (under the key of a keyed log)
    and it links to the last record accepted, as `verify_log` checks them.

    Unlike `verify_log`, reading does not stop at the first problem: a line that holds a record
    or a bare decision but does not verify or link is passed over and counted in `ignored_count`
    (the first `keep` of them with why, in `ignored`), and the chain goes on from the last record
    accepted. So a line inserted into a keyed log costs only itself, and a record deleted makes
    every record after it unlinked, hence ignored. Lines that hold no record at all (torn bytes,
    garbage) can stand for no decision and are passed over uncounted; `verify_log` reports them.
    Without a key, the chain only shows the log is consistent with itself: whoever can write the
    file can also write records that link.
    """

    def __init__(
        self,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        key: str | bytes | None = None,
        keep: int = 20,
    ) -> None:
        self._files = _files_of(paths)
        self._walk = _Walk(audit_key_bytes(key), None)
        self._keep = keep
        self.ignored: list[Ignored] = []
        self.ignored_count = 0

    def __iter__(self) -> Iterator[tuple[LogEntry, AuditRecord]]:
        walk = self._walk
        for file in self._files:
            walk.files.append(file)
            walk.expect_header = True
            for entry in read_log(file, predecessors=False):
                record = entry.parsed
                if isinstance(record, _BARE):
                    self._ignore(
                        entry, f"line {entry.line}: a bare {_bare_kind(record)} line, not a record"
                    )
                    continue
                if not isinstance(record, AuditRecord):
                    continue
                problem = self._problem(entry, record)
                if problem is not None:
                    self._ignore(entry, problem)
                    continue
                walk._accept(entry, record)
                yield entry, record

    def _problem(self, entry: LogEntry, record: AuditRecord) -> str | None:
        walk = self._walk
        try:
            problem = walk._check_hash(entry, record)
            if problem is None and record.kind == "torn":  # it may come before a file header
                problem = walk._check_link(entry, record)
            elif problem is None:
                problem = walk._check_place(entry, record)
        except _Failed as failed:
            problem = failed.message
        return problem

    def _ignore(self, entry: LogEntry, problem: str) -> None:
        self.ignored_count += 1
        if len(self.ignored) < self._keep:
            self.ignored.append(Ignored(entry.file, entry.line, problem))


def verify_log(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    key: str | bytes | None = None,
    head: Head | str | None = None,
    pruned: bool = False,
    deep: bool = False,
) -> VerifyReport:
    """Verify the log at `paths` (a live path with its rotated predecessors; several paths are
    read as one chain, in order) and report how far it verified and where it first failed.

    `key` is the HMAC key of a keyed log (MODERATION_AUDIT_KEY). `head` (`HASH`, `SEQ:HASH` or a
    Head) must be a record of the chain: a log truncated before it, or rewritten, fails. With
    `pruned`, the oldest rotated files may have been deleted: the chain starts at the first file
    there, and `head` (a `SEQ:HASH` recorded before the deletion) must be that file's `prev` or
    a record after it. Integrity needs only each record's bytes, `seq` and `prev`, so bodies are
    not parsed; `deep` also validates every record's body (every decision) in full. Raises
    FileNotFoundError when a path names no log at all, ValueError for `pruned` without a
    `SEQ:HASH` head.
    """
    anchor = parse_head(head) if isinstance(head, str) else head
    if pruned and (anchor is None or anchor.seq is None):
        raise ValueError("verifying a pruned log needs the head as SEQ:HASH (`audit head`)")
    walk = _Walk(audit_key_bytes(key), anchor, pruned=pruned)
    files = _files_of(paths)
    failure: _Failed | None = None
    crash_tail: _Failed | None = None
    try:
        for file in files:
            walk.start_file(file)
            _feed_file(walk, file, deep)
        crash_tail = walk.end_file(last=True)
        if walk.head is not None and not walk.head_found:
            if walk.head_mismatch is not None:
                raise walk.head_mismatch
            raise _Failed(
                f"head {walk.head} is not in the chain: the log was truncated before it, or "
                "rewritten",
                file=files[-1] if files else None,
            )
    except _Failed as failed:
        failure = failed
    if failure is None and crash_tail is not None:
        failure = crash_tail
    return VerifyReport(
        files=tuple(walk.files),
        records=walk.records,
        decisions=walk.decisions,
        reviews=walk.reviews,
        appeals=walk.appeals,
        last_seq=walk.seq,
        last_hash=walk.last_hash,
        warnings=tuple(walk.warnings),
        failure=failure.message if failure is not None else None,
        failure_file=failure.file if failure is not None else None,
        failure_line=failure.line if failure is not None else None,
        head_found=walk.head_found if walk.head is not None else None,
        keyed=walk.key is not None,
        crash_tail=failure is not None and failure is crash_tail,
        first_seq=walk.first_seq,
    )


def _feed_file(walk: _Walk, file: Path, deep: bool) -> None:
    """Every line of `file` to `walk`: records in the writer's form through its fast path,
    the rest (and, when `deep`, every line) parsed in full."""
    with file.open("rb") as fh:
        offset = 0
        for number, raw in enumerate(fh, start=1):
            if deep or not walk.fast(file, number, raw):
                walk.feed(entry_of(file, number, offset, raw))
            offset += len(raw)


@dataclass(frozen=True, slots=True)
class LogHead:
    """The last intact record of a log, the file it is in, and whether torn bytes follow it."""

    file: Path
    record: AuditRecord
    torn_bytes: int = 0


def read_head(path: str | os.PathLike[str]) -> LogHead:
    """The last record of the log at `path` (its live file, else its newest rotated file), read
    from the end without reading the whole log. RecordError when the file is not a chained log
    (its first line is not a chained file header, or its last complete line not a record)."""
    from moderation.audit._format import RecordError, parse_line
    from moderation.audit._jsonl import read_tail

    file = log_files(path)[-1]
    with file.open("rb") as fh:
        first = fh.readline()
        size = os.fstat(fh.fileno()).st_size
        if not first:
            raise RecordError(f"{file}: empty: no record yet")
        try:
            header = parse_line(first) if first.endswith(b"\n") else None
        except RecordError as exc:
            raise RecordError(f"{file}:1: not a chained audit log: {exc}") from None
        if not isinstance(header, AuditRecord) or header.kind not in ("file", "torn"):
            raise RecordError(f"{file}:1: not a chained audit log (no file header)")
        tail = read_tail(fh.fileno(), size)
    if tail.last is None:
        raise RecordError(f"{file}: no complete record")
    try:
        record = parse_line(tail.last)
    except RecordError as exc:
        raise RecordError(f"{file}: the last complete line is not a record: {exc}") from None
    if not isinstance(record, AuditRecord):
        raise RecordError(f"{file}: the last complete line is a bare decision, not a record")
    return LogHead(file, record, len(tail.torn))
