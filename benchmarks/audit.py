"""File audit log throughput: appends per second, fsync on and off, one thread and eight.

    .venv/bin/python benchmarks/audit.py [--n 2000] [--context full|empty] [--dir DIR]

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
from pathlib import Path

from moderation.audit import JsonlAuditLog, verify_log
from moderation.decision import Decision
from moderation.testing import offline_engine

ROOT = Path(__file__).resolve().parent.parent
FULL_CONTEXT = {f"key{i:02d}": "x" * 256 for i in range(32)}


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
    args = parser.parse_args()
    decisions = _decisions(args.n, args.context == "full")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for fsync in (False, True):
            for threads in (1, 8):
                _run(Path(tmp), f"{fsync}-{threads}", decisions, threads, fsync)


if __name__ == "__main__":
    main()
