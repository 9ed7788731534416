"""Learn-Then-Test for one side of one rule: fixed-sequence testing of candidate thresholds with
exact one-sided Clopper-Pearson bounds. Pure: no I/O.

A side is the region one threshold bounds: the approve side is every image whose score (the
rule's confidence) is below the lower band edge, the reject side every image at or above the
reject threshold. Candidates are tested in a fixed order, from the current threshold outward
(the approve region grows upward, the reject region downward), and testing stops at the first
candidate whose bound is above the target. Every candidate before it is proven at once: the
family-wise error of fixed-sequence testing is at most the level of each single test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from moderation.stats import upper_bound

__all__ = ["Item", "Needed", "SideResult", "Step", "candidates", "labels_needed", "run_side"]

Side = Literal["approve", "reject"]
# The candidate grid: whole confidence points. Fixed before any label is looked at, as the
# guarantee of fixed-sequence testing needs.
_GRID_STEP = 1.0
_MAX_STEPS = 200


@dataclass(frozen=True, slots=True)
class Item:
    """One image of a rule's traffic: its score (the rule's confidence), its QA draw, and the
    person's verdict where a usable label exists (True harmful; None: no usable label)."""

    id: str
    score: float
    draw: float
    harmful: bool | None


@dataclass(frozen=True, slots=True)
class Step:
    """One candidate threshold tested: the sample in its region (`n`, of which `missing` had no
    usable verdict and count as errors), the errors `k` (missing included) and the bound."""

    threshold: float
    images: int
    n: int
    k: int
    missing: int
    bound: float
    passed: bool


@dataclass(frozen=True, slots=True)
class Needed:
    """How many more sampled labels the first untested-or-failed step needs to pass, assuming its
    observed error rate holds; None when no number would do (observed rate at or over target)."""

    labels: int | None
    images: int | None  # of the rule's traffic in that region, at the sampling rate
    observed: float | None


@dataclass(frozen=True, slots=True)
class SideResult:
    """The steps tested, in order; `proven` is the outermost threshold that passed (None when the
    current one did not), `needed` what the first failing step lacked."""

    side: Side
    target: float
    confidence: float
    rate: float
    steps: tuple[Step, ...]
    proven: float | None
    needed: Needed | None


def _in_region(side: Side, score: float, threshold: float) -> bool:
    return score < threshold if side == "approve" else score >= threshold


def _step(side: Side, items: Sequence[Item], threshold: float, rate: float, conf: float) -> Step:
    images = n = k = missing = 0
    for item in items:
        if not _in_region(side, item.score, threshold):
            continue
        images += 1
        if item.draw >= rate:
            continue
        n += 1
        if item.harmful is None:
            missing += 1
            k += 1
        elif item.harmful is (side == "approve"):
            k += 1
    bound = upper_bound(k, n, conf)
    return Step(threshold, images, n, k, missing, bound, passed=False)


def candidates(side: Side, current: float, floor: float, ceiling: float) -> list[float]:
    """The fixed sequence: the current threshold, then whole points outward (up for approve,
    down for reject), within [floor, ceiling]."""
    out = [current]
    if side == "approve":
        t = math.floor(current / _GRID_STEP) * _GRID_STEP + _GRID_STEP
        while t <= ceiling and len(out) < _MAX_STEPS:
            out.append(t)
            t += _GRID_STEP
    else:
        t = math.ceil(current / _GRID_STEP) * _GRID_STEP - _GRID_STEP
        while t >= floor and len(out) < _MAX_STEPS:
            out.append(t)
            t -= _GRID_STEP
    return out


def run_side(
    side: Side,
    items: Sequence[Item],
    sequence: Sequence[float],
    *,
    rate: float,
    target: float,
    confidence: float,
) -> SideResult:
    """Fixed-sequence test of H0 "error rate in the region > target" for each threshold of
    `sequence` in order, each at `confidence`, stopping at the first that is not rejected.

    The sample of a region is every image in it whose QA draw is below `rate`: a Bernoulli(rate)
    draw independent of the image, so a uniform random sample of the region. A sampled image
    without a usable verdict counts as an error, which keeps the bound valid whatever the reason
    it is missing.
    """
    steps: list[Step] = []
    proven: float | None = None
    needed: Needed | None = None
    for threshold in sequence:
        step = _step(side, items, threshold, rate, confidence)
        passed = step.n > 0 and step.bound <= target
        steps.append(replace(step, passed=passed))
        if not passed:
            needed = labels_needed(step, target, confidence, rate)
            break
        proven = threshold
    return SideResult(side, target, confidence, rate, tuple(steps), proven, needed)


def labels_needed(step: Step, target: float, confidence: float, rate: float) -> Needed:
    """The smallest sample n' >= n whose bound, with the step's observed error rate, is at most
    `target`; with no error observed that is n' >= ln(1 - confidence) / ln(1 - target)."""
    observed = step.k / step.n if step.n else 0.0
    if observed >= target:
        return Needed(None, None, observed if step.n else None)

    def passes(m: int) -> bool:
        return upper_bound(math.ceil(observed * m - 1e-9), m, confidence) <= target

    high = max(1, step.n)
    while not passes(high):
        high *= 2
    low = max(0, step.n)
    while low < high:  # smallest passing size in (low, high]
        mid = (low + high) // 2
        if mid > 0 and passes(mid):
            high = mid
        else:
            low = mid + 1
    more = high - step.n
    images = math.ceil(more / rate) if rate > 0 else None
    return Needed(more, images, observed if step.n else None)
