"""The escalation budget: at most N judge calls per tenant in any sliding window, and optionally at
most `max_calls` judge calls in all (what `moderation eval --max-judge-calls` sets)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from moderation.policy import Budget

__all__ = ["EscalationBudget"]


class EscalationBudget:
    """Counts judge calls per tenant in this process (per Lambda container, per worker).

    `max_calls`: the most judge calls this budget grants in all, whatever the tenant and the
    policy say (None: no such limit). Once they are taken, every escalation is refused a call and
    its decision says why, as for a policy's own budget.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, max_calls: int | None = None
    ) -> None:
        if max_calls is not None and (
            isinstance(max_calls, bool) or not isinstance(max_calls, int) or max_calls < 0
        ):
            raise ValueError(f"max_calls must be a whole number >= 0 or None, got {max_calls!r}")
        self._clock = clock
        self._calls: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self.max_calls = max_calls
        self.granted = 0  # calls granted so far, every tenant together

    def try_acquire(self, tenant: str, budget: Budget | None) -> bool:
        """Take one call from `tenant`'s budget; False when the window is full. None: unlimited."""
        return self.acquire(tenant, budget) is None

    def acquire(self, tenant: str, budget: Budget | None) -> str | None:
        """Take one call: None when it is granted, else why not (the note a decision records)."""
        now = self._clock()
        with self._lock:
            if self.max_calls is not None and self.granted >= self.max_calls:
                return (
                    f"judge call limit reached ({self.max_calls} judge calls for this engine): "
                    "sent to human review"
                )
            if budget is not None:
                calls = self._calls.setdefault(tenant, deque())
                while calls and calls[0] <= now - budget.per_seconds:
                    calls.popleft()
                if len(calls) >= budget.calls:
                    return (
                        f"escalation budget exhausted ({budget.calls} judge calls per "
                        f"{budget.per_seconds:g}s for tenant '{tenant}'): sent to human review"
                    )
                calls.append(now)
            self.granted += 1
            return None
