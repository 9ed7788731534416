"""The file audit log: hash-chained JSON lines, safe for many threads, processes and instances.

Every record is written whole under one exclusive lock that holds across threads (a per-path lock
in this process) and processes (`flock` on the sidecar `<path>.lock`, which is never renamed, so
the lock survives rotation renames of the live file). Appends are group-committed: each `append`
queues its record, and one of the waiting threads (the leader) takes every queued record under
the lock, chains them in queue order, writes them in one `os.write` on an O_APPEND descriptor,
names the next leader and fsyncs once (so the next batch is written while this fsync runs); each
`append` returns only after an fsync that started after its own record was written, and raises if
its batch's write or fsync failed.

Under the lock the writer finds the end of the chain (cached per path in this process, re-read
whenever the file's inode or size is not what this process last wrote) and repairs what a crashed
writer left: an empty live file gets its header; a torn last line is either completed (it is a
whole record that only lacks its newline) or kept in place and set aside by a chained `torn` note;
a live file missing beside rotated ones is started again, continuing the newest one's chain.
Bytes after the last record that a crash cannot leave (a whole record, two record starts on one
line) are tampering: the writer refuses the log rather than set them aside. Nothing already
written is ever rewritten or truncated. docs/audit.md has the guarantees.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from moderation._version import __version__
from moderation.audit._format import (
    GENESIS,
    Entry,
    FileHeader,
    Kind,
    TornNote,
    hashed_record,
    json_bytes,
    kind_of,
    not_a_crash,
    record_hash,
    signed_prefix,
)
from moderation.audit._read import rotated_number
from moderation.decision import Decision
from moderation.errors import ConfigurationError

__all__ = ["JsonlAuditLog", "audit_key_bytes", "read_tail"]

# Every write and fsync of records goes through these names, so tests can simulate a writer killed
# mid-record, a disk that fills up (a short write followed by ENOSPC), or watch what is durable.
_os_write = os.write
_os_fsync = os.fsync

_FILE_MODE = 0o640  # decisions name tenants and callers' ids: not for every local user
_CHUNK = 64 * 1024
# What a crash can leave after the last record: a torn line, or a torn line whose repair was cut
# short too (a full disk). Anything longer is not a crash's leftovers.
MAX_SKIPPED_LINES = 4
_MAX_SKIPPED_BYTES = 1 << 20


def audit_key_bytes(key: str | bytes | None) -> bytes | None:
    """The HMAC key as bytes (text is UTF-8), None for none; ValueError for an empty key."""
    if key is None:
        return None
    raw = key.encode() if isinstance(key, str) else bytes(key)
    if not raw:
        raise ValueError("the audit key is empty; unset it for an unkeyed (sha256) log")
    return raw


@dataclass(frozen=True, slots=True)
class _Link:
    """The end of the chain: the last record's seq, hash and kind (seq 0 before the first)."""

    seq: int
    hash: str
    kind: str = "file"


_START = _Link(0, GENESIS, "none")


@dataclass(frozen=True, slots=True)
class _Cached:
    """Where this process last left the live file: its identity and size, and the chain's end."""

    dev: int
    ino: int
    size: int
    link: _Link
    key: bytes | None  # the writer's key: another key must check the tail for itself


class _Request:
    """One queued append: its record, and once a leader has committed it, how that went."""

    __slots__ = ("body_json", "config", "done", "error", "kind", "promoted", "wake")

    def __init__(self, kind: Kind, body_json: bytes, config: object) -> None:
        self.kind = kind
        self.body_json = body_json
        self.config = config  # only writers of the same key, rotation and fsync share a batch
        self.done = False
        self.promoted = False  # made the next leader before its record was committed
        self.error: BaseException | None = None
        # Released once, by the leader that committed this record or made it the next leader:
        # each waiter has its own, so a batch wakes only its own writers.
        self.wake = threading.Lock()
        self.wake.acquire()


class _Shared:
    """Per live path and process: the lock every instance takes, the flock file, the cached tail,
    and the queue of appends waiting for a leader to commit them."""

    def __init__(self, lock_path: str) -> None:
        self.lock = threading.Lock()
        self.lock_path = lock_path
        self.lock_fd: int | None = None
        self.cached: _Cached | None = None
        self.queue: list[_Request] = []  # appends waiting for a leader, in arrival order
        self.queue_lock = threading.Lock()
        self.leading = False  # a leader is committing a batch; the next one it names follows

    def flock_fd(self) -> int:
        if self.lock_fd is None:
            self.lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
        return self.lock_fd


