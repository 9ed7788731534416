"""The evaluation's arithmetic: confusion counts, precision, recall and F1 with exact intervals,
shares, percentiles and costs of one group of labelled decisions. Pure: no I/O, no engine.

A rejection is the positive class. The pipeline's `review` outcomes decide nothing, so they are
counted apart ("sent to people") and precision and recall are over the automatic outcomes only.
The judge alone is scored on the escalated images it gave a verdict on: reject against expected;
`unsure`, no usable answer and no call are counted apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from moderation.decision import Decision, Outcome, VerdictKind
from moderation.pricing import Pricing
from moderation.stats import Interval, clopper_pearson

__all__ = ["Confusion", "Metrics", "Result", "metrics", "percentile"]

NO_RULE = "(no rule)"


@dataclass(frozen=True, slots=True)
class Result:
    """One labelled image under one model: whether it should be rejected, its category (the
    CSV's, else the rule that decided), and the decision, or the error that stopped it."""

    file: str
    harmful: bool
    category: str
    decision: Decision | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Confusion:
    """Counts of predicted reject/approve against expected reject/approve."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, predicted_reject: bool, harmful: bool) -> Confusion:
        """These counts with one more case."""
        return Confusion(
            self.tp + (predicted_reject and harmful),
            self.fp + (predicted_reject and not harmful),
            self.fn + (not predicted_reject and harmful),
            self.tn + (not predicted_reject and not harmful),
        )

    def precision(self, confidence: float) -> Interval:
        """Rejected that should be: tp / (tp + fp), with its Clopper-Pearson interval."""
        return clopper_pearson(self.tp, self.tp + self.fp, confidence)

    def recall(self, confidence: float) -> Interval:
        """Harmful images rejected: tp / (tp + fn), with its Clopper-Pearson interval."""
        return clopper_pearson(self.tp, self.tp + self.fn, confidence)

    @property
    def f1(self) -> float | None:
        """2tp / (2tp + fp + fn), the harmonic mean of precision and recall; None when there is no
        positive, predicted or expected."""
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else None

    def to_json(self, confidence: float) -> dict[str, Any]:
        """The counts, precision and recall (`Interval.to_json`) and F1."""
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "precision": self.precision(confidence).to_json(),
            "recall": self.recall(confidence).to_json(),
            "f1": self.f1,
        }


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank `q`-th percentile (0 < q <= 100): the smallest value with at least q% of
    the values at or below it; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Metrics:
    """What one group of results (a category, or all) says about one model's run.

    `failed`: images that could not be moderated (no decision; in no rate). `review_harmful` /
    `review_harmless`: `review` outcomes of images labelled reject / approve. Judge counts are over
    escalated decisions: `judge_calls` the judge was asked (whatever it answered), `not_called`
    escalations it was not asked about (the call limit, the policy's budget, no judge),
    `no_verdict` calls with no usable verdict (failed, refused, invalid), `unsure` its unsure
    verdicts, `judge` its approve/reject verdicts against the labels. `billed_usd`: the decisions'
    own `cost` (zero offline: recorded answers bill nothing); `judge_priced_usd`: the judge calls'
    token usage priced with `moderation.pricing` for the model that answered, offline too (None
    when a model has no price). `latencies_ms` / `judge_latencies_ms`: the decisions' `total` and
    `judge` timings.
    """

    images: int
    failed: int
    pipeline: Confusion
    review_harmful: int
    review_harmless: int
    escalated: int
    judge_calls: int
    not_called: int
    no_verdict: int
    unsure: int
    judge: Confusion
    billed_usd: float | None
    judge_priced_usd: float | None
    latencies_ms: tuple[float, ...]
    judge_latencies_ms: tuple[float, ...]

    @property
    def decided(self) -> int:
        """Images with a decision."""
        return self.images - self.failed

    def per_1000(self, usd: float | None) -> float | None:
        """`usd` spread over the decided images, per 1,000 images."""
        return None if usd is None or not self.decided else usd / self.decided * 1000

    def to_json(self, confidence: float) -> dict[str, Any]:
        """The metrics as JSON (docs/eval.md, "JSON")."""
        sent = self.review_harmful + self.review_harmless
        return {
            "images": self.images,
            "failed": self.failed,
            "decided": self.decided,
            "pipeline": {
                **self.pipeline.to_json(confidence),
                "sent_to_people": {
                    "harmful": self.review_harmful,
                    "harmless": self.review_harmless,
                    "share": clopper_pearson(sent, self.decided, confidence).to_json(),
                },
            },
            "judge": {
                "escalated": clopper_pearson(self.escalated, self.decided, confidence).to_json(),
                "calls": self.judge_calls,
                "not_called": self.not_called,
                "no_verdict": self.no_verdict,
                "unsure": self.unsure,
                **self.judge.to_json(confidence),
            },
            "cost_per_1000_usd": {
                "billed": self.per_1000(self.billed_usd),
                "judge_priced": self.per_1000(self.judge_priced_usd),
            },
            "latency_ms": {
                "p50": percentile(self.latencies_ms, 50),
                "p95": percentile(self.latencies_ms, 95),
                "judge_p50": percentile(self.judge_latencies_ms, 50),
                "judge_p95": percentile(self.judge_latencies_ms, 95),
            },
        }


def _add(total: float | None, part: float | None) -> float | None:
    return None if total is None or part is None else total + part


def _judge_counts(decisions: Sequence[tuple[Decision, bool]]) -> dict[str, Any]:
    """The judge's counts over the escalated ones of `decisions` (decision, harmful)."""
    counts: dict[str, Any] = {"escalated": 0, "judge_calls": 0, "not_called": 0}
    counts.update(no_verdict=0, unsure=0, judge=Confusion())
    for decision, harmful in decisions:
        escalation = decision.escalation
        if escalation is None:
            continue
        counts["escalated"] += 1
        if escalation.skipped is not None:
            counts["not_called"] += 1
        elif escalation.verdict is None:
            counts["judge_calls"] += 1
            counts["no_verdict"] += 1
        else:
            counts["judge_calls"] += 1
            kind = escalation.verdict.verdict
            if kind is VerdictKind.UNSURE:
                counts["unsure"] += 1
            else:
                counts["judge"] = counts["judge"].add(kind is VerdictKind.REJECT, harmful)
    return counts


def _costs(decisions: Sequence[Decision], pricing: Pricing) -> tuple[float | None, float | None]:
    """The decisions' billed cost, and their judge calls' tokens priced for the answering model."""
    billed: float | None = 0.0
    priced: float | None = 0.0
    for decision in decisions:
        if decision.cost is not None:
            billed = _add(billed, decision.cost.rekognition_usd)
            billed = _add(billed, decision.cost.bedrock_usd)
        escalation = decision.escalation
        if escalation is not None and escalation.usage is not None and escalation.model_id:
            priced = _add(priced, pricing.bedrock(escalation.model_id, escalation.usage))
    return billed, priced


def metrics(results: Sequence[Result], pricing: Pricing) -> Metrics:
    """The metrics of `results` (one model's, one group)."""
    decided = [(r.decision, r.harmful) for r in results if r.decision is not None]
    pipeline = Confusion()
    review = [0, 0]  # harmless, harmful
    for decision, harmful in decided:
        if decision.outcome is Outcome.REVIEW:
            review[harmful] += 1
        else:
            pipeline = pipeline.add(decision.outcome is Outcome.REJECTED, harmful)
    billed, priced = _costs([d for d, _ in decided], pricing)
    return Metrics(
        images=len(results),
        failed=len(results) - len(decided),
        pipeline=pipeline,
        review_harmful=review[1],
        review_harmless=review[0],
        billed_usd=billed,
        judge_priced_usd=priced,
        latencies_ms=tuple(d.timings_ms["total"] for d, _ in decided if "total" in d.timings_ms),
        judge_latencies_ms=tuple(
            d.timings_ms["judge"] for d, _ in decided if "judge" in d.timings_ms
        ),
        **_judge_counts(decided),
    )
