"""One rule's proposal: both sides tested, the pair of thresholds chosen. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from moderation.policy import Thresholds
from moderation.tuning._ltt import Item, SideResult, candidates, run_side
from moderation.tuning._sample import RuleTraffic

__all__ = ["RuleProposal", "Targets", "propose_rule"]

Status = Literal["changed", "unchanged", "insufficient"]
_KEYS = ("reject", "review", "escalate")
_TOP = 100.0
_OUTCOME = {"approve": "approved", "reject": "rejected"}


@dataclass(frozen=True, slots=True)
class Targets:
    """What the proposal must hold: the error rates, the confidence of each side's statement,
    the QA rates the sample is drawn at, and the lowest threshold that means anything."""

    max_false_approve: float
    max_false_reject: float
    side_confidence: float
    approve_rate: float
    reject_rate: float
    floor: float


@dataclass(frozen=True, slots=True)
class RuleProposal:
    """A rule's thresholds before and after, the evidence, and why (`notes`)."""

    rule: str
    status: Status
    before: dict[str, float]
    after: dict[str, float]
    images: int
    labels: dict[str, int]
    left_out: dict[str, int]
    approve: SideResult
    reject: SideResult | None
    review_share_before: float | None
    review_share_after: float | None
    notes: tuple[str, ...] = field(default=())

    @property
    def changes(self) -> dict[str, float]:
        """The thresholds that change, by key."""
        return {k: v for k, v in self.after.items() if self.before.get(k) != v}


def plain(thresholds: Thresholds) -> dict[str, float]:
    """A rule's plain thresholds that are set, by key."""
    return {k: v for k in _KEYS if (v := getattr(thresholds, k)) is not None}


def _share(items: Sequence[Item], low: float, high: float | None) -> float | None:
    if not items:
        return None
    top = high if high is not None else float("inf")
    return sum(1 for item in items if low <= item.score < top) / len(items)


def _passed(side: SideResult | None) -> list[float]:
    return [step.threshold for step in side.steps if step.passed] if side is not None else []


def _choose(
    low0: float, high0: float | None, approve: SideResult, reject: SideResult | None
) -> tuple[float, float | None]:
    """The proven pair with the fewest images between them. Every threshold a side passed is
    proven (fixed-sequence testing proves them all at once); where the two sides' best cross,
    one common proven threshold closes the band, the middle one of those both sides passed."""
    up, down = _passed(approve), _passed(reject)
    low = up[-1] if up else low0
    high = (down[-1] if down else high0) if high0 is not None else None
    if high is None or low <= high:
        return low, high
    common = sorted(set(up) & set(down))
    if common:
        middle = common[len(common) // 2]
        return middle, middle
    assert high0 is not None
    low = max((t for t in up if t <= high0), default=low0)
    return low, min((t for t in down if t >= low), default=high0)


def _after(before: dict[str, float], low: float, high: float | None) -> dict[str, float]:
    after = dict(before)
    if "reject" in after and high is not None:
        after["reject"] = high
    if "escalate" in before and "review" in before:
        after["escalate"] = low
        after["review"] = min(max(before["review"], low), high if high is not None else _TOP)
    elif "escalate" in before or "review" in before:
        after["escalate" if "escalate" in before else "review"] = low
    return after


def propose_rule(traffic: RuleTraffic, thresholds: Thresholds, targets: Targets) -> RuleProposal:
    """Test the rule's approve side (from its lower band edge upward) and reject side (from its
    reject threshold downward) and choose. A rule without a band (reject only) has one threshold
    that trades one error for the other: both sides are tested at it and it stays."""
    before = plain(thresholds)
    edges = [before[k] for k in ("escalate", "review") if k in before]
    high0 = before.get("reject")
    banded = bool(edges)
    low0 = min(edges) if edges else high0
    assert low0 is not None  # the caller passes rules with some threshold
    items = traffic.items
    approve = run_side(
        "approve",
        items,
        candidates("approve", low0, targets.floor, _TOP) if banded else [low0],
        rate=targets.approve_rate,
        target=targets.max_false_approve,
        confidence=targets.side_confidence,
    )
    reject = None
    if high0 is not None:
        reject = run_side(
            "reject",
            items,
            candidates("reject", high0, targets.floor, _TOP) if banded else [high0],
            rate=targets.reject_rate,
            target=targets.max_false_reject,
            confidence=targets.side_confidence,
        )
    low, high = _choose(low0, high0, approve, reject) if banded else (low0, high0)
    after = _after(before, low, high) if banded else dict(before)
    failed = approve.proven is None or (reject is not None and reject.proven is None)
    status: Status = "changed" if after != before else "insufficient" if failed else "unchanged"
    return RuleProposal(
        rule=traffic.rule,
        status=status,
        before=before,
        after=after,
        images=len(items),
        labels=dict(traffic.kinds),
        left_out=dict(traffic.left_out),
        approve=approve,
        reject=reject,
        review_share_before=_share(items, low0, high0) if banded else 0.0 if items else None,
        review_share_after=_share(items, low, high) if banded else 0.0 if items else None,
        notes=_notes(traffic.rule, low0, high0, approve, reject, banded),
    )


def _side_note(rule: str, side: SideResult, current: float, banded: bool) -> str:
    word = "approvals" if side.side == "approve" else "rejections"
    if side.proven is not None and not banded:
        return f"{side.side} side: proven at {current:g} (one threshold, no band to narrow)"
    failed = side.steps[-1] if not side.steps[-1].passed else None
    if failed is None:
        return f"{side.side} side: proven up to {side.proven:g}"
    where = (
        f"below {failed.threshold:g}"
        if side.side == "approve"
        else (f"at or above {failed.threshold:g}")
    )
    head = (
        f"{side.side} side: the current threshold {current:g} is not proven"
        if side.proven is None
        else f"{side.side} side: proven up to {side.proven:g}, not at {failed.threshold:g}"
    )
    evidence = (
        f"{failed.n} sampled labels, {failed.k} errors, bound {failed.bound:.3f} > {side.target:g}"
    )
    needed = side.needed
    if needed is None or needed.labels is None:
        return f"{head} ({evidence}); the observed error rate is at or over the target"
    if failed.threshold == current:
        kind = f"QA samples of automatic {word} ({rule} {where})"
    else:
        band = (
            f"{current:g}-{failed.threshold:g}"
            if side.side == "approve"
            else f"{failed.threshold:g}-{current:g}"
        )
        kind = (
            f"QA-drawn labels of {rule} {where}: QA samples of automatic {word} and reviews of "
            f"confidence {band} (only reviews the QA draw picks count)"
        )
    images = (
        f", about {needed.images:,} more such images at the QA rate {side.rate:g}"
        if needed.images is not None
        else f" (QA sampling of {word} is off: set review.qa_sample.{_OUTCOME[side.side]})"
    )
    return f"{head} ({evidence}); needs {needed.labels:,} more {kind}{images}"


def _notes(
    rule: str,
    low0: float,
    high0: float | None,
    approve: SideResult,
    reject: SideResult | None,
    banded: bool,
) -> tuple[str, ...]:
    notes = [_side_note(rule, approve, low0, banded)]
    if reject is not None and high0 is not None:
        notes.append(_side_note(rule, reject, high0, banded))
    else:
        notes.append("reject side: the rule rejects nothing; left so")
    return tuple(notes)
