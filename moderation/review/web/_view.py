"""What the item page shows of an item: pure, so the rule of what a blind QA item hides is in one
place and tested without a server."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from moderation.policy import Policy
from moderation.review._model import (
    Appeal,
    ItemFinding,
    ItemKind,
    QueueDepth,
    Reviewer,
    ReviewItem,
    ReviewVerdict,
)
from moderation.taxonomy import TAXONOMY

__all__ = ["CATEGORIES", "ItemView", "QueueRow", "item_view", "paragraphs", "queue_rows", "span"]

#: The tick boxes of the verdict form: the taxonomy's top-level categories.
CATEGORIES: tuple[str, ...] = tuple(n for n in TAXONOMY.names() if TAXONOMY.level(n) == 1)


@dataclass(frozen=True, slots=True)
class ItemView:
    """The item as the page shows it. For a blind QA item (`blind`) every trace of what the
    machine decided is left out: findings, bands, reasons, rationale, priority."""

    item: ReviewItem
    blind: bool
    blurred: bool
    findings: tuple[ItemFinding, ...]
    reasons: tuple[str, ...]
    rationale: str
    guidance: tuple[str, ...]  # paragraphs
    earlier: tuple[ReviewVerdict, ...]
    this_round: tuple[ReviewVerdict, ...]
    appeals: tuple[Appeal, ...]
    due: str
    overdue: bool
    categories: tuple[str, ...]


def span(seconds: float) -> str:
    """`seconds` as a person reads it: `45 s`, `12 min`, `3 h 05 min`, `2 d 4 h`."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _due(item: ReviewItem, now: datetime) -> tuple[str, bool]:
    if item.due_at is None:
        return "no due time", False
    left = (item.due_at - now) / timedelta(seconds=1)
    if left < 0:
        return f"overdue by {span(-left)}", True
    return f"due in {span(left)}", False


def item_view(
    item: ReviewItem, policy: Policy | None, reviewer: Reviewer, now: datetime
) -> ItemView:
    """What `reviewer` is shown of `item` at `now`, under the tenant's `policy` (None when the
    policies cannot be read: then the image is blurred, to be safe, and there is no guidance).

    Verdicts of the current round are shown only to a senior settling a disagreement: a second
    reviewer judges on their own. Earlier rounds' verdicts (before an appeal) are shown.
    """
    blind = item.kind is ItemKind.QA
    labels = [f.label for f in item.findings]
    blurred = True if policy is None else policy.review_rules.blurred(labels)
    due, overdue = _due(item, now)
    settling = item.awaiting_senior and reviewer.senior
    return ItemView(
        item=item,
        blind=blind,
        blurred=blurred,
        findings=() if blind else item.findings,
        reasons=() if blind else item.reasons,
        rationale="" if blind else item.rationale,
        guidance=() if policy is None else paragraphs(policy.escalation.guidance),
        earlier=tuple(v for v in item.verdicts if v.round < item.round),
        this_round=tuple(v for v in item.verdicts if v.round == item.round) if settling else (),
        appeals=item.appeals,
        due=due,
        overdue=overdue,
        categories=CATEGORIES,
    )


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One tenant's line on the queue page."""

    tenant: str
    waiting: int
    leased: int
    oldest: str
    overdue: int


def queue_rows(depths: list[QueueDepth], reviewer: Reviewer, now: datetime) -> list[QueueRow]:
    """The queue page's lines: every tenant with waiting items, and each tenant granted by name
    with none (so a reviewer sees that their queue is empty, not missing)."""
    rows = {
        d.tenant: QueueRow(
            d.tenant,
            d.waiting,
            d.leased,
            span((now - d.oldest_created_at) / timedelta(seconds=1)),
            d.overdue,
        )
        for d in depths
    }
    if reviewer.tenants != "*":
        for tenant in reviewer.tenants:
            rows.setdefault(tenant, QueueRow(tenant, 0, 0, "", 0))
    return [rows[t] for t in sorted(rows)]


def paragraphs(text: str) -> tuple[str, ...]:
    """`text`'s paragraphs (split at blank lines), each on one line: a YAML block wraps its
    lines where its author's editor did, not where the page does."""
    blocks = (" ".join(block.split()) for block in text.split("\n\n"))
    return tuple(block for block in blocks if block)
