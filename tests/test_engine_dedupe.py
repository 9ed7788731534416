"""Detection dedupe in the engine: the same bytes with the same detector settings are detected once.

A cached answer is marked `Detection.cached` and costs nothing; threads asking for the same image
at once make one detector call between them; failures are never cached, and a broken cache never
costs a decision.
"""

from __future__ import annotations

import io
import logging
import threading
from pathlib import Path
from typing import Any

import builders
import pytest
from images import BLUE, GREEN, RED, animation, solid
from PIL import Image

from moderation import (
    Decision,
    Detection,
    DetectorError,
    Engine,
    ImageIntake,
    Outcome,
    PolicyStore,
    Settings,
)
from moderation.audit import InMemoryAuditLog
from moderation.dedupe import MemoryDetectionCache
from moderation.image import PreparedImage
from moderation.testing.endpoint import DETECT, AWSEndpoint, Reply

ROOT = Path(__file__).resolve().parent.parent

POLICIES = builders.store(
    # The same detector settings as default, other bands: the default's detection serves.
    forum="min_confidence: 40\ndefault: {reject: 99, review: 90}\nescalation: {judge: none}\n",
    # Rekognition is asked with another MinConfidence: a detection of its own.
    kids="min_confidence: 30\ndefault: {reject: 60, escalate: 30}\nescalation: {judge: none}\n",
)
PRICE = 0.001  # Pricing().rekognition_per_image

IMAGE = solid("jpeg", (120, 90))
OTHER = solid("jpeg", (120, 90), BLUE)

CLEAN = builders.detection()
EXPLICIT = builders.detection(("Explicit Nudity", "Explicit", 95.0), ("Explicit", "", 95.0))


class Counting:
    """Answers `answer` (or by `answer(image)`), counting calls; `hook()` runs first."""

    def __init__(self, answer: Any = CLEAN, hook: Any = None) -> None:
        self.answer = answer
        self.hook = hook
        self.calls: list[float] = []
        self._lock = threading.Lock()

    def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
        with self._lock:
            self.calls.append(min_confidence)
            first = len(self.calls) == 1
        if self.hook is not None:
            self.hook(first)
        answer = self.answer(image) if callable(self.answer) else self.answer
        if isinstance(answer, Exception):
            raise answer.with_traceback(None)
        assert isinstance(answer, Detection)
        return answer


def make_engine(detector: Any, cache: Any = "memory", **kwargs: Any) -> Engine:
    """An engine on POLICIES with a detection cache (in memory unless `cache`) and its own ids."""
    return builders.engine(
        POLICIES,
        detector,
        cache=MemoryDetectionCache(1000) if cache == "memory" else cache,
        real=("timer", "new_id"),
        **kwargs,
    )


def reuse(decision: Decision) -> tuple[bool, float]:
    """(detection cached, Rekognition cost) of a decision."""
    assert decision.detection is not None
    return decision.detection.cached, decision.cost.rekognition_usd


def wait_for(event: threading.Event, what: str) -> None:
    if not event.wait(10):
        raise AssertionError(f"timed out waiting for {what}")


# -- what is reused, and what is not ------------------------------------------------------------


def test_the_same_bytes_twice_are_detected_once_and_the_second_costs_nothing(
    tmp_path: Path,
) -> None:
    detector = Counting(EXPLICIT)
    engine = make_engine(detector)
    first = engine.moderate(IMAGE)
    second = engine.moderate(IMAGE)
    path = tmp_path / "again.jpg"
    path.write_bytes(IMAGE)
    third = engine.moderate(path)  # the same bytes from elsewhere: the same image
    assert detector.calls == [40.0]
    assert reuse(first) == (False, PRICE)
    assert reuse(second) == reuse(third) == (True, 0.0)
    assert first.outcome is second.outcome is third.outcome is Outcome.REJECTED
    assert second.detection is not None and first.detection is not None
    assert second.detection.labels == first.detection.labels
    assert [d.id for d in engine.audit.decisions] == [first.id, second.id, third.id]  # type: ignore[attr-defined]


def test_another_min_confidence_is_another_detection() -> None:
    detector = Counting(CLEAN)
    engine = make_engine(detector)
    assert reuse(engine.moderate(IMAGE)) == (False, PRICE)
    assert reuse(engine.moderate(IMAGE, tenant="kids")) == (False, PRICE)
    assert detector.calls == [40.0, 30.0]
    # Each is cached under its own settings; a tenant with the same settings shares one.
    assert reuse(engine.moderate(IMAGE, tenant="kids")) == (True, 0.0)
    assert reuse(engine.moderate(IMAGE, tenant="forum")) == (True, 0.0)
    assert detector.calls == [40.0, 30.0]


