"""Throughput at the account quota, with and without a rate configured, against an endpoint
that enforces one.

    .venv/bin/python benchmarks/throughput.py [--quick] [--images 1000] [--tps 50]
                                              [--latency 0.2] [--sequential 40]
                                              [--judged-images 2000] [--judged-only | --no-judged]

Not a test: nothing here asserts a time. A local 127.0.0.1 endpoint speaks Rekognition's real
DetectModerationLabels wire format (the whole botocore path runs: serialisation, signing, the
connection pool, error parsing) and behaves like the service at its quota: every accepted request
is answered after `--latency` seconds, and a server-side token bucket of `--tps` requests per
second holding one second of them refuses anything above it with a ThrottlingException, at once.
Every image is distinct (its pixels encode its index), so nothing is answered twice by a cache.

Each run has a fresh engine, client and server bucket:

(a) the reference: `moderate_many`, 16 workers, `rekognition_tps` at the quota: what this
    machine gets through when the limiter knows the quota;
(b) NOTHING configured (the engine's default limiter finds the quota by itself): `moderate_many`
    at 4, 16, 64 and 256 workers, your own 64 threads calling `moderation.moderate()`, 1,000
    `amoderate` calls gathered at once, and `moderation check` (the CLI, in a subprocess, on a
    directory of the images, without `--rate`);
(c) what 4 workers can do at all: 4 workers at 200 ms a call are 20 requests/s at most, under the
    quota, so their baseline is the same 4 workers with the rate set at the quota (it never holds
    them back);
(d) `moderate_many`, 16 workers, `rekognition_tps` at twice the quota;
(e) a loop of `moderate()`, one image after another: the sequential baseline;
(f) one image in ten escalated to a judge: the same endpoint also speaks Bedrock's Converse, with
    a quota of 60 or of 600 requests per minute and 2-5 s per answer, and the engine's rates are
    set at both quotas. `moderate_many` (16 workers), `amoderate` calls gathered at once and
    `moderation check` (the stages: the judge holds no detection thread), beside the same
    engine's `moderate()` on 16 threads of the caller's (the judge inside each call, as every
    way of moderating many images was before the stages).

For each: images/s, the requests the server accepted per second as a ratio of the quota and of
run (a) (measured in the same invocation), throttled requests (of all requests sent, retries
included) and the images left without a decision. Targets: >= 90 % of the quota (for 4 workers,
of their baseline (c)), <= 1 % throttled, 0 undecided. For (f): Rekognition's accepted requests
per second while images remained to be detected, over its quota (>= 90 %); the total time over
the ideal the quotas allow, max(images / TPS, escalations / RPM) plus one detection's latency and
one judgment's mean latency (<= 1.10); 0 undecided.

`--quick` runs a third of the images (the ramp from the default starting rate then weighs more),
and a third of `--judged-images` for (f). At 60 requests per minute each (f) run takes as long as
its escalations need (2,000 images: about 205 s), so the full benchmark runs for about 20 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import functools
import hashlib
import io
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

import moderation
from moderation import Engine, PolicyStore
from moderation.audit import InMemoryAuditLog
from moderation.aws.bedrock import BedrockJudge
from moderation.aws.rekognition import RekognitionDetector
from moderation.testing.endpoint import AWSEndpoint, Recorded, Reply

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
        answer: Callable[[Recorded], Any] = lambda request: RESPONSE,
        delay: Callable[[], float] | None = None,
    ) -> None:
        """`answer`: the body for an accepted request; `delay`: its latency when not fixed."""
        self.tps = tps
        self.latency = latency
        self.capacity = max(1.0, tps * capacity_s)
        self._clock = clock
        self._answer = answer
        self._delay = delay
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
                delay = self.latency if self._delay is None else self._delay()
                return Reply(body=self._answer(request), delay=delay)
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

    @property
    def accepted_rate(self) -> float:
        return len(self.accepted) / self.elapsed

    def throttled_share(self) -> float:
        return len(self.throttled) / self.requests if self.requests else 0.0


#: How one run moderates its images: (engine, images, outcomes, errors), counting each.
How = Callable[[Engine, list[bytes], Counter[str], Counter[str]], None]


class Bench:
    """One endpoint for every run; a fresh engine, client and server bucket for each."""

    def __init__(self, aws: AWSEndpoint, quota: Quota) -> None:
        self.aws = aws
        self.quota = quota
        self.store = PolicyStore.from_sources({"default": POLICY})
        self.warm = make_images(1, offset=10**9)[0]

    def engine(self, tps: float | None, workers: int) -> Engine:
        """An engine on a client with a pool for `workers` and one attempt per botocore call
        (the adapter owns retries, so the limiter sees them all); `tps` None: nothing set."""
        client = self.aws.client(
            "rekognition", retries={"total_max_attempts": 1}, max_pool_connections=workers
        )
        engine = Engine(
            self.store, RekognitionDetector(client), None, InMemoryAuditLog(), rekognition_tps=tps
        )
        engine.moderate(self.warm)  # connection, service model, first-call costs: not timed
        return engine

    def run(self, name: str, engine: Engine, images: list[bytes], how: How) -> Run:
        outcomes: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        stats = getattr(engine.rekognition_limiter, "stats", None)
        before = stats() if callable(stats) else None  # after the warm-up call
        self.quota.reset()
        start = time.perf_counter()
        how(engine, images, outcomes, errors)
        elapsed = time.perf_counter() - start
        engine.close()
        after = stats() if callable(stats) else None
        return self.result(name, len(images), elapsed, outcomes, errors, _delta(before, after))

    def result(
        self,
        name: str,
        images: int,
        elapsed: float,
        outcomes: Counter[str],
        errors: Counter[str],
        limiter: Any = None,
    ) -> Run:
        return Run(
            name=name,
            images=images,
            elapsed=elapsed,
            outcomes=outcomes,
            errors=errors,
            accepted=list(self.quota.accepted),
            throttled=list(self.quota.throttled),
            limiter=limiter,
        )


# -- the ways a user moderates many images ---------------------------------------------------


def batch(workers: int) -> How:
    """`Engine.moderate_many` on `workers` threads."""

    def how(engine: Engine, images: list[bytes], outcomes: Counter[str], errors: Counter[str]):
        for item in engine.moderate_many(images, max_workers=workers):
            if item.decision is not None:
                outcomes[item.decision.outcome.value] += 1
            else:
                errors[_describe(item.error)] += 1

    return how


def loop(engine: Engine, images: list[bytes], outcomes: Counter[str], errors: Counter[str]):
    """One `moderate()` after another."""
    for image in images:
        _count(functools.partial(engine.moderate, image), outcomes, errors)


def own_threads(threads: int) -> How:
    """The caller's own thread pool calling the module-level `moderation.moderate()`."""

    def how(engine: Engine, images: list[bytes], outcomes: Counter[str], errors: Counter[str]):
        moderation.configure(engine)
        try:
            _in_threads(threads, moderation.moderate, images, outcomes, errors)
        finally:
            moderation.configure(None)

    return how


