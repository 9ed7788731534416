"""Decoding memory: a process-wide byte budget, reduced decodes, and no decode when none is needed.

Concurrency is tested with events and the budget's own hooks, never with sleeps or timings; the
timeouts below only stop a broken build from hanging the suite.
"""

from __future__ import annotations

import itertools
import threading

import pytest
from images import big_png, decode, encode, halves, noise, spy_decodes

from moderation.errors import InvalidImage
from moderation.image import ImageIntake, Limits
from moderation.image._budget import DecodeBudget, shared_budget

WAIT = 30  # seconds; a safety net against hangs, not a timing assertion

_capacities = itertools.count(7_000_001)


def fresh_capacity() -> int:
    """A capacity no other test uses, so that its process-wide budget is this test's alone."""
    return next(_capacities)


def run(target) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_decodes_that_together_exceed_the_budget_do_not_overlap():
    budget = DecodeBudget(100)
    first_in, first_out, second_waits = threading.Event(), threading.Event(), threading.Event()
    order = []
    budget.on_wait = lambda n: second_waits.set()

    def first():
        with budget.hold(70):
            order.append("first in")
            first_in.set()
            assert first_out.wait(WAIT)
            order.append("first out")

    def second():
        assert first_in.wait(WAIT)
        with budget.hold(50):
            order.append("second in")

    threads = [run(first), run(second)]
    assert second_waits.wait(WAIT)  # the second decode is blocked on the budget ...
    assert order == ["first in"]
    assert budget.held == 70
    first_out.set()  # ... until the first one gives its bytes back
    for thread in threads:
        thread.join(WAIT)
    assert order == ["first in", "first out", "second in"]
    assert budget.peak == 70
    assert budget.held == 0


def test_decodes_that_fit_together_run_together():
    budget = DecodeBudget(100)
    both_in = threading.Barrier(2, timeout=WAIT)

    def decode_one():
        with budget.hold(50):
            both_in.wait()  # would time out (BrokenBarrierError) if one waited for the other

    threads = [run(decode_one), run(decode_one)]
    for thread in threads:
        thread.join(WAIT)
    assert budget.peak == 100
    assert budget.held == 0


def test_an_image_larger_than_the_whole_budget_runs_alone_and_never_deadlocks():
    budget = DecodeBudget(100)
    with budget.hold(250) as granted:
        assert granted == 100  # the whole budget, not more: it cannot wait for bytes never there
        assert budget.held == 100
        waiting = threading.Event()
        budget.on_wait = lambda n: waiting.set()
        got_in = threading.Event()

        def small():
            with budget.hold(1):
                got_in.set()

        thread = run(small)
        assert waiting.wait(WAIT)
        assert not got_in.is_set()
    thread.join(WAIT)
    assert got_in.is_set()
    assert budget.held == 0
    assert budget.peak == 100


def test_a_large_decode_is_not_starved_by_later_small_ones():
    # First come, first served: once the large one waits, small ones queue behind it.
    budget = DecodeBudget(100)
    waits = []
    waited = threading.Condition()

    def on_wait(n):
        with waited:
            waits.append(n)
            waited.notify_all()

    budget.on_wait = on_wait
    order = []
    release_small = threading.Event()

    def holder():
        with budget.hold(40):
            order.append("holder")
            assert release_small.wait(WAIT)

    def large():
        with budget.hold(90):
            order.append("large")

    def later_small():
        with budget.hold(10):
            order.append("small")

    threads = [run(holder)]
    while "holder" not in order:
        threads[0].join(0.001)
    threads.append(run(large))
    with waited:
        assert waited.wait_for(lambda: 90 in waits, WAIT)
    threads.append(run(later_small))  # 40 + 10 would fit, but the large one is first in line
    with waited:
        assert waited.wait_for(lambda: 10 in waits, WAIT)
    release_small.set()
    for thread in threads:
        thread.join(WAIT)
    assert order == ["holder", "large", "small"]


def test_budget_is_released_when_the_decode_fails():
    budget = DecodeBudget(100)
    with pytest.raises(RuntimeError), budget.hold(60):
        raise RuntimeError("decoder blew up")
    assert budget.held == 0


def test_shared_budget_is_one_per_capacity():
    capacity = fresh_capacity()
    assert shared_budget(capacity) is shared_budget(capacity)
    assert shared_budget(capacity).capacity == capacity
    assert shared_budget(Limits().decode_budget_bytes).capacity == 1024**3


def test_limits_decode_budget_is_validated():
    assert Limits().decode_budget_bytes == 1024**3
    with pytest.raises(ValueError, match="decode_budget_bytes"):
        Limits(decode_budget_bytes=0)


# -- through intake ------------------------------------------------------------------------------

WEBP = encode(noise((300, 200)), "webp", quality=80)
WEBP_DECODED = 300 * 200 * 4  # Pillow keeps RGB pixels in 4 bytes


def test_concurrent_intakes_that_exceed_the_budget_decode_one_after_the_other():
    capacity = WEBP_DECODED + WEBP_DECODED // 2  # room for one decode, not two
    limits = Limits(decode_budget_bytes=capacity)
    budget = shared_budget(capacity)
    first_holds, go, second_waits = threading.Event(), threading.Event(), threading.Event()
    holders = []

    def on_acquire(n):
        holders.append(n)
        if len(holders) == 1:
            first_holds.set()
            assert go.wait(WAIT)  # the first decode pauses while holding its bytes

    budget.on_acquire = on_acquire
    budget.on_wait = lambda n: second_waits.set()
    results = []
    intake = ImageIntake(limits=limits)
    first = run(lambda: results.append(intake.prepare(WEBP)))
    assert first_holds.wait(WAIT)
    second = run(lambda: results.append(intake.prepare(WEBP)))
    assert second_waits.wait(WAIT)
    assert holders == [WEBP_DECODED]  # the second is waiting, not decoding
    go.set()
    first.join(WAIT)
    second.join(WAIT)
    assert len(results) == 2
    assert holders == [WEBP_DECODED, WEBP_DECODED]
    assert budget.peak == WEBP_DECODED
    assert budget.held == 0


def test_large_jpeg_is_decoded_reduced_and_the_budget_counts_the_reduced_size(monkeypatch):
    capacity = fresh_capacity()
    limits = Limits(max_side=1000, decode_budget_bytes=capacity)
    data = encode(halves((2400, 1800)), "jpeg", quality=85)
    decodes = spy_decodes(monkeypatch)
    image = ImageIntake(limits=limits).prepare(data)
    assert decodes == [("JPEG", (1200, 900))]  # libjpeg at 1/2 scale: a quarter of the memory
    assert decode(image.detect_bytes).size == (1000, 750)
    assert shared_budget(capacity).peak == 1200 * 900 * 4


def test_failed_decode_gives_its_budget_back():
    capacity = fresh_capacity()
    cut = WEBP[: len(WEBP) // 2]
    with pytest.raises(InvalidImage, match="truncated or corrupt webp"):
        ImageIntake(limits=Limits(decode_budget_bytes=capacity)).prepare(cut)
    assert shared_budget(capacity).held == 0


def test_ten_thousand_pixel_square_png_costs_no_decode(monkeypatch):
    capacity = fresh_capacity()
    data = big_png(10_000, 10_000)
    decodes = spy_decodes(monkeypatch)
    image = ImageIntake(limits=Limits(decode_budget_bytes=capacity)).prepare(data)
    assert image.detect_bytes == data
    assert decodes == []
    assert shared_budget(capacity).peak == 0
