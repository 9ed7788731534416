"""Benchmarks: print figures for the hot paths. Not tests: nothing here asserts a time.

    make bench

- policy load: PolicyStore over the shipped policies (startup cost of a Lambda cold start)
- triage: evaluate() per detection (pure core, the per-image cost)
- intake: ImageIntake.prepare for a small JPEG (pass-through) and a 6 MB JPEG (re-encode)
- engine: Engine.moderate end to end with recorded detector and judge, in-memory audit
- shadows: Engine.moderate with 0, 1 and 3 shadow policies on one offline engine, and the overhead
- wire: RekognitionDetector through botocore to a local 127.0.0.1 endpoint (HTTP, signing, parse)
"""

from __future__ import annotations

import functools
import io
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from moderation import Detection, Engine, PolicyStore, evaluate
from moderation.audit import InMemoryAuditLog
from moderation.image import ImageIntake
from moderation.testing.recorded import RecordedDetector, RecordedJudge, Recordings

ROOT = Path(__file__).resolve().parent.parent


def measure(name: str, fn: Callable[[], object], *, n: int, unit: str = "call") -> float:
    """Prints the figures for `fn` over `n` runs and returns its median in seconds."""
    fn()  # warm up
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    samples.sort()
    p50 = statistics.median(samples) * 1e6
    p95 = samples[int(len(samples) * 0.95) - 1] * 1e6
    rate = 1 / statistics.mean(samples)
    print(f"{name:<48} p50 {p50:>10.1f} µs   p95 {p95:>10.1f} µs   {rate:>10.0f} {unit}/s")
    return p50 / 1e6


def shadow_overhead(recordings: Recordings) -> None:
    """Engine.moderate for `kids` naming 0, 1 and 3 shadow policies, on one offline engine.

    The candidates are the shipped kids policy with another `default` rule, so each shadow costs
    one full triage of the same detection. The image is one kids escalates and the recorded judge
    answers, so the figures include the judge stage and the reuse of its verdict.
    """
    default = (ROOT / "policies/default.yaml").read_text()
    kids = (ROOT / "policies/tenants/kids.yaml").read_text()
    candidates = {
        f"kids-next-{i}": f"extends: kids\ndefault: {{reject: {60 + 10 * i}, escalate: 30}}\n"
        for i in range(3)
    }
    names = list(candidates)
    image = ROOT / "examples/images/cartoon-fight.png"
    figures = []
    for count in (0, 1, 3):
        shadow = f"shadow: [{', '.join(names[:count])}]\n"
        store = PolicyStore.from_sources({"default": default, "kids": kids + shadow, **candidates})
        engine = Engine(
            store, RecordedDetector(recordings), RecordedJudge(recordings), InMemoryAuditLog()
        )
        decision = engine.moderate(image, tenant="kids")
        assert len(decision.shadow) == count, decision.shadow
        figures.append(
            measure(
                f"engine.moderate, {count} shadow polic{'y' if count == 1 else 'ies'}",
                functools.partial(engine.moderate, image, tenant="kids"),
                n=300,
            )
        )
    base = figures[0]
    for count, p50 in zip((1, 3), figures[1:], strict=True):
        extra = p50 - base
        print(
            f"{f'  shadows: {count} add':<48} {extra * 1e6:>+9.1f} µs per decision "
            f"({extra / base:+.1%}; {extra / count * 1e6:+.1f} µs per shadow)"
        )


def main() -> None:
    print(f"moderation benchmarks ({os.cpu_count()} cores)")
    measure("policy load (5 shipped policies)", lambda: PolicyStore(ROOT / "policies"), n=50)

    store = PolicyStore(ROOT / "policies")
    detections = [
        Detection.from_rekognition(json.loads(p.read_text()))
        for p in sorted((ROOT / "examples/detections").glob("*.json"))
    ]
    policies = list(store)

    def triage_all() -> None:
        for policy in policies:
            for detection in detections:
                evaluate(policy, detection)

    count = len(policies) * len(detections)
    start = time.perf_counter()
    rounds = 200
    for _ in range(rounds):
        triage_all()
    per = (time.perf_counter() - start) / (rounds * count)
    print(
        f"{'triage (evaluate, per detection x policy)':<48} mean {per * 1e6:>9.1f} µs   "
        f"{1 / per:>10.0f} triages/s"
    )

    intake = ImageIntake()
    small = (ROOT / "examples/images/beach.jpg").read_bytes()
    measure("intake: 480x320 JPEG (pass-through)", lambda: intake.prepare(small), n=200)
    noise = Image.frombytes("RGB", (2000, 2000), os.urandom(2000 * 2000 * 3))
    buf = io.BytesIO()
    noise.save(buf, "JPEG", quality=100)
    big = buf.getvalue()
    measure(
        f"intake: 2000x2000 JPEG {len(big) / 1e6:.1f} MB (re-encode <5MB)",
        lambda: intake.prepare(big),
        n=5,
    )

    recordings = Recordings.load(ROOT / "examples/recordings")
    engine = Engine(
        store, RecordedDetector(recordings), RecordedJudge(recordings), InMemoryAuditLog()
    )
    policy_path = ROOT / "examples/images/beach.jpg"
    judged_path = ROOT / "examples/images/cartoon-fight.png"
    measure("engine.moderate, decided by policy", lambda: engine.moderate(policy_path), n=200)
    measure(
        "engine.moderate, through the recorded judge", lambda: engine.moderate(judged_path), n=100
    )
    shadow_overhead(recordings)

    try:
        from moderation.aws.rekognition import RekognitionDetector
        from moderation.testing.endpoint import AWSEndpoint, Reply
    except ImportError as exc:  # pragma: no cover
        print(f"wire benchmark skipped: {exc}")
        return
    response = json.loads((ROOT / "examples/detections/cartoon-fight.json").read_text())
    prepared = intake.prepare(small)
    with AWSEndpoint(default_detect=Reply.ok(response)) as aws:
        detector = RekognitionDetector(aws.client("rekognition", retries={"total_max_attempts": 1}))
        measure(
            "rekognition adapter over loopback HTTP",
            lambda: detector.detect(prepared, min_confidence=40),
            n=200,
        )


if __name__ == "__main__":
    main()
