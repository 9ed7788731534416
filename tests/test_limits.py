"""RateLimiter: token-bucket pacing, AIMD on throttles, validation, threads, and a simulated quota.

Everything but the real-threads test runs on a fake clock whose sleep advances it, so no test
waits and every number asserted is computed by hand in the comment next to it.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from moderation.limits import LimiterStats, RateLimiter


class FakeTime:
    """A clock that only moves when something sleeps (or the test advances it)."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FrozenTime(FakeTime):
    """A clock that never moves: sleep only records what it was asked for."""

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def limiter(rate: float, t: FakeTime, **kwargs: Any) -> RateLimiter:
    return RateLimiter(rate, clock=t.clock, sleep=t.sleep, **kwargs)


def grant_times(lim: RateLimiter, t: FakeTime, until: float) -> list[float]:
    """Acquire back to back (one caller, saturated) until the fake clock passes `until`."""
    times: list[float] = []
    while t.now <= until:
        lim.acquire()
        times.append(t.now)
    return times


# -- pacing ----------------------------------------------------------------------------------


def test_burst_then_exactly_rate_per_second() -> None:
    t = FakeTime()
    lim = limiter(50, t)  # default burst: max(1, 0.1 s x 50/s) = 5
    assert lim.burst == 5.0
    times = grant_times(lim, t, 10.0)
    # Five at once, then one every 1/50 s: grant k (1-based) at (k - 5) / 50 s.
    assert times[:5] == [0.0] * 5
    for k, at in enumerate(times, start=1):
        assert at == pytest.approx(max(0, k - 5) / 50, abs=1e-9)
    # In [0, 9.99]: k - 5 <= 499.5, so k <= 504.
    assert sum(1 for at in times if at <= 9.99) == 504
    stats = lim.stats()
    assert stats.acquired == len(times)
    # Waited in all: grant k waited 1/50 s (it came 1/50 s after the previous one) for k > 5.
    assert stats.waited_s == pytest.approx((len(times) - 5) / 50)


def test_an_idle_bucket_holds_only_the_burst() -> None:
    t = FakeTime()
    lim = limiter(10, t, burst=3)
    t.advance(100.0)  # 1000 tokens' worth of idle time, capped at 3
    waits = [lim.acquire() for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, pytest.approx(0.1), pytest.approx(0.1)]


def test_callers_at_the_same_instant_queue_for_their_own_turn() -> None:
    # A frozen clock shows the reservations: each caller is told to sleep until its own turn.
    t = FrozenTime()
    lim = limiter(20, t, burst=2)
    for _ in range(5):
        lim.acquire()
    # Tickets 1 and 2 from the bucket; ticket k then waits (k - 2) / 20 s.
    assert t.sleeps == [pytest.approx(0.05), pytest.approx(0.1), pytest.approx(0.15)]


def test_a_waiter_goes_sooner_when_the_rate_rises_meanwhile() -> None:
    # A limiter finding the quota climbs while callers queue: the ones queued at the starting
    # rate must not sleep out the turns they were given then.
    t = FakeTime()
    lim = RateLimiter(start=1, step=10, burst=1, clock=t.clock, sleep=t.sleep)
    lim.acquire()  # the burst

    def sleep(seconds: float) -> None:
        t.sleep(seconds)
        if len(t.sleeps) == 1:
            lim.succeeded()  # another caller's request succeeded meanwhile: 1 + 10 x 0.25

    lim._sleep = sleep
    waited = lim.acquire()
    # Its turn at 1/s was a second away; it looks again after 0.25 s, when 0.25 of the token
    # has come and the rate is 3.5/s: the remaining 0.75 takes 0.75 / 3.5 s.
    assert t.sleeps == [0.25, pytest.approx(0.75 / 3.5)]
    assert waited == pytest.approx(0.25 + 0.75 / 3.5)


