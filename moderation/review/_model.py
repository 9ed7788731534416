"""What the review desk holds: items, reviewers, verdicts, appeals, and the consensus rule.

Pure (pydantic and the standard library): every backend stores these and calls `settle`, so the
rules cannot drift between SQLite and a later backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from moderation.decision import Decision, Outcome, S3Identity
from moderation.errors import ReviewError
from moderation.policy._model import Band

__all__ = [
    "ALL_TENANTS",
    "MAX_APPEAL_REASON",
    "MAX_NOTE",
    "Appeal",
    "Delivery",
    "DeskRules",
    "GoldenItem",
    "ItemFinding",
    "ItemImage",
    "ItemKind",
    "ItemState",
    "NewItem",
    "QueueDepth",
    "ReviewItem",
    "ReviewVerdict",
    "Reviewer",
    "Role",
    "Skip",
    "Then",
    "VerdictChoice",
    "Waiting",
    "check_categories",
    "check_text",
    "check_verdict",
    "settle",
]

#: A reviewer's tenants when they may see every tenant.
ALL_TENANTS: Literal["*"] = "*"
MAX_NOTE = 2000
MAX_APPEAL_REASON = 2000


class ItemKind(StrEnum):
    """Why the item is on the desk: a `review` outcome, a blind `qa` sample, or an `appeal`."""

    REVIEW = "review"
    QA = "qa"
    APPEAL = "appeal"


class ItemState(StrEnum):
    """Where the item is: waiting (`open`), held by a reviewer (`leased`), or `decided`."""

    OPEN = "open"
    LEASED = "leased"
    DECIDED = "decided"


class VerdictChoice(StrEnum):
    """What a reviewer says about the image."""

    APPROVE = "approve"
    REJECT = "reject"


class Role(StrEnum):
    """What a reviewer may do: `senior` and `admin` also settle disagreements."""

    REVIEWER = "reviewer"
    SENIOR = "senior"
    ADMIN = "admin"


class Then(StrEnum):
    """What a verdict leads to: the item is `final`, waits for `another` reviewer, or goes to a
    `senior` because the reviewers disagreed."""

    FINAL = "final"
    ANOTHER = "another"
    SENIOR = "senior"


_OUTCOME_OF_CHOICE = {
    VerdictChoice.APPROVE: Outcome.APPROVED,
    VerdictChoice.REJECT: Outcome.REJECTED,
}


@dataclass(frozen=True, slots=True)
class Reviewer:
    """A person at the desk: their name, the tenants granted to them (`"*"` for all), their role."""

    name: str
    tenants: frozenset[str] | Literal["*"] = field(default_factory=frozenset)
    role: Role = Role.REVIEWER

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not 0 < len(self.name.strip()) <= 128:
            raise ReviewError(f"a reviewer's name is 1 to 128 characters, got {self.name!r}")
        if self.tenants != ALL_TENANTS:
            if isinstance(self.tenants, str) or not all(isinstance(t, str) for t in self.tenants):
                raise ReviewError(
                    f"reviewer {self.name!r}: tenants is a set of tenant ids or '*', "
                    f"got {self.tenants!r}"
                )
            object.__setattr__(self, "tenants", frozenset(self.tenants))
        object.__setattr__(self, "role", _role(self.name, self.role))

    @property
    def senior(self) -> bool:
        """True when this reviewer may settle a disagreement (role `senior` or `admin`)."""
        return self.role in (Role.SENIOR, Role.ADMIN)

    def may_see(self, tenant: str) -> bool:
        """True when `tenant` is granted to this reviewer."""
        return self.tenants == ALL_TENANTS or tenant in self.tenants


def _role(name: str, role: object) -> Role:
    try:
        return Role(str(role))
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise ReviewError(f"reviewer {name!r}: role {role!r} is not one of {roles}") from None


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """What waits for a verdict in one tenant's queue: items not yet decided (`waiting`, of them
    `leased` now), the creation time of the oldest, and how many are past their due time."""

    tenant: str
    waiting: int
    leased: int
    oldest_created_at: datetime
    overdue: int


@dataclass(frozen=True, slots=True)
class Waiting:
    """One undecided item as the queue's statistics see it: its tenant, when its decision was
    made, when it is due (None without an SLA), and whether a reviewer holds a live lease on it."""

    tenant: str
    created_at: datetime
    due_at: datetime | None
    leased: bool


@dataclass(frozen=True, slots=True)
class DeskRules:
    """A tenant's desk rules for one item: agreeing verdicts needed, time to a verdict, priority,
    and, for a blind QA item, the rate its decision's outcome was sampled at.

    `sla_seconds` None means the item is never overdue; a higher `priority` goes first. `qa_rate`
    is kept with the item and written into every review record of it, so that a label says how
    it was drawn (what an error-rate estimate must weigh it by). `golden_rate` is the fraction of
    the tenant's new items that also bring a showing of one of its golden items (`golden_draw`).
    """

    reviewers: int = 1
    sla_seconds: float | None = None
    priority: int = 0
    qa_rate: float | None = None
    golden_rate: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.reviewers, bool) or not isinstance(self.reviewers, int):
            raise ReviewError(f"reviewers must be a whole number, got {self.reviewers!r}")
        if not 1 <= self.reviewers <= 10:
            raise ReviewError(f"reviewers must be 1 to 10, got {self.reviewers}")
        if self.sla_seconds is not None and not 0 < self.sla_seconds < 10**9:
            raise ReviewError(f"sla_seconds must be positive, got {self.sla_seconds!r}")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise ReviewError(f"priority must be a whole number, got {self.priority!r}")
        if not -(2**31) <= self.priority < 2**31:
            raise ReviewError(f"priority {self.priority} is out of range")
        if self.qa_rate is not None and not 0 < self.qa_rate <= 1:
            raise ReviewError(f"qa_rate must be above 0 and at most 1, got {self.qa_rate!r}")
        rate = self.golden_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ReviewError(f"golden_rate must be a fraction from 0 to 1, got {rate!r}")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class ItemFinding(_Model):
    """One label the reviewer should look at: its confidence and the band it hit."""

    label: str
    confidence: float
    band: Band


class ItemImage(_Model):
    """Where the reviewer's copy of the image is: its S3 object, or its key (sha256) in the
    content-addressed image store."""

    s3: S3Identity | None = None
    store_key: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _one_place(self) -> ItemImage:
        if (self.s3 is None) == (self.store_key is None):
            raise ValueError("an item's image is in S3 or in the image store: give exactly one")
        return self


class NewItem(_Model):
    """What an item is made of before the desk gives it an id and times: `NewItem.of(decision)`."""

    decision_id: str = Field(min_length=1, max_length=64)
    tenant: str = Field(min_length=1, max_length=64)
    reasons: tuple[str, ...] = ()
    findings: tuple[ItemFinding, ...] = ()
    rationale: str = ""
    image: ItemImage | None = None
    # When the decision was made: the item's age and due time count from it, not from when the
    # desk got it (a backfill or an ingest days later puts the item where it belongs).
    decided_at: AwareDatetime | None = None

    @classmethod
    def of(cls, decision: Decision, *, image: ItemImage | None = None) -> NewItem:
        """The item for `decision`: its reasons, acting findings, judge rationale and image
        (its S3 object, else its sha256 in the image store, unless `image` says otherwise)."""
        findings = () if decision.triage is None else decision.triage.findings
        verdict = decision.escalation.verdict if decision.escalation else None
        return cls(
            decision_id=decision.id,
            tenant=decision.tenant,
            reasons=decision.reasons,
            findings=tuple(
                ItemFinding(label=f.label, confidence=f.confidence, band=f.band)
                for f in findings
                if f.band != Band.IGNORE
            ),
            rationale=verdict.rationale if verdict else "",
            image=image if image is not None else _image_of(decision),
            decided_at=decision.created_at,
        )


def _image_of(decision: Decision) -> ItemImage | None:
    if decision.image.s3 is not None:
        return ItemImage(s3=decision.image.s3)
    if decision.image.sha256 is not None:
        return ItemImage(store_key=decision.image.sha256)
    return None


class ReviewVerdict(_Model):
    """One reviewer's verdict on one item, and what it led to (`then`).

    `round` counts from 1 and grows with each appeal; `final` is True when this verdict settled
    the item, and then `outcome` is the image's outcome.
    """

    item_id: str
    decision_id: str
    tenant: str
    kind: ItemKind
    round: int
    reviewer: str
    role: Role
    verdict: VerdictChoice
    note: str = ""
    categories: tuple[str, ...] = ()
    at: AwareDatetime
    then: Then
    # For a blind QA item: the rate its decision's outcome was sampled at (DeskRules.qa_rate).
    qa_rate: float | None = None
    # For a showing of a golden item: its known answer. Such a verdict measures the reviewer: it
    # has no effects and never settles the decision (its audit record is a `golden` one).
    golden_answer: VerdictChoice | None = None

    @property
    def final(self) -> bool:
        """True when this verdict is the item's final verdict."""
        return self.then is Then.FINAL

    @property
    def outcome(self) -> Outcome | None:
        """The image's outcome when this verdict is final, else None."""
        return _OUTCOME_OF_CHOICE[self.verdict] if self.final else None


