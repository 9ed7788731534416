"""Review statistics: what reviewers decided, and what it proves about the automation.

Pure: the caller reads the audit logs (their entries in log order, and their labels) and the
desk's waiting items; this module counts. docs/tuning.md ("Review statistics") says what each
number means and which labels enter it:

- decisions and labels per tenant and per deciding rule (`category_of`, `NO_BAND` for none);
- the false-approve and false-reject rates, from blind QA labels only (an unbiased sample of the
  automatic outcomes), per sampling rate (a stratum) and, when the rates differ, combined with
  inverse-probability weights and a Bonferroni-combined exact interval;
- the judge's agreement with people on escalated cases (QA and review labels; never appeals);
- agreement between the first two reviewers of a round (Cohen's kappa);
- verdicts and skips per reviewer, and their accuracy on golden items (known answers, shown
  blind; a golden verdict is never a label and never enters the agreement between reviewers);
- and the desk's queue: open items, their ages, SLA breaches.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from moderation.decision import Decision, Outcome, VerdictKind
from moderation.review._accuracy import GoldenAccuracy, tally_golden
from moderation.review._labels import Label, LabelKind, category_of
from moderation.review._model import Waiting
from moderation.review_records import AppealRecord, ReviewRecord
from moderation.stats import Interval, clopper_pearson, cohen_kappa

__all__ = [
    "ALL_CATEGORIES",
    "NO_BAND",
    "CategoryStats",
    "ErrorRate",
    "JudgeAgreement",
    "QueueStats",
    "ReviewStats",
    "ReviewerAgreement",
    "ReviewerCount",
    "Stratum",
    "TenantStats",
    "error_rate",
    "nearest_rank",
    "queue_stats",
    "review_stats",
]

#: The category of decisions no rule decided (no label reached a band, or nothing was detected).
NO_BAND = "(no band)"
#: The category of a tenant's row over all its categories.
ALL_CATEGORIES = "(all)"
_KINDS = (LabelKind.QA, LabelKind.REVIEW, LabelKind.APPEAL)

Entry = Decision | ReviewRecord | AppealRecord


@dataclass(frozen=True, slots=True)
class Stratum:
    """The QA labels drawn at one sampling rate (None: a rate the records do not state): `k`
    errors in `n` labels, with the exact interval of that proportion."""

    qa_rate: float | None
    interval: Interval


@dataclass(frozen=True, slots=True)
class ErrorRate:
    """An automatic error rate estimated from QA labels.

    One stratum (one sampling rate): `estimate` is k/n and [`low`, `high`] its Clopper-Pearson
    interval. Several: `estimate` weighs each stratum's proportion by its estimated share of the
    traffic (n/rate) and the interval sums the strata's exact intervals, each at confidence
    1 - (1 - confidence)/strata (Bonferroni), with the same weights. `estimate` None: no labels, or
    several strata of which one has no known rate (nothing to weigh it by).
    """

    strata: tuple[Stratum, ...]
    estimate: float | None
    low: float
    high: float
    confidence: float

    @property
    def k(self) -> int:
        """Errors among the labels, over every stratum."""
        return sum(s.interval.k for s in self.strata)

    @property
    def n(self) -> int:
        """Labels, over every stratum."""
        return sum(s.interval.n for s in self.strata)

    @property
    def method(self) -> str:
        """How the interval was made: `clopper-pearson`, `weighted-bonferroni`, or `none`."""
        if len(self.strata) <= 1:
            return "clopper-pearson"
        return "weighted-bonferroni" if self.estimate is not None else "none"


@dataclass(frozen=True, slots=True)
class CategoryStats:
    """One tenant's decisions of one deciding rule (`NO_BAND`, or `ALL_CATEGORIES` for all):
    how many, how many labels of each kind, and the automatic error rates."""

    category: str
    decisions: int
    labels: tuple[tuple[LabelKind, int], ...]
    false_approve: ErrorRate
    false_reject: ErrorRate


@dataclass(frozen=True, slots=True)
class JudgeAgreement:
    """The judge against people on escalated, labelled cases (QA and review labels): how many
    cases, the precision of its rejections (of those it rejected, the share people rejected) and
    their recall (of those people rejected, the share it rejected)."""

    cases: int
    precision: Interval
    recall: Interval


@dataclass(frozen=True, slots=True)
class ReviewerAgreement:
    """Cohen's kappa of the first two reviewers' verdicts in the same round; None when there are
    no pairs or chance agreement is certain."""

    pairs: int
    kappa: float | None


@dataclass(frozen=True, slots=True)
class ReviewerCount:
    """One reviewer's verdicts (approve or reject) and skips on the traffic's items in the logs,
    and their accuracy on golden items (None: never shown one)."""

    reviewer: str
    verdicts: int
    skips: int
    golden: GoldenAccuracy | None = None


@dataclass(frozen=True, slots=True)
class TenantStats:
    """Everything about one tenant: per category, the total row, the judge, reviewers."""

    tenant: str
    categories: tuple[CategoryStats, ...]
    total: CategoryStats
    judge: JudgeAgreement
    agreement: ReviewerAgreement
    reviewers: tuple[ReviewerCount, ...]


@dataclass(frozen=True, slots=True)
class ReviewStats:
    """The statistics of the logs, per tenant (sorted), at `confidence`."""

    tenants: tuple[TenantStats, ...]
    confidence: float


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One tenant's undecided desk items: how many (`open`, of them `leased` now), the median and
    95th percentile of their ages in seconds (nearest rank), and how many are past due."""

    tenant: str
    open: int
    leased: int
    age_p50: float
    age_p95: float
    breaches: int


