"""The review desk's port: what every backend (SQLite, PostgreSQL) does, and its record sink."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from moderation.decision import Decision
from moderation.review._model import (
    Appeal,
    Delivery,
    DeskRules,
    GoldenItem,
    ItemImage,
    ItemKind,
    NewItem,
    QueueDepth,
    Reviewer,
    ReviewItem,
    ReviewVerdict,
    Skip,
    VerdictChoice,
    Waiting,
)

__all__ = [
    "DEFAULT_CLAIM_SECONDS",
    "DEFAULT_LEASE_SECONDS",
    "DeskRecord",
    "ReviewDesk",
    "ReviewRecordSink",
]

#: How long `next` leases an item to a reviewer unless the desk is told otherwise.
DEFAULT_LEASE_SECONDS = 600.0
#: How long `due_deliveries` holds the deliveries it hands out from every other deliverer.
DEFAULT_CLAIM_SECONDS = 300.0

#: What the desk hands its record sink: every verdict, every skip and every appeal.
DeskRecord = ReviewVerdict | Skip | Appeal


class ReviewRecordSink(Protocol):
    """Where the desk writes each verdict, skip and appeal (the audit log, joined by its caller).

    Called inside the desk's transaction, before it commits: if it raises, the verdict or appeal
    (or skip) is not stored and the caller gets the error, so the desk never holds one the log
    lacks.
    """

    def append_review(self, record: DeskRecord) -> None:
        """Write `record` durably, or raise."""


class ReviewDesk(Protocol):
    """A queue of items for human reviewers, with leases, verdicts, consensus and appeals.

    Every backend passes the same tests (tests/test_review_desk.py); docs/review.md states the
    ordering and consensus rules.
    """

    def enqueue(
        self,
        item: Decision | NewItem,
        *,
        rules: DeskRules | None = None,
        kind: ItemKind = ItemKind.REVIEW,
        image: ItemImage | None = None,
    ) -> ReviewItem:
        """The item for this decision: a new one, or the one already held for its decision id.

        `rules` default to `DeskRules()` (one reviewer, no SLA, priority 0).
        """

    def next(self, reviewer: Reviewer) -> ReviewItem | None:
        """The item leased to `reviewer` (the one they already hold, else the next in order), or
        None when nothing is waiting for them."""

    def decide(
        self,
        item_id: str,
        verdict: VerdictChoice | str,
        *,
        reviewer: Reviewer,
        note: str = "",
        categories: Iterable[str] = (),
    ) -> ReviewVerdict:
        """Record `reviewer`'s verdict on the item they hold; LeaseLost if they do not."""

    def release(self, item_id: str, *, reviewer: Reviewer) -> ReviewItem:
        """Give the item back unjudged (skip); LeaseLost if `reviewer` does not hold it."""

    def appeal(
        self,
        decision: str | Decision | NewItem,
        reason: str,
        *,
        by: str = "",
        rules: DeskRules | None = None,
    ) -> ReviewItem:
        """Put a decided image back at the top of the desk as an appeal: the decision's item (by
        decision id or decision), or a new `appeal` item for a `Decision` the desk never held (an
        automatic outcome), with `rules`. `by` is who filed it, empty when unknown."""

    def final(self, decision_id: str) -> ReviewVerdict | None:
        """The latest final verdict on the decision's item, or None while there is none."""

    def get(self, item_id: str) -> ReviewItem:
        """The item with this id, with its verdicts and appeals; UnknownItem if there is none."""

    def find(self, decision_id: str) -> ReviewItem | None:
        """The item for this decision id, or None when the desk holds none."""

    def closed_images(self, before: datetime) -> list[str]:
        """The image-store keys (sha256) of decided items created before `before` that no other
        item still needs: a key that an open, leased or newer item also holds is left out."""

    def due_deliveries(
        self, limit: int, *, claim_seconds: float = DEFAULT_CLAIM_SECONDS
    ) -> list[Delivery]:
        """Up to `limit` outbox deliveries that are due (oldest due first), claimed: none of them
        is handed to another caller for `claim_seconds` (a deliverer that dies lets them fall
        due again)."""

    def delivered(self, delivery_id: str) -> None:
        """Mark the delivery done: it is never handed out again."""

    def delivery_failed(self, delivery_id: str, error: str, retry_at: datetime) -> None:
        """Count a failed attempt, keep `error`, and make the delivery due again at `retry_at`."""

    def pending_deliveries(self, limit: int = 1000) -> list[Delivery]:
        """The deliveries not done yet, due or not, the soonest due first."""

    def depth(self, reviewer: Reviewer) -> list[QueueDepth]:
        """Per tenant granted to `reviewer` that has undecided items: how many, how many are
        leased now, the oldest's creation time, how many are past due; sorted by tenant.

        Read-only: it leases nothing."""

    def waiting(self, reviewer: Reviewer) -> list[Waiting]:
        """Every undecided item of the tenants granted to `reviewer`, oldest first: its tenant,
        creation and due time, whether it is leased now (for the queue's ages and breaches).

        Read-only: it leases nothing."""

    def add_golden(
        self,
        item: Decision | NewItem,
        answer: VerdictChoice | str,
        *,
        image: ItemImage | None = None,
    ) -> GoldenItem:
        """Make the decision's image a golden item of its tenant with the known `answer`: new
        items of the tenant bring a showing of it at the tenant's `golden_rate`, shown like a
        review item; a verdict on a showing only measures the reviewer."""

    def golden(self, tenant: str | None = None) -> list[GoldenItem]:
        """The golden items (of `tenant`, or of every tenant), with how often each was shown."""

    def close(self) -> None:
        """Release the backend's connections."""
