"""Throughput at the account quota: `moderate_many` against an endpoint that enforces one.

    .venv/bin/python benchmarks/throughput.py [--images 2000] [--sequential N] [--tps 50]
                                              [--latency 0.2] [--workers 16]

Not a test: nothing here asserts a time. A local 127.0.0.1 endpoint speaks Rekognition's real
DetectModerationLabels wire format (the whole botocore path runs: serialisation, signing, the
connection pool, error parsing) and behaves like the service at its quota: every accepted request
is answered after `--latency` seconds, and a server-side token bucket of `--tps` requests per
second holding one second of them refuses anything above it with a ThrottlingException, at once.
Every image is distinct (its pixels encode its index), so nothing is answered twice by a cache.

Three runs, each on a fresh engine, client and server bucket:

(a) `Engine.moderate_many` with `rekognition_tps` at the quota and `--workers` threads;
(b) a naive loop of `Engine.moderate`, one image after another, no rate limit: the baseline;
(c) `moderate_many` with `rekognition_tps` at twice the quota: the limiter must find the quota
    from the throttles (AIMD: back off on a throttle, creep back up while none comes).

For each: images/s, the fraction of the quota used (requests the server accepted per second /
`--tps`), throttled requests (of all requests sent, retries included) and the images left without
a decision. Targets: >= 90 % of the quota, throttled < 1 %, 0 undecided.

Why 16 workers are enough: by Little's law the requests in flight are rate x latency, 50/s x
0.2 s = 10, so 10 threads waiting on answers keep the quota busy; the other 6 absorb the client's
own time per image (intake, triage, audit) and jitter. More threads would only queue at the
limiter.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from moderation import Engine, PolicyStore
from moderation.audit import InMemoryAuditLog
from moderation.aws.rekognition import RekognitionDetector
from moderation.testing.endpoint import DETECT, AWSEndpoint, Recorded, Reply

#: Every label is allowed (or below every band), no judge: each image is approved by policy, so
#: the figures are the detector's path and nothing else.
POLICY = """
min_confidence: 50
default: {reject: 90, escalate: 60}
categories:
  Alcohol: allow
escalation: {judge: none}
"""

#: What the endpoint answers for every image: a drink, which the policy allows.
RESPONSE: dict[str, Any] = {
    "ModerationLabels": [
        {"Name": "Alcoholic Beverages", "ParentName": "Alcohol", "TaxonomyLevel": 2,
         "Confidence": 88.5},
        {"Name": "Alcohol", "ParentName": "", "TaxonomyLevel": 1, "Confidence": 88.5},
    ],
    "ModerationModelVersion": "7.0",
}  # fmt: skip

TARGET_QUOTA = 0.90
TARGET_THROTTLED = 0.01
SIDE = 80  # pixels: the smallest side the intake accepts


class Quota:
    """The service side of a quota: a token bucket of `tps` requests per second that holds
    `capacity_s` seconds of them and starts full. A request that finds a token is answered after
    `latency` seconds; one that does not is throttled at once, as the service refuses it before
    doing any work. Counts both, with the time of each."""

    def __init__(
        self,
        tps: float,
        latency: float,
        *,
        capacity_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tps = tps
        self.latency = latency
        self.capacity = max(1.0, tps * capacity_s)
        self._clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """A full bucket and no requests: as after a quiet spell."""
        with self._lock:
            self._tokens = self.capacity
            self._stamp = self._clock()
            self.start = self._stamp
            self.accepted: list[float] = []  # seconds since reset, one per accepted request
            self.throttled: list[float] = []

    def __call__(self, request: Recorded) -> Reply:
        """The endpoint's answer to one DetectModerationLabels request."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.tps)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                self.accepted.append(now - self.start)
                return Reply(body=RESPONSE, delay=self.latency)
            self.throttled.append(now - self.start)
        return Reply.throttle("Rate exceeded")


def make_images(n: int, offset: int = 0) -> list[bytes]:
    """`n` distinct 80x80 greyscale PNGs: the first four pixels are the image's index."""
    images = []
    blank = bytes(SIDE * SIDE - 4)
    for i in range(offset, offset + n):
        im = Image.frombytes("L", (SIDE, SIDE), i.to_bytes(4, "big") + blank)
        buffer = io.BytesIO()
        im.save(buffer, "PNG")
        images.append(buffer.getvalue())
    return images


