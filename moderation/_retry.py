"""How a call is retried: attempts, backoff with full jitter, and a deadline across attempts.

Pure (tenacity and the stdlib): the AWS transports use it, and so can any adapter a user writes.
Sleep, clock and randomness are injectable, so tests never really sleep.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = ["RetryPolicy", "call_with_retries"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How tenacity retries one call: attempts, backoff and a deadline across all attempts."""

    attempts: int = 4
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    deadline: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)

    def single(self) -> RetryPolicy:
        """The same policy with one attempt (for clients that own their retries)."""
        return RetryPolicy(
            1,
            self.initial_backoff,
            self.max_backoff,
            self.deadline,
            self.sleep,
            self.clock,
            self.rng,
        )


def call_with_retries(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    retryable: Callable[[BaseException], bool],
    uncounted: Callable[[BaseException], bool] | None = None,
) -> tuple[T, int]:
    """Call `fn` under `policy`, retrying errors `retryable` accepts; the result and attempts made.

    The last error is re-raised with `attempts` set on it. No retry is started that could not
    finish its backoff before the deadline. An attempt that failed with an error `uncounted`
    accepts (a throttle, when a rate limiter already slows every request down) is retried without
    counting against `policy.attempts`: only the deadline bounds those.
    """
    # Imported here: only calls that leave the process retry, and tenacity is slow to import.
    from tenacity import Retrying, retry_if_exception

    start = policy.clock()
    attempts = 0
    free = 0  # attempts that failed in a way `uncounted` accepts

    def stop(state: RetryCallState) -> bool:
        nonlocal free
        error = state.outcome.exception() if state.outcome is not None else None
        if uncounted is not None and error is not None and uncounted(error):
            free += 1
        if state.attempt_number - free >= policy.attempts:
            return True
        upcoming = state.upcoming_sleep or 0.0
        return policy.clock() - start + upcoming >= policy.deadline

    def jittered(state: RetryCallState) -> float:
        # tenacity's jitter uses the global random; ours is injectable for deterministic tests.
        high = min(policy.max_backoff, policy.initial_backoff * 2 ** (state.attempt_number - 1))
        return policy.rng.uniform(0, high)

    retrying = Retrying(
        stop=stop,
        wait=jittered,
        retry=retry_if_exception(retryable),
        sleep=policy.sleep,
        reraise=True,
    )

    def counted() -> T:
        nonlocal attempts
        attempts += 1
        return fn()

    try:
        return retrying(counted), attempts
    except BaseException as exc:
        exc.attempts = attempts  # type: ignore[attr-defined]
        raise
