"""Per-decision overhead of `Engine.moderate`, stage by stage, with instant fakes.

    .venv/bin/python benchmarks/overhead.py [--runs 20000] [--warmup 1000] [--profile]

Not a test: nothing here asserts a time. The detector answers at once (`StaticDetector`), so what
is left is the library's own time per decision: for a ~100 KB photo-like JPEG, decided by policy,
p50 and p99 in microseconds over `--runs` calls after `--warmup`, once with the default audit sink
(`StreamAuditLog`, here writing to a null stream) and once with the JSONL file sink (fsync off).

Stages come from the decision's own `timings_ms` (policy, intake, detect, triage, total); the
engine's injectable timer is given in milliseconds, so those figures, which it multiplies by 1000,
come out in microseconds to the nanosecond. What happens after `total` is taken is measured around
the call: the audit sink's own time by wrapping it, and the decision building (the `Decision`
model's construction and validation) as the wall time of `moderate()` minus the recorded total
minus the sink's time. Within intake, the sha256 of the bytes and the decoding (header and
structure walk: intake decodes no pixel of a JPEG it can pass through) are timed on their own, as
is, for reference, a full Pillow decode, which intake does not do.

Targets, at p50: the whole call at most 4 times the sha256 of the same bytes (measured in the
same run, right after each call: the ratio is printed), and the whole call less hashing and
decoding under 200 µs. `--profile` runs the engine under cProfile and prints where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import os
import pstats
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageFilter

from moderation import Decision, Engine, PolicyStore
from moderation.audit import JsonlAuditLog, StreamAuditLog
from moderation.image import ImageIntake, sniff
from moderation.image._decode import inspect
from moderation.ports import AuditLog
from moderation.testing import StaticDetector

ROOT = Path(__file__).resolve().parent.parent
TARGET_US = 200.0
TARGET_SHA_RATIO = 4.0  # the whole call, in sha256s of the same bytes

#: What the instant detector sees in every image: labels the default policy allows (and one below
#: its bands), so triage has findings to weigh and the image is approved by policy.
LABELS = [
    ("Alcoholic Beverages", 91.2),
    ("Alcohol", 91.2),
    ("Swimwear or Underwear", 64.0),
    ("Weapons", 52.5),
]


def photo_jpeg(target: int = 100_000, seed: int = 7) -> bytes:
    """A deterministic photo-like JPEG (gradient plus blurred grain) just under `target` bytes:
    noise, so that it does not compress away."""
    rng = random.Random(seed)
    size = (400, 300)
    base = Image.linear_gradient("L").resize(size).convert("RGB")
    grain = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    im = Image.blend(base, grain.filter(ImageFilter.GaussianBlur(0.6)), 0.6)
    data = b""
    for quality in range(95, 5, -1):
        buffer = io.BytesIO()
        im.save(buffer, "JPEG", quality=quality)
        data = buffer.getvalue()
        if len(data) <= target:
            break
    return data


class TimedSink:
    """An audit log that times the sink it wraps: `last` is the latest append's seconds."""

    def __init__(self, inner: AuditLog) -> None:
        self.inner = inner
        self.last = 0.0

    def append(self, decision: Decision) -> None:
        start = time.perf_counter()
        self.inner.append(decision)
        self.last = time.perf_counter() - start


def percentile(samples: list[float], q: float) -> float:
    """The `q` quantile (0-1) of `samples`, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def micro(fn: Callable[[], object], runs: int, warmup: int) -> list[float]:
    """Microseconds per call of `fn`, `runs` of them after `warmup`."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e6)
    return out


def engine_for(sink: AuditLog) -> tuple[Engine, StaticDetector, TimedSink]:
    store = PolicyStore(ROOT / "policies")
    detector = StaticDetector(LABELS)
    timed = TimedSink(sink)
    # A timer in milliseconds: the engine's timings (seconds x 1000) then read in microseconds.
    engine = Engine(store, detector, None, timed, timer=lambda: time.perf_counter() * 1e3)
    return engine, detector, timed


STAGES = ("policy", "intake", "detect", "triage")
MEASURED = (
    "unstaged",
    "total",
    "building",
    "audit",
    "wall",
    "sha",
    "walk",
    "intake rest",
    "target",
)


