"""A rate limiter for tests that counts what the engine charges it and never waits."""

from __future__ import annotations

import threading

from moderation.limits import RateLimiter


class CountingLimiter(RateLimiter):
    """Counts what the engine charges it; never waits. (Its own attribute names, so as not to
    touch the real limiter's state.)"""

    def __init__(self) -> None:
        super().__init__(1000.0, name="counting")
        self._count_lock = threading.Lock()
        self.n_acquired = 0
        self.n_throttled = 0
        self.n_succeeded = 0

    def acquire(self) -> float:
        with self._count_lock:
            self.n_acquired += 1
        return 0.0

    def throttled(self) -> None:
        with self._count_lock:
            self.n_throttled += 1

    def succeeded(self) -> None:
        with self._count_lock:
            self.n_succeeded += 1
