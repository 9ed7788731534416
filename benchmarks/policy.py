"""Policy load and reload: `PolicyStore(policies/)`, the startup cost a cold Lambda pays, and the
reload of an S3 prefix of 300 and 3,000 tenants (moto) in which one tenant changed.

    .venv/bin/python benchmarks/policy.py [--n 200] [--tenants 300 3000] [--runs 3] [DIRECTORY]

Not a test: nothing here asserts a time. Every load sample builds a fresh store (read, parse,
check, resolve every file); the first call is a warm-up so imports and the taxonomy are not
counted.

The reload figures are measured side by side in one run, on the same change each time:

- before: what a reload did until it read only what changed: a source that knows nothing (no
  ETags, no bytes) reads every object of the new version, then the store validates it whole;
- after: the store's own source, which gets only the objects whose ETag changed, then the same
  whole validation (`store.reload()`, the check a store runs in the background once its ttl has
  passed);
- the read that finds the ttl passed: `store.get` on the request path, which starts that check on
  a thread of its own and returns at once, beside a plain `store.get`.

moto is an in-process S3: its requests cost CPU here, not a network round trip, so the times are
a floor; the GET counts are exact (counted by botocore's before-call event).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from moderation.policy import PolicyStore, S3Source
from moderation.policy._build import build_version

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "bench-policies"
PREFIX = "prod"


def load_times(directory: str, n: int) -> None:
    PolicyStore(directory)  # warm up
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        store = PolicyStore(directory)
        samples.append(time.perf_counter() - start)
    samples.sort()
    p50 = statistics.median(samples) * 1e3
    p95 = samples[max(0, int(len(samples) * 0.95) - 1)] * 1e3
    files = 1 + len(store.tenants)
    print(
        f"policy load ({files} files, libyaml {'available' if yaml.__with_libyaml__ else 'absent'})"
        f": p50 {p50:.2f} ms   p95 {p95:.2f} ms   n={n}"
    )


class Gets:
    """GetObject requests a client sent."""

    def __init__(self, client: Any) -> None:
        self.n = 0
        client.meta.events.register("before-call.s3.GetObject", self._count)

    def _count(self, **_: Any) -> None:
        self.n += 1


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def tenant_text(i: int, reject: int = 80) -> bytes:
    shipped = sorted((ROOT / "policies/tenants").glob("*.yaml"))
    body = shipped[i % len(shipped)].read_text()
    return f"# tenant {i}, after {shipped[i % len(shipped)].name}\n{body}".encode() + (
        f"\n# revision {reject}\n".encode()
    )


def upload(client: Any, tenants: int) -> None:
    client.create_bucket(Bucket=BUCKET)
    default = (ROOT / "policies/default.yaml").read_bytes()
    client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/default.yaml", Body=default)
    for i in range(tenants):
        key = f"{PREFIX}/tenants/t{i:05}.yaml"
        client.put_object(Bucket=BUCKET, Key=key, Body=tenant_text(i))


def reload_figures(client: Any, tenants: int, runs: int) -> None:
    """One tenant changed, `runs` times: the full re-read beside the reload of what changed."""
    gets = Gets(client)
    now = [0.0]
    store = PolicyStore.load(
        f"s3://{BUCKET}/{PREFIX}", s3_client=client, ttl=60, clock=lambda: now[0]
    )
    assert len(store.tenants) == tenants
    before: list[tuple[float, int, float]] = []
    after: list[tuple[float, int]] = []
    for run in range(runs):
        known = store.version
        key = f"{PREFIX}/tenants/t{run * 7 % tenants:05}.yaml"
        client.put_object(Bucket=BUCKET, Key=key, Body=tenant_text(run, 81 + run))
        # before: a source with nothing read reads the whole new version, validated whole.
        fresh = S3Source(BUCKET, PREFIX, client=client)
        gets.n = 0
        start = time.perf_counter()
        snapshot = fresh.fetch(known)
        assert snapshot is not None
        validation = timed(lambda snapshot=snapshot: build_version(snapshot.files, None))
        before.append((time.perf_counter() - start, gets.n, validation))
        # after: the store's own source, which knows every other object's ETag.
        gets.n = 0
        took = timed(store.reload)
        assert store.version != known
        assert store.last_error is None
        after.append((took, gets.n))
    full = statistics.median(t for t, _, _ in before)
    reload = statistics.median(t for t, _ in after)
    check = statistics.median(v for _, _, v in before)
    print(
        f"S3 reload, {tenants:,} tenants, 1 changed (moto, median of {runs}):"
        f" before {full:.2f} s, {before[0][1]:,} GETs;"
        f" now {reload:.2f} s, {after[0][1]} GET ({reload / full:.2f} of before);"
        f" of which validating the whole version {check:.2f} s"
    )
    # The read that finds the ttl passed, on the request path, beside a plain read: three
    # times, the first with a change to read (the others find the prefix unchanged).
    plain = statistics.median(timed(lambda: store.get("t00001")) for _ in range(200))
    client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/tenants/t00002.yaml", Body=tenant_text(2, 99))
    known = store.version
    hits, checks = [], []
    for _ in range(3):
        now[0] += 60
        hits.append(timed(lambda: store.get("t00001")))
        checks.append(timed(store.wait_for_check))
    assert store.version != known
    print(
        f"  the read that finds the ttl passed: median {statistics.median(hits) * 1e6:.0f} µs,"
        f" max {max(hits) * 1e6:.0f} µs of 3 (a plain read: {plain * 1e6:.1f} µs); the check it"
        f" started ran {checks[0]:.2f} s on its own thread"
    )


def s3_reloads(tenant_counts: list[int], runs: int) -> None:
    import boto3
    from moto import mock_aws

    for tenants in tenant_counts:
        with mock_aws():
            client = boto3.client("s3", region_name="us-east-1")
            start = time.perf_counter()
            upload(client, tenants)
            print(f"(uploaded {tenants:,} tenants to moto in {time.perf_counter() - start:.1f} s)")
            reload_figures(client, tenants, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", default=str(ROOT / "policies"))
    parser.add_argument("--n", type=int, default=200, help="load samples (default 200)")
    parser.add_argument(
        "--tenants", type=int, nargs="*", default=[300, 3000], help="S3 reloads (300 3000)"
    )
    parser.add_argument("--runs", type=int, default=3, help="reloads per size (default 3)")
    args = parser.parse_args()
    load_times(args.directory, args.n)
    s3_reloads(args.tenants, args.runs)


if __name__ == "__main__":
    main()
