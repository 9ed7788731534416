"""Golden items in SQL: images with a known answer, shown blind among a tenant's items to measure
its reviewers (docs/review.md, "Golden items").

`golden` holds one row per golden decision: its tenant, its answer and the item body a reviewer
sees (reasons, findings, rationale, image). A showing is an ordinary `items` row of kind `review`,
with the rules of the item that brought it; its `decision_id` column holds a hidden key
(`SHOWING_KEY` + its item id), since the decision's own item may hold the decision id, and
`golden_showings` maps it to the golden decision and the answer it was shown with. The page and
every `ReviewItem` show the golden decision's real id, so nothing tells a showing apart.

`SQLReviewDesk` calls these inside its transactions (moderation/review/_sql.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from moderation.errors import ReviewError
from moderation.review._db import Db, Row
from moderation.review._model import GoldenItem, NewItem, VerdictChoice

__all__ = [
    "GOLDEN",
    "NOT_SEEN",
    "SHOWING_KEY",
    "Shown",
    "golden_items",
    "pick_golden",
    "shown",
    "store_golden",
    "store_showing",
]

#: The start of a showing's hidden key in `items.decision_id`; no decision id may start so.
SHOWING_KEY = "golden-showing:"

#: The golden tables, for `str.format` with the dialect's `int64` column type.
GOLDEN = (
    """CREATE TABLE IF NOT EXISTS golden (
        decision_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        answer TEXT NOT NULL,
        added_us {int64} NOT NULL,
        body TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS golden_tenant ON golden (tenant)",
    """CREATE TABLE IF NOT EXISTS golden_showings (
        item_id TEXT PRIMARY KEY REFERENCES items (id),
        decision_id TEXT NOT NULL,
        answer TEXT NOT NULL,
        brought_by TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS golden_showings_decision ON golden_showings (decision_id)",
)

#: A condition of `next()`: a showing is never offered to a reviewer who has judged that golden
#: decision before (another showing of it, or the decision's own item): they would know it.
NOT_SEEN = """
  AND NOT EXISTS (
    SELECT 1 FROM golden_showings s
    JOIN golden_showings earlier ON earlier.decision_id = s.decision_id
    JOIN verdicts v ON v.item_id = earlier.item_id
    WHERE s.item_id = items.id AND v.reviewer = :name)
  AND NOT EXISTS (
    SELECT 1 FROM golden_showings s
    JOIN items own ON own.decision_id = s.decision_id
    JOIN verdicts v ON v.item_id = own.id
    WHERE s.item_id = items.id AND v.reviewer = :name)"""

# A tenant's golden items that may be shown now: not the decision being enqueued, not one whose
# own item or an earlier showing still waits on the desk (the same image twice in a queue would
# give it away).
_CANDIDATES = """
SELECT g.decision_id, g.answer, g.body,
  (SELECT COUNT(*) FROM golden_showings s WHERE s.decision_id = g.decision_id) AS shown
FROM golden g
WHERE g.tenant = ? AND g.decision_id <> ?
  AND NOT EXISTS (
    SELECT 1 FROM items i WHERE i.decision_id = g.decision_id AND i.decided = FALSE)
  AND NOT EXISTS (
    SELECT 1 FROM golden_showings s JOIN items i ON i.id = s.item_id
    WHERE s.decision_id = g.decision_id AND i.decided = FALSE)
"""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BODY_FIELDS = {"reasons", "findings", "rationale", "image"}


@dataclass(frozen=True, slots=True)
class Shown:
    """What a showing stands for: the golden decision's id and the answer it was shown with."""

    decision_id: str
    answer: VerdictChoice


def store_golden(db: Db, new: NewItem, answer: VerdictChoice, now: int) -> GoldenItem:
    """Make `new`'s decision a golden item with `answer`; one already golden takes the new answer
    and body (showings made before keep the answer they were shown with)."""
    body = json.dumps(new.model_dump(mode="json", include=_BODY_FIELDS), separators=(",", ":"))
    db.execute(
        "INSERT INTO golden (decision_id, tenant, answer, added_us, body) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (decision_id) DO UPDATE SET tenant = excluded.tenant,"
        " answer = excluded.answer, added_us = excluded.added_us, body = excluded.body",
        (new.decision_id, new.tenant, answer.value, now, body),
    )
    found = golden_items(db, decision_id=new.decision_id)
    return found[0]


def golden_items(
    db: Db, *, tenant: str | None = None, decision_id: str | None = None
) -> list[GoldenItem]:
    """The golden items (of `tenant`, or the one of `decision_id`), by tenant then decision id."""
    where, params = [], []
    for column, value in (("tenant", tenant), ("decision_id", decision_id)):
        if value is not None:
            where.append(f"g.{column} = ?")
            params.append(value)
    rows = db.execute(
        "SELECT g.decision_id, g.tenant, g.answer, g.added_us,"
        " (SELECT COUNT(*) FROM golden_showings s WHERE s.decision_id = g.decision_id) AS shown"
        " FROM golden g" + (" WHERE " + " AND ".join(where) if where else "") + ""
        " ORDER BY g.tenant, g.decision_id",
        tuple(params),
    ).fetchall()
    return [
        GoldenItem(
            decision_id=row["decision_id"],
            tenant=row["tenant"],
            answer=VerdictChoice(row["answer"]),
            added_at=_EPOCH + timedelta(microseconds=row["added_us"]),
            shown=int(row["shown"]),
        )
        for row in rows
    ]


def pick_golden(db: Db, tenant: str, brought_by: str) -> Row | None:
    """The golden item the new item of decision `brought_by` brings along: of the tenant's that
    may be shown now, the least shown, ties broken by a hash of both decision ids (the same
    desk state picks the same one); None when there is none."""
    rows = db.execute(_CANDIDATES, (tenant, brought_by)).fetchall()
    if not rows:
        return None

    def order(row: Row) -> tuple[int, bytes]:
        tie = hashlib.sha256(f"{brought_by}\n{row['decision_id']}".encode()).digest()
        return int(row["shown"]), tie

    picked: Row = min(rows, key=order)
    return picked


def store_showing(db: Db, item_id: str, golden: Row, brought_by: str) -> None:
    """Remember that item `item_id` is a showing of `golden` (a `pick_golden` row)."""
    db.execute(
        "INSERT INTO golden_showings (item_id, decision_id, answer, brought_by)"
        " VALUES (?, ?, ?, ?)",
        (item_id, golden["decision_id"], golden["answer"], brought_by),
    )


def shown(db: Db, row: Row) -> Shown | None:
    """What the `items` row is a showing of, or None for an ordinary item."""
    if not str(row["decision_id"]).startswith(SHOWING_KEY):
        return None
    found = db.execute(
        "SELECT decision_id, answer FROM golden_showings WHERE item_id = ?", (row["id"],)
    ).fetchone()
    if found is None:  # the key is only ever written with its showing
        raise ReviewError(f"item {row['id']} is a golden showing the desk has no record of")
    return Shown(found["decision_id"], VerdictChoice(found["answer"]))