def test_a_shared_detection_is_judged_by_each_tenant_s_own_bands() -> None:
    detector = Counting(EXPLICIT)  # 95 %: default rejects at 90, forum only reviews below 99
    engine = make_engine(detector)
    assert engine.moderate(IMAGE).outcome is Outcome.REJECTED
    forum = engine.moderate(IMAGE, tenant="forum")
    assert (forum.outcome, reuse(forum)) == (Outcome.REVIEW, (True, 0.0))
    assert len(detector.calls) == 1


def test_different_bytes_are_different_images() -> None:
    detector = Counting(CLEAN)
    engine = make_engine(detector)
    assert reuse(engine.moderate(IMAGE)) == reuse(engine.moderate(OTHER)) == (False, PRICE)
    assert detector.calls == [40.0, 40.0]


def test_without_a_cache_every_call_detects() -> None:
    detector = Counting(CLEAN)
    engine = Engine(POLICIES, detector, audit=InMemoryAuditLog())
    assert engine.cache is None
    decisions = [engine.moderate(IMAGE) for _ in range(3)]
    assert detector.calls == [40.0, 40.0, 40.0]
    assert [reuse(d) for d in decisions] == [(False, PRICE)] * 3


def test_animation_frames_are_cached_one_by_one() -> None:
    def by_colour(image: PreparedImage) -> Detection:
        assert image.detect_bytes is not None
        frame = Image.open(io.BytesIO(image.detect_bytes)).convert("RGB")
        red, green, blue = frame.getpixel((0, 0))  # type: ignore[misc]
        return EXPLICIT if green > 200 > max(red, blue) else CLEAN  # a (re-encoded) green frame

    detector = Counting(by_colour)
    engine = make_engine(detector)
    red_blue = animation("gif", [RED, BLUE])
    blue_green = animation("gif", [BLUE, GREEN])
    green_red = animation("gif", [GREEN, RED])

    first = engine.moderate(red_blue)
    assert (first.outcome, reuse(first), len(detector.calls)) == (
        Outcome.APPROVED,
        (False, 2 * PRICE),
        2,
    )
    second = engine.moderate(blue_green)  # the blue frame is known: only the green one is sent
    assert (second.outcome, reuse(second), len(detector.calls)) == (
        Outcome.REJECTED,
        (False, PRICE),
        3,
    )
    third = engine.moderate(green_red)  # every frame known: no call, and the green one counts
    assert (third.outcome, reuse(third), len(detector.calls)) == (Outcome.REJECTED, (True, 0.0), 3)
    again = engine.moderate(red_blue)
    assert (again.outcome, reuse(again), len(detector.calls)) == (Outcome.APPROVED, (True, 0.0), 3)


# -- single flight ------------------------------------------------------------------------------


class CountingIntake(ImageIntake):
    """Sets `all_in` once `n` images have been prepared: that many callers are past intake."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.prepared = 0
        self.all_in = threading.Event()
        self._lock = threading.Lock()

    def prepare(self, *args: Any, **kwargs: Any) -> PreparedImage:
        image = super().prepare(*args, **kwargs)
        with self._lock:
            self.prepared += 1
            if self.prepared == self.n:
                self.all_in.set()
        return image


def in_threads(engine: Engine, n: int) -> list[Decision | Exception]:
    """`engine.moderate(IMAGE)` on `n` threads started together; each one's decision or error."""
    results: list[Decision | Exception] = []
    lock = threading.Lock()
    start = threading.Barrier(n)

    def run() -> None:
        start.wait()
        try:
            result: Decision | Exception = engine.moderate(IMAGE)
        except Exception as exc:
            result = exc
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_sixteen_threads_asking_for_the_same_image_at_once_make_one_detector_call() -> None:
    intake = CountingIntake(16)

    def hold(first: bool) -> None:
        if first:  # the first call answers only once every thread is on its way to the detector
            wait_for(intake.all_in, "all 16 threads to prepare the image")

    detector = Counting(CLEAN, hold)
    engine = make_engine(detector, intake=intake)
    results = in_threads(engine, 16)
    assert detector.calls == [40.0]
    decisions = [r for r in results if isinstance(r, Decision)]
    assert len(decisions) == 16
    assert sorted(reuse(d) for d in decisions) == [(False, PRICE)] + [(True, 0.0)] * 15
    assert len(engine.audit.decisions) == 16  # type: ignore[attr-defined]


