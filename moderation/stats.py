"""Intervals and agreement for what reviewers' verdicts prove: binomial confidence intervals
(Clopper-Pearson, exact), one-sided upper bounds, and Cohen's kappa.

scipy gives the beta quantiles (the `tuning` extra: `pip install 'moderation[tuning]'`); it is
imported on first use, so `import moderation` stays light.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Interval", "clopper_pearson", "cohen_kappa", "upper_bound"]


@dataclass(frozen=True, slots=True)
class Interval:
    """A proportion `k`/`n` with its confidence interval [`low`, `high`] at `confidence`."""

    k: int
    n: int
    low: float
    high: float
    confidence: float

    @property
    def rate(self) -> float | None:
        """The observed proportion; None when nothing was observed."""
        return self.k / self.n if self.n else None

    def to_json(self) -> dict[str, Any]:
        """`{"k", "n", "rate", "low", "high"}`, as every command's JSON shows an interval."""
        return {"k": self.k, "n": self.n, "rate": self.rate, "low": self.low, "high": self.high}


def _beta_ppf(q: float, a: float, b: float) -> float:
    try:
        from scipy.stats import beta
    except ImportError as exc:
        raise ImportError(
            "confidence intervals need scipy: pip install 'moderation[tuning]'"
        ) from exc
    return float(beta.ppf(q, a, b))


def _check(k: int, n: int, confidence: float) -> None:
    if isinstance(k, bool) or isinstance(n, bool) or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k!r}, n={n!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> Interval:
    """The exact (Clopper-Pearson) two-sided interval for `k` successes in `n` trials: it covers
    the true proportion at least `confidence` of the time, whatever it is. [0, 1] for n = 0."""
    _check(k, n, confidence)
    alpha = 1 - confidence
    low = 0.0 if k == 0 else _beta_ppf(alpha / 2, k, n - k + 1)
    high = 1.0 if k == n else _beta_ppf(1 - alpha / 2, k + 1, n - k)
    return Interval(k, n, low, high, confidence)


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """The one-sided exact upper confidence bound for `k` successes in `n` trials: the true
    proportion is below it with probability at least `confidence`. 1 for n = 0."""
    _check(k, n, confidence)
    return 1.0 if k == n else _beta_ppf(confidence, k + 1, n - k)


def cohen_kappa(pairs: Iterable[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two raters' labels on the same items: 1 is full agreement, 0 what chance
    alone gives. None with no pairs, or when chance agreement is certain (one label only)."""
    pairs = list(pairs)
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(1 for a, b in pairs if a == b) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    chance = sum(first[c] * second[c] for c in first.keys() | second.keys()) / (n * n)
    if math.isclose(chance, 1.0):
        return None
    return (observed - chance) / (1 - chance)