_registry_lock = threading.Lock()
_registry: dict[str, _Shared] = {}
# Counts the forks this process descends from: a descriptor opened in an ancestor is not this
# process's to append through. (os.getpid() would tell too, but it is a system call per append.)
_forks = 0


def _shared_for(real: str) -> _Shared:
    with _registry_lock:
        shared = _registry.get(real)
        if shared is None:
            shared = _registry[real] = _Shared(real + ".lock")
        return shared


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time would never be released in the child, and a
    # flock descriptor inherited from the parent is the parent's lock (flock locks belong to the
    # open file description): the child starts with fresh locks and descriptors of its own.
    global _registry_lock, _forks
    _registry_lock = threading.Lock()
    _forks += 1
    for shared in _registry.values():
        if shared.lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(shared.lock_fd)
    _registry.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pread_exact(fd: int, length: int, offset: int) -> bytes:
    parts: list[bytes] = []
    while length > 0:
        part = os.pread(fd, length, offset)
        if not part:
            break
        parts.append(part)
        length -= len(part)
        offset += len(part)
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class _Tail:
    """The end of a file: its last complete line (None if it has none) and any torn bytes."""

    last: bytes | None
    last_offset: int
    torn: bytes


def read_tail(fd: int, size: int) -> _Tail:
    """The last complete line and the bytes after it, read backwards from `size`."""
    buf = b""
    pos = size
    chunk = _CHUNK
    while True:
        start = max(0, pos - chunk)
        buf = _pread_exact(fd, pos - start, start) + buf
        pos = start
        end = buf.rfind(b"\n")
        if end != -1:
            before = buf.rfind(b"\n", 0, end)
            if before != -1 or pos == 0:
                return _Tail(buf[before + 1 : end + 1], pos + before + 1, buf[end + 1 :])
        elif pos == 0:
            return _Tail(None, 0, buf)
        chunk *= 2


def _lines_before(fd: int, offset: int) -> int:
    """How many newlines the file holds before `offset` (the 1-based line at offset, minus 1)."""
    count = 0
    pos = 0
    while pos < offset:
        block = os.pread(fd, min(1 << 20, offset - pos), pos)
        if not block:
            break
        count += block.count(b"\n")
        pos += len(block)
    return count