def _in_threads(
    threads: int,
    moderate: Callable[[bytes], Any],
    images: list[bytes],
    outcomes: Counter[str],
    errors: Counter[str],
) -> None:
    """`moderate` on every image from a pool of `threads`, counting outcomes and errors."""
    lock = threading.Lock()

    def one(image: bytes) -> None:
        mine: Counter[str] = Counter()
        failed: Counter[str] = Counter()
        _count(functools.partial(moderate, image), mine, failed)
        with lock:
            outcomes.update(mine)
            errors.update(failed)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, images))


def gathered(engine: Engine, images: list[bytes], outcomes: Counter[str], errors: Counter[str]):
    """Every image's `amoderate` awaited at once (`asyncio.gather`)."""

    async def everything() -> list[Any]:
        calls = [engine.amoderate(image) for image in images]
        return await asyncio.gather(*calls, return_exceptions=True)

    for result in asyncio.run(everything()):
        if isinstance(result, BaseException):
            errors[_describe(result)] += 1
        else:
            outcomes[result.outcome.value] += 1


def _count(call: Callable[[], Any], outcomes: Counter[str], errors: Counter[str]) -> None:
    try:
        outcomes[call().outcome.value] += 1
    except Exception as exc:  # counted as undecided, as a batch item would be
        errors[_describe(exc)] += 1