def test_a_waiter_sleeps_again_when_the_rate_drops_meanwhile() -> None:
    t = FakeTime()
    lim = limiter(10, t, burst=1)
    lim.acquire()  # the burst

    def sleep(seconds: float) -> None:
        if not t.sleeps:
            lim.throttled()  # another thread is throttled while this one waits: rate 10 -> 7
        t.sleep(seconds)

    lim._sleep = sleep
    waited = lim.acquire()
    # Asked for 0.1 s at 10/s; after it only 0.7 of the token has come (7/s x 0.1 s), the
    # remaining 0.3 takes 0.3 / 7 s: 1/7 s in all.
    assert t.sleeps == [pytest.approx(0.1), pytest.approx(0.3 / 7)]
    assert waited == pytest.approx(1 / 7)


def test_per_minute() -> None:
    t = FakeTime()
    lim = limiter(120, t, per=60, name="bedrock")  # 2 per second; burst max(1, 0.2) = 1
    assert (lim.per, lim.max_rate, lim.burst, lim.recovery_window) == (60.0, 120.0, 1.0, 60.0)
    times = grant_times(lim, t, 60.0)
    # One at 0, then one every 0.5 s: in [0, 59.9], 1 + 119 = 120, a minute's worth.
    assert sum(1 for at in times if at <= 59.9) == 120
    assert times[1] - times[0] == pytest.approx(0.5)

    lim.throttled()
    assert lim.rate == pytest.approx(84.0)  # 120 x 0.7 requests per minute
    before = t.now
    lim.acquire()
    assert t.now - before == pytest.approx(60 / 84)  # the next one 60/84 s later
    # Recovery per minute: 12 per minute (a tenth of 120) for each throttle-free minute.
    t.advance(30.0 - (t.now - before))
    lim.succeeded()
    assert lim.rate == pytest.approx(84.0 + 12.0 * 0.5)


# -- AIMD ------------------------------------------------------------------------------------


