"""PLACEHOLDER until the rate limiter lands (the real module replaces this file whole)."""

from __future__ import annotations

from typing import Final

__all__ = ["THROTTLE_CODES", "RateLimiter"]

THROTTLE_CODES: Final = frozenset({"ThrottlingException", "ProvisionedThroughputExceededException"})


class RateLimiter:
    """Placeholder with the real API; does not limit."""

    def __init__(self, rate: float, *, per: float = 1.0, name: str = "") -> None:
        self.max_rate = self.rate = rate
        self.per = per
        self.name = name

    def acquire(self) -> float:
        return 0.0

    def throttled(self) -> None:
        pass

    def succeeded(self) -> None:
        pass
