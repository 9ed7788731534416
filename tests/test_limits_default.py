"""No image lost by default: the engine limits the AWS services without a configured rate.

A limiter with no rate starts at `SERVICE_LIMITS`' rate and finds the quota from the throttles;
a configured rate stays a ceiling. The simulations run on a fake clock; the one test with real
threads counts decisions and throttles, never times.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import builders
import pytest
from botocore.exceptions import ClientError
from images import solid

from moderation import Engine, PolicyStore
from moderation.audit import InMemoryAuditLog
from moderation.aws.bedrock import BedrockJudge
from moderation.aws.rekognition import RekognitionDetector
from moderation.cli._progress import LimiterLine, limiter_stats
from moderation.dedupe import MemoryDetectionCache, SingleFlight
from moderation.detection import Detection
from moderation.errors import DetectorError
from moderation.image import ImageIntake, PreparedImage
from moderation.limits import (
    SERVICE_LIMITS,
    LimitedDetector,
    RateLimiter,
    limit_detector,
    limit_judge,
    unwrapped,
)

POLICY = """
min_confidence: 50
default: {reject: 90, escalate: 60}
categories:
  Alcohol: allow
escalation: {judge: none}
"""

BODY: dict[str, Any] = {
    "ModerationLabels": [
        {"Name": "Alcohol", "ParentName": "", "TaxonomyLevel": 1, "Confidence": 88.5},
    ],
    "ModerationModelVersion": "7.0",
}


class FakeTime:
    """A clock that only moves when something sleeps (or the test advances it)."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class StandInClient:
    """Rekognition's DetectModerationLabels at a quota, on the real clock: a bucket of
    `tps` tokens a second holding one second of them (full at first); a request that finds no
    token is throttled at once, one that does is answered after `latency` seconds."""

    def __init__(self, tps: float, latency: float) -> None:
        self.tps, self.latency = tps, latency
        self._tokens, self._stamp = tps, time.monotonic()
        self._lock = threading.Lock()
        self.accepted = self.throttled = 0

    def detect_moderation_labels(self, **_: Any) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.tps, self._tokens + (now - self._stamp) * self.tps)
            self._stamp = now
            ok = self._tokens >= 1.0
            if ok:
                self._tokens -= 1.0
                self.accepted += 1
            else:
                self.throttled += 1
        if not ok:
            raise ClientError(
                {
                    "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                "DetectModerationLabels",
            )
        time.sleep(self.latency)
        return BODY


def distinct_images(n: int) -> list[bytes]:
    return [solid("png", (80, 80), color=(i % 256, i // 256, 7)) for i in range(n)]


def store() -> PolicyStore:
    return builders.store(POLICY)


# -- the engine's default ------------------------------------------------------------------


def test_an_engine_built_by_hand_finds_the_quota_by_itself() -> None:
    detector = RekognitionDetector(StandInClient(50, 0.0))
    judge = BedrockJudge(StandInClient(50, 0.0))
    engine = Engine(store(), detector, judge, InMemoryAuditLog())
    rekognition, bedrock = engine.rekognition_limiter, engine.bedrock_limiter
    assert isinstance(rekognition, RateLimiter)
    assert isinstance(bedrock, RateLimiter)
    assert detector.limiter is rekognition  # the adapter charges every attempt itself
    assert judge.limiter is bedrock
    assert engine.detector is detector
    assert (rekognition.max_rate, rekognition.per, rekognition.rate) == (math.inf, 1.0, 5.0)
    assert (bedrock.max_rate, bedrock.per, bedrock.rate) == (math.inf, 60.0, 60.0)
    assert (rekognition.name, bedrock.name) == ("rekognition", "bedrock")


def test_a_configured_rate_stays_a_ceiling() -> None:
    detector = RekognitionDetector(StandInClient(50, 0.0))
    engine = Engine(store(), detector, None, InMemoryAuditLog(), rekognition_tps=20, bedrock_rpm=90)
    assert engine.rekognition_limiter is not None
    assert engine.bedrock_limiter is not None
    assert (engine.rekognition_limiter.max_rate, engine.rekognition_limiter.rate) == (20.0, 20.0)
    assert engine.bedrock_limiter.max_rate == 90.0  # no judge, but the limit is the engine's
    assert detector.limiter is engine.rekognition_limiter


def test_an_adapter_keeps_a_limiter_it_was_given() -> None:
    shared = RateLimiter(30, name="shared")
    detector = RekognitionDetector(StandInClient(50, 0.0))
    detector.limiter = shared
    engine = Engine(store(), detector, None, InMemoryAuditLog())
    assert engine.rekognition_limiter is shared
    assert detector.limiter is shared


def test_a_detector_of_your_own_is_limited_only_by_a_configured_rate() -> None:
    class Own:
        def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
            raise AssertionError("not called")

    own = Own()
    detector, limiter = limit_detector(own, None)
    assert (detector, limiter) == (own, None)  # its quota, if any, is not Rekognition's
    detector, limiter = limit_detector(own, 12)
    assert isinstance(detector, LimitedDetector)
    assert limiter is not None and limiter.max_rate == 12.0
    assert unwrapped(detector) is own
    assert limit_judge(None, None) == (None, None)
    with pytest.raises(ValueError, match="rekognition rate must be a number or a RateLimiter"):
        limit_detector(own, "fast")  # type: ignore[arg-type]


def test_the_environment_engine_finds_the_quota_unless_a_rate_is_set(tmp_path: Path) -> None:
    # What moderation.moderate(), the CLI and the Lambda build: Engine.from_env.
    (tmp_path / "default.yaml").write_text(POLICY)
    env = {
        "MODERATION_POLICIES": str(tmp_path),
        "MODERATION_REGION": "us-east-1",
        "MODERATION_AUDIT": "stdout",
        "AWS_ACCESS_KEY_ID": "AKIDTEST",
        "AWS_SECRET_ACCESS_KEY": "x",
    }
    engine = Engine.from_env(env)
    assert engine.rekognition_limiter is not None
    assert engine.bedrock_limiter is not None
    assert engine.rekognition_limiter.max_rate == math.inf
    assert engine.bedrock_limiter.max_rate == math.inf
    configured = Engine.from_env({**env, "MODERATION_REKOGNITION_TPS": "25"})
    assert configured.rekognition_limiter is not None
    assert configured.rekognition_limiter.max_rate == 25.0


def test_many_threads_with_nothing_configured_decide_every_image() -> None:
    # 32 threads against a 40 per second quota, no rate set. Before the engine limited by
    # default, every thread sent at once and throttled requests used up their attempts: 35 of
    # the 80 images ended without a decision. Now the limiter starts at 5 per second and
    # climbs to the quota, and a throttled request waits for its turn instead.
    client = StandInClient(40, 0.05)
    engine = Engine(store(), RekognitionDetector(client), None, InMemoryAuditLog())
    images = distinct_images(80)
    items = list(engine.moderate_many(images, max_workers=32))
    assert [item.error for item in items if not item.ok] == []
    assert len(items) == 80
    assert client.accepted == 80
    assert client.throttled <= 8  # the first overshoot of the climb, and its retries
    assert engine.rekognition_limiter is not None
    assert engine.rekognition_limiter.stats().throttles == client.throttled


# -- the limiter without a rate, on a fake clock -------------------------------------------


def simulate(quota: float, lim: RateLimiter, t: FakeTime, seconds: float) -> tuple[int, int]:
    """A saturated caller against a server bucket of one second of `quota` (full at first);
    each answer is reported at once. Returns (accepted, throttled)."""
    tokens, stamp = quota, t.now
    accepted = throttled = 0
    while True:
        lim.acquire()
        if t.now >= seconds:
            return accepted, throttled
        tokens, stamp = min(quota, tokens + (t.now - stamp) * quota), t.now
        if tokens >= 1.0:
            tokens -= 1.0
            accepted += 1
            lim.succeeded()
        else:
            throttled += 1
            lim.throttled()


@pytest.mark.parametrize("quota", [5.0, 20.0, 50.0, 200.0])
def test_a_limiter_without_a_rate_finds_the_quota(quota: float) -> None:
    t = FakeTime()
    search = SERVICE_LIMITS["rekognition"]
    lim = RateLimiter(start=search.start, step=search.step, clock=t.clock, sleep=t.sleep)
    accepted, throttled = simulate(quota, lim, t, 120.0)
    # The climb from 5 costs (q - 5)^2 / (2 x 20) requests: 380 of 24,000 at 200 per second.
    assert accepted >= 0.95 * quota * 120
    assert accepted <= quota + quota * 120  # never more than the server's bucket allows
    # A quota of 5 is found with a few per cent of 600 requests throttled; above it, under 1 %.
    assert throttled / (accepted + throttled) < (0.03 if quota == 5.0 else 0.01)


@pytest.mark.parametrize("per_minute", [20.0, 200.0, 1000.0])
def test_a_bedrock_limiter_without_a_rate_finds_a_quota_per_minute(per_minute: float) -> None:
    # An hour against a server whose bucket holds a minute of its quota.
    t = FakeTime()
    search = SERVICE_LIMITS["bedrock"]
    lim = RateLimiter(
        per=search.per, start=search.start, step=search.step, clock=t.clock, sleep=t.sleep
    )
    tokens, stamp, accepted, throttled = per_minute, 0.0, 0, 0
    while True:
        lim.acquire()
        if t.now >= 3600.0:
            break
        tokens, stamp = min(per_minute, tokens + (t.now - stamp) * per_minute / 60), t.now
        if tokens >= 1.0:
            tokens, accepted = tokens - 1.0, accepted + 1
            lim.succeeded()
        else:
            throttled += 1
            lim.throttled()
    assert 0.95 * per_minute * 60 <= accepted <= per_minute * 61
    assert throttled / (accepted + throttled) < 0.01


def test_a_rate_nobody_uses_is_not_raised() -> None:
    # Four callers at 200 ms use 20 per second: the limiter must not climb past what they use
    # (a rate left far above the quota would let the next burst through unpaced).
    t = FakeTime()
    lim = RateLimiter(start=5, step=20, clock=t.clock, sleep=t.sleep)
    for _ in range(2000):  # 100 s of a caller sending every 50 ms
        lim.acquire()
        t.sleep(0.05)
        lim.succeeded()
    assert 20.0 <= lim.rate <= 25.0  # what the caller used, and a step past it


def test_a_limiter_without_a_rate_needs_a_start() -> None:
    with pytest.raises(ValueError, match=r"without a rate \(no ceiling\) needs start="):
        RateLimiter()
    with pytest.raises(ValueError, match="start must not be above rate"):
        RateLimiter(10, start=20)
    with pytest.raises(ValueError, match=r"^step must be"):
        RateLimiter(start=5, step=0)
    found = RateLimiter(start=5, name="r")
    assert repr(found) == "RateLimiter('r', 5 (no ceiling) per 1 s, burst 1)"


def test_a_decrease_comes_from_what_was_sent_not_from_the_rate_allowed() -> None:
    # Configured at 100 per second, callers sent 20 in the last second: a throttle says 20 is
    # too much, so the rate becomes 14, not 70 (which would still let 20 through).
    t = FakeTime()
    lim = RateLimiter(100, burst=1, clock=t.clock, sleep=t.sleep)
    t.now = 5.0
    for _ in range(20):
        lim.acquire()
        t.sleep(0.05)
        lim.succeeded()
    lim.acquire()
    lim.throttled()
    assert lim.rate == pytest.approx(0.7 * 20, rel=0.06)


def test_throttles_of_requests_sent_before_the_decrease_are_one_event() -> None:
    # Eight threads' requests were let through, then all come back throttled: one decrease.
    t = FakeTime()
    lim = RateLimiter(100, clock=t.clock, sleep=t.sleep)
    sent = threading.Barrier(8)

    def request() -> None:
        lim.acquire()
        sent.wait()  # every request is on the wire before the first answer
        lim.throttled()

    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(request) for _ in range(8)]:
            future.result(timeout=10)
    assert (lim.stats().throttles, lim.stats().decreases) == (8, 1)
    lim.acquire()  # sent at the lowered rate, and throttled again: it is still too much
    lim.throttled()
    assert lim.stats().decreases == 2


# -- the detection cache's single flight ---------------------------------------------------


def test_single_flight_detects_a_key_once_for_threads_asking_at_once() -> None:
    release = threading.Event()
    calls: list[int] = []

    class Slow:
        def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
            calls.append(1)
            release.wait(5)
            return Detection.from_rekognition(BODY, min_confidence=min_confidence)

    image = ImageIntake().prepare(solid("png", (80, 80)))
    flight, cache, slow = SingleFlight(), MemoryDetectionCache(), Slow()

    def detect() -> tuple[Detection, bool]:
        return flight.detect(slow, cache, image, min_confidence=50, sha256=image.sha256)

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(detect) for _ in range(6)]
        time.sleep(0.05)  # let them all ask (the answer is held back meanwhile)
        release.set()
        answers = [future.result(timeout=10) for future in futures]
    assert len(calls) == 1
    assert sorted(called for _, called in answers) == [False] * 5 + [True]
    assert detect()[1] is False  # and later from the cache
    assert len(calls) == 1


def test_single_flight_without_a_cache_calls_every_time() -> None:
    image = ImageIntake().prepare(solid("png", (80, 80)))

    class Failing:
        def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
            raise DetectorError("down", code="InternalServerError")

    with pytest.raises(DetectorError, match="down"):
        SingleFlight().detect(Failing(), None, image, min_confidence=50, sha256=image.sha256)


# -- what the CLI prints ---------------------------------------------------------------------


def test_the_summary_says_the_rate_was_found_when_none_was_set() -> None:
    lim = RateLimiter(start=5, name="rekognition")
    line = limiter_stats("rekognition", lim)
    assert isinstance(line, LimiterLine)
    assert line.render() == "rekognition 0 (no limit set, found 5/s)"
    assert limiter_stats("r", RateLimiter(20)) is not None
    assert "limit 20/s" in (limiter_stats("r", RateLimiter(20)) or line).render()