def test_a_failed_detection_is_not_cached_and_the_waiters_try_for_themselves() -> None:
    intake = CountingIntake(6)

    def hold(first: bool) -> None:
        if first:
            wait_for(intake.all_in, "all 6 threads to prepare the image")

    detector = Counting(DetectorError("Rekognition is down", code="InternalServerError"), hold)
    engine = make_engine(detector, intake=intake)
    results = in_threads(engine, 6)
    # Nobody is handed another's failure as an answer: each caller made its own call, and failed.
    assert len(detector.calls) == 6
    assert [type(r) for r in results] == [DetectorError] * 6
    assert engine.audit.decisions == []  # type: ignore[attr-defined]

    detector.answer = CLEAN  # Rekognition is back: nothing of the failures was kept
    assert reuse(engine.moderate(IMAGE)) == (False, PRICE)
    assert reuse(engine.moderate(IMAGE)) == (True, 0.0)
    assert len(detector.calls) == 7


def test_a_failure_under_on_detector_error_review_is_not_cached_either() -> None:
    store = PolicyStore.from_sources(
        {"default": "on_detector_error: review\ndefault: {reject: 90}\nescalation: {judge: none}\n"}
    )
    detector = Counting(DetectorError("timeout"))
    engine = Engine(store, detector, audit=InMemoryAuditLog(), cache=MemoryDetectionCache(1000))
    assert engine.moderate(IMAGE).outcome is Outcome.REVIEW
    detector.answer = CLEAN
    decision = engine.moderate(IMAGE)
    assert (decision.outcome, reuse(decision)) == (Outcome.APPROVED, (False, PRICE))
    assert len(detector.calls) == 2


# -- a cache that fails -------------------------------------------------------------------------


class BrokenCache:
    name = "broken"

    def get(self, key: str) -> Detection | None:
        raise ConnectionError("cache unreachable")

    def put(self, key: str, detection: Detection) -> None:
        raise ConnectionError("cache unreachable")


def test_a_broken_cache_is_logged_and_bypassed(caplog: pytest.LogCaptureFixture) -> None:
    detector = Counting(EXPLICIT)
    engine = make_engine(detector, cache=BrokenCache())
    with caplog.at_level(logging.WARNING, logger="moderation.engine"):
        decisions = [engine.moderate(IMAGE) for _ in range(2)]
    assert [d.outcome for d in decisions] == [Outcome.REJECTED] * 2
    assert [reuse(d) for d in decisions] == [(False, PRICE)] * 2
    assert len(detector.calls) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        warnings
        == [
            "detection cache broken: lookup failed; detecting",
            "detection cache broken: store failed",
        ]
        * 2
    )
    assert all("cache unreachable" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


class DictCache:
    """The smallest DetectionCache: a dict, counting lookups and stores."""

    name = "dict"

    def __init__(self) -> None:
        self.items: dict[str, Detection] = {}
        self.gets = 0

    def get(self, key: str) -> Detection | None:
        self.gets += 1
        return self.items.get(key)

    def put(self, key: str, detection: Detection) -> None:
        self.items[key] = detection


def test_any_object_with_get_and_put_is_a_cache() -> None:
    cache = DictCache()
    detector = Counting(CLEAN)
    engine = make_engine(detector, cache=cache)
    engine.moderate(IMAGE)
    engine.moderate(IMAGE)
    assert (len(detector.calls), cache.gets, len(cache.items)) == (1, 2, 1)
    [stored] = cache.items.values()
    assert stored.cached is False  # what is stored is the detection as made, not as reused


# -- from settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(("dedupe", "requests"), [("memory", 1), ("off", 2), (None, 1)])
def test_moderation_dedupe_through_settings_with_the_rekognition_adapter(
    fake_aws_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    dedupe: str | None,
    requests: int,
) -> None:
    env = {"MODERATION_POLICIES": str(ROOT / "policies"), "MODERATION_JUDGE": "none"}
    if dedupe is not None:
        env["MODERATION_DEDUPE"] = dedupe
    settings = Settings.from_env(env)
    assert settings.dedupe == (dedupe or "memory")
    with AWSEndpoint(default_detect=Reply.ok({"ModerationLabels": []})) as aws:
        monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", aws.url)
        engine = Engine.from_settings(settings, audit=InMemoryAuditLog())
        assert (engine.cache is None) is (dedupe == "off")
        if engine.cache is not None:
            assert isinstance(engine.cache, MemoryDetectionCache)
        first, second = engine.moderate(IMAGE), engine.moderate(IMAGE)
        assert aws.count(DETECT) == requests
    assert first.outcome is second.outcome is Outcome.APPROVED
    assert reuse(first) == (False, PRICE)
    assert reuse(second) == ((True, 0.0) if requests == 1 else (False, PRICE))