@dataclass
class Run:
    """What one run did, seen from both ends."""

    name: str
    images: int
    elapsed: float
    outcomes: Counter[str]
    errors: Counter[str]
    accepted: list[float]
    throttled: list[float]
    limiter: Any = None  # LimiterStats when the limiter keeps them
    note: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.images / self.elapsed

    @property
    def undecided(self) -> int:
        return self.images - sum(self.outcomes.values())

    @property
    def requests(self) -> int:
        return len(self.accepted) + len(self.throttled)

    def quota_used(self, tps: float) -> float:
        return len(self.accepted) / self.elapsed / tps

    def throttled_share(self) -> float:
        return len(self.throttled) / self.requests if self.requests else 0.0


class Bench:
    """One endpoint for every run; a fresh engine, client and server bucket for each."""

    def __init__(self, aws: AWSEndpoint, quota: Quota, workers: int) -> None:
        self.aws = aws
        self.quota = quota
        self.workers = workers
        self.store = PolicyStore.from_sources({"default": POLICY})
        self.warm = make_images(1, offset=10**9)[0]

    def engine(self, tps: float | None) -> Engine:
        # One attempt per botocore call: the adapter owns retries, so the limiter sees them all.
        client = self.aws.client(
            "rekognition",
            retries={"total_max_attempts": 1},
            max_pool_connections=self.workers,
        )
        engine = Engine(
            self.store, RekognitionDetector(client), None, InMemoryAuditLog(), rekognition_tps=tps
        )
        engine.moderate(self.warm)  # connection, service model, first-call costs: not timed
        return engine

    def run(self, name: str, engine: Engine, images: list[bytes], batch: bool) -> Run:
        outcomes: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        stats = getattr(engine.rekognition_limiter, "stats", None)
        before = stats() if callable(stats) else None  # after the warm-up call
        self.quota.reset()
        start = time.perf_counter()
        if batch:
            for item in engine.moderate_many(images, max_workers=self.workers):
                if item.decision is not None:
                    outcomes[item.decision.outcome.value] += 1
                else:
                    errors[_describe(item.error)] += 1
        else:
            for image in images:
                try:
                    outcomes[engine.moderate(image).outcome.value] += 1
                except Exception as exc:  # counted as undecided, as a batch item would be
                    errors[_describe(exc)] += 1
        elapsed = time.perf_counter() - start
        return Run(
            name=name,
            images=len(images),
            elapsed=elapsed,
            outcomes=outcomes,
            errors=errors,
            accepted=list(self.quota.accepted),
            throttled=list(self.quota.throttled),
            limiter=_delta(before, stats()) if callable(stats) else None,
        )


def _delta(before: Any, after: Any) -> Any:
    """The limiter's counters for the run alone (the warm-up call left out), its rate at the end."""
    if before is None:
        return after
    return dataclasses.replace(
        after,
        acquired=after.acquired - before.acquired,
        succeeded=after.succeeded - before.succeeded,
        throttles=after.throttles - before.throttles,
        decreases=after.decreases - before.decreases,
        waited_s=after.waited_s - before.waited_s,
    )


def _describe(error: BaseException | None) -> str:
    return f"{type(error).__name__}: {error}"[:160]


def _mark(ok: bool) -> str:
    return "ok  " if ok else "MISS"


def report(run: Run, tps: float, *, targets: bool) -> None:
    quota = run.quota_used(tps)
    share = run.throttled_share()
    print(f"\n{run.name}")
    if run.note:
        print(f"  {run.note}")
    print(f"  {run.images} images in {run.elapsed:.1f} s: {run.rate:.1f} images/s")
    line = f"  quota used      {quota:7.1%}  ({len(run.accepted) / run.elapsed:.1f} accepted/s)"
    print(
        line
        + (f"   target >= {TARGET_QUOTA:.0%}  {_mark(quota >= TARGET_QUOTA)}" if targets else "")
    )
    line = f"  throttled       {len(run.throttled):7d}  ({share:.2%} of {run.requests} requests)"
    print(
        line
        + (
            f"   target < {TARGET_THROTTLED:.0%}   {_mark(share < TARGET_THROTTLED)}"
            if targets
            else ""
        )
    )
    print(f"  undecided       {run.undecided:7d}   target 0      {_mark(run.undecided == 0)}")
    print(f"  outcomes        {dict(run.outcomes)}")
    for error, count in run.errors.most_common(3):
        print(f"    {count} x {error}")
    stats = run.limiter
    if stats is not None:
        print(
            f"  limiter         rate {stats.rate:.1f}/{stats.max_rate:g} per {stats.per:g} s at the"
            f" end, {stats.acquired} acquired, {stats.throttles} throttles reported,"
            f" {stats.decreases} decreases, {stats.waited_s:.1f} s waited in all"
        )
    for key, value in run.extra.items():
        print(f"  {key:<15} {value}")