def check_command(
    url: str, images: list[bytes], workers: int, policy: str, reset: Callable[[], None], **env: str
) -> tuple[subprocess.CompletedProcess[str], float, Counter[str], Counter[str]]:
    """`moderation check DIR` of `images` in a subprocess, nothing set but the endpoint, fake
    keys and `env`; `reset` runs just before it starts. Its result, wall time, outcomes, errors."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "policies").mkdir()
        (root / "policies" / "default.yaml").write_text(policy)
        (root / "images").mkdir()
        for i, data in enumerate(images):
            (root / "images" / f"{i:06d}.png").write_bytes(data)
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("MODERATION_", "AWS_"))
        }
        environment.update(
            AWS_ENDPOINT_URL_REKOGNITION=url,
            AWS_ENDPOINT_URL_BEDROCK_RUNTIME=url,
            AWS_ACCESS_KEY_ID="AKIDBENCH",
            AWS_SECRET_ACCESS_KEY="x",
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            PYTHONPATH=os.pathsep.join(sys.path),
            **env,
        )
        audit = root / "audit.jsonl"
        command = [
            sys.executable, "-m", "moderation", "check", "--policies", str(root / "policies"),
            "--region", "us-east-1", "--audit", str(audit), "--json", "--no-resume",
            "--workers", str(workers), str(root / "images"),
        ]  # fmt: skip
        reset()
        start = time.perf_counter()
        done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
    # One line per input: {"input": ..., "decision": {...}} or {"input": ..., "error": {...}}.
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    outcomes: Counter[str] = Counter(
        line["decision"]["outcome"] for line in lines if "decision" in line
    )
    errors: Counter[str] = Counter(
        str(line.get("error"))[:160] for line in lines if "decision" not in line
    )
    if done.returncode not in (0, 1):
        tail = done.stderr.strip().splitlines()[-3:]
        errors[f"exit {done.returncode}: {' | '.join(tail)}"[:160]] += 1
    return done, elapsed, outcomes, errors


def cli_check(bench: Bench, name: str, images: list[bytes], workers: int) -> Run:
    """`moderation check DIR` in a subprocess, nothing set but the endpoint and fake keys."""
    done, elapsed, outcomes, errors = check_command(
        bench.aws.url, images, workers, POLICY, bench.quota.reset
    )
    # From the first request to the last answer: the CLI's start-up (a new interpreter, the
    # imports, the policies, listing the directory) spends no quota.
    sent = bench.quota.accepted + bench.quota.throttled
    served = max(bench.quota.accepted) + bench.quota.latency - min(sent) if sent else elapsed
    run = bench.result(name, len(images), served, outcomes, errors)
    if sent:
        first = min(sent)
        run.accepted = [t - first for t in run.accepted]
        run.throttled = [t - first for t in run.throttled]
    run.note = (
        f"timed from its first request to its last answer ({served:.1f} s of the {elapsed:.1f} s"
        " the command ran: start-up and listing the directory spend no quota)"
    )
    said = [line.strip() for line in done.stderr.splitlines() if "throttles:" in line]
    if said:
        run.extra["the CLI says"] = said[-1]
    return run


def _delta(before: Any, after: Any) -> Any:
    """The limiter's counters for the run alone (the warm-up call left out), its rate at the end."""
    if before is None or after is None:
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


@dataclass
class Verdict:
    """A run and what it is measured against: the quota, or what its workers can do at all."""

    run: Run
    of: float  # accepted requests per second that count as 100 %
    of_name: str
    checked: bool  # held to the targets

    def share(self) -> float:
        return self.run.accepted_rate / self.of

    def ok(self) -> bool:
        return (
            self.share() >= TARGET_QUOTA
            and self.run.throttled_share() <= TARGET_THROTTLED
            and self.run.undecided == 0
        )


def report(verdict: Verdict, tps: float, reference: Run) -> None:
    run = verdict.run
    print(f"\n{run.name}")
    if run.note:
        print(f"  {run.note}")
    print(f"  {run.images} images in {run.elapsed:.1f} s: {run.rate:.1f} images/s")
    ratios = f"{run.accepted_rate / tps:.1%} of the quota ({run.accepted_rate:.1f} accepted/s)"
    if reference is not run:
        ratios += f", {run.accepted_rate / reference.accepted_rate:.1%} of run (a)"
    if verdict.of_name != "the quota":
        ratios += f", {verdict.share():.1%} of {verdict.of_name}"
    print(f"  accepted        {ratios}")
    if verdict.checked:
        print(
            f"  {'':<15} target >= {TARGET_QUOTA:.0%} of {verdict.of_name}"
            f"  {_mark(verdict.share() >= TARGET_QUOTA)}"
        )
    share = run.throttled_share()
    line = f"  throttled       {len(run.throttled):7d}  ({share:.2%} of {run.requests} requests)"
    if verdict.checked:
        line += f"   target <= {TARGET_THROTTLED:.0%}  {_mark(share <= TARGET_THROTTLED)}"
    print(line)
    print(f"  undecided       {run.undecided:7d}   target 0      {_mark(run.undecided == 0)}")
    print(f"  outcomes        {dict(run.outcomes)}")
    for error, count in run.errors.most_common(3):
        print(f"    {count} x {error}")
    stats = run.limiter
    if stats is not None:
        ceiling = f"{stats.max_rate:g}" if math.isfinite(stats.max_rate) else "none set"
        print(
            f"  limiter         rate {stats.rate:.1f} per {stats.per:g} s at the end (ceiling"
            f" {ceiling}), {stats.acquired} acquired, {stats.throttles} throttles reported,"
            f" {stats.decreases} decreases, {stats.waited_s:.1f} s waited in all"
        )
    run.extra.setdefault("per 5 s", "accepted/s (throttles): " + timeline(run, 5.0))
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


