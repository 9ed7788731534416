"""Engine.moderate_many: every input accounted for exactly once, bounded memory, early stops.

The detector here answers by image: each test image is a distinct solid PNG, and the detector
knows which index it was made for, so it can fail (or block) on chosen inputs. Completion order
is forced with threading.Events, never with sleeps.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import builders
import pytest
from builders import audited
from counting import CountingLimiter
from hypothesis import given, settings
from hypothesis import strategies as st
from images import solid
from profiles import examples

import moderation.batch
from moderation import (
    BatchInput,
    BatchItem,
    Decision,
    Detection,
    DetectorError,
    Engine,
    InvalidImage,
    InvalidTenant,
    Outcome,
)
from moderation.audit import InMemoryAuditLog
from moderation.image import PreparedImage

POLICIES = builders.store(
    kids="min_confidence: 30\ndefault: {reject: 60, escalate: 30}\nescalation: {judge: none}\n"
)

N_IMAGES = 40
IMAGES = [solid("png", (80, 80), (i, 255 - i, 7)) for i in range(N_IMAGES)]
INDEX = {hashlib.sha256(data).hexdigest(): i for i, data in enumerate(IMAGES)}
assert len(INDEX) == N_IMAGES  # distinct images: the detector can tell every input apart

CLEAN = builders.detection()
EXPLICIT = builders.detection(("Explicit Nudity", "Explicit", 95.0), ("Explicit", "", 95.0))


def expected_outcome(index: int) -> Outcome:
    """What the detector below makes of image `index`: every third one is explicit."""
    return Outcome.REJECTED if index % 3 == 0 else Outcome.APPROVED


class ByImage:
    """Answers per image (see `expected_outcome`); fails on the indices in `fail`.

    `hook(index)` runs first on every call (to block, or to raise something else).
    """

    def __init__(self, fail: set[int] | None = None, hook: Any = None) -> None:
        self.fail = fail or set()
        self.hook = hook
        self.calls: list[tuple[int, float]] = []  # list.append is atomic: safe from threads
        self.threads: set[str] = set()

    def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
        assert image.sha256 is not None
        index = INDEX[image.sha256]
        self.calls.append((index, min_confidence))
        self.threads.add(threading.current_thread().name)
        if self.hook is not None:
            self.hook(index)
        if index in self.fail:
            raise DetectorError(f"Rekognition failed for image {index}")
        return EXPLICIT if expected_outcome(index) is Outcome.REJECTED else CLEAN


def make_engine(detector: Any, audit: InMemoryAuditLog | None = None, **kwargs: Any) -> Engine:
    """An engine on POLICIES; its own ids and timer, so every decision's id is its own."""
    return builders.engine(POLICIES, detector, audit=audit, real=("timer", "new_id"), **kwargs)


def wait_for(event: threading.Event, what: str) -> None:
    """Wait for `event`; a generous bound turns a deadlock into a failure, not a hang."""
    if not event.wait(10):
        raise AssertionError(f"timed out waiting for {what}")


# -- every index exactly once -------------------------------------------------------------------

KINDS = st.sampled_from(["ok", "ok", "detector fails", "not an image"])


@settings(max_examples=examples(40), deadline=None)
@given(
    kinds=st.lists(KINDS, max_size=N_IMAGES),
    max_workers=st.integers(1, 8),
    ordered=st.booleans(),
    as_generator=st.booleans(),
)
def test_every_input_comes_back_exactly_once_with_its_decision_or_error(
    kinds: list[str], max_workers: int, ordered: bool, as_generator: bool
) -> None:
    inputs: list[bytes] = [
        IMAGES[i] if kind != "not an image" else b"meeting notes %d" % i
        for i, kind in enumerate(kinds)
    ]
    detector = ByImage(fail={i for i, kind in enumerate(kinds) if kind == "detector fails"})
    engine = make_engine(detector)
    source = (x for x in inputs) if as_generator else inputs

    items = list(engine.moderate_many(source, max_workers=max_workers, ordered=ordered))

    assert sorted(item.index for item in items) == list(range(len(inputs)))
    if ordered:
        assert [item.index for item in items] == list(range(len(inputs)))
    for item in items:
        assert item.source is inputs[item.index]
        kind = kinds[item.index]
        if kind == "ok":
            assert item.ok and item.error is None and item.decision is not None
            assert item.decision.outcome is expected_outcome(item.index)
        else:
            assert not item.ok and item.decision is None
            expected_error = DetectorError if kind == "detector fails" else InvalidImage
            assert type(item.error) is expected_error
    # The detector saw every image once (a non-image never reaches it); each decision is audited.
    assert sorted(i for i, _ in detector.calls) == [
        i for i, kind in enumerate(kinds) if kind != "not an image"
    ]
    decisions = [item.decision for item in items if item.decision is not None]
    assert sorted(d.id for d in audited(engine)) == sorted(d.id for d in decisions)
    assert len(decisions) == kinds.count("ok")