def _chained_fields(line: bytes) -> dict[str, object] | None:
    """A line's record fields if it is a chained record at all (JSON with `audit`); else None."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if isinstance(data, dict) and "audit" in data:
        return data
    return None


def _is_bare_json(line: bytes) -> bool:
    try:
        data = json.loads(line)
    except ValueError:
        return False
    return isinstance(data, dict) and "audit" not in data


class JsonlAuditLog:
    """Appends each decision as one hash-chained JSON line, fsynced before `append` returns
    (`append_record` appends review and appeal records to the same chain).

    `key` (text or bytes) makes every record's hash an HMAC-SHA256 under it (`alg: hmac-sha256`):
    without the key nobody can rewrite the log and recompute a chain that verifies.
    `rotate_bytes` starts a new live file (the old one renamed to `<name>.K`) before a record would
    take the live file past that size. Any number of instances, threads and processes may append
    to the same path. Raises ConfigurationError when the log on disk cannot be extended by this
    writer (the other alg, a record that does not verify under this key, unchained lines).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        key: str | bytes | None = None,
        rotate_bytes: int | None = None,
        fsync: bool = True,
    ) -> None:
        self.path = Path(path)
        self.fsync = fsync
        if rotate_bytes is not None and rotate_bytes < 1:
            raise ValueError(f"rotate_bytes must be a positive number of bytes, got {rotate_bytes}")
        self.rotate_bytes = rotate_bytes
        self._key = audit_key_bytes(key)
        self._alg = "hmac-sha256" if self._key is not None else "sha256"
        self._config = (self._key, rotate_bytes, fsync)
        self._real = os.path.realpath(self.path)
        self._fd: int | None = None
        self._fd_forks = -1  # the value of `_forks` when `_fd` was opened
        self._fd_file = (0, 0)  # the (st_dev, st_ino) of the file `_fd` is open on
        if self.path.is_dir():
            raise ConfigurationError([f"audit log {self.path}: is a directory, not a file"])
        if not self.path.parent.is_dir():
            raise ConfigurationError(
                [f"audit log {self.path}: the directory {self.path.parent} does not exist"]
            )
        self._check_existing()

    @property
    def keyed(self) -> bool:
        """True when records are HMAC-SHA256 under a key."""
        return self._key is not None

    def __repr__(self) -> str:
        return (
            f"JsonlAuditLog({str(self.path)!r}, keyed={self.keyed}, "
            f"rotate_bytes={self.rotate_bytes}, fsync={self.fsync})"
        )

    def append(self, decision: Decision) -> None:
        """Write one chained decision record; raises (OSError, ConfigurationError) if it could not
        be stored whole."""
        self._append("decision", json_bytes(decision))

    def append_record(self, record: Entry) -> None:
        """Write one chained record of any kind a log holds (a decision, a review verdict, an
        appeal), chained exactly as `append` chains decisions; raises as `append` does."""
        self._append(kind_of(record), json_bytes(record))

    def close(self) -> None:
        """Close this instance's descriptor (the next append opens it again)."""
        with _shared_for(self._real).lock:
            self._close_fd()

    # -- under the lock ----------------------------------------------------------------------

    def _locked(self, shared: _Shared | None = None) -> tuple[_Shared, int]:
        shared = shared or _shared_for(self._real)
        shared.lock.acquire()
        try:
            lock_fd = shared.flock_fd()
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
        except BaseException:
            shared.lock.release()
            raise
        return shared, lock_fd

    @staticmethod
    def _unlock(shared: _Shared, lock_fd: int) -> None:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
        finally:
            shared.lock.release()

    def _check_existing(self) -> None:
        """At construction: refuse a log this writer could not extend, before any decision."""
        if not self.path.exists() and self._newest_rotated() is None:
            return
        shared, lock_fd = self._locked()
        try:
            if not self.path.exists():
                self._predecessor_end()
                return
            fd = os.open(self.path, os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                if size:
                    base, _, start, _ = self._scan(fd, size)
                    if start < size:
                        self._leftovers(_pread_exact(fd, size - start, start), start, base)
                else:
                    self._predecessor_end()
            finally:
                os.close(fd)
        finally:
            self._unlock(shared, lock_fd)

    def _append(self, kind: Kind, body_json: bytes) -> None:
        shared = _shared_for(self._real)
        request = _Request(kind, body_json, self._config)
        with shared.queue_lock:
            shared.queue.append(request)
            lead = not shared.leading
            shared.leading = True
        if not lead:
            self._wait(shared, request)
        if not request.done:  # this thread leads: write what is queued, name the next, fsync
            self._commit(shared, request)
        if request.error is not None:
            # Every append of a failed batch raises (as concurrent.futures re-raises one
            # exception in every waiter): none of them may take its record for written.
            raise request.error

    @staticmethod
    def _wait(shared: _Shared, request: _Request) -> None:
        """Until a leader committed `request` or named it the next leader."""
        try:
            request.wake.acquire()
        except BaseException:  # interrupted: leave the queue, and never strand the leadership
            with shared.queue_lock:
                if request in shared.queue:
                    shared.queue.remove(request)
                promoted = request.promoted and not request.done
            if promoted:
                JsonlAuditLog._hand_over(shared)
            raise

    @staticmethod
    def _hand_over(shared: _Shared) -> None:
        """Name the oldest waiting append the next leader, or end the leadership."""
        with shared.queue_lock:
            if not shared.queue:
                shared.leading = False
                return
            following = shared.queue[0]
            following.promoted = True
        following.wake.release()

    def _commit(self, shared: _Shared, request: _Request) -> None:
        """Write every queued record of this writer's kind (key, rotation, fsync) as consecutive
        records, name the next leader, fsync, and mark each record done (with the error, if the
        write or the fsync failed).

        The next leader may write its batch while this one's fsync is under way (an fsync
        covers what was written before it started, so each batch still returns only after one
        that covered it): the disk gets overlapping fsyncs, as from writers that do not wait
        for each other, and the chain's order is still the order of the writes."""
        with shared.queue_lock:
            if len(shared.queue) == 1:  # a lone writer: its own record (the leader's is queued)
                batch, shared.queue = shared.queue, []
            else:
                batch = [r for r in shared.queue if r.config == request.config]
                shared.queue = [r for r in shared.queue if r.config != request.config]
        error: BaseException | None = None
        try:
            try:
                durable = self._write_batch(shared, batch)
            finally:
                self._hand_over(shared)
            if durable is not None:
                try:
                    _os_fsync(durable)
                finally:
                    os.close(durable)
        except BaseException as exc:
            error = exc
        for waiting in batch:
            waiting.error = error
            waiting.done = True
            if waiting is not request:
                waiting.wake.release()

    def _write_batch(self, shared: _Shared, batch: list[_Request]) -> int | None:
        """Write `batch` under the lock; a descriptor of its file to fsync (None without fsync),
        its own, since a rotation may close the writer's while the fsync runs."""
        _, lock_fd = self._locked(shared)
        try:
            fd = self._append_locked(shared, batch)
            return os.dup(fd) if self.fsync else None
        except BaseException:
            shared.cached = None  # whatever reached the file, the next writer re-reads it
            raise
        finally:
            self._unlock(shared, lock_fd)

    def _append_locked(self, shared: _Shared, batch: list[_Request]) -> int:
        """Write `batch` after the chain's end; the descriptor of the file it went to."""
        fd, st = self._open_live()
        cached = shared.cached
        if cached is not None and (cached.dev, cached.ino, cached.size, cached.key) == (
            st.st_dev,
            st.st_ino,
            st.st_size,
            self._key,
        ):
            link, size = cached.link, cached.size
        else:
            link, size = self._recover(fd, st.st_size)
        file: tuple[int, int] | None = (st.st_dev, st.st_ino)
        lines: list[bytes] = []
        for request in batch:
            line, following = self._encode(link, request.kind, request.body_json)
            if (
                self.rotate_bytes is not None
                and link.kind != "file"  # a file that holds only its header is not rotated
                and size + len(line) > self.rotate_bytes
            ):
                self._write_all(fd, b"".join(lines))
                lines.clear()
                fd, link, size = self._rotate(fd, link)
                file = None  # a new file, whose identity is read once it is written
                line, following = self._encode(link, request.kind, request.body_json)
            lines.append(line)
            size += len(line)
            link = following
        self._write_all(fd, lines[0] if len(lines) == 1 else b"".join(lines))
        if file is None:
            st = os.fstat(fd)
            file = (st.st_dev, st.st_ino)
        shared.cached = _Cached(*file, size, link, self._key)
        return fd

    def _encode(self, link: _Link, kind: Kind, body_json: str | bytes) -> tuple[bytes, _Link]:
        """The line of the record after `link`, and the link it makes."""
        line, digest = hashed_record(
            seq=link.seq + 1, prev=link.hash, kind=kind, body_json=body_json, key=self._key
        )
        return line, _Link(link.seq + 1, digest, kind)

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _open_live(self) -> tuple[int, os.stat_result]:
        """A descriptor on the current live file (created if missing) and its stat."""
        try:
            on_disk: os.stat_result | None = os.stat(self.path)
        except FileNotFoundError:
            on_disk = None
        if (
            self._fd is not None
            and self._fd_forks == _forks
            and on_disk is not None
            and (on_disk.st_dev, on_disk.st_ino) == self._fd_file
        ):
            # The path still names the file the descriptor is open on: its stat is the file's.
            return self._fd, on_disk
        # Rotated by another writer (or by us in another instance), deleted, or a forked child.
        self._close_fd()
        if on_disk is None:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, _FILE_MODE)
            _fsync_dir(self.path.parent)
        else:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        st = os.fstat(fd)
        self._fd, self._fd_forks, self._fd_file = fd, _forks, (st.st_dev, st.st_ino)
        return fd, st

    def _write_all(self, fd: int, data: bytes | bytearray) -> None:
        view = memoryview(data)
        while view:
            written = _os_write(fd, view)
            if written <= 0:
                raise OSError(errno.EIO, f"{self.path}: write stored nothing")
            view = view[written:]

    def _newest_rotated(self) -> Path | None:
        parent = self.path.parent
        best: tuple[int, Path] | None = None
        if parent.is_dir():
            for candidate in parent.iterdir():
                n = rotated_number(self.path, candidate)
                if n is not None and (best is None or n > best[0]):
                    best = (n, candidate)
        return best[1] if best else None

    def _predecessor_end(self) -> tuple[_Link, str | None]:
        """The chain's end in the newest rotated file, and its name; the start for a new log."""
        newest = self._newest_rotated()
        if newest is None:
            return _START, None
        fd = os.open(newest, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            tail = read_tail(fd, size) if size else _Tail(None, 0, b"")
        finally:
            os.close(fd)
        if tail.torn or tail.last is None:
            raise ConfigurationError(
                [
                    f"audit log {self.path}: cannot continue the chain of {newest}: it ends in "
                    f"{'a torn line' if tail.torn else 'no record'}; run `moderation audit "
                    f"verify {self.path}` and move the damaged files aside"
                ]
            )
        return self._link_of(tail.last, newest, tail.last_offset), newest.name

    def _link_of(self, line: bytes, file: Path, offset: int) -> _Link:
        """The chain's end at this complete line; ConfigurationError if this writer must not
        extend it (unchained, the other alg, does not verify under this writer's key)."""
        fields = _chained_fields(line)
        where = f"audit log {file} (the record at byte {offset})"
        if fields is None:
            what = "a bare decision line" if _is_bare_json(line) else "not an audit record"
            raise ConfigurationError(
                [
                    f"{where}: {what}: the file is not a chained audit log (an older format, or "
                    "damaged); move it aside (rename it) so that a new chained log starts"
                ]
            )
        alg = fields.get("alg")
        if alg != self._alg:
            mine = "has a key (MODERATION_AUDIT_KEY)" if self._key else "has no key"
            raise ConfigurationError(
                [
                    f"{where}: the log is chained with {alg} but this writer {mine}: refusing "
                    f"to mix {alg} and {self._alg} records in one chain"
                ]
            )
        signed = signed_prefix(line)
        seq, kind = fields.get("seq"), fields.get("kind")
        if signed is None or not isinstance(seq, int) or not isinstance(kind, str):
            raise ConfigurationError([f"{where}: not a complete audit record"])
        prefix, stated = signed
        if record_hash(prefix, self._key) != stated:
            why = "wrong MODERATION_AUDIT_KEY, or" if self._key else "the record was"
            raise ConfigurationError(
                [
                    f"{where}: the last record does not verify ({why} altered); run "
                    f"`moderation audit verify {file}`"
                ]
            )
        return _Link(seq, stated, kind)

    def _next_link(self, torn: bytes, base: _Link) -> _Link | None:
        """The link `torn` makes if it is a whole record (only its newline missing) that verifies
        as the record after `base`; None otherwise."""
        fields = _chained_fields(torn)
        signed = signed_prefix(torn)
        if fields is None or signed is None or fields.get("alg") != self._alg:
            return None
        prefix, stated = signed
        seq, kind = fields.get("seq"), fields.get("kind")
        if record_hash(prefix, self._key) != stated or not isinstance(kind, str):
            return None
        if seq != base.seq + 1 or fields.get("prev") != base.hash:
            return None
        return _Link(base.seq + 1, stated, kind)

    def _leftovers(self, region: bytes, start: int, base: _Link) -> _Link | None:
        """What a crash left after the last record (`region`, from byte `start`): the link it
        makes when it is the next record missing only its newline, else None (it is to be set
        aside). ConfigurationError when it is not what a crash leaves: a crash cuts one write of
        one record short, so the bytes never hold a whole record; whole records there were put
        there (records joined onto one line to pass them off as torn), and setting them aside
        would erase them from the chain."""
        if b"\n" not in region:
            completed = self._next_link(region, base)
            if completed is not None:
                return completed
        problem = not_a_crash(region)
        if problem is not None:
            raise ConfigurationError(
                [
                    f"audit log {self.path}: the {len(region)} bytes after its last record (from "
                    f"byte {start}) hold {problem}: a crash leaves at most one partial record, so "
                    "this is tampering, not a torn tail; refusing to append (setting them aside "
                    f"would erase those records from the chain); run `moderation audit verify "
                    f"{self.path}`"
                ]
            )
        return None

    def _header(self, link: _Link, continues: str | None) -> tuple[bytes, _Link]:
        body = FileHeader(
            created_at=datetime.now(UTC), continues=continues, engine_version=__version__
        )
        return self._encode(link, "file", body.model_dump_json())

    def _scan(self, fd: int, size: int) -> tuple[_Link, str | None, int, bytes | None]:
        """Where the chain ends in the live file: the last intact record's link (else the newest
        rotated file's, with its name), the offset at which unrecorded bytes start (`size` when
        there are none), and the last intact record's line (None if the file has none).

        Unrecorded bytes are a torn last line, possibly after a few lines that are not records at
        all (a torn line whose repair was itself cut short by a full disk); more than that is not
        a crash's leftovers, and this writer refuses the file rather than set it aside.
        """
        tail = read_tail(fd, size)
        start = size - len(tail.torn)
        last, last_offset, skipped = tail.last, tail.last_offset, 0
        while last is not None and _chained_fields(last) is None and not _is_bare_json(last):
            skipped += 1
            if skipped > MAX_SKIPPED_LINES or size - last_offset > _MAX_SKIPPED_BYTES:
                raise ConfigurationError(
                    [
                        f"audit log {self.path}: its last {skipped} lines are not audit records "
                        "(not a chained audit log, or damaged); run `moderation audit verify "
                        f"{self.path}` and move the file aside"
                    ]
                )
            start = last_offset
            before = read_tail(fd, last_offset)
            last, last_offset = before.last, before.last_offset
        if last is None:  # no intact record: the file's header never made it whole
            base, continues = self._predecessor_end()
            return base, continues, start, None
        return self._link_of(last, self.path, last_offset), None, start, last

    def _recover(self, fd: int, size: int) -> tuple[_Link, int]:
        """The chain's end in the live file after repairing what a crashed writer left, and the
        file's size after the repair. Appends only; never rewrites what is there."""
        if size == 0:  # new, or created by a writer that died before its header
            base, continues = self._predecessor_end()
            header, link = self._header(base, continues)
            self._write_all(fd, header)
            return link, len(header)
        base, continues, start, last = self._scan(fd, size)
        if start == size:
            return base, size
        region = _pread_exact(fd, size - start, start)
        completed = self._leftovers(region, start, base)
        if completed is not None:  # killed just before the newline: the record is whole
            self._write_all(fd, b"\n")
            return completed, size + 1
        # Kept in place and set aside: the note covers the bytes up to the newline ending them.
        terminated = region.endswith(b"\n")
        covered = region[:-1] if terminated else region
        if not covered:
            raise ConfigurationError(
                [f"audit log {self.path}: an empty line at byte {start} after its last record"]
            )
        note = TornNote(
            line=_lines_before(fd, start) + 1,
            offset=start,
            length=len(covered),
            sha256=hashlib.sha256(covered).hexdigest(),
            found_at=datetime.now(UTC),
        )
        record, link = self._encode(base, "torn", note.model_dump_json())
        repair = (b"" if terminated else b"\n") + record
        if last is None:  # set the torn bytes aside, then give the file its header
            header, link = self._header(link, continues)
            repair += header
        # One write: the newline that ends the torn bytes and the note that sets them aside
        # arrive together, or (on a full disk) as one torn region the next writer sets aside.
        self._write_all(fd, repair)
        return link, size + len(repair)

    def _rotate(self, fd: int, link: _Link) -> tuple[int, _Link, int]:
        """Rename the live file to `<name>.K` and start a new one continuing the chain."""
        newest = self._newest_rotated()
        number = 1 + ((rotated_number(self.path, newest) or 0) if newest is not None else 0)
        target = self.path.with_name(f"{self.path.name}.{number}")
        if self.fsync:
            _os_fsync(fd)
        os.rename(self.path, target)
        _fsync_dir(self.path.parent)
        self._close_fd()
        fd, _ = self._open_live()
        header, link = self._header(link, target.name)
        self._write_all(fd, header)
        return fd, link, len(header)