# -- (f) escalations to a judge at its own quota: detection and judgment as separate stages ----

MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"

#: Alcohol allowed as above; the violence some images show is borderline: escalated to the judge.
JUDGED_POLICY = f"""
min_confidence: 50
default: {{reject: 95, escalate: 60}}
categories:
  Alcohol: allow
escalation: {{judge: bedrock, model_id: {MODEL}}}
"""

#: What the endpoint answers for an image to escalate: violence between the bands.
BORDERLINE: dict[str, Any] = {
    "ModerationLabels": [
        {"Name": "Graphic Violence", "ParentName": "Violence", "TaxonomyLevel": 2,
         "Confidence": 75.0},
        {"Name": "Violence", "ParentName": "", "TaxonomyLevel": 1, "Confidence": 75.0},
    ],
    "ModerationModelVersion": "7.0",
}  # fmt: skip

#: Bedrock's Converse reply: one record_verdict tool call approving the image.
VERDICT: dict[str, Any] = {
    "output": {"message": {"role": "assistant", "content": [{"toolUse": {
        "toolUseId": "tooluse_1", "name": "record_verdict",
        "input": {"verdict": "approve", "rationale": "staged violence, no injury shown"},
    }}]}},
    "stopReason": "tool_use",
    "usage": {"inputTokens": 1500, "outputTokens": 40, "totalTokens": 1540},
}  # fmt: skip

ESCALATED_EVERY = 10  # every tenth image: 10 % escalated
JUDGE_LATENCY = (2.0, 5.0)  # seconds, uniform
TARGET_IDEAL = 1.10  # total time within 10 % of the ideal
#: Seconds of its quota Bedrock's bucket holds. A quota per minute is counted over a minute: one
#: second of 60 per minute would be a single request, which a client pacing exactly at the quota
#: overflows whenever the network delivers two requests a millisecond closer than it sent them.
JUDGE_BUCKET_S = 5.0


@dataclass
class StageRun:
    """One run of the judged scenario, seen from both of the endpoint's quotas."""

    name: str
    images: int
    escalations: int
    elapsed: float
    decided: int
    tps: float
    latency: float
    detected: list[float]  # seconds since the start, one per request Rekognition accepted
    detect_throttled: int
    judged: int  # Converse requests Bedrock accepted
    judge_throttled: int
    rpm: float
    peak: int | None  # the judge stage's peak depth (None: no stage, the judge ran inline)
    errors: Counter[str]
    note: str = ""

    def detecting(self) -> float:
        """Seconds from the start to the last detection's answer: while images remained."""
        return max(self.detected) + self.latency if self.detected else 0.0

    def share(self) -> float:
        """Rekognition's accepted requests per second while images remained, over its quota."""
        span = self.detecting()
        return len(self.detected) / span / self.tps if span else 0.0

    def ideal(self) -> float:
        """What the quotas allow: the slower of the two services, then one detection's and one
        judgment's latency (the mean) for the last image."""
        detect = self.images / self.tps
        judge = self.escalations / self.rpm * 60
        return max(detect, judge) + self.latency + sum(JUDGE_LATENCY) / 2

    def ok(self) -> bool:
        return (
            self.share() >= TARGET_QUOTA
            and self.elapsed <= TARGET_IDEAL * self.ideal()
            and self.decided == self.images
        )


