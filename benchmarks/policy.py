"""Policy load time: `PolicyStore(policies/)`, the startup cost a cold Lambda pays. Prints p50/p95.

    .venv/bin/python benchmarks/policy.py [--n 200] [DIRECTORY]

Not a test: nothing here asserts a time. Every sample builds a fresh store (read, parse, check,
resolve every file); the first call is a warm-up so imports and the taxonomy are not counted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import yaml

from moderation.policy import PolicyStore

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", default=str(ROOT / "policies"))
    parser.add_argument("--n", type=int, default=200, help="samples (default 200)")
    args = parser.parse_args()
    PolicyStore(args.directory)  # warm up
    samples = []
    for _ in range(args.n):
        start = time.perf_counter()
        store = PolicyStore(args.directory)
        samples.append(time.perf_counter() - start)
    samples.sort()
    p50 = statistics.median(samples) * 1e3
    p95 = samples[max(0, int(len(samples) * 0.95) - 1)] * 1e3
    files = 1 + len(store.tenants)
    print(
        f"policy load ({files} files, libyaml {'available' if yaml.__with_libyaml__ else 'absent'})"
        f": p50 {p50:.2f} ms   p95 {p95:.2f} ms   n={args.n}"
    )


if __name__ == "__main__":
    main()