def test_a_burst_of_throttles_is_one_decrease_per_cooldown() -> None:
    t = FakeTime(1000.0)
    lim = limiter(100, t)
    start = threading.Barrier(32)

    def report() -> None:
        start.wait()
        lim.throttled()

    threads = [threading.Thread(target=report) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    stats = lim.stats()
    assert (stats.throttles, stats.decreases, stats.rate) == (32, 1, pytest.approx(70.0))

    t.advance(0.999)  # still within the cooldown: counted, no decrease
    lim.throttled()
    assert (lim.stats().throttles, lim.stats().decreases, lim.rate) == (33, 1, 70.0)

    t.advance(0.001)  # 1 s after the decrease: a new congestion event
    lim.throttled()
    assert (lim.stats().decreases, lim.rate) == (2, pytest.approx(49.0))


def test_cooldown_is_configurable() -> None:
    t = FakeTime()
    lim = limiter(100, t, cooldown=0.0)
    lim.throttled()
    lim.throttled()
    assert (lim.stats().decreases, lim.rate) == (2, pytest.approx(49.0))


class StillTime(FakeTime):
    """A clock that moves only when the test advances it: a waiting caller's sleep ends at once
    (the limiter's frozen-clock guard), so a test can make callers wait without moving time."""

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def press(lim: RateLimiter, t: FakeTime) -> None:
    """Callers take tokens until one has to wait: the limiter is pressed, so it may rise."""
    waits = len(t.sleeps)
    while len(t.sleeps) == waits:
        lim.acquire()


def pressed_seconds(lim: RateLimiter, t: FakeTime, n: int, every: float = 1.0) -> list[float]:
    """`n` times: callers wait, `every` seconds pass without a throttle, a success comes."""
    rates = []
    for _ in range(n):
        press(lim, t)
        t.advance(every)
        lim.succeeded()
        rates.append(lim.rate)
    return rates


def test_recovery_is_additive_and_stops_at_max_rate() -> None:
    t = StillTime()
    lim = limiter(100, t)
    lim.throttled()  # 70
    lim.succeeded()  # no throttle-free time yet
    assert lim.rate == pytest.approx(70.0)
    rates = pressed_seconds(lim, t, 5)
    # +10 (a tenth of 100) per throttle-free second up to 90 % of the rate last throttled at
    # (100), then a tenth of that: +1 per second, probing.
    assert rates == [pytest.approx(r) for r in (80.0, 90.0, 91.0, 92.0, 93.0)]
    rates += pressed_seconds(lim, t, 10)
    assert rates[-4:] == [100.0] * 4  # 93 + 7: capped at 100, never above


def test_the_rate_rises_only_while_callers_wait_for_it() -> None:
    t = StillTime()
    lim = limiter(100, t)
    lim.throttled()  # 70
    for _ in range(5):  # a second each, successes, but nobody waited: the rate is not used up
        t.advance(1.0)
        lim.acquire()
        lim.succeeded()
    assert lim.rate == pytest.approx(70.0)
    assert pressed_seconds(lim, t, 1) == [pytest.approx(80.0)]  # only the pressed second counts


def test_well_past_the_rate_last_throttled_at_recovery_is_fast_again() -> None:
    t = StillTime()
    lim = limiter(100, t)
    lim.throttled()  # 100 -> 70
    t.advance(1.0)
    lim.throttled()  # 70 -> 49: the rate last throttled at is now 70
    rates = pressed_seconds(lim, t, 5)
    # A tenth of 70 (+7) per second to 56 and 63 (under 63 = 90 % of 70, then at it), +0.7 to
    # 63.7 ... 77 = 110 % of 70: from there the quota has moved, +10 a second again.
    assert rates == [pytest.approx(r) for r in (56.0, 63.0, 63.7, 64.4, 65.1)]
    rates = pressed_seconds(lim, t, 18)
    assert rates[-3:] == [pytest.approx(r) for r in (76.3, 77.0, 87.0)]
    assert pressed_seconds(lim, t, 1) == [pytest.approx(97.0)]


def test_recovery_counts_only_throttle_free_time() -> None:
    t = StillTime()
    lim = limiter(100, t)
    lim.throttled()  # t=0: 100 -> 70
    t.advance(0.5)
    lim.throttled()  # t=0.5: within the cooldown, no decrease, but not calm either
    assert pressed_seconds(lim, t, 1, every=0.5) == [pytest.approx(75.0)]  # 0.5 s calm: +5
    # Successes every 0.1 s add up to the same +10 per second.
    assert pressed_seconds(lim, t, 10, every=0.1)[-1] == pytest.approx(85.0)


def test_back_to_max_rate_from_the_floor_and_never_above() -> None:
    t = StillTime()
    lim = limiter(100, t)
    assert lim.min_rate == 5.0  # 5 % of 100
    for _ in range(12):  # 0.7 ** 9 x 100 = 4.04: the floor is reached at the 9th decrease
        lim.throttled()
        t.advance(1.0)
    assert lim.rate == 5.0
    assert lim.stats().decreases == 12
    # The floor is the rate last throttled at, and a tenth of it (0.5) is the step there, so
    # calm probes by a tenth of that: 0.05 per second, +0.055 for the 1.1 s since the last
    # throttle, then +0.005 per 0.1 s to 5.5 (110 % of 5). From there the quota has moved: +1 per
    # 0.1 s (the step, 10 per second) to 100.
    seen = pressed_seconds(lim, t, 200, every=0.1)
    assert seen[0] == pytest.approx(5.055)
    assert seen[87] == pytest.approx(5.49)
    fast = next(k for k, rate in enumerate(seen) if rate > 6)
    assert fast in (89, 90, 91)  # float sums land either side of 110 %
    assert seen[fast + 93] == pytest.approx(seen[fast] + 93)
    assert seen[fast + 93] < 100.0
    assert max(seen) == 100.0
    assert seen[-1] == 100.0


def test_min_rate_floor() -> None:
    t = FakeTime()
    lim = limiter(100, t, min_rate=20)
    rates = []
    for _ in range(6):
        lim.throttled()
        rates.append(lim.rate)
        t.advance(1.0)
    assert rates == [pytest.approx(r) for r in (70.0, 49.0, 34.3, 24.01, 20.0, 20.0)]


def test_paces_at_the_lowered_rate() -> None:
    t = FakeTime()
    lim = limiter(10, t, burst=1)
    lim.acquire()
    lim.throttled()  # 7 per second
    before = t.now
    lim.acquire()
    assert t.now - before == pytest.approx(1 / 7)


def test_stats_snapshot() -> None:
    t = FakeTime()
    lim = limiter(10, t, name="rekognition", burst=1)
    lim.acquire()
    lim.acquire()  # waits 0.1 s
    lim.throttled()
    lim.succeeded()
    stats = lim.stats()
    assert isinstance(stats, LimiterStats)
    assert (stats.name, stats.per, stats.max_rate) == ("rekognition", 1.0, 10.0)
    assert (stats.acquired, stats.succeeded, stats.throttles, stats.decreases) == (2, 1, 1, 1)
    assert stats.rate == pytest.approx(7.0)  # the success came with no calm time: no increase
    assert stats.waited_s == pytest.approx(0.1)
    assert repr(lim) == "RateLimiter('rekognition', 7/10 per 1 s, burst 1)"


def test_a_frozen_clock_does_not_spin() -> None:
    t = FrozenTime()
    lim = limiter(1, t, burst=1)
    lim.acquire()
    assert lim.acquire() == 0.0  # the clock did not move: no time waited, and no endless loop
    assert t.sleeps == [0.25]  # a second away, looked at again after at most a quarter


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"rate": 0}, "rate"),
        ({"rate": -5}, "rate"),
        ({"rate": math.inf}, "rate"),
        ({"rate": math.nan}, "rate"),
        ({"rate": True}, "rate"),
        ({"rate": "10"}, "rate"),
        ({"per": 0}, "per"),
        ({"per": math.inf}, "per"),
        ({"per": math.nan}, "per"),
        ({"burst": 0.5}, "burst"),
        ({"burst": 0}, "burst"),
        ({"burst": math.inf}, "burst"),
        ({"min_rate": 0}, "min_rate"),
        ({"min_rate": 11}, "min_rate"),
        ({"min_rate": math.nan}, "min_rate"),
        ({"decrease": 0}, "decrease"),
        ({"decrease": 1}, "decrease"),
        ({"decrease": 1.5}, "decrease"),
        ({"decrease": math.nan}, "decrease"),
        ({"recovery": 0}, "recovery"),
        ({"recovery": -0.1}, "recovery"),
        ({"recovery": math.inf}, "recovery"),
        ({"cooldown": -1}, "cooldown"),
        ({"cooldown": math.inf}, "cooldown"),
    ],
)
def test_invalid_arguments_are_named(kwargs: dict[str, Any], named: str) -> None:
    arguments: dict[str, Any] = {"rate": 10, **kwargs}
    with pytest.raises(ValueError, match=rf"^{named} must") as caught:
        RateLimiter(**arguments)
    assert f"got {kwargs[named]!r}" in str(caught.value)


