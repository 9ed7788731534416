"""Benchmarks: print figures for the hot paths. Not tests: nothing here asserts a time.

    make bench

- policy load: PolicyStore over the shipped policies (startup cost of a Lambda cold start)
- triage: evaluate() per detection (pure core, the per-image cost)
- intake: ImageIntake.prepare for a small JPEG (pass-through) and a 6 MB JPEG (re-encode)
- engine: Engine.moderate end to end with recorded detector and judge, in-memory audit
- wire: RekognitionDetector through botocore to a local 127.0.0.1 endpoint (HTTP, signing, parse)
"""

from __future__ import annotations

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


def measure(name: str, fn: Callable[[], object], *, n: int, unit: str = "call") -> None:
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