def stage_report(run: StageRun) -> None:
    ideal = run.ideal()
    print(f"\n{run.name}")
    if run.note:
        print(f"  {run.note}")
    print(
        f"  {run.images} images ({run.escalations} escalated) in {run.elapsed:.1f} s; the quotas"
        f" allow {ideal:.1f} s: {run.elapsed / ideal:.2f} of the ideal"
        f"   target <= {TARGET_IDEAL:.2f}  {_mark(run.elapsed <= TARGET_IDEAL * ideal)}"
    )
    print(
        f"  rekognition     {run.share():.1%} of its quota for the {run.detecting():.1f} s images"
        f" remained ({len(run.detected)} accepted, {run.detect_throttled} throttled)"
        f"   target >= {TARGET_QUOTA:.0%}  {_mark(run.share() >= TARGET_QUOTA)}"
    )
    print(
        f"  bedrock         {run.judged} accepted, {run.judge_throttled} throttled;"
        f" {run.judged / run.elapsed * 60:.0f}/min over the run (limit {run.rpm:g}/min)"
        + (f"; judge queue peak {run.peak}" if run.peak is not None else "")
    )
    undecided = run.images - run.decided
    print(f"  undecided       {undecided:7d}   target 0      {_mark(undecided == 0)}")
    for error, count in run.errors.most_common(3):
        print(f"    {count} x {error}")


def stage_runs(images: list[bytes], tps: float, latency: float, workers: int) -> list[StageRun]:
    """The judged scenario at 60 and 600 requests per minute: `moderate_many` (the stages) and,
    the baseline, the same engine's `moderate()` on the caller's own threads (judge inline)."""
    escalated = {hashlib.sha256(data).hexdigest() for data in images[::ESCALATED_EVERY]}

    def answer(request: Recorded) -> Any:
        data = base64.b64decode(request.body["Image"]["Bytes"])
        return BORDERLINE if hashlib.sha256(data).hexdigest() in escalated else RESPONSE

    runs: list[StageRun] = []
    for rpm in (60.0, 600.0):
        draw = random.Random()
        detect = Quota(tps, latency, answer=answer)
        judge = Quota(rpm / 60, JUDGE_LATENCY[0], capacity_s=JUDGE_BUCKET_S,
                      answer=lambda request: VERDICT,
                      delay=functools.partial(draw.uniform, *JUDGE_LATENCY))  # fmt: skip
        with AWSEndpoint(default_detect=detect, default_converse=judge) as aws:
            for name, how in (
                (f"(f) moderate_many, {workers} workers, bedrock_rpm={rpm:g}", batch(workers)),
                (f"(f) {len(images)} amoderate calls gathered ({workers} async workers),"
                 f" bedrock_rpm={rpm:g}", gathered),
                (f"(f) moderation check DIR, {workers} workers, MODERATION_BEDROCK_RPM={rpm:g}",
                 None),
                (f"(f) before: {workers} threads calling moderate() (the judge inline),"
                 f" bedrock_rpm={rpm:g}", inline(workers)),
            ):  # fmt: skip
                draw.seed(16)  # the same judge latencies for every run
                if how is None:
                    run = judged_cli(aws, detect, judge, rpm, images, len(escalated), name)
                else:
                    run = judged_run(aws, detect, judge, rpm, images, len(escalated), name, how)
                stage_report(run)
                runs.append(run)
    return runs


def judged_cli(
    aws: AWSEndpoint,
    detect: Quota,
    judge: Quota,
    rpm: float,
    images: list[bytes],
    escalations: int,
    name: str,
) -> StageRun:
    """`moderation check DIR` in a subprocess with both rates set at the quotas, timed from its
    first request (start-up and listing the directory spend no quota)."""

    def reset() -> None:
        detect.reset()
        judge.reset()

    done, elapsed, outcomes, errors = check_command(
        aws.url, images, 16, JUDGED_POLICY, reset,
        MODERATION_REKOGNITION_TPS=f"{detect.tps:g}", MODERATION_BEDROCK_RPM=f"{rpm:g}",
    )  # fmt: skip
    first = min(detect.accepted + detect.throttled, default=0.0)
    said = [line.strip() for line in done.stderr.splitlines() if "judge queue:" in line]
    return StageRun(
        name=name,
        images=len(images),
        escalations=escalations,
        elapsed=elapsed - first,
        decided=sum(outcomes.values()),
        tps=detect.tps,
        latency=detect.latency,
        detected=[t - first for t in detect.accepted],
        detect_throttled=len(detect.throttled),
        judged=len(judge.accepted),
        judge_throttled=len(judge.throttled),
        rpm=rpm,
        peak=None,
        errors=errors,
        note=f"timed from its first request ({elapsed - first:.1f} s of the {elapsed:.1f} s the"
        f" command ran); the CLI says: {said[-1] if said else '(no judge queue line)'}",
    )


