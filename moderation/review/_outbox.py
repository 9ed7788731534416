"""The desk's outbox, in SQL: one delivery per final verdict, written in the verdict's own
transaction, claimed by one deliverer at a time, kept until it is delivered.

`SQLReviewDesk` calls these inside its transactions (moderation/review/_sql.py); the delivery
itself (S3 tags and quarantine, the webhook) is `Effects`' (moderation/review/_effects.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from moderation.errors import ReviewError, UnknownItem
from moderation.review._db import Db, Row
from moderation.review._model import Delivery, ItemImage, ReviewVerdict

__all__ = ["DELIVERIES", "claim_due", "mark_delivered", "mark_failed", "pending", "store_delivery"]

#: The outbox table, for `str.format` with the dialect's `int64` column type.
DELIVERIES = (
    """CREATE TABLE IF NOT EXISTS deliveries (
        id TEXT PRIMARY KEY,
        item_id TEXT NOT NULL REFERENCES items (id),
        verdict TEXT NOT NULL,
        reviewers TEXT NOT NULL,
        image TEXT,
        created_us {int64} NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_us {int64} NOT NULL,
        last_error TEXT,
        done_us {int64})""",
    "CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (done_us, next_us)",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_ERROR = 2000


def micros(at: datetime) -> int:
    """`at` as whole microseconds since the epoch; ReviewError for a time without a zone."""
    if at.tzinfo is None:
        raise ReviewError(f"the outbox needs a time with a time zone, got {at!r}")
    return (at - _EPOCH) // timedelta(microseconds=1)


def store_delivery(db: Db, record: ReviewVerdict, new_id: Callable[[], str]) -> None:
    """The delivery of final verdict `record`: with the deciding round's verdicts (who said
    what) and the item's image, due at once."""
    round_verdicts = db.execute(
        "SELECT body FROM verdicts WHERE item_id = ? AND round = ? ORDER BY seq",
        (record.item_id, record.round),
    ).fetchall()
    reviewers = []
    for row in round_verdicts:
        verdict = ReviewVerdict.model_validate_json(row["body"])
        reviewers.append(
            {
                "reviewer": verdict.reviewer,
                "role": verdict.role.value,
                "verdict": verdict.verdict.value,
            }
        )
    item = db.execute("SELECT body FROM items WHERE id = ?", (record.item_id,)).fetchone()
    image = json.loads(item["body"]).get("image")
    now = micros(record.at)
    db.execute(
        "INSERT INTO deliveries (id, item_id, verdict, reviewers, image, created_us, next_us)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            new_id(),
            record.item_id,
            record.model_dump_json(),
            json.dumps(reviewers),
            None if image is None else json.dumps(image),
            now,
            now,
        ),
    )


def claim_due(db: Db, *, now: int, until: int, limit: int, lock: str) -> list[Delivery]:
    """Up to `limit` deliveries due at `now`, oldest due first, each claimed until `until` (its
    next attempt pushed there); `lock` ends the SELECT (the dialect's SKIP LOCKED)."""
    check_limit(limit)
    rows = db.execute(
        "SELECT * FROM deliveries WHERE done_us IS NULL AND next_us <= ?"
        " ORDER BY next_us, id LIMIT ?" + lock,
        (now, limit),
    ).fetchall()
    for row in rows:
        db.execute("UPDATE deliveries SET next_us = ? WHERE id = ?", (until, row["id"]))
    return [_delivery(row, next_us=until) for row in rows]


def mark_delivered(db: Db, delivery_id: str, now: int) -> None:
    """The delivery is done (one already done is left as it is)."""
    _update(
        db,
        "UPDATE deliveries SET done_us = ? WHERE id = ? AND done_us IS NULL",
        (now, delivery_id),
        delivery_id,
    )


def mark_failed(db: Db, delivery_id: str, error: str, retry_at: datetime) -> None:
    """One more failed attempt: `error` kept (cut to 2,000 characters), due again at
    `retry_at`."""
    _update(
        db,
        "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, next_us = ?"
        " WHERE id = ? AND done_us IS NULL",
        (str(error)[:_MAX_ERROR], micros(retry_at), delivery_id),
        delivery_id,
    )


def pending(db: Db, limit: int) -> list[Delivery]:
    """The deliveries not done yet, the soonest due first."""
    check_limit(limit)
    rows = db.execute(
        "SELECT * FROM deliveries WHERE done_us IS NULL ORDER BY next_us, id LIMIT ?", (limit,)
    ).fetchall()
    return [_delivery(row) for row in rows]


def check_limit(limit: object) -> None:
    """ReviewError unless `limit` is a whole number of at least 1."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ReviewError(f"limit must be a whole number of at least 1, got {limit!r}")


def _time(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _delivery(row: Row, *, next_us: int | None = None) -> Delivery:
    return Delivery(
        id=row["id"],
        verdict=ReviewVerdict.model_validate_json(row["verdict"]),
        reviewers=tuple(json.loads(row["reviewers"])),
        image=None if row["image"] is None else ItemImage.model_validate_json(row["image"]),
        created_at=_time(row["created_us"]),
        attempts=row["attempts"],
        next_attempt_at=_time(row["next_us"] if next_us is None else next_us),
        last_error=row["last_error"],
        done_at=None if row["done_us"] is None else _time(row["done_us"]),
    )


def _update(db: Db, sql: str, params: tuple[Any, ...], delivery_id: str) -> None:
    """Run `sql` on one delivery; UnknownItem when the outbox holds no such delivery."""
    if not isinstance(delivery_id, str):
        raise ReviewError(f"a delivery id is text, not {type(delivery_id).__name__}")
    if db.execute(sql, params).rowcount == 0 and (
        db.execute("SELECT 1 FROM deliveries WHERE id = ?", (delivery_id,)).fetchone() is None
    ):
        raise UnknownItem(f"the review desk's outbox holds no delivery {delivery_id!r}")