def test_defaults() -> None:
    lim = RateLimiter(200)
    assert (lim.max_rate, lim.rate, lim.per, lim.name) == (200.0, 200.0, 1.0, "")
    assert (lim.burst, lim.min_rate, lim.cooldown, lim.recovery_window) == (20.0, 10.0, 1.0, 1.0)
    assert RateLimiter(5).burst == 1.0  # 0.5 rounds up to one whole request


# -- real threads ----------------------------------------------------------------------------


def test_threads_never_get_a_token_twice() -> None:
    rate, burst, threads_n, each = 2000.0, 10.0, 32, 10
    origin = time.monotonic()
    lim = RateLimiter(rate, burst=burst, name="threads")
    grants: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(threads_n)
    done: list[int] = []

    def work() -> None:
        start.wait()
        for _ in range(each):
            lim.acquire()
            now = time.monotonic()
            with lock:
                grants.append(now)
        with lock:
            done.append(1)

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(done) == threads_n  # every thread got all its turns
    assert lim.stats().acquired == threads_n * each == len(grants)
    # Each grant is recorded after it happened, so by any grant's time at most
    # burst + rate x (time since the limiter started) grants can have been made.
    grants.sort()
    for k, at in enumerate(grants, start=1):
        assert k <= burst + rate * (at - origin) + 1e-6, (k, at - origin)