def judged_run(
    aws: AWSEndpoint,
    detect: Quota,
    judge: Quota,
    rpm: float,
    images: list[bytes],
    escalations: int,
    name: str,
    how: How,
) -> StageRun:
    """One run on a fresh engine (rates set at both quotas) and fresh server buckets."""
    detector = RekognitionDetector(
        aws.client("rekognition", retries={"total_max_attempts": 1}, max_pool_connections=64)
    )
    bedrock = BedrockJudge(
        aws.client("bedrock-runtime", retries={"total_max_attempts": 1}, max_pool_connections=64)
    )
    store = PolicyStore.from_sources({"default": JUDGED_POLICY})
    engine = Engine(
        store, detector, bedrock, InMemoryAuditLog(), rekognition_tps=detect.tps, bedrock_rpm=rpm
    )
    engine.moderate(make_images(1, offset=10**9)[0])  # not escalated: no judge call
    outcomes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    detect.reset()
    judge.reset()
    start = time.perf_counter()
    how(engine, images, outcomes, errors)
    elapsed = time.perf_counter() - start
    stats = engine.stage_stats()
    engine.close()
    return StageRun(
        name=name,
        images=len(images),
        escalations=escalations,
        elapsed=elapsed,
        decided=sum(outcomes.values()),
        tps=detect.tps,
        latency=detect.latency,
        detected=list(detect.accepted),
        detect_throttled=len(detect.throttled),
        judged=len(judge.accepted),
        judge_throttled=len(judge.throttled),
        rpm=rpm,
        peak=stats.peak if stats is not None else None,
        errors=errors,
    )


