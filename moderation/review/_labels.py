"""Labels: final human verdicts on decisions, each knowing how its decision came before a person.

How a decision was labelled decides what the label can prove. A blind QA sample (`qa`) was
drawn at random from the automatic approvals or rejections at a known rate, so QA labels estimate
the automation's error rates without bias (each weighs 1/rate). A `review` label covers only the
band the policy sent to review. An `appeal` label comes from someone who objected: never a random
sample, never part of an error estimate. The kind is how the decision first came before a person;
the verdict is the latest final one (an appeal may correct a QA reviewer, and the QA draw stays
random).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from moderation.audit import labels as histories
from moderation.audit._read import Paths
from moderation.decision import Decision, Outcome
from moderation.review_records import DecisionHistory, final_review

__all__ = ["Label", "LabelKind", "category_of", "label_of", "labels"]


class LabelKind(StrEnum):
    """How a labelled decision came before a person."""

    QA = "qa"  # a blind QA sample of an automatic outcome, drawn at a known rate
    REVIEW = "review"  # the policy sent it to review
    APPEAL = "appeal"  # someone appealed an automatic outcome


@dataclass(frozen=True, slots=True)
class Label:
    """A person's final verdict on `decision`: `outcome` (approved or rejected), how the decision
    came to be labelled (`kind`, with `qa_rate` for a QA sample), who settled it and when."""

    decision: Decision
    outcome: Outcome
    kind: LabelKind
    qa_rate: float | None
    reviewer: str
    at: datetime

    @property
    def harmful(self) -> bool:
        """True when the person rejected the image."""
        return self.outcome is Outcome.REJECTED

    @property
    def weight(self) -> float:
        """How many decisions of the traffic this label stands for: 1/rate for a QA sample (an
        inverse-probability weight), 1 otherwise."""
        return 1.0 / self.qa_rate if self.kind is LabelKind.QA and self.qa_rate else 1.0

    @property
    def category(self) -> str | None:
        """The policy rule that decided (the deciding finding's, `Triage.deciding`); None when no
        label reached a band (an approval by policy) or nothing was detected."""
        return category_of(self.decision)

    @property
    def machine_was_right(self) -> bool | None:
        """Whether the machine's own outcome matches the person's; None for a `review` outcome,
        which left the call to the person."""
        machine = self.decision.outcome
        if machine not in (Outcome.APPROVED, Outcome.REJECTED):
            return None
        return machine is self.outcome


def category_of(decision: Decision) -> str | None:
    """The policy rule that decided `decision` (its deciding finding's); None when no label
    reached a band or nothing was detected."""
    triage = decision.triage
    deciding = triage.deciding if triage is not None else None
    return deciding.rule if deciding is not None else None


def label_of(history: DecisionHistory) -> Label | None:
    """The label of a decision's history, or None while no final verdict settles it. Verdicts on
    golden items (known answers that measure reviewers) are never labels, wherever they are."""
    reviews = [r for r in history.reviews if not r.golden]  # a known answer is no label
    final = final_review(reviews)
    if final is None or final.outcome is None:
        return None
    kind = LabelKind(reviews[0].item_kind)
    rate = next((r.qa_rate for r in reviews if r.qa_rate is not None), None)
    return Label(
        decision=history.decision,
        outcome=final.outcome,
        kind=kind,
        qa_rate=rate if kind is LabelKind.QA else None,
        reviewer=final.reviewer,
        at=final.at,
    )


def labels(
    paths: Paths, *, key: str | bytes | None = None, verified: bool = False
) -> Iterator[Label]:
    """Every label of the audit logs at `paths`, in the order of their decisions: each decision a
    final verdict settled (`label_of`). With `key` (a keyed log's) or `verified=True`, only records
    that verify are read: a forged verdict is no label."""
    for history in histories(paths, key=key, verified=verified):
        label = label_of(history)
        if label is not None:
            yield label
