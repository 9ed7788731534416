"""What a person did about a decision: review and appeal records, and the final outcome rule.

A `ReviewRecord` is one reviewer's verdict on a desk item (or a skip); an `AppealRecord` puts a
decided image back before a person. Both go into the same hash-chained audit log as the decisions
(kinds `review` and `appeal`). They live in the pure core, beside `Decision`, so that the audit
log can read and verify them without importing the review desk that writes them;
`moderation.review` re-exports them. `final_outcome` is THE rule for what a decision finally came
to: the latest final review verdict, else the machine's outcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from moderation._frozen import FrozenDict
from moderation.decision import Decision, Outcome

__all__ = [
    "OUTCOME_OF_REVIEW",
    "REVIEW_SCHEMA_VERSION",
    "AppealRecord",
    "DecisionHistory",
    "ReviewRecord",
    "ReviewVerdict",
    "final_outcome",
    "final_review",
]

REVIEW_SCHEMA_VERSION = 1
ReviewVerdict = Literal["approve", "reject", "skip"]
# Ids and names are printed and used as keys: no empty text, no control characters.
_Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
_Text = Annotated[str, Field(max_length=4000)]

OUTCOME_OF_REVIEW: FrozenDict[str, Outcome] = FrozenDict(
    {"approve": Outcome.APPROVED, "reject": Outcome.REJECTED}
)


class _PersonRecord(BaseModel):
    # Frozen and strict about keys, as Decision is: a record is written once and read back exact.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    KIND: ClassVar[str]


class ReviewRecord(_PersonRecord):
    """One reviewer's verdict on a desk item: approve, reject, or skip (the item went back)."""

    KIND: ClassVar[str] = "review"

    kind: Literal["review"] = "review"
    schema_version: Literal[1] = 1  # REVIEW_SCHEMA_VERSION
    decision_id: _Name
    item_id: _Name
    reviewer: _Name
    verdict: ReviewVerdict
    note: _Text = ""
    categories: tuple[_Name, ...] = ()
    # True when this verdict settles the decision (consensus reached, or a senior's verdict).
    final: bool = False
    at: AwareDatetime
    # How the decision came before a person: `review` (its outcome was review), `qa` (a blind QA
    # sample of an automatic outcome, drawn at `qa_rate`), `appeal` (someone appealed it). What a
    # label can prove depends on it: only QA samples estimate an automatic error rate. `golden`:
    # a showing of a golden item (an image with a known answer, mixed blind into the queue to
    # measure the reviewer): `golden_answer` is the answer it was shown with. A golden record is
    # never a label and never settles its decision (it is never `final`).
    item_kind: Literal["review", "qa", "appeal", "golden"] = "review"
    qa_rate: Annotated[float, Field(gt=0, le=1)] | None = None
    golden_answer: Literal["approve", "reject"] | None = None

    @model_validator(mode="after")
    def _skip_is_never_final(self) -> ReviewRecord:
        if self.final and self.verdict == "skip":
            raise ValueError("a skip puts the item back: it cannot be a final verdict")
        if self.qa_rate is not None and self.item_kind != "qa":
            raise ValueError(f"qa_rate is for a qa item, not a {self.item_kind} item")
        if (self.golden_answer is None) != (self.item_kind != "golden"):
            raise ValueError("a golden item's record, and only it, has a golden_answer")
        if self.final and self.item_kind == "golden":
            raise ValueError("a golden item's verdict measures the reviewer: it is never final")
        return self

    @property
    def golden(self) -> bool:
        """True for a verdict on a golden item (a known answer): never a label of the traffic."""
        return self.item_kind == "golden"

    @property
    def correct(self) -> bool | None:
        """For a golden verdict, whether it matches the known answer (None for a skip); None for
        every other record."""
        if self.golden_answer is None or self.verdict == "skip":
            return None
        return self.verdict == self.golden_answer

    @property
    def outcome(self) -> Outcome | None:
        """The outcome this verdict stands for; None for a skip."""
        return OUTCOME_OF_REVIEW.get(self.verdict)


class AppealRecord(_PersonRecord):
    """An appeal: the decided image goes back to the desk, first in line, with the reason."""

    KIND: ClassVar[str] = "appeal"

    kind: Literal["appeal"] = "appeal"
    schema_version: Literal[1] = 1  # REVIEW_SCHEMA_VERSION
    decision_id: _Name
    item_id: _Name
    reason: Annotated[str, Field(min_length=1, max_length=4000)]
    at: AwareDatetime
    by: _Name  # who filed it: a platform's user or service id, or a reviewer's name


def final_review(reviews: Iterable[ReviewRecord]) -> ReviewRecord | None:
    """The latest final verdict of `reviews` (given in log order), or None when none is final.
    A golden item's verdict is never one (it measures the reviewer, not the image)."""
    latest: ReviewRecord | None = None
    for review in reviews:
        if review.final and not review.golden:
            latest = review
    return latest


def final_outcome(decision: Decision, reviews: Iterable[ReviewRecord]) -> Outcome:
    """What the decision finally came to: the latest final review verdict, else its outcome."""
    review = final_review(reviews)
    outcome = review.outcome if review is not None else None
    return outcome if outcome is not None else decision.outcome


@dataclass(frozen=True, slots=True)
class DecisionHistory:
    """A decision with the review and appeal records about it, in log order.

    `golden` holds the verdicts given on showings of the decision's image as a golden item (a
    known answer, to measure reviewers): they are kept apart from `reviews`, so they never change
    what the decision came to nor make it a label.
    """

    decision: Decision
    reviews: tuple[ReviewRecord, ...] = ()
    appeals: tuple[AppealRecord, ...] = ()
    golden: tuple[ReviewRecord, ...] = ()

    @property
    def final(self) -> ReviewRecord | None:
        """The latest final review verdict, or None when no person has settled it."""
        return final_review(self.reviews)

    @property
    def outcome(self) -> Outcome:
        """The final outcome: the latest final verdict's, else the machine's."""
        return final_outcome(self.decision, self.reviews)

    @property
    def appealed_after_final(self) -> bool:
        """True when an appeal came after the latest final verdict (or with none yet): the
        standing outcome may still change."""
        final = self.final
        if not self.appeals:
            return False
        return final is None or self.appeals[-1].at >= final.at