@dataclass
class _Tenant:
    decisions: Counter[str] = field(default_factory=Counter)
    labels: list[Label] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    verdicts: Counter[str] = field(default_factory=Counter)
    skips: Counter[str] = field(default_factory=Counter)
    golden: list[ReviewRecord] = field(default_factory=list)


class _Round:
    """A decision's current round: its tenant and the first two reviewers' verdicts in it."""

    __slots__ = ("tenant", "votes")

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.votes: list[tuple[str, str]] = []


def review_stats(
    entries: Iterable[Entry],
    labels: Iterable[Label],
    *,
    tenant: str | None = None,
    confidence: float = 0.95,
) -> ReviewStats:
    """The statistics of the logs: `entries` are their decisions, review and appeal records in
    log order, `labels` their labels (`moderation.review.labels`); only `tenant`'s with one.
    Records about a decision the entries do not hold are left out."""
    tenants: dict[str, _Tenant] = {}
    _count_entries(entries, tenants, tenant)
    for label in labels:
        if tenant is None or label.decision.tenant == tenant:
            tenants.setdefault(label.decision.tenant, _Tenant()).labels.append(label)
    return ReviewStats(
        tuple(_tenant_stats(name, tenants[name], confidence) for name in sorted(tenants)),
        confidence,
    )


def _count_entries(entries: Iterable[Entry], tenants: dict[str, _Tenant], only: str | None) -> None:
    rounds: dict[str, _Round] = {}
    for entry in entries:
        if isinstance(entry, Decision):
            if (only is None or entry.tenant == only) and entry.id not in rounds:
                rounds[entry.id] = _Round(entry.tenant)
                category = category_of(entry) or NO_BAND
                tenants.setdefault(entry.tenant, _Tenant()).decisions[category] += 1
            continue
        current = rounds.get(entry.decision_id)
        if current is None:
            continue
        if isinstance(entry, AppealRecord):
            current.votes = []  # an appeal opens a new round
            continue
        if entry.golden:  # measures the reviewer, says nothing of the traffic
            tenants[current.tenant].golden.append(entry)
            continue
        _count_review(entry, current, tenants[current.tenant])


def _count_review(record: ReviewRecord, current: _Round, tally: _Tenant) -> None:
    if record.verdict == "skip":
        tally.skips[record.reviewer] += 1
        return
    tally.verdicts[record.reviewer] += 1
    votes = current.votes
    if len(votes) < 2 and all(reviewer != record.reviewer for reviewer, _ in votes):
        votes.append((record.reviewer, record.verdict))
        if len(votes) == 2:
            tally.pairs.append((votes[0][1], votes[1][1]))


def _tenant_stats(name: str, tally: _Tenant, confidence: float) -> TenantStats:
    by_category: dict[str, list[Label]] = {}
    for label in tally.labels:
        by_category.setdefault(category_of(label.decision) or NO_BAND, []).append(label)
    names = sorted(tally.decisions.keys() | by_category.keys())
    categories = tuple(
        _category(c, tally.decisions[c], by_category.get(c, []), confidence) for c in names
    )
    total = _category(ALL_CATEGORIES, sum(tally.decisions.values()), tally.labels, confidence)
    golden = tally_golden(tally.golden, confidence)
    reviewers = tuple(
        ReviewerCount(r, tally.verdicts[r], tally.skips[r], golden.get(r))
        for r in sorted(tally.verdicts.keys() | tally.skips.keys() | golden.keys())
    )
    agreement = ReviewerAgreement(len(tally.pairs), cohen_kappa(tally.pairs))
    return TenantStats(
        name, categories, total, _judge(tally.labels, confidence), agreement, reviewers
    )