class Appeal(_Model):
    """A decided item put back on the desk, with the reason given; `round` is the round it opens.

    `by` is who filed it (a platform's user id, a reviewer's name), empty when not told.
    """

    item_id: str
    decision_id: str
    tenant: str
    round: int
    reason: str
    at: AwareDatetime
    by: str = ""


class Skip(_Model):
    """A reviewer gave an item back unjudged (`release`): it goes back to the queue."""

    item_id: str
    decision_id: str
    tenant: str
    round: int
    reviewer: str
    at: AwareDatetime
    kind: ItemKind = ItemKind.REVIEW
    golden_answer: VerdictChoice | None = None  # a showing of a golden item: its known answer


class GoldenItem(_Model):
    """An image with a known answer, shown blind to reviewers to measure them: the decision it
    was made from, its tenant, the answer, when it was (last) added, how often it was shown."""

    decision_id: str
    tenant: str
    answer: VerdictChoice
    added_at: AwareDatetime
    shown: int = 0


class Delivery(_Model):
    """A final verdict's effects waiting in the desk's outbox (S3 tags and quarantine, the
    webhook): stored in the verdict's own transaction, kept until they are delivered.

    `reviewers` are the verdicts of the deciding round (reviewer, role, verdict), oldest first.
    `attempts` counts the failed tries; `next_attempt_at` is when it is due again (also pushed
    forward while a deliverer holds it); `done_at` is set once it was delivered.
    """

    id: str
    verdict: ReviewVerdict
    reviewers: tuple[dict[str, str], ...] = ()
    image: ItemImage | None = None
    created_at: AwareDatetime
    attempts: int = 0
    next_attempt_at: AwareDatetime
    last_error: str | None = None
    done_at: AwareDatetime | None = None


