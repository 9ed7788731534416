"""The escalation budget: at most N judge calls per tenant in any sliding window."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from moderation.policy import Budget

__all__ = ["EscalationBudget"]


class EscalationBudget:
    """Counts judge calls per tenant in this process (per Lambda container, per worker)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._calls: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def try_acquire(self, tenant: str, budget: Budget | None) -> bool:
        """Take one call from `tenant`'s budget; False when the window is full. None: unlimited."""
        if budget is None:
            return True
        now = self._clock()
        with self._lock:
            calls = self._calls.setdefault(tenant, deque())
            while calls and calls[0] <= now - budget.per_seconds:
                calls.popleft()
            if len(calls) >= budget.calls:
                return False
            calls.append(now)
            return True
