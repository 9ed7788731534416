"""Request-rate limiters shared by threads: a token bucket whose rate adapts to throttling (AIMD).

A service quota counts every request, retries included, so a limiter sits in front of each
attempt: `acquire()` blocks until one request may go, then the caller reports how it went with
`throttled()` or `succeeded()`. One limiter is meant to be shared by every thread (and every
transport) that spends the same quota, e.g. one for Rekognition's requests per second and one
for a Bedrock model's requests per minute::

    rekognition = RateLimiter(50, name="rekognition")           # at most 50 requests per second
    bedrock = RateLimiter(200, per=60, name="bedrock")          # at most 200 requests per minute
    found = RateLimiter(start=5, step=10, name="rekognition")   # no ceiling: finds the quota

A configured rate is a ceiling; without one the limiter starts at `start` and climbs by `step`
while callers wait for it and nothing is throttled, so it finds the quota by itself (what the
engine does by default for the AWS services, from `SERVICE_LIMITS`).

Also here: how the engine puts its limiters in front of a detector and a judge (`limit_detector`,
`limit_judge`): an AWS adapter is given the limiter (it charges every attempt, retries included),
any other is wrapped and charged once per call.

Pure: the standard library only. The clock and the sleep are injectable, so tests run on a fake
clock and never really wait.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from moderation.errors import DetectorError, JudgeError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from moderation.detection import Detection
    from moderation.image import PreparedImage
    from moderation.ports import Detector, Judge, JudgeRequest, Judgment

__all__ = [
    "DEFAULT_BURST_SECONDS",
    "DEFAULT_COOLDOWN",
    "DEFAULT_DECREASE",
    "DEFAULT_MIN_FRACTION",
    "DEFAULT_PROBE",
    "DEFAULT_RECOVERY",
    "SERVICE_LIMITS",
    "THROTTLE_CODES",
    "LimitedDetector",
    "LimitedJudge",
    "LimiterStats",
    "RateLimiter",
    "ServiceLimits",
    "limit_detector",
    "limit_judge",
    "service_limiter",
    "unwrapped",
]

#: Default burst: the requests a tenth of a second at the current rate allows, and at least one.
#: A server that enforces its quota with a bucket holding one second of it accepts any client
#: whose own burst is at most that second; a tenth leaves nine tenths of the server's bucket for
#: network jitter bunching requests up and for other clients. Small enough to pace smoothly, and
#: large enough that at 50 requests per second five threads may start at once.
DEFAULT_BURST_SECONDS: Final = 0.1

#: Multiplicative decrease on a throttle: the rate becomes 70 % of what it was (botocore's
#: adaptive retry mode uses the same factor, as TCP CUBIC does), or of the rate requests were
#: actually sent at when that was lower (a limiter allowing 100 per second to callers that sent
#: 80 backs off to 56, not to 70, which would still be above the 80 that were throttled).
DEFAULT_DECREASE: Final = 0.7

#: Additive increase with a configured rate: for every `recovery_window` (`per`, and at least one
#: second) that callers wait for the limiter without a throttle, the rate rises by this fraction
#: of the configured rate (without one, by `step` requests), and after a throttle by at most this
#: fraction of the rate last throttled at (a quota of 5 is not probed in steps of 10). A rate
#: per second is back 3 s after one decrease (to 70 %): one unlucky throttle costs seconds, not
#: minutes, and a rate just over the quota is approached gradually. For a quota per minute it
#: takes minutes, because a server that counts per minute remembers a burst for that long:
#: creeping back within seconds re-triggers it (simulated, a client configured at twice a
#: 20-per-minute quota has 38 % of its requests throttled when it recovers per second, 3 % when
#: it recovers per minute).
DEFAULT_RECOVERY: Final = 0.1

#: Near the rate that was last throttled, recovery slows to this fraction of its pace: the quota
#: is probably there, so the limiter closes in fast (up to 90 % of that rate) and then probes past
#: it gently, the way TCP CUBIC approaches its last congestion window. A quota enforced with a
#: bucket of one second absorbs a slow probe for many seconds before it throttles again, so a
#: client settles just under it with few throttles, instead of overshooting every few seconds.
#: Once the rate is 10 % past that rate without a throttle (the quota rose, or another client
#: left), it recovers at full pace again.
DEFAULT_PROBE: Final = 0.1

#: The floor, as a fraction of the configured rate (or of `start` without one): however many
#: throttles, some requests still go, so that the limiter keeps learning when the pressure has gone.
DEFAULT_MIN_FRACTION: Final = 0.05

#: Seconds after a decrease during which further throttles are counted but do not decrease the
#: rate again, for throttles reported on a thread that did not `acquire` the request (a caller
#: that acquires and reports on the same thread, as the AWS adapters and the engine's wrappers
#: do, is told apart exactly: a throttle of a request let through before the last decrease is of
#: the same congestion event, one let through after it says the lowered rate is still too high).
#: Requests already on the wire when the first throttle came back answer within about one round
#: trip, and a service answers a throttled request at once, so one second covers a burst of
#: concurrent requests throttled together.
DEFAULT_COOLDOWN: Final = 1.0


@dataclass(frozen=True, slots=True)
class ServiceLimits:
    """How the engine limits one AWS service when no rate is configured for it.

    `per` is the quota's period in seconds; the limiter starts at `start` requests per `per` and
    climbs by `step` per `max(1 s, per)` of time callers wait for it without a throttle.
    """

    per: float
    start: float
    step: float


#: The engine's limiters when nothing is configured. Rekognition's default DetectModerationLabels
#: quota is 5 to 50 requests per second depending on the region: starting at 5 is under every
#: region's default, and +20 per second while callers wait reaches 50 in 2.3 s (a run of a
#: thousand images at 50 per second loses about 50 requests' worth of time to the climb).
#: Bedrock's on-demand quotas are per model and region, tens to thousands of requests per minute,
#: and judge calls are a small share of the images: 60 a minute to begin with, +300 per minute of
#: waiting (simulated against a bucket of a minute's worth, over an hour: quotas of 20 to 1,000
#: per minute are used at 99-101 % with under 1 % throttled; +60 reached 1,000 only after
#: sixteen minutes). Set `MODERATION_REKOGNITION_TPS` / `MODERATION_BEDROCK_RPM` when the quota
#: is known.
SERVICE_LIMITS: Final[Mapping[str, ServiceLimits]] = MappingProxyType(
    {
        "rekognition": ServiceLimits(per=1.0, start=5.0, step=20.0),
        "bedrock": ServiceLimits(per=60.0, start=60.0, step=300.0),
    }
)

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

# The longest a waiter sleeps before it looks at its turn again: a rate that rose meanwhile (a
# limiter finding the quota climbs from 5 to 50 per second in seconds) lets it go sooner. 256
# waiters wake 1,000 times a second between them: a few per cent of one core.
_LONGEST_SLEEP: Final = 0.25


@dataclass(frozen=True, slots=True)
class LimiterStats:
    """A snapshot of a `RateLimiter`'s state and counters.

    `max_rate` and `rate` are requests per `per` seconds (`max_rate` is `math.inf` when no rate
    was configured); `acquired` counts the requests let through, `succeeded` and `throttles` the
    outcomes reported, `decreases` the times the rate was lowered, and `waited_s` the seconds all
    callers spent waiting in `acquire` together.
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

    `rate` is a ceiling; with `rate=None` there is none and the limiter finds the quota: it
    starts at `start` and climbs by `step` requests per `per` for every `recovery_window` that
    callers wait for it without a throttle. With a ceiling it starts there (or at `start`) and
    climbs back by `recovery * rate` (or `step`).

    Pacing: tokens accrue at `rate / per` per second into a bucket of `burst` tokens (default:
    `DEFAULT_BURST_SECONDS` worth of the current rate, at least 1) that starts full; `acquire`
    takes one, waiting for it when the bucket is empty. Waiters are served in the order they
    arrived, each sleeping until its own turn (outside the lock), so any number of threads all
    progress, and no more than `burst + rate/per * t` requests pass in any `t` seconds. A waiter
    looks at its turn again at least every quarter of a second: if the rate rose meanwhile it
    goes sooner, if it dropped it sleeps longer.

    Adapting: `throttled()` lowers the rate to `decrease` (default 0.7) times the lower of the
    rate and the rate requests were let through at over the last `recovery_window`, once per
    congestion event (see `DEFAULT_COOLDOWN`), never below `min_rate` (default 5 % of `rate`,
    or of `start`), and empties the bucket. `succeeded()` raises it by `step` per
    `recovery_window` of throttle-free time since the last throttle or success, but only if a
    caller had to wait for the limiter meanwhile: a rate nobody uses says nothing about the
    quota, and is not raised. Once a throttle has shown where the quota is, the step is at most
    `recovery` times the rate last throttled at, and a tenth of that between 90 % and 110 % of it
    (see `DEFAULT_PROBE`); never above `rate`.

    `clock` must be monotonic and `sleep(s)` must let at least `s` seconds of it pass; a `sleep`
    after which `clock` has not moved at all (a test's frozen clock) ends the wait rather than
    spin.
    """

    # What the bucket and the adaptation keep (set by `_start_counting`; guarded by `_lock`).
    _credit: float
    _issued: int
    _stamp: float
    _born: float
    _sent: deque[float]
    _pressed: bool
    _calm_since: float
    _decreased_at: float
    _ceiling: float
    _succeeded: int
    _throttles: int
    _decreases: int
    _waited: float

    def __init__(
        self,
        rate: float | None = None,
        *,
        per: float = 1.0,
        name: str = "",
        start: float | None = None,
        step: float | None = None,
        burst: float | None = None,
        min_rate: float | None = None,
        decrease: float = DEFAULT_DECREASE,
        recovery: float = DEFAULT_RECOVERY,
        cooldown: float = DEFAULT_COOLDOWN,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.per: float = _positive(
            "per", per, "seconds, e.g. 1 for a rate per second, 60 per minute"
        )
        self.name: str = str(name)
        unit = f"requests per {self.per:g} s"
        self._max, first = _ceiling_and_start(rate, start, unit)
        self._recovery = _positive(
            "recovery", recovery, "a fraction of rate per recovery window, e.g. 0.1"
        )
        if step is not None:
            self._step = _positive("step", step, f"{unit}, added per recovery window")
        else:
            self._step = first if rate is None else self._recovery * self._max
        self._fixed_burst = None if burst is None else _burst(burst)
        floor = DEFAULT_MIN_FRACTION * (first if rate is None else self._max)
        self._min = _positive("min_rate", floor if min_rate is None else min_rate, unit)
        if self._min > first:
            raise ValueError(
                f"min_rate must not be above the starting rate ({first:g}), got {min_rate!r}"
            )
        if not _real(decrease) or not 0.0 < decrease < 1.0:
            raise ValueError(
                f"decrease must be a number between 0 and 1 (exclusive; the factor applied to"
                f" the rate on a throttle, e.g. 0.7), got {decrease!r}"
            )
        self._decrease = float(decrease)
        if not _real(cooldown) or not 0.0 <= cooldown < math.inf:
            raise ValueError(f"cooldown must be a finite number of seconds >= 0, got {cooldown!r}")
        self._cooldown = float(cooldown)
        self._rate = first
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._local = threading.local()  # when this thread's last request was let through
        self._start_counting(clock())

    # -- configuration -----------------------------------------------------------------------

    @property
    def max_rate(self) -> float:
        """The rate as configured: requests per `per` seconds, the most this limiter allows
        (`math.inf` when none was: the limiter finds the quota)."""
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
    def step(self) -> float:
        """Requests per `per` the rate rises by for each `recovery_window` of waiting callers
        and no throttle (a tenth of it near the rate last throttled at)."""
        return self._step

    @property
    def burst(self) -> float:
        """How many requests may go at once after a quiet spell (the bucket's capacity now)."""
        with self._lock:
            return self._burst_now()

    @property
    def recovery_window(self) -> float:
        """Seconds of throttle-free waiting in which the rate rises by `step`."""
        return max(1.0, self.per)

    @property
    def cooldown(self) -> float:
        """Seconds after a decrease in which throttles reported on a thread that did not
        acquire the request do not decrease the rate again."""
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
            if wait > 0.0:
                self._pressed = True
        start = last = now
        while wait > 0.0:
            self._sleep(min(wait, _LONGEST_SLEEP))
            with self._lock:
                now = self._clock()
                if now <= last:  # the clock did not move: waiting more would spin forever
                    break
                last = now
                self._refill(now)
                wait = self._wait_for(ticket)
        waited = max(0.0, last - start)
        with self._lock:
            self._waited += waited
            self._sent.append(last)
            self._forget_sent(last)
        self._local.sent_at = last
        return waited

    def throttled(self) -> None:
        """The service throttled a request: lower the rate, once per congestion event."""
        sent_at: float | None = getattr(self._local, "sent_at", None)
        self._local.sent_at = None
        with self._lock:
            now = self._clock()
            self._throttles += 1
            self._calm_since = now
            if sent_at is not None:
                if sent_at <= self._decreased_at:  # sent at the old rate: that event is answered
                    return
            elif now < self._decreased_at + self._cooldown:
                return
            self._refill(now)
            # What was really sent is known only to a caller that acquires through this limiter.
            base = self._rate if sent_at is None else min(self._rate, self._sending(now))
            self._ceiling = base
            self._rate = max(self._min, base * self._decrease)
            # The server's own bucket is empty now: requests saved up in ours would go at once,
            # at the old pace, into it. From here they are paced at the lowered rate.
            self._credit = min(self._credit, float(self._issued))
            self._decreases += 1
            self._decreased_at = now

    def succeeded(self) -> None:
        """A request went through: raise the rate for the throttle-free time callers waited."""
        self._local.sent_at = None
        with self._lock:
            now = self._clock()
            self._succeeded += 1
            if self._pressed and self._rate < self._max:
                self._refill(now)
                if self._rate >= 1.1 * self._ceiling:
                    self._ceiling = math.inf  # well past it: the quota has moved
                # Searching, `step`; once a throttle has shown where the quota is, a step in
                # proportion to it, so that a quota of 5 is not probed in steps of 10.
                step = min(self._step, self._recovery * self._ceiling)
                if self._rate >= 0.9 * self._ceiling:
                    step *= DEFAULT_PROBE
                step *= max(0.0, now - self._calm_since) / self.recovery_window
                self._rate = min(self._max, self._rate + step)
            self._pressed = False
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
            rate, burst = self._rate, self._burst_now()
        ceiling = f"/{self._max:g}" if math.isfinite(self._max) else " (no ceiling)"
        return f"RateLimiter({label}{rate:g}{ceiling} per {self.per:g} s, burst {burst:g})"

    # -- internals (hold the lock) -----------------------------------------------------------

    def _start_counting(self, now: float) -> None:
        """The bucket full, no request yet, nothing learnt."""
        # Tickets and credit, counted from the start: ticket k may go once credit >= k. The bucket
        # starts full, and credit never runs more than `burst` ahead of the tickets handed out.
        self._credit = self._burst_now()
        self._issued = 0
        self._stamp = now  # when credit was last brought up to date
        self._born = now
        self._sent = deque()  # when requests were let through, the last window's
        self._pressed = False  # a caller waited since the rate was last raised (or not)
        self._calm_since = now  # the last throttle or the last success
        self._decreased_at = -math.inf
        self._ceiling = math.inf  # the rate last throttled at: recovery slows near it
        self._succeeded = 0
        self._throttles = 0
        self._decreases = 0
        self._waited = 0.0

    def _burst_now(self) -> float:
        if self._fixed_burst is not None:
            return self._fixed_burst
        return max(1.0, DEFAULT_BURST_SECONDS * self._rate / self.per)

    def _refill(self, now: float) -> None:
        """Bring credit up to `now` at the current rate, the bucket capped at `burst`."""
        elapsed = now - self._stamp
        if elapsed > 0.0:
            self._credit = min(
                self._credit + elapsed * self._rate / self.per, self._issued + self._burst_now()
            )
            self._stamp = now

    def _wait_for(self, ticket: int) -> float:
        """Seconds until `ticket` may go at the current rate (0.0: now)."""
        short = ticket - self._credit
        return short * self.per / self._rate if short > _EPSILON else 0.0

    def _forget_sent(self, now: float) -> None:
        horizon = now - self.recovery_window
        while self._sent and self._sent[0] < horizon:
            self._sent.popleft()

    def _sending(self, now: float) -> float:
        """The rate requests were let through at over the last `recovery_window` (or since the
        limiter was made, if that is shorter), in requests per `per`; inf before any time passed."""
        self._forget_sent(now)
        span = min(self.recovery_window, now - self._born)
        return len(self._sent) * self.per / span if span > 0.0 else math.inf


def _ceiling_and_start(rate: float | None, start: float | None, unit: str) -> tuple[float, float]:
    """The ceiling (`math.inf` for no `rate`) and the rate to begin at, validated."""
    if rate is None:
        if start is None:
            raise ValueError(
                "a RateLimiter without a rate (no ceiling) needs start=: the rate to begin at, in"
                f" {unit}, e.g. 5"
            )
        ceiling = math.inf
    else:
        ceiling = _positive("rate", rate, "requests per `per` seconds, e.g. 50")
    first = ceiling if start is None else _positive("start", start, unit)
    if first > ceiling:
        raise ValueError(f"start must not be above rate ({rate!r}), got {start!r}")
    return ceiling, first


def _burst(burst: float) -> float:
    """`burst` validated: a whole request at least."""
    value = _positive("burst", burst, "requests")
    if value < 1.0:
        raise ValueError(f"burst must be at least 1 request (one whole token), got {burst!r}")
    return value


def _real(value: float) -> bool:
    """A finite int or float (not a bool, NaN or an infinity)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(name: str, value: float, unit: str) -> float:
    """`value` as a float, or a ValueError naming `name` unless it is a finite number > 0."""
    if not _real(value) or not value > 0:
        raise ValueError(f"{name} must be a finite number > 0 ({unit}), got {value!r}")
    return float(value)


# -- the engine's limiters in front of a detector and a judge ---------------------------------


def service_limiter(
    service: str, rate: float | RateLimiter | None, *, find: bool = True
) -> RateLimiter | None:
    """The limiter for `service` (a key of `SERVICE_LIMITS`): a `RateLimiter` as given, a number
    as the ceiling in the service's unit (per second for Rekognition, per minute for Bedrock),
    or, for None, one that finds the quota from `SERVICE_LIMITS` (None when not `find`)."""
    limits = SERVICE_LIMITS[service]
    if isinstance(rate, RateLimiter):
        return rate
    if rate is None:
        if not find:
            return None
        return RateLimiter(per=limits.per, start=limits.start, step=limits.step, name=service)
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise ValueError(f"{service} rate must be a number or a RateLimiter, got {rate!r}")
    return RateLimiter(float(rate), per=limits.per, name=service)


class LimitedDetector:
    """A detector without a `limiter` of its own, charged one token per call."""

    def __init__(self, inner: Detector, limiter: RateLimiter) -> None:
        self.inner = inner
        self.limiter = limiter

    def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
        """The inner detector's answer, once the limiter lets the call go."""
        self.limiter.acquire()
        try:
            detection = self.inner.detect(image, min_confidence=min_confidence)
        except DetectorError as exc:
            if exc.code in THROTTLE_CODES:
                self.limiter.throttled()
            raise
        self.limiter.succeeded()
        return detection


class LimitedJudge:
    """A judge without a `limiter` of its own, charged one token per call."""

    def __init__(self, inner: Judge, limiter: RateLimiter) -> None:
        self.inner = inner
        self.limiter = limiter

    def judge(self, image: PreparedImage, request: JudgeRequest) -> Judgment:
        """The inner judge's judgment, once the limiter lets the call go."""
        self.limiter.acquire()
        try:
            judgment = self.inner.judge(image, request)
        except JudgeError as exc:
            if exc.code in THROTTLE_CODES:
                self.limiter.throttled()
            raise
        self.limiter.succeeded()
        return judgment


def limit_detector(
    detector: Detector, rate: float | RateLimiter | None
) -> tuple[Detector, RateLimiter | None]:
    """`detector` charged to the Rekognition limiter that `rate` names, and that limiter (None:
    not limited). See `_limit`."""
    limited, limiter = _limit(detector, "rekognition", rate, LimitedDetector)
    return limited, limiter


def limit_judge(
    judge: Judge | None, rate: float | RateLimiter | None
) -> tuple[Judge | None, RateLimiter | None]:
    """`judge` charged to the Bedrock limiter that `rate` names, and that limiter (None: not
    limited); with no judge, the limiter a configured `rate` names. See `_limit`."""
    if judge is None:
        return None, service_limiter("bedrock", rate, find=False)
    limited, limiter = _limit(judge, "bedrock", rate, LimitedJudge)
    return limited, limiter


def _limit(
    part: Any,
    service: str,
    rate: float | RateLimiter | None,
    wrapper: Callable[[Any, RateLimiter], Any],
) -> tuple[Any, RateLimiter | None]:
    """`part` charged to `service`'s limiter, and that limiter.

    An AWS adapter (a settable `limiter` property) is given the limiter and charges every
    attempt, retries included; any other part is wrapped and charged once per call. With no rate
    configured, an adapter keeps a limiter it was already given, else gets one that finds the
    quota (`SERVICE_LIMITS`); any other part is left unlimited: what it calls, if it has a quota
    at all, is not the service's, so only a configured rate limits it.
    """
    takes = isinstance(getattr(type(part), "limiter", None), property)
    if rate is None and takes and isinstance(part.limiter, RateLimiter):
        return part, part.limiter
    limiter = service_limiter(service, rate, find=takes)
    if limiter is None:
        return part, None
    if takes:
        part.limiter = limiter
        return part, limiter
    return wrapper(part, limiter), limiter


def unwrapped(part: Any) -> Any:
    """The detector or judge a `LimitedDetector` / `LimitedJudge` wraps, else `part` itself."""
    return part.inner if isinstance(part, LimitedDetector | LimitedJudge) else part