def _category(
    category: str, decisions: int, labels: Sequence[Label], confidence: float
) -> CategoryStats:
    kinds = Counter(label.kind for label in labels)
    qa = [label for label in labels if label.kind is LabelKind.QA]
    approved = [label for label in qa if label.decision.outcome is Outcome.APPROVED]
    rejected = [label for label in qa if label.decision.outcome is Outcome.REJECTED]
    return CategoryStats(
        category=category,
        decisions=decisions,
        labels=tuple((kind, kinds[kind]) for kind in _KINDS),
        false_approve=error_rate(approved, confidence),
        false_reject=error_rate(rejected, confidence),
    )


def error_rate(labels: Sequence[Label], confidence: float = 0.95) -> ErrorRate:
    """The error rate of QA `labels` of one automatic outcome: the share a person overturned
    (`machine_was_right` False), per sampling rate and combined (see `ErrorRate`)."""
    tallies: dict[float | None, list[int]] = {}
    for label in labels:
        tally = tallies.setdefault(label.qa_rate, [0, 0])
        tally[0] += label.machine_was_right is False
        tally[1] += 1
    order = sorted(tallies, key=lambda r: (r is None, r or 0.0))
    strata = tuple(
        Stratum(r, clopper_pearson(tallies[r][0], tallies[r][1], confidence)) for r in order
    )
    if not strata:
        return ErrorRate((), None, 0.0, 1.0, confidence)
    if len(strata) == 1:
        only = strata[0].interval
        return ErrorRate(strata, only.rate, only.low, only.high, confidence)
    return _weighted(strata, confidence)


def _weighted(strata: tuple[Stratum, ...], confidence: float) -> ErrorRate:
    """Strata of different rates, each weighed by its estimated traffic n/rate; the interval is
    the weighted sum of the strata's exact bounds at Bonferroni-split confidence."""
    rates = [s.qa_rate for s in strata]
    if any(r is None for r in rates):
        return ErrorRate(strata, None, 0.0, 1.0, confidence)
    sizes = [s.interval.n / r for s, r in zip(strata, rates, strict=True) if r is not None]
    weights = [size / sum(sizes) for size in sizes]
    each = 1 - (1 - confidence) / len(strata)
    wide = [clopper_pearson(s.interval.k, s.interval.n, each) for s in strata]
    estimate = sum(w * (s.interval.rate or 0.0) for w, s in zip(weights, strata, strict=True))
    low = sum(w * i.low for w, i in zip(weights, wide, strict=True))
    high = sum(w * i.high for w, i in zip(weights, wide, strict=True))
    return ErrorRate(strata, estimate, low, min(high, 1.0), confidence)


def _judge(labels: Iterable[Label], confidence: float) -> JudgeAgreement:
    """The judge's rejections against people's, on escalated decisions with a judge's verdict
    and a QA or review label (an appeal is never a sample)."""
    cases = said = rejected = both = 0
    for label in labels:
        escalation = label.decision.escalation
        if label.kind is LabelKind.APPEAL or escalation is None or escalation.verdict is None:
            continue
        judge_rejects = escalation.verdict.verdict is VerdictKind.REJECT
        cases += 1
        said += judge_rejects
        rejected += label.harmful
        both += judge_rejects and label.harmful
    return JudgeAgreement(
        cases,
        precision=clopper_pearson(both, said, confidence),
        recall=clopper_pearson(both, rejected, confidence),
    )


def queue_stats(
    waiting: Iterable[Waiting], now: datetime, *, tenant: str | None = None
) -> tuple[QueueStats, ...]:
    """Per tenant (sorted; only `tenant` with one): the undecided items, leased ones, the p50 and
    p95 of their ages at `now` (nearest rank, seconds), and how many are past due at `now`."""
    by_tenant: dict[str, list[Waiting]] = {}
    for item in waiting:
        if tenant is None or item.tenant == tenant:
            by_tenant.setdefault(item.tenant, []).append(item)
    result = []
    for name in sorted(by_tenant):
        items = by_tenant[name]
        ages = sorted((now - item.created_at).total_seconds() for item in items)
        result.append(
            QueueStats(
                tenant=name,
                open=len(items),
                leased=sum(item.leased for item in items),
                age_p50=nearest_rank(ages, 50),
                age_p95=nearest_rank(ages, 95),
                breaches=sum(item.due_at is not None and item.due_at <= now for item in items),
            )
        )
    return tuple(result)


def nearest_rank(ordered: Sequence[float], percent: float) -> float:
    """The `percent`-th percentile of the sorted, non-empty `ordered` by nearest rank: the
    smallest value with at least `percent` % of the values at or below it."""
    if not ordered:
        raise ValueError("a percentile of no values")
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]