def run_engine(sink: AuditLog, data: bytes, runs: int, warmup: int) -> dict[str, list[float]]:
    """Per-run microseconds of every stage of `moderate(data)` with `sink` as the audit log.

    Each run also times intake's hashing and decoding of the same bytes on their own, right after
    the call, so that they are measured under the same conditions (CPU clock, cache, load) as the
    call they are subtracted from.
    """
    fmt = sniff(data)
    assert fmt is not None
    limits = ImageIntake().limits
    engine, detector, timed = engine_for(sink)
    first = engine.moderate(data)
    if first.outcome.value != "approved" or first.image.converted:
        raise SystemExit(f"expected an approved pass-through image, got {first!r}")
    for _ in range(warmup):
        engine.moderate(data)
        detector.calls.clear()
    out: dict[str, list[float]] = {k: [] for k in (*STAGES, *MEASURED)}
    for _ in range(runs):
        start = time.perf_counter()
        decision = engine.moderate(data)
        wall = (time.perf_counter() - start) * 1e6
        start = time.perf_counter()
        hashlib.sha256(data).hexdigest()
        middle = time.perf_counter()
        inspect(data, fmt, limits)
        end = time.perf_counter()
        detector.calls.clear()
        sha, walk = (middle - start) * 1e6, (end - middle) * 1e6
        out["sha"].append(sha)
        out["walk"].append(walk)
        out["intake rest"].append(decision.timings_ms["intake"] - sha - walk)
        out["target"].append(wall - sha - walk)
        timings = decision.timings_ms  # microseconds, see engine_for
        audit = timed.last * 1e6
        for stage in STAGES:
            out[stage].append(timings[stage])
        out["unstaged"].append(timings["total"] - sum(timings[s] for s in STAGES))
        out["total"].append(timings["total"])
        out["audit"].append(audit)
        out["building"].append(wall - timings["total"] - audit)
        out["wall"].append(wall)
    return out


def full_decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as im:
        im.load()


def profile(data: bytes, runs: int) -> None:
    """Where `moderate()` spends its time, by function (stdout sink to a null stream)."""
    with open(os.devnull, "w") as null:
        engine, detector, _ = engine_for(StreamAuditLog(null))
        for _ in range(200):
            engine.moderate(data)
        detector.calls.clear()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(runs):
            engine.moderate(data)
        profiler.disable()
    print(f"\ncProfile of {runs} calls (times are totals over all calls; divide by {runs}):")
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000, help="measured calls (20000)")
    parser.add_argument("--warmup", type=int, default=1_000, help="calls before (1000)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile breakdown")
    args = parser.parse_args()
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")

    data = photo_jpeg()
    if sniff(data) != "jpeg":
        raise SystemExit("the test image is not a JPEG")
    with Image.open(io.BytesIO(data)) as im:
        size = im.size
    print(
        f"Engine.moderate overhead, instant detector ({os.cpu_count()} cores): a {len(data):,}-byte"
        f" {size[0]}x{size[1]} JPEG, decided by policy; {args.runs:,} runs after {args.warmup:,}"
    )

    decode = micro(lambda: full_decode(data), max(1, args.runs // 20), max(1, args.warmup // 20))
    with open(os.devnull, "w") as null:
        stdout = run_engine(StreamAuditLog(null), data, args.runs, args.warmup)
    with tempfile.TemporaryDirectory() as tmp:
        jsonl = run_engine(
            JsonlAuditLog(Path(tmp) / "audit.jsonl", fsync=False), data, args.runs, args.warmup
        )

    def cells(samples: list[float]) -> str:
        return f"{percentile(samples, 0.5):9.1f} {percentile(samples, 0.99):9.1f}"

    def line(name: str, key: str) -> None:
        print(f"{name:<52} {cells(stdout[key])}   {cells(jsonl[key])}")

    print(f"\n{'':<52} {'stdout sink (null)':^19}   {'JSONL sink (no fsync)':^19}")
    print(f"{'µs per decision':<52} {'p50':>9} {'p99':>9}   {'p50':>9} {'p99':>9}")
    line("policy lookup", "policy")
    line("intake", "intake")
    line("  sha256 of the bytes (alone)", "sha")
    line("  decoding: header + structure walk (alone)", "walk")
    line("  the rest of intake (less the two above)", "intake rest")
    line("detect (instant fake)", "detect")
    line("triage", "triage")
    line("reasons, record fields (in total, no stage)", "unstaged")
    line("total as recorded (timings_ms.total)", "total")
    line("decision building (after total)", "building")
    line("audit append", "audit")
    line("whole moderate() call", "wall")
    line("whole call less hashing and decoding", "target")
    print(f"{'(not on the path) full Pillow decode, for reference':<52} {cells(decode)}")

    print(f"\ntarget: the whole call at most {TARGET_SHA_RATIO:g} x the sha256 of its bytes, p50")
    for name, run in (("stdout sink", stdout), ("JSONL sink", jsonl)):
        ratio = percentile(run["wall"], 0.5) / percentile(run["sha"], 0.5)
        print(f"  {name:<12} {ratio:7.2f} x   {'ok' if ratio <= TARGET_SHA_RATIO else 'MISS'}")
    print(f"target: the whole call less hashing and decoding under {TARGET_US:.0f} µs at p50")
    for name, run in (("stdout sink", stdout), ("JSONL sink", jsonl)):
        rest = percentile(run["target"], 0.5)
        print(f"  {name:<12} {rest:7.1f} µs   {'ok' if rest < TARGET_US else 'MISS'}")
    if args.profile:
        profile(data, min(args.runs, 5_000))


if __name__ == "__main__":
    main()
