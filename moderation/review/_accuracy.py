"""Reviewer accuracy on golden items: how often each reviewer's verdict matched the known answer.

Read from the audit log's `golden` review records (moderation/review_records.py), which carry the
answer each showing was shown with, so a golden item's answer changed later does not rewrite what
a reviewer was measured against. A skip is no verdict: it counts neither way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from moderation.audit import golden_verdicts
from moderation.audit._read import Paths
from moderation.review_records import ReviewRecord
from moderation.stats import Interval, clopper_pearson

__all__ = ["GoldenAccuracy", "golden_accuracy", "tally_golden"]


@dataclass(frozen=True, slots=True)
class GoldenAccuracy:
    """One reviewer's verdicts on golden items: `correct` of `total` matched the known answer;
    `interval` is the exact (Clopper-Pearson) confidence interval of their accuracy, `skipped`
    the showings they gave back unjudged."""

    reviewer: str
    correct: int
    total: int
    skipped: int
    interval: Interval

    @property
    def accuracy(self) -> float | None:
        """The share of verdicts that matched; None with none."""
        return self.correct / self.total if self.total else None


def golden_accuracy(
    paths: Paths,
    *,
    key: str | bytes | None = None,
    verified: bool = False,
    confidence: float = 0.95,
) -> dict[str, GoldenAccuracy]:
    """Per reviewer (sorted by name), their accuracy on the golden items of the audit logs at
    `paths`, with its Clopper-Pearson interval at `confidence`. With `key` (a keyed log's) or
    `verified=True`, only records that verify count: a forged verdict measures no one.
    Every verdict counts, one per showing judged (a reviewer is never offered the same golden
    decision twice by the desk)."""
    return tally_golden(golden_verdicts(paths, key=key, verified=verified), confidence)


def tally_golden(
    records: Iterable[ReviewRecord], confidence: float = 0.95
) -> dict[str, GoldenAccuracy]:
    """Per reviewer (sorted by name), the accuracy of the golden `records` (review records of
    golden showings; skips count as skipped, never as verdicts)."""
    counts: dict[str, list[int]] = {}
    for record in records:
        tally = counts.setdefault(record.reviewer, [0, 0, 0])
        if record.correct is None:
            tally[2] += 1
        else:
            tally[0] += record.correct
            tally[1] += 1
    return {
        name: GoldenAccuracy(
            reviewer=name,
            correct=correct,
            total=total,
            skipped=skipped,
            interval=clopper_pearson(correct, total, confidence),
        )
        for name, (correct, total, skipped) in sorted(counts.items())
    }
