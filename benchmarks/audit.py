"""File audit log: appends per second against the disk's own concurrent fsync rate, and `verify`
against sha256 of the same lines; and the digest and verify of an S3 trail under moto, beside
listing and reading the same objects.

    .venv/bin/python benchmarks/audit.py [--n 2000] [--context full|empty] [--dir DIR]
                                         [--s3-records 10000]

Not a test: nothing here asserts a time. Each append run writes `n` decisions (a real offline
decision, with a full 32-key context by default: about 10 KB a line) to a fresh log in DIR
(default: a temporary directory; give one on the disk you deploy to, since fsync cost is the
disk's), then verifies the log, so a fast but broken writer cannot pass for a fast one. Beside
each fsynced run, the baseline: the same threads writing the same lines to a plain file, each
line followed by its own fsync (what the disk allows when nothing orders the writers); the runs
take turns, best of `--repeat` each. Then
`verify_log` (and `--deep`, which validates every decision) is timed over the log beside plain
sha256 of the same lines. Targets: appends >= 0.5 of the raw rate at 8 and 32 threads;
verify >= 0.3 of the sha256 rate.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from moderation.audit import JsonlAuditLog, verify_log
from moderation.audit._s3read import S3Store
from moderation.decision import Decision
from moderation.testing import offline_engine

ROOT = Path(__file__).resolve().parent.parent
FULL_CONTEXT = {f"key{i:02d}": "x" * 256 for i in range(32)}
THREADS = (1, 8, 32)
T = TypeVar("T")


def _decisions(n: int, full: bool) -> list[Decision]:
    engine = offline_engine(ROOT / "policies", ROOT / "examples/recordings")
    base = engine.moderate(ROOT / "examples/images/beach.jpg", context=FULL_CONTEXT if full else {})
    return [base.model_copy(update={"id": f"bench-{i:07d}"}) for i in range(n)]


def _threaded(items: list[T], threads: int, each: Callable[[T], None]) -> float:
    """Seconds for `threads` threads to call `each` on their share of `items`."""
    chunks = [items[t::threads] for t in range(threads)]

    def work(chunk: list[T]) -> None:
        for item in chunk:
            each(item)

    workers = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - start


def _raw(path: Path, lines: list[bytes], threads: int) -> float:
    """Appends/s of plain lines, each written and fsynced by itself, from `threads` threads."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def write(line: bytes) -> None:
        os.write(fd, line)
        os.fsync(fd)

    try:
        return len(lines) / _threaded(lines, threads, write)
    finally:
        os.close(fd)


def _append(path: Path, decisions: list[Decision], threads: int, fsync: bool) -> float:
    log = JsonlAuditLog(path, fsync=fsync)
    rate = len(decisions) / _threaded(decisions, threads, log.append)
    report = verify_log(path)
    if not report.ok or report.decisions != len(decisions):
        raise SystemExit(f"the benchmark's log does not verify: {report.summary()}")
    return rate


def _appends(directory: Path, decisions: list[Decision], repeat: int) -> Path:
    """Print the append figures (best of `repeat` runs each, taking turns with the raw
    baseline); return a log of all the decisions, for the verify figures."""
    probe = directory / "probe.jsonl"
    _append(probe, decisions[:50], 1, True)
    lines = probe.read_bytes().splitlines(keepends=True)[1:]
    lines = [lines[i % len(lines)] for i in range(len(decisions))]
    size = sum(map(len, lines)) / len(lines)
    print(f"audit append: {len(decisions)} records of {size / 1024:.1f} KiB each, best of {repeat}")
    for threads in THREADS:
        off = raw = on = 0.0
        for run in range(repeat):
            name = f"{threads}-{run}"
            off = max(off, _append(directory / f"nofsync-{name}.jsonl", decisions, threads, False))
            raw = max(raw, _raw(directory / f"raw-{name}.txt", lines, threads))
            on = max(on, _append(directory / f"fsync-{name}.jsonl", decisions, threads, True))
        print(
            f"  {threads:2d} thread{'s' if threads > 1 else ' '}  fsync on {on:8.0f} /s   raw "
            f"write+fsync {raw:8.0f} /s   ratio {on / raw:5.2f} (target >= 0.5)   "
            f"fsync off {off:8.0f} /s"
        )
    return directory / f"fsync-{THREADS[-1]}-0.jsonl"


def _best(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def _verify(path: Path, repeat: int) -> None:
    lines = path.read_bytes().splitlines(keepends=True)

    def sha256() -> None:
        for line in lines:
            hashlib.sha256(line).digest()

    def verify(deep: bool) -> None:
        report = verify_log(path, deep=deep)
        assert report.ok, report.summary()

    base = len(lines) / _best(repeat, sha256)
    fast = len(lines) / _best(repeat, lambda: verify(False))
    deep = len(lines) / _best(repeat, lambda: verify(True))
    print(f"audit verify: {len(lines)} lines, best of {repeat}")
    print(f"  sha256 of the lines  {base:9.0f} lines/s")
    print(f"  verify               {fast:9.0f} lines/s   ratio {fast / base:5.2f} (target >= 0.3)")
    print(f"  verify --deep        {deep:9.0f} lines/s   ratio {deep / base:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="appends per run (default 2000)")
    parser.add_argument("--context", choices=("full", "empty"), default="full")
    parser.add_argument("--dir", type=Path, help="where the logs go (default: a temporary dir)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, best kept")
    parser.add_argument(
        "--s3-records", type=int, default=10000, help="records of the S3 trail (0: not run)"
    )
    args = parser.parse_args()
    decisions = _decisions(args.n, args.context == "full")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        log = _appends(Path(tmp), decisions, args.repeat)
        _verify(log, args.repeat)
    if args.s3_records:
        _s3_trail(_decisions(args.s3_records, False))


def _timed(work: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def _read_all(store: S3Store) -> int:
    """Bytes of every record object: the least that digest and verify read."""
    total = 0
    for _, stored in store.fetch(store.records()):
        if isinstance(stored, Exception):
            raise stored
        total += len(stored.body)
    return total


def _s3_trail(decisions: list[Decision]) -> None:
    """Digest and verify of an S3 trail of `decisions` under moto (in this process), each beside
    the baseline of listing the trail and reading every object (what both must do at least)."""
    import os

    import boto3
    from moto import mock_aws

    from moderation.audit import S3AuditLog
    from moderation.audit._digest import write_digest
    from moderation.audit._s3verify import verify_s3

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[name] = "bench"
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="bench-audit")
        sink = S3AuditLog("bench-audit", "audit", client=client)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(sink.append, decisions))
        store = S3Store.open("s3://bench-audit/audit", client=client)
        read, _ = _timed(lambda: _read_all(store))
        key = b"bench key"
        digest, run = _timed(lambda: write_digest(store, key=key, settle=timedelta(0)))
        verify, report = _timed(lambda: verify_s3(store, key=key))
    n = len(decisions)
    if run.records != n or not report.ok or report.records != n:
        raise SystemExit(f"the benchmark's trail does not verify: {report.summary()}")
    baseline = f"list + read {n} objects (baseline)"
    print(f"s3 trail      {baseline}  {n / read:7.0f} objects/s  {read:6.2f} s")
    for what, elapsed in (("digest", digest), ("verify", verify)):
        print(
            f"s3 trail      {what} of {n} records               {n / elapsed:7.0f} records/s "
            f"{elapsed:6.2f} s  ({read / elapsed:.2f} of the baseline's rate)"
        )


if __name__ == "__main__":
    main()