def settled(run: Run, after: float) -> str:
    """Accepted per second and the throttled share once the first `after` seconds are over."""
    if run.elapsed <= after:
        return f"the run was shorter than {after:g} s"
    accepted = sum(1 for t in run.accepted if t >= after)
    throttled = sum(1 for t in run.throttled if t >= after)
    share = throttled / (accepted + throttled) if accepted + throttled else 0.0
    return (
        f"after the first {after:g} s: {accepted / (run.elapsed - after):.1f} accepted/s,"
        f" {throttled} throttled ({share:.2%} of {accepted + throttled} requests)"
    )


def timeline(run: Run, step: float) -> str:
    """Requests accepted per second, and throttles, in windows of `step` seconds (the last one
    as long as what is left of the run)."""
    windows = max(1, math.ceil(run.elapsed / step))
    if windows > 1 and run.elapsed - (windows - 1) * step < step / 2:
        windows -= 1  # a short tail (the last answers coming in) joins the window before it
    accepted = Counter(min(windows - 1, int(t // step)) for t in run.accepted)
    throttled = Counter(min(windows - 1, int(t // step)) for t in run.throttled)
    spans = [step] * (windows - 1) + [run.elapsed - (windows - 1) * step]
    return "  ".join(
        f"{accepted[w] / span:.0f}" + (f" ({throttled[w]} T)" if throttled[w] else "")
        for w, span in enumerate(spans)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="images per run (default 2000)")
    parser.add_argument(
        "--sequential",
        type=int,
        default=None,
        metavar="N",
        help="images for the sequential loop (default: all; at 5 images/s 2000 take ~400 s)",
    )
    parser.add_argument("--tps", type=float, default=50.0, help="the quota (default 50/s)")
    parser.add_argument(
        "--latency", type=float, default=0.2, help="seconds per accepted request (default 0.2)"
    )
    parser.add_argument("--workers", type=int, default=16, help="moderate_many threads (16)")
    args = parser.parse_args()
    if args.images < 1 or args.tps <= 0 or args.latency < 0 or args.workers < 1:
        parser.error("--images and --workers must be >= 1, --tps > 0, --latency >= 0")
    sequential = args.images if args.sequential is None else min(args.sequential, args.images)
    if sequential < 1:
        parser.error("--sequential must be >= 1")

    in_flight = args.tps * args.latency
    print(
        f"throughput at a {args.tps:g}/s quota, {args.latency * 1000:.0f} ms per request "
        f"({os.cpu_count()} cores): {args.images} distinct {SIDE}x{SIDE} PNGs; "
        f"{args.workers} workers for {args.tps:g}/s x {args.latency:g} s = {in_flight:.0f} "
        "requests in flight"
    )
    print(
        "the server's bucket starts full (one second of the quota), so a run of T seconds can use"
        " up to 1 + 1/T of it"
    )
    images = make_images(args.images)
    quota = Quota(args.tps, args.latency)
    with AWSEndpoint(default_detect=quota) as aws:
        bench = Bench(aws, quota, args.workers)
        a = bench.run(
            f"(a) moderate_many, {args.workers} workers, rekognition_tps={args.tps:g}",
            bench.engine(args.tps),
            images,
            batch=True,
        )
        if a.limiter is None:
            a.note = (
                "WARNING: the engine's RateLimiter keeps no stats (the placeholder that does not"
                " limit?): these figures are not the limiter's"
            )
        a.extra["per 5 s"] = "accepted/s (throttles): " + timeline(a, 5.0)
        report(a, args.tps, targets=True)

        b = bench.run(
            "(b) sequential loop of moderate(), no rate limit",
            bench.engine(None),
            images[:sequential],
            batch=False,
        )
        if sequential < args.images:
            b.note = (
                f"the first {sequential} of the {args.images} images only (--sequential "
                f"{sequential}): images/s is theirs"
            )
        b.extra["ratio"] = f"moderate_many is {a.rate / b.rate:.1f}x the sequential loop"
        report(b, args.tps, targets=False)

        c = bench.run(
            f"(c) moderate_many, {args.workers} workers, rekognition_tps={2 * args.tps:g}"
            " (2x the quota)",
            bench.engine(2 * args.tps),
            images,
            batch=True,
        )
        c.extra["per 5 s"] = "accepted/s (throttles): " + timeline(c, 5.0)
        c.extra["settled"] = settled(c, 5.0)
        report(c, args.tps, targets=True)
        if unexpected := aws.unexpected:
            raise SystemExit(f"the endpoint got {len(unexpected)} requests it did not expect")
        if aws.count(DETECT) < a.requests + b.requests + c.requests:
            raise SystemExit("the endpoint counted fewer requests than the runs")


if __name__ == "__main__":
    main()