def inline(threads: int) -> How:
    """The caller's own `threads` calling `engine.moderate()`: the judge inside each call, as
    every way of moderating many images was before the stages."""

    def how(engine: Engine, images: list[bytes], outcomes: Counter[str], errors: Counter[str]):
        _in_threads(threads, engine.moderate, images, outcomes, errors)

    return how


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="images per run (default 1000)")
    parser.add_argument("--quick", action="store_true", help="a third of the images per run")
    parser.add_argument(
        "--sequential", type=int, default=40, metavar="N", help="images for the loop (40)"
    )
    parser.add_argument("--tps", type=float, default=50.0, help="the quota (default 50/s)")
    parser.add_argument(
        "--latency", type=float, default=0.2, help="seconds per accepted request (default 0.2)"
    )
    parser.add_argument("--no-cli", action="store_true", help="leave out `moderation check`")
    parser.add_argument(
        "--judged-images", type=int, default=2000, help="images per judged run (f) (default 2000)"
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--judged-only", action="store_true", help="only the judged runs (f)")
    which.add_argument("--no-judged", action="store_true", help="leave out the judged runs (f)")
    args = parser.parse_args()
    n = max(1, args.images // 3) if args.quick else args.images
    if n < 1 or args.tps <= 0 or args.latency < 0 or args.sequential < 1:
        parser.error("--images and --sequential must be >= 1, --tps > 0, --latency >= 0")
    if args.judged_images < ESCALATED_EVERY:
        parser.error(f"--judged-images must be >= {ESCALATED_EVERY}")
    started = time.perf_counter()
    verdicts = [] if args.judged_only else quota_runs(n, args)
    judged = [] if args.no_judged else judged_runs(args)
    print(f"\nsummary ({time.perf_counter() - started:.0f} s in all)")
    for verdict in verdicts:
        run = verdict.run
        mark = _mark(verdict.ok()) if verdict.checked else "    "
        print(
            f"  {mark}  {run.name[:64]:<64} {verdict.share():6.1%} of {verdict.of_name},"
            f" {run.throttled_share():.2%} throttled, {run.undecided} undecided"
        )
    for stage in judged:
        print(
            f"  {_mark(stage.ok())}  {stage.name[:64]:<64} {stage.share():6.1%} of the quota"
            f" while images remained, {stage.elapsed / stage.ideal():.2f} of the ideal time,"
            f" {stage.images - stage.decided} undecided"
        )


def quota_runs(n: int, args: argparse.Namespace) -> list[Verdict]:
    """Runs (a) to (e): nothing escalated, Rekognition's quota alone."""
    print(
        f"throughput at a {args.tps:g}/s quota, {args.latency * 1000:.0f} ms per request "
        f"({os.cpu_count()} cores): {n} distinct {SIDE}x{SIDE} PNGs per run; "
        f"{args.tps:g}/s x {args.latency:g} s = {args.tps * args.latency:.0f} requests in flight"
        " at the quota"
    )
    print(
        "the server's bucket starts full (one second of the quota), so a run of T seconds can use"
        " up to 1 + 1/T of it"
    )
    images = make_images(n)
    quota = Quota(args.tps, args.latency)
    with AWSEndpoint(default_detect=quota) as aws:
        verdicts = run_all(Bench(aws, quota), images, args)
        if unexpected := aws.unexpected:
            raise SystemExit(f"the endpoint got {len(unexpected)} requests it did not expect")
    return verdicts


def judged_runs(args: argparse.Namespace) -> list[StageRun]:
    """Runs (f): 10 % of the images escalated to a judge with its own quota."""
    n = max(ESCALATED_EVERY, args.judged_images // 3) if args.quick else args.judged_images
    low, high = JUDGE_LATENCY
    print(
        f"\njudged runs (f): {n} images{' (--quick: a third)' if args.quick else ''}, one in"
        f" {ESCALATED_EVERY} escalated to a judge (Bedrock Converse on the same endpoint, answering"
        f" in {low:g}-{high:g} s), at {args.tps:g}/s for Rekognition and 60 or 600 requests/min"
        f" for Bedrock (its bucket holding {JUDGE_BUCKET_S:g} s of the quota), both rates set at"
        " the quota; the ideal is the slower service's time"
        f" (images / {args.tps:g}/s or escalations / rpm) plus one detection's and one mean"
        " judgment's latency"
    )
    return stage_runs(make_images(n), args.tps, args.latency, workers=16)


def run_all(bench: Bench, images: list[bytes], args: argparse.Namespace) -> list[Verdict]:
    """Every run, reported as it ends."""
    tps = args.tps
    verdicts: list[Verdict] = []

    def record(run: Run, of: float = tps, of_name: str = "the quota", checked: bool = True) -> Run:
        verdict = Verdict(run, of, of_name, checked)
        verdicts.append(verdict)
        report(verdict, tps, verdicts[0].run)
        return run

    def go(name: str, rate: float | None, workers: int, how: How, **kw: Any) -> Run:
        run = bench.run(name, bench.engine(rate, workers), kw.pop("images", images), how)
        return record(run, **kw)

    go(f"(a) moderate_many, 16 workers, rekognition_tps={tps:g} (the quota)", tps, 16, batch(16))
    few = images[: max(1, len(images) * 2 // 5)]  # 4 workers are slower: fewer images
    base = go(
        f"(c) moderate_many, 4 workers, rekognition_tps={tps:g}: what 4 workers can do",
        tps, 4, batch(4), images=few, checked=False,
    )  # fmt: skip
    go(
        "(b) moderate_many, 4 workers, nothing configured",
        None, 4, batch(4), images=few, of=base.accepted_rate, of_name="(c)",
    )  # fmt: skip
    for workers in (16, 64, 256):
        name = f"(b) moderate_many, {workers} workers, nothing configured"
        go(name, None, workers, batch(workers))
    go("(b) your own 64 threads calling moderation.moderate(), nothing configured", None, 64,
       own_threads(64))  # fmt: skip
    go(f"(b) {len(images)} amoderate calls gathered, nothing configured (16 async workers)",
       None, 16, gathered)  # fmt: skip
    if not args.no_cli:
        record(cli_check(bench, "(b) moderation check DIR, 16 workers, no --rate", images, 16))
    twice = go(
        f"(d) moderate_many, 16 workers, rekognition_tps={2 * tps:g} (2x the quota)",
        2 * tps, 16, batch(16),
    )  # fmt: skip
    print(f"  {'settled':<15} {settled(twice, 5.0)}")
    loop_images = images[: min(args.sequential, len(images))]
    sequential = go("(e) a loop of moderate(), nothing configured", None, 1, loop,
                    images=loop_images, checked=False)  # fmt: skip
    print(f"  moderate_many (a) is {verdicts[0].run.rate / sequential.rate:.1f}x the loop")
    return verdicts


if __name__ == "__main__":
    main()