def test_failing_inputs_become_error_items_and_the_batch_goes_on() -> None:
    detector = ByImage(fail={1, 4})
    engine = make_engine(detector)
    inputs = [*IMAGES[:3], b"not an image", *IMAGES[4:6]]
    items = list(engine.moderate_many(inputs, max_workers=2, ordered=True))
    assert [(item.index, item.ok) for item in items] == [
        (0, True),
        (1, False),
        (2, True),
        (3, False),
        (4, False),
        (5, True),
    ]
    assert str(items[1].error) == "Rekognition failed for image 1"
    assert isinstance(items[3].error, InvalidImage)
    assert str(items[4].error) == "Rekognition failed for image 4"
    assert [item.decision.outcome for item in items if item.decision] == [
        Outcome.REJECTED,
        Outcome.APPROVED,
        Outcome.APPROVED,
    ]
    assert {d.id for d in audited(engine)} == {item.decision.id for item in items if item.decision}


def test_an_empty_batch_yields_nothing() -> None:
    detector = ByImage()
    assert list(make_engine(detector).moderate_many([])) == []
    assert detector.calls == []


# -- order --------------------------------------------------------------------------------------


def test_ordered_yields_in_input_order_when_the_first_input_finishes_last() -> None:
    n = 8
    others_done = threading.Event()

    class CountingAudit(InMemoryAuditLog):
        def append(self, decision: Decision) -> None:
            super().append(decision)
            if len(self.decisions) == n - 1:
                others_done.set()

    def hook(index: int) -> None:
        if index == 0:  # the first input is the slowest: it waits for all the others
            wait_for(others_done, "the other inputs' decisions")

    audit = CountingAudit()
    engine = make_engine(ByImage(hook=hook), audit)
    items = list(engine.moderate_many(IMAGES[:n], max_workers=4, ordered=True))
    assert [item.index for item in items] == list(range(n))
    assert [item.source for item in items] == IMAGES[:n]
    # It really did finish last: its decision was the last one written.
    assert audit.decisions[-1].id == items[0].decision.id  # type: ignore[union-attr]


def test_unordered_yields_as_items_finish() -> None:
    received_three = threading.Event()

    def hook(index: int) -> None:
        if index == 0:  # held until the consumer has had three other items
            wait_for(received_three, "three items to reach the consumer")

    engine = make_engine(ByImage(hook=hook))
    seen: list[int] = []
    for item in engine.moderate_many(IMAGES[:4], max_workers=4):
        seen.append(item.index)
        if len(seen) == 3:
            received_three.set()
    assert sorted(seen[:3]) == [1, 2, 3]
    assert seen[3] == 0


# -- bounded memory, the iterable failing, the consumer stopping --------------------------------


def test_a_generator_of_100000_inputs_is_pulled_only_as_workers_free_up() -> None:
    max_workers = 4
    pulled = 0
    received = 0
    most_outstanding = 0

    def inputs() -> Iterator[bytes]:
        nonlocal pulled, most_outstanding
        for i in range(100_000):
            pulled += 1
            most_outstanding = max(most_outstanding, pulled - received)
            yield IMAGES[i % N_IMAGES]

    detector = ByImage()
    engine = make_engine(detector)
    items = engine.moderate_many(inputs(), max_workers=max_workers)
    for _ in items:
        received += 1
        if received == 200:
            break
    items.close()  # type: ignore[attr-defined]
    # At no time more than 2 * max_workers inputs were pulled and not yet handed back.
    assert most_outstanding == 2 * max_workers
    assert 200 <= pulled <= 200 + 2 * max_workers
    assert 200 <= len(audited(engine)) == len(detector.calls) <= pulled


@pytest.mark.parametrize("ordered", [False, True])
def test_an_iterable_that_raises_midway_yields_what_started_then_raises(ordered: bool) -> None:
    def inputs() -> Iterator[bytes]:
        yield from IMAGES[:5]
        raise OSError("listing the bucket failed")

    engine = make_engine(ByImage())
    items: list[BatchItem] = []
    with pytest.raises(OSError, match="listing the bucket failed"):
        items.extend(engine.moderate_many(inputs(), max_workers=2, ordered=ordered))
    assert sorted(item.index for item in items) == [0, 1, 2, 3, 4]
    assert all(item.ok for item in items)
    assert len(audited(engine)) == 5


class _CancelsBeforeReleasing(ThreadPoolExecutor):
    """The batch's pool, opening `release` only once the queued work has been cancelled, so that
    the inputs blocked in the detector finish but no freed thread can start a queued one."""

    release = threading.Event()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=cancel_futures)
        self.release.set()
        super().shutdown(wait=wait)