class ReviewItem(_Model):
    """An image waiting for (or given) a human verdict, with what the reviewer needs to see.

    `due_at` is None when the tenant sets no SLA. `awaiting_senior` is True after a disagreement:
    only a senior is then offered it. `verdicts` and `appeals` hold every round's, oldest first.
    """

    id: str
    decision_id: str
    tenant: str
    kind: ItemKind
    priority: int
    created_at: AwareDatetime
    due_at: AwareDatetime | None = None
    reasons: tuple[str, ...] = ()
    findings: tuple[ItemFinding, ...] = ()
    rationale: str = ""
    image: ItemImage | None = None
    qa_rate: float | None = None  # a blind QA item's sampling rate (DeskRules.qa_rate)
    state: ItemState
    reviewers_needed: int = 1
    round: int = 1
    awaiting_senior: bool = False
    lease_holder: str | None = None
    lease_until: AwareDatetime | None = None
    verdicts: tuple[ReviewVerdict, ...] = ()
    appeals: tuple[Appeal, ...] = ()

    @property
    def appeal_reason(self) -> str | None:
        """The reason of the latest appeal, or None when the item was never appealed."""
        return self.appeals[-1].reason if self.appeals else None

    @property
    def final(self) -> ReviewVerdict | None:
        """The latest final verdict, or None when there is none yet."""
        return next((v for v in reversed(self.verdicts) if v.final), None)


def settle(
    earlier: Sequence[VerdictChoice], verdict: VerdictChoice, *, needed: int, senior_stage: bool
) -> Then:
    """What a verdict leads to, given this round's earlier verdicts.

    A senior's verdict after a disagreement is final; a verdict that differs from an earlier one
    sends the item to a senior; `needed` agreeing verdicts are final; fewer wait for another.
    """
    if senior_stage:
        return Then.FINAL
    votes = [*earlier, verdict]
    if len(set(votes)) > 1:
        return Then.SENIOR
    return Then.FINAL if len(votes) >= needed else Then.ANOTHER


def check_verdict(verdict: object) -> VerdictChoice:
    """`verdict` as a VerdictChoice; ReviewError naming the choices otherwise."""
    try:
        return VerdictChoice(str(verdict))
    except ValueError:
        raise ReviewError(f"verdict {verdict!r} is not 'approve' or 'reject'") from None


def check_text(what: str, text: object, limit: int, *, required: bool = False) -> str:
    """`text` if it is a string of at most `limit` characters (and not blank when `required`)."""
    if not isinstance(text, str):
        raise ReviewError(f"{what} must be text, got {type(text).__name__}")
    if len(text) > limit:
        raise ReviewError(f"{what} is {len(text)} characters; at most {limit}")
    if required and not text.strip():
        raise ReviewError(f"{what} must not be empty")
    return text


def check_categories(categories: Iterable[str]) -> tuple[str, ...]:
    """`categories` as a tuple of short, non-empty names."""
    if isinstance(categories, str):
        raise ReviewError(f"categories is a list of names, not the string {categories!r}")
    names = tuple(categories)
    for name in names:
        if not isinstance(name, str) or not 0 < len(name) <= 128:
            raise ReviewError(f"category {name!r} must be a name of 1 to 128 characters")
    if len(names) > 64:
        raise ReviewError(f"{len(names)} categories; at most 64")
    return names
