"""Request-rate limiters shared by threads: a token bucket whose rate adapts to throttling (AIMD).

A service quota counts every request, retries included, so a limiter sits in front of each
attempt: `acquire()` blocks until one request may go, then the caller reports how it went with
`throttled()` or `succeeded()`. One limiter is meant to be shared by every thread (and every
transport) that spends the same quota, e.g. one for Rekognition's requests per second and one
for a Bedrock model's requests per minute::

    rekognition = RateLimiter(50, name="rekognition")           # 50 requests per second
    bedrock = RateLimiter(200, per=60, name="bedrock")          # 200 requests per minute

Pure: the standard library only. The clock and the sleep are injectable, so tests run on a fake
clock and never really wait.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DEFAULT_BURST_SECONDS",
    "DEFAULT_COOLDOWN",
    "DEFAULT_DECREASE",
    "DEFAULT_MIN_FRACTION",
    "DEFAULT_PROBE",
    "DEFAULT_RECOVERY",
    "THROTTLE_CODES",
    "LimiterStats",
    "RateLimiter",
]

#: Default burst: the requests a tenth of a second at the full rate allows, and at least one.
#: A server that enforces its quota with a bucket holding one second of it accepts any client
#: whose own burst is at most that second; a tenth leaves nine tenths of the server's bucket for
#: network jitter bunching requests up and for other clients. Small enough to pace smoothly, and
#: large enough that at 50 requests per second five threads may start at once.
DEFAULT_BURST_SECONDS: Final = 0.1

#: Multiplicative decrease on a throttle: the rate becomes 70 % of what it was (botocore's
#: adaptive retry mode uses the same factor, as TCP CUBIC does).
DEFAULT_DECREASE: Final = 0.7

#: Additive increase: for every `recovery_window` (`per`, and at least one second) of
#: throttle-free time, successes raise the rate by this fraction of the maximum rate. For a quota
#: per second, the full rate is back 3 s after one decrease (to 70 %) and 9.5 s after the floor
#: (5 %): one unlucky throttle costs seconds of capacity, not minutes, and a rate just over the
#: quota is approached gradually. For a quota per minute it takes minutes, because a server that
#: counts per minute remembers a burst for that long: creeping back within seconds re-triggers it
#: (simulated, a client configured at twice a 20-per-minute quota has 38 % of its requests
#: throttled when it recovers per second, 3 % when it recovers per minute).
DEFAULT_RECOVERY: Final = 0.1

#: Near the rate that was last throttled, recovery slows to this fraction of its pace: the quota
#: is probably there, so the limiter closes in fast (up to 90 % of that rate) and then probes past
#: it gently, the way TCP CUBIC approaches its last congestion window. A quota enforced with a
#: bucket of one second absorbs a slow probe for many seconds before it throttles again, so a
#: client configured at twice the quota settles just under it with few throttles, instead of
#: overshooting by 10 % of its configured rate every few seconds. Once the rate is 10 % past that
#: rate without a throttle (the quota rose, or another client left), it recovers at full pace again.
DEFAULT_PROBE: Final = 0.1

#: The floor, as a fraction of the maximum rate: however many throttles, some requests still go,
#: so that the limiter keeps learning when the pressure has gone.
DEFAULT_MIN_FRACTION: Final = 0.05

#: Seconds after a decrease during which further throttles are counted but do not decrease the
#: rate again. Requests that were already on the wire when the first throttle came back answer
#: within about one round trip, and a service answers a throttled request at once (it refuses it
#: before doing any work), so one second covers a burst of concurrent requests throttled together:
#: that is one congestion event, not one per request. Once the second has passed, throttles are
#: of requests sent at the lowered rate and rightly lower it again. At low rates pacing already
#: spaces requests `per / rate` apart (and the default burst is then one request), so each throttle
#: is a request of its own; a longer cooldown would only slow the reaction down.
DEFAULT_COOLDOWN: Final = 1.0

#: Error codes with which AWS services say "too many requests": the codes botocore's retry modes
#: treat as throttling (S3's SlowDown, DynamoDB's ProvisionedThroughputExceededException, EC2's
#: RequestLimitExceeded, Rekognition's and Bedrock's ThrottlingException, ...). An error with one
#: of these codes is what to report to `RateLimiter.throttled()`.
THROTTLE_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)

# A ticket this close to its time goes: float sums of refills need not land exactly on it.
_EPSILON: Final = 1e-9


@dataclass(frozen=True, slots=True)
class LimiterStats:
    """A snapshot of a `RateLimiter`'s state and counters.

    `max_rate` and `rate` are requests per `per` seconds; `acquired` counts the requests let
    through, `succeeded` and `throttles` the outcomes reported, `decreases` the times the rate was
    lowered, and `waited_s` the seconds all callers spent waiting in `acquire` together.
    """

    name: str
    per: float
    max_rate: float
    rate: float
    acquired: int
    succeeded: int
    throttles: int
    decreases: int
    waited_s: float


class RateLimiter:
    """A thread-safe token bucket for `rate` requests per `per` seconds that backs off on
    throttling and creeps back (additive increase, multiplicative decrease).

    Pacing: tokens accrue at `rate / per` per second into a bucket of `burst` tokens (default:
    `DEFAULT_BURST_SECONDS` worth of the full rate, at least 1) that starts full; `acquire`
    takes one, waiting for it when the bucket is empty. Waiters are served in the order they
    arrived, each sleeping until its own turn (outside the lock), so any number of threads all
    progress, and no more than `burst + rate/per * t` requests pass in any `t` seconds. A waiter
    whose turn moved because the rate dropped while it slept sleeps again.

    Adapting: `throttled()` multiplies the rate by `decrease` (default 0.7), at most once per
    `cooldown` seconds (default 1 s: see `DEFAULT_COOLDOWN`), never below `min_rate` (default 5 %
    of `rate`). `succeeded()` adds `recovery * rate` (default a tenth of the full rate) per
    `recovery_window` (`max(1 s, per)`) of throttle-free time since the last throttle or the last
    success, never above `rate` (see `DEFAULT_RECOVERY`); a tenth of that between 90 % and 110 %
    of the rate last throttled at (see `DEFAULT_PROBE`).

    `clock` must be monotonic and `sleep(s)` must let at least `s` seconds of it pass; a `sleep`
    after which `clock` has not moved at all (a test's frozen clock) ends the wait rather than
    spin.
    """

    def __init__(
        self,
        rate: float,
        *,
        per: float = 1.0,
        name: str = "",
        burst: float | None = None,
        min_rate: float | None = None,
        decrease: float = DEFAULT_DECREASE,
        recovery: float = DEFAULT_RECOVERY,
        cooldown: float = DEFAULT_COOLDOWN,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        max_rate = _positive("rate", rate, "requests per `per` seconds, e.g. 50")
        self.per: float = _positive(
            "per", per, "seconds, e.g. 1 for a rate per second, 60 per minute"
        )
        self.name: str = str(name)
        full_burst = max(1.0, DEFAULT_BURST_SECONDS * max_rate / self.per)
        self._burst = full_burst if burst is None else _positive("burst", burst, "requests")
        if self._burst < 1.0:
            raise ValueError(f"burst must be at least 1 request (one whole token), got {burst!r}")
        floor = DEFAULT_MIN_FRACTION * max_rate if min_rate is None else min_rate
        self._min = _positive("min_rate", floor, f"requests per {self.per:g} s")
        if self._min > max_rate:
            raise ValueError(f"min_rate must not be above rate ({rate!r}), got {min_rate!r}")
        if not _real(decrease) or not 0.0 < decrease < 1.0:
            raise ValueError(
                f"decrease must be a number between 0 and 1 (exclusive; the factor applied to"
                f" the rate on a throttle, e.g. 0.7), got {decrease!r}"
            )
        self._decrease = float(decrease)
        self._recovery = _positive(
            "recovery", recovery, "a fraction of rate per recovery window, e.g. 0.1"
        )
        if not _real(cooldown) or not 0.0 <= cooldown < math.inf:
            raise ValueError(f"cooldown must be a finite number of seconds >= 0, got {cooldown!r}")
        self._cooldown = float(cooldown)
        self._max = max_rate
        self._rate = max_rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        now = clock()
        # Tickets and credit, counted from the start: ticket k may go once credit >= k. The bucket
        # starts full, and credit never runs more than `burst` ahead of the tickets handed out.
        self._credit = self._burst
        self._issued = 0
        self._stamp = now  # when credit was last brought up to date
        self._calm_since = now  # the last throttle, or the last success that raised the rate
        self._quiet_until = -math.inf  # no decrease before this time
        self._ceiling = math.inf  # the rate last throttled at: recovery slows near it
        self._succeeded = 0
        self._throttles = 0
        self._decreases = 0
        self._waited = 0.0

    # -- configuration -----------------------------------------------------------------------

    @property
    def max_rate(self) -> float:
        """The rate as configured: requests per `per` seconds, the most this limiter allows."""
        return self._max

    @property
    def rate(self) -> float:
        """The rate allowed now (requests per `per` seconds), from `min_rate` to `max_rate`."""
        with self._lock:
            return self._rate

    @property
    def min_rate(self) -> float:
        """The floor no throttling takes the rate below."""
        return self._min

    @property
    def burst(self) -> float:
        """How many requests may go at once after a quiet spell (the bucket's capacity)."""
        return self._burst

    @property
    def recovery_window(self) -> float:
        """Seconds of throttle-free time in which the rate recovers `recovery * max_rate`."""
        return max(1.0, self.per)

    @property
    def cooldown(self) -> float:
        """Seconds after a decrease in which throttles do not decrease the rate again."""
        return self._cooldown

    # -- use ---------------------------------------------------------------------------------

    def acquire(self) -> float:
        """Block until one request may go; the seconds this call waited (0.0 when it did not)."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            self._issued += 1
            ticket = self._issued
            wait = self._wait_for(ticket)
        start = last = now
        while wait > 0.0:
            self._sleep(wait)
            with self._lock:
                now = self._clock()
                if now <= last:  # the clock did not move: waiting more would spin forever
                    break
                last = now
                self._refill(now)
                wait = self._wait_for(ticket)
        waited = max(0.0, last - start)
        if waited:
            with self._lock:
                self._waited += waited
        return waited

    def throttled(self) -> None:
        """The service throttled a request: lower the rate, once per congestion event."""
        with self._lock:
            now = self._clock()
            self._throttles += 1
            self._calm_since = now
            if now < self._quiet_until:
                return
            self._refill(now)
            self._ceiling = self._rate
            self._rate = max(self._min, self._rate * self._decrease)
            self._decreases += 1
            self._quiet_until = now + self._cooldown

    def succeeded(self) -> None:
        """A request went through: raise the rate towards `max_rate` for the throttle-free time."""
        with self._lock:
            now = self._clock()
            self._succeeded += 1
            if self._rate < self._max:
                self._refill(now)
                calm = max(0.0, now - self._calm_since) / self.recovery_window
                step = self._recovery * self._max * calm
                if self._rate >= 1.1 * self._ceiling:
                    self._ceiling = math.inf  # well past it: the quota has moved
                elif self._rate >= 0.9 * self._ceiling:
                    step *= DEFAULT_PROBE
                self._rate = min(self._max, self._rate + step)
            self._calm_since = max(self._calm_since, now)

    def stats(self) -> LimiterStats:
        """A consistent snapshot of the rate and the counters."""
        with self._lock:
            return LimiterStats(
                name=self.name,
                per=self.per,
                max_rate=self._max,
                rate=self._rate,
                acquired=self._issued,
                succeeded=self._succeeded,
                throttles=self._throttles,
                decreases=self._decreases,
                waited_s=self._waited,
            )

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        with self._lock:
            rate = self._rate
        return (
            f"RateLimiter({label}{rate:g}/{self._max:g} per {self.per:g} s, burst {self._burst:g})"
        )

    # -- internals (hold the lock) -----------------------------------------------------------

    def _refill(self, now: float) -> None:
        """Bring credit up to `now` at the current rate, the bucket capped at `burst`."""
        elapsed = now - self._stamp
        if elapsed > 0.0:
            self._credit = min(
                self._credit + elapsed * self._rate / self.per, self._issued + self._burst
            )
            self._stamp = now

    def _wait_for(self, ticket: int) -> float:
        """Seconds until `ticket` may go at the current rate (0.0: now)."""
        short = ticket - self._credit
        return short * self.per / self._rate if short > _EPSILON else 0.0


def _real(value: float) -> bool:
    """A finite int or float (not a bool, NaN or an infinity)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(name: str, value: float, unit: str) -> float:
    """`value` as a float, or a ValueError naming `name` unless it is a finite number > 0."""
    if not _real(value) or not value > 0:
        raise ValueError(f"{name} must be a finite number > 0 ({unit}), got {value!r}")
    return float(value)
