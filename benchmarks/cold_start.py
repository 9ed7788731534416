"""Cold start, before and after in one run: fresh interpreters importing, loading, deciding.

    python benchmarks/cold_start.py [--before REV] [--runs N]

Each figure is the median over N fresh interpreters (a Lambda cold start, a CLI run) of:
- `import moderation` alone, beside `import boto3` for scale;
- import + `PolicyStore("policies")` (parse and check every shipped policy);
- import + load + the first `Engine.moderate()` of a 100 KB JPEG with a recorded detector.

`--before REV` (default: the last commit before the pure-core restructure) checks REV out into a
temporary git worktree and measures it with the same interpreter, so both rows come from the same
machine in the same minute. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "8be5040"  # the engine as it was before this round of hardening

IMPORT = "import moderation"
LOAD = IMPORT + "\nmoderation.PolicyStore('policies')"
# A recorded detector keyed by the image's sha256: the whole first decision, with no network.
DECIDE = """
import hashlib, io, random
from PIL import Image
import moderation
from moderation.testing import RecordedDetector, Recordings
from moderation.audit import InMemoryAuditLog
rng = random.Random(7)
im = Image.effect_noise((600, 400), 60).convert('RGB')
buf = io.BytesIO(); im.save(buf, 'JPEG', quality=85); data = buf.getvalue()
clean = {'ModerationLabels': [], 'ModerationModelVersion': '7.0'}
recorded = Recordings.of({data: {'detect_moderation_labels': clean}})
store = moderation.PolicyStore('policies')
engine = moderation.Engine(store, RecordedDetector(recorded), audit=InMemoryAuditLog())
engine.moderate(data)
"""
TIMED = """
import time
_t0 = time.perf_counter()
{body}
print((time.perf_counter() - _t0) * 1000)
"""


def run(code: str, cwd: Path, runs: int) -> float:
    """Median wall milliseconds of `code` in `runs` fresh interpreters started in `cwd`."""
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", TIMED.format(body=code)],
            cwd=cwd,
            env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            text=True,
            check=True,
        )
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def checkout(rev: str, into: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(into), rev], check=True
    )
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="revision to compare with")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    print(f"cold start, median of {args.runs} fresh interpreters (ms)")
    boto = run("import boto3", ROOT, args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        old = checkout(args.before, Path(tmp) / "before")
        try:
            # Compile once so neither side pays for writing .pyc files in the measured runs.
            for tree in (old, ROOT):
                subprocess.run(
                    [sys.executable, "-m", "compileall", "-q", str(tree / "moderation")],
                    check=True,
                )
            rows = [
                ("import moderation", IMPORT),
                ("import + load 5 policies", LOAD),
                ("import + load + first decision", DECIDE),
            ]
            print(f"{'':<34}{'before':>10}{'after':>10}")
            for name, code in rows:
                before = run(code, old, args.runs)
                after = run(code, ROOT, args.runs)
                print(f"{name:<34}{before:>10.1f}{after:>10.1f}")
            print(f"{'import boto3 (for scale)':<34}{boto:>10.1f}{boto:>10.1f}")
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=True
            )


if __name__ == "__main__":
    main()