def test_stopping_early_cancels_what_has_not_started_and_audits_what_has(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Pool(_CancelsBeforeReleasing):
        release = threading.Event()

    monkeypatch.setattr(moderation.batch, "ThreadPoolExecutor", Pool)
    started = {i: threading.Event() for i in range(N_IMAGES)}

    def hook(index: int) -> None:
        started[index].set()
        if index == 0:  # returns once the other thread is busy with input 1
            wait_for(started[1], "input 1 to start")
        else:
            wait_for(Pool.release, "the batch to be closed")

    pulled: list[int] = []

    def inputs() -> Iterator[bytes]:
        for i in range(20):
            pulled.append(i)
            yield IMAGES[i]

    detector = ByImage(hook=hook)
    engine = make_engine(detector)
    items = engine.moderate_many(inputs(), max_workers=2)
    first = next(items)
    assert first.index == 0
    wait_for(started[2], "input 2 to take the freed thread")
    items.close()  # type: ignore[attr-defined]

    assert pulled == [0, 1, 2, 3]  # the window: 2 * max_workers; nothing after it was pulled
    assert sorted(i for i, _ in detector.calls) == [0, 1, 2]  # 3 was queued: cancelled
    # The two running when the consumer stopped finished, and are in the audit log.
    assert sorted(INDEX[d.image.sha256] for d in audited(engine)) == [0, 1, 2]  # type: ignore[index]


def test_a_keyboard_interrupt_in_a_worker_propagates() -> None:
    def hook(index: int) -> None:
        if index == 2:
            raise KeyboardInterrupt

    engine = make_engine(ByImage(hook=hook))
    with pytest.raises(KeyboardInterrupt):
        list(engine.moderate_many(IMAGES[:5], max_workers=2, ordered=True))


# -- per-input tenant and context, arguments ----------------------------------------------------


def test_batch_inputs_carry_their_own_tenant_and_context() -> None:
    detector = ByImage()
    engine = make_engine(detector)
    inputs: list[Any] = [
        IMAGES[0],
        BatchInput(IMAGES[1], tenant="kids"),
        BatchInput(IMAGES[2], context={"upload_id": "u-2"}),
        BatchInput(IMAGES[4], tenant="kids", context={"upload_id": "u-4"}),
        BatchInput(IMAGES[5], tenant="Not A Tenant"),
    ]
    items = list(
        engine.moderate_many(inputs, context={"batch": "b-1"}, max_workers=3, ordered=True)
    )
    got = [(d.tenant, d.context) for d in (item.decision for item in items[:4]) if d]
    assert got == [
        ("default", {"batch": "b-1"}),
        ("kids", {"batch": "b-1"}),
        ("default", {"upload_id": "u-2"}),
        ("kids", {"upload_id": "u-4"}),
    ]
    assert [item.source for item in items] == inputs
    assert isinstance(items[4].error, InvalidTenant)
    assert sorted(detector.calls) == [(0, 40.0), (1, 30.0), (2, 40.0), (4, 30.0)]
    assert len(audited(engine)) == 4


def test_the_batch_tenant_applies_to_plain_inputs() -> None:
    detector = ByImage()
    engine = make_engine(detector)
    items = list(engine.moderate_many(IMAGES[:2], tenant="kids", ordered=True))
    assert [item.decision.tenant for item in items if item.decision] == ["kids", "kids"]
    assert sorted(detector.calls) == [(0, 30.0), (1, 30.0)]


@pytest.mark.parametrize("max_workers", [0, -1, True, 1.5, "4"])
def test_max_workers_must_be_a_whole_number_of_at_least_one(max_workers: Any) -> None:
    detector = ByImage()
    with pytest.raises(ValueError, match="max_workers must be a whole number of at least 1"):
        make_engine(detector).moderate_many(IMAGES[:2], max_workers=max_workers)
    assert detector.calls == []


@pytest.mark.parametrize("images", ["uploads/cat.jpg", IMAGES[0], bytearray(IMAGES[0])])
def test_one_image_instead_of_an_iterable_is_refused_when_called(images: Any) -> None:
    detector = ByImage()
    with pytest.raises(TypeError, match="for one image call moderate"):
        make_engine(detector).moderate_many(images)  # raised here, before any iteration
    assert detector.calls == []


# -- shared rate limiter ------------------------------------------------------------------------


def test_every_thread_of_a_batch_is_charged_to_the_engine_limiter() -> None:
    class Throttled(ByImage):
        def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
            if INDEX[image.sha256 or ""] in (3, 7):
                self.calls.append((INDEX[image.sha256 or ""], min_confidence))
                raise DetectorError("Rate exceeded", code="ThrottlingException")
            return super().detect(image, min_confidence=min_confidence)

    limiter = CountingLimiter()
    detector = Throttled(fail={5})
    engine = make_engine(detector, rekognition_tps=limiter)
    items = list(engine.moderate_many(IMAGES[:12], max_workers=4))
    assert engine.rekognition_limiter is limiter
    assert sorted(item.index for item in items if not item.ok) == [3, 5, 7]
    assert (limiter.n_acquired, limiter.n_succeeded, limiter.n_throttled) == (12, 9, 2)