# -- simulation: a client against a server's quota ------------------------------------------


def simulate(quota: float, lim: RateLimiter, t: FakeTime, seconds: float) -> tuple[int, int]:
    """A saturated client against a server bucket of one second of `quota` (starting full);
    every answer is reported to the limiter at once. Returns (accepted, throttled)."""
    tokens, stamp = quota, t.now
    accepted = throttled = 0
    while True:
        lim.acquire()
        if t.now >= seconds - 1e-6:  # a grant at `seconds` (give or take float sums) is past
            return accepted, throttled
        tokens, stamp = min(quota, tokens + (t.now - stamp) * quota), t.now
        if tokens >= 1.0:
            tokens -= 1.0
            accepted += 1
            lim.succeeded()
        else:
            throttled += 1
            lim.throttled()


@pytest.mark.parametrize("quota", [10.0, 20.0, 50.0, 100.0])
def test_a_client_at_the_quota_is_never_throttled(quota: float) -> None:
    t = FakeTime()
    accepted, throttled = simulate(quota, limiter(quota, t), t, 60.0)
    assert throttled == 0
    # Burst b = max(1, 0.1 q) at once, then grant k at (k - b) / q s: those before 60 s are
    # k < 60 q + b, i.e. 60 q + b - 1 of them (q = 10: 600; 20: 1201; 50: 3004; 100: 6009).
    assert accepted == max(1, round(0.1 * quota)) + round(60 * quota) - 1


def test_a_client_bursting_past_the_server_bucket_is_throttled() -> None:
    # The same client with a burst of two seconds' worth: the server's one second runs out.
    t = FakeTime()
    _, throttled = simulate(20.0, limiter(20.0, t, burst=40), t, 10.0)
    assert throttled > 0


def test_a_client_configured_at_twice_the_quota_settles() -> None:
    quota, seconds = 20.0, 120.0
    t = FakeTime()
    lim = limiter(2 * quota, t)
    accepted, throttled = simulate(quota, lim, t, seconds)
    # The server never accepts more than its bucket plus its refill: 20 + 20 x 120 = 2420.
    assert accepted <= quota + quota * seconds
    # Settled: at least 80 % of the quota gets through (1920), and few requests are wasted.
    assert accepted >= 0.8 * quota * seconds
    assert throttled / (accepted + throttled) < 0.01
    # Each throttle is of a request sent after the last decrease (one caller, answered at once):
    # each says the rate is still too high, and lowers it.
    stats = lim.stats()
    assert stats.throttles == stats.decreases == throttled
    assert lim.min_rate < stats.rate <= 2 * quota


def test_a_per_minute_client_at_twice_the_quota_settles() -> None:
    # 20 requests per minute, a server bucket of a minute's worth; the client at 40 per minute.
    per_second, seconds = 20 / 60, 3600.0
    t = FakeTime()
    lim = limiter(40, t, per=60)
    tokens, stamp = 20.0, 0.0
    accepted = throttled = 0
    while True:
        lim.acquire()
        if t.now >= seconds:
            break
        tokens, stamp = min(20.0, tokens + (t.now - stamp) * per_second), t.now
        if tokens >= 1.0:
            tokens -= 1.0
            accepted += 1
            lim.succeeded()
        else:
            throttled += 1
            lim.throttled()
    # An hour: at most 20 + 20 x 60 = 1220 accepted; at least 80 % of 1200.
    assert 0.8 * 1200 <= accepted <= 1220
    assert throttled / (accepted + throttled) < 0.06


def test_the_module_is_pure() -> None:
    # The engine imports it: it must not bring in boto3 or botocore.
    code = (
        "import sys, moderation.limits; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))"
    )
    root = Path(__file__).resolve().parents[1]  # this checkout's package, first on the path
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert done.stdout.strip() == "[]"
