"""File audit log throughput: appends per second, fsync on and off, one thread and eight; and
the digest and verify of an S3 trail under moto, beside listing and reading the same objects.

    .venv/bin/python benchmarks/audit.py [--n 2000] [--context full|empty] [--dir DIR]
                                         [--s3-records 10000]

Not a test: nothing here asserts a time. Each run appends `n` decisions (a real offline decision,
with a full 32-key context by default: about 10 KB a line) to a fresh log in DIR (default: a
temporary directory; give one on the disk you deploy to, since fsync cost is the disk's), then
verifies the log, so a fast but broken writer cannot pass for a fast one.
"""

from __future__ import annotations

import argparse
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
T = TypeVar("T")


def _decisions(n: int, full: bool) -> list[Decision]:
    engine = offline_engine(ROOT / "policies", ROOT / "examples/recordings")
    base = engine.moderate(ROOT / "examples/images/beach.jpg", context=FULL_CONTEXT if full else {})
    return [base.model_copy(update={"id": f"bench-{i:07d}"}) for i in range(n)]


def _run(directory: Path, name: str, decisions: list[Decision], threads: int, fsync: bool) -> None:
    path = directory / f"{name}.jsonl"
    log = JsonlAuditLog(path, fsync=fsync)
    chunks = [decisions[t::threads] for t in range(threads)]

    def work(chunk: list[Decision]) -> None:
        for decision in chunk:
            log.append(decision)

    workers = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    report = verify_log(path)
    if not report.ok or report.decisions != len(decisions):
        raise SystemExit(f"the benchmark's log does not verify: {report.summary()}")
    size = path.stat().st_size / len(decisions)
    n = len(decisions)
    mode = f"fsync {'on ' if fsync else 'off'}  {threads} thread{'s' if threads > 1 else ' '}"
    print(
        f"audit append  {mode}  {n / elapsed:9.0f} appends/s   {elapsed / n * 1e6:8.1f} us each"
        f"   ({size / 1024:.1f} KiB a line)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="appends per run (default 2000)")
    parser.add_argument("--context", choices=("full", "empty"), default="full")
    parser.add_argument("--dir", type=Path, help="where the logs go (default: a temporary dir)")
    parser.add_argument(
        "--s3-records", type=int, default=10000, help="records of the S3 trail (0: not run)"
    )
    args = parser.parse_args()
    decisions = _decisions(args.n, args.context == "full")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for fsync in (False, True):
            for threads in (1, 8):
                _run(Path(tmp), f"{fsync}-{threads}", decisions, threads, fsync)
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
