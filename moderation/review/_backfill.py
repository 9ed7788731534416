"""Backfill: put on the desk the decisions of an audit log that should be items and are not.

The engine enqueues after the audit record is written; when the desk is down that enqueue fails
(and is logged), but the decision is in the log. Reading the log back and enqueueing what the
desk lacks recovers every such item; enqueueing is idempotent by decision id, so a backfill run
twice, or beside a live engine, adds each item once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from moderation.decision import Decision, Outcome
from moderation.policy import Policy
from moderation.review._desk import ReviewDesk
from moderation.review._model import ItemKind
from moderation.review._rules import desk_rules
from moderation.review_sampling import qa_sampled

__all__ = ["BackfillCount", "backfill", "item_kind"]


@dataclass(slots=True)
class BackfillCount:
    """What a backfill did: the items it `added`, and those the desk already `held`."""

    added: int = 0
    held: int = 0


def item_kind(decision: Decision, policy: Policy | None) -> ItemKind | None:
    """The kind of item `decision` is on the desk (`review`, or `qa` when `policy`'s sampling
    picks it), or None when it is no item. QA is only recomputed under the policy that decided
    (same sha256): another version may sample at other rates."""
    if decision.outcome is Outcome.REVIEW:
        return ItemKind.REVIEW
    if policy is None or policy.sha256 != decision.policy.sha256:
        return None
    if qa_sampled(decision.id, decision.outcome, policy.review_rules):
        return ItemKind.QA
    return None


def backfill(
    desk: ReviewDesk,
    decisions: Iterable[Decision],
    policy_of: Callable[[Decision], Policy | None],
) -> BackfillCount:
    """Enqueue every decision of `decisions` that is an item (`item_kind`) and that `desk` does
    not hold, with the desk rules of its policy (`policy_of`; None: the default rules)."""
    count = BackfillCount()
    for decision in decisions:
        policy = policy_of(decision)
        kind = item_kind(decision, policy)
        if kind is None:
            continue
        if desk.find(decision.id) is not None:
            count.held += 1
            continue
        rules = desk_rules(decision, policy) if policy is not None else None
        desk.enqueue(decision, rules=rules, kind=kind)
        count.added += 1
    return count
