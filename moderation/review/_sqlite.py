"""The review desk in one SQLite file, safe for several processes on one machine.

The file runs in WAL mode (readers never wait for the writer); every change is one
`BEGIN IMMEDIATE` transaction, so two processes leasing at once are put in order by SQLite's
write lock, and a waiting process retries for `busy_timeout` seconds before it gives up.
Times are stored as whole microseconds since the epoch, from the injected clock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from moderation._ids import new_ulid
from moderation.decision import Decision
from moderation.errors import LeaseLost, ReviewError, UnknownItem
from moderation.review._desk import DEFAULT_LEASE_SECONDS, ReviewRecordSink
from moderation.review._model import (
    MAX_APPEAL_REASON,
    MAX_NOTE,
    Appeal,
    DeskRules,
    ItemImage,
    ItemKind,
    ItemState,
    NewItem,
    QueueDepth,
    Reviewer,
    ReviewItem,
    ReviewVerdict,
    Skip,
    Then,
    VerdictChoice,
    check_categories,
    check_text,
    check_verdict,
    settle,
)

__all__ = ["SCHEMA_VERSION", "SQLiteReviewDesk"]

#: The layout of the desk file; a file with a higher version was written by a newer release.
SCHEMA_VERSION = 1

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS items (
        id TEXT PRIMARY KEY,
        decision_id TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        kind TEXT NOT NULL,
        priority INTEGER NOT NULL,
        created_us INTEGER NOT NULL,
        sla_us INTEGER,
        due_us INTEGER,
        reviewers_needed INTEGER NOT NULL,
        round INTEGER NOT NULL,
        awaiting_senior INTEGER NOT NULL,
        decided INTEGER NOT NULL,
        lease_holder TEXT,
        lease_until_us INTEGER,
        body TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS items_waiting ON items (decided, tenant)",
    """CREATE TABLE IF NOT EXISTS verdicts (
        item_id TEXT NOT NULL REFERENCES items (id),
        seq INTEGER NOT NULL,
        round INTEGER NOT NULL,
        reviewer TEXT NOT NULL,
        verdict TEXT NOT NULL,
        final INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (item_id, seq))""",
    "CREATE INDEX IF NOT EXISTS verdicts_reviewer ON verdicts (reviewer, item_id)",
    """CREATE TABLE IF NOT EXISTS appeals (
        item_id TEXT NOT NULL REFERENCES items (id),
        seq INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (item_id, seq))""",
    """CREATE TABLE IF NOT EXISTS skips (
        item_id TEXT NOT NULL REFERENCES items (id),
        reviewer TEXT NOT NULL,
        until_us INTEGER NOT NULL,
        PRIMARY KEY (item_id, reviewer))""",
)

# The order of docs/review.md: appeals, then overdue items, then priority, then the oldest. Only
# undecided items whose lease is free or expired, of a granted tenant, that this reviewer has not
# judged (in any round) nor skipped lately; after a disagreement, only for a senior.
_NEXT = """
SELECT id FROM items
WHERE decided = 0
  AND (lease_holder IS NULL OR lease_until_us <= :now)
  AND (:all_tenants OR tenant IN (SELECT value FROM json_each(:tenants)))
  AND (awaiting_senior = 0 OR :senior)
  AND NOT EXISTS (SELECT 1 FROM verdicts v WHERE v.item_id = items.id AND v.reviewer = :name)
  AND NOT EXISTS (
    SELECT 1 FROM skips s WHERE s.item_id = items.id AND s.reviewer = :name AND s.until_us > :now)
ORDER BY kind = 'appeal' DESC, (due_us IS NOT NULL AND due_us <= :now) DESC, priority DESC,
  created_us, id
LIMIT 1
"""

_HELD = """
SELECT id FROM items
WHERE decided = 0 AND lease_holder = :name AND lease_until_us > :now
  AND (:all_tenants OR tenant IN (SELECT value FROM json_each(:tenants)))
ORDER BY lease_until_us LIMIT 1
"""

# Store keys of closed items older than the cutoff, less any key another item still holds (the
# same image may back several decisions).
_CLOSED_IMAGES = """
SELECT DISTINCT json_extract(body, '$.image.store_key') AS image_key FROM items
WHERE decided = 1 AND created_us < :cutoff AND image_key IS NOT NULL
EXCEPT
SELECT json_extract(body, '$.image.store_key') FROM items
WHERE (decided = 0 OR created_us >= :cutoff) AND json_extract(body, '$.image.store_key') IS NOT NULL
ORDER BY 1
"""

# The queue page: undecided items of the granted tenants, per tenant.
_DEPTH = """
SELECT tenant, COUNT(*) AS waiting,
  SUM(lease_holder IS NOT NULL AND lease_until_us > :now) AS leased,
  MIN(created_us) AS oldest_us,
  SUM(due_us IS NOT NULL AND due_us <= :now) AS overdue
FROM items
WHERE decided = 0 AND (:all_tenants OR tenant IN (SELECT value FROM json_each(:tenants)))
GROUP BY tenant ORDER BY tenant
"""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BODY_FIELDS = {"reasons", "findings", "rationale", "image"}


def _time(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


class SQLiteReviewDesk:
    """A `ReviewDesk` in one SQLite file (created, with its schema, on first open).

    `clock` gives epoch seconds and `new_id` item ids (ULIDs by default); `sink` receives every
    verdict and appeal before it is committed; `lease_seconds` is how long `next` leases an item.
    Open one desk per process (or thread pool): the connection is not shared across a fork.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        sink: ReviewRecordSink | None = None,
        busy_timeout: float = 30.0,
    ) -> None:
        if not 0 < lease_seconds <= 86400:
            raise ReviewError(f"lease_seconds must be 1 second to 1 day, got {lease_seconds!r}")
        self.path = Path(path)
        self._clock = clock
        self._new_id = new_id if new_id is not None else (lambda: new_ulid(clock))
        self._lease_us = round(lease_seconds * 1_000_000)
        self._sink = sink
        self._lock = threading.Lock()
        self._db = self._connect(busy_timeout)
        self._create_schema()

    def _connect(self, busy_timeout: float) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise ReviewError(f"cannot open the review desk {self.path}: {exc}") from exc
        db.row_factory = sqlite3.Row
        return db

    def _create_schema(self) -> None:
        with self._transaction() as db:
            for statement in _SCHEMA:
                db.execute(statement)
            row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
            if row[0] is None:
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                raise ReviewError(
                    f"the review desk {self.path} has schema version {row[0]}, written by a "
                    f"newer release; this one reads version {SCHEMA_VERSION}"
                )

    def close(self) -> None:
        """Close the file's connection."""
        self._db.close()

    def __enter__(self) -> SQLiteReviewDesk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteReviewDesk({str(self.path)!r})"

    @contextmanager
    def _transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute(f"BEGIN {mode}")
                try:
                    yield self._db
                except BaseException:
                    self._db.rollback()
                    raise
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                raise ReviewError(f"review desk {self.path}: {exc}") from exc

    def _now(self) -> int:
        return round(self._clock() * 1_000_000)

    # -- the port -------------------------------------------------------------------------------

    def enqueue(
        self,
        item: Decision | NewItem,
        *,
        rules: DeskRules | None = None,
        kind: ItemKind = ItemKind.REVIEW,
        image: ItemImage | None = None,
    ) -> ReviewItem:
        """The item for this decision: a new one, or the one already held for its decision id."""
        new = _new_item(item, image)
        rules = rules if rules is not None else DeskRules()
        kind = _kind(kind)
        with self._transaction() as db:
            now = self._now()
            row = db.execute(
                "SELECT id FROM items WHERE decision_id = ?", (new.decision_id,)
            ).fetchone()
            item_id = row["id"] if row is not None else self._insert(db, new, rules, kind, now)
            return self._load(db, item_id, now)

    def _insert(
        self, db: sqlite3.Connection, new: NewItem, rules: DeskRules, kind: ItemKind, now: int
    ) -> str:
        item_id = self._new_id()
        sla_us = None if rules.sla_seconds is None else round(rules.sla_seconds * 1_000_000)
        db.execute(
            "INSERT INTO items (id, decision_id, tenant, kind, priority, created_us, sla_us,"
            " due_us, reviewers_needed, round, awaiting_senior, decided, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 0, 0, ?)",
            (
                item_id,
                new.decision_id,
                new.tenant,
                kind.value,
                rules.priority,
                now,
                sla_us,
                None if sla_us is None else now + sla_us,
                rules.reviewers,
                new.model_dump_json(include=_BODY_FIELDS),
            ),
        )
        return item_id

    def next(self, reviewer: Reviewer) -> ReviewItem | None:
        """The item leased to `reviewer` (the one they already hold, else the next in order), or
        None when nothing is waiting for them. The lease runs `lease_seconds` from now."""
        _check_reviewer(reviewer)
        with self._transaction() as db:
            now = self._now()
            params = _reviewer_params(reviewer, now)
            row = db.execute(_HELD, params).fetchone() or db.execute(_NEXT, params).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE items SET lease_holder = ?, lease_until_us = ? WHERE id = ?",
                (reviewer.name, now + self._lease_us, row["id"]),
            )
            return self._load(db, row["id"], now)

    def decide(
        self,
        item_id: str,
        verdict: VerdictChoice | str,
        *,
        reviewer: Reviewer,
        note: str = "",
        categories: Iterable[str] = (),
    ) -> ReviewVerdict:
        """Record `reviewer`'s verdict on the item they hold, and return it with what it led to.

        LeaseLost when they do not hold the item; UnknownItem when there is no such item.
        """
        _check_reviewer(reviewer)
        choice = check_verdict(verdict)
        note = check_text("note", note, MAX_NOTE)
        names = check_categories(categories)
        with self._transaction() as db:
            now = self._now()
            row = _item_row(db, item_id)
            _check_lease(row, reviewer, now)
            earlier = [
                VerdictChoice(v["verdict"])
                for v in db.execute(
                    "SELECT verdict FROM verdicts WHERE item_id = ? AND round = ? ORDER BY seq",
                    (item_id, row["round"]),
                )
            ]
            then = settle(
                earlier,
                choice,
                needed=row["reviewers_needed"],
                senior_stage=bool(row["awaiting_senior"]),
            )
            record = ReviewVerdict(
                item_id=item_id,
                decision_id=row["decision_id"],
                tenant=row["tenant"],
                kind=ItemKind(row["kind"]),
                round=row["round"],
                reviewer=reviewer.name,
                role=reviewer.role,
                verdict=choice,
                note=note,
                categories=names,
                at=_time(now),
                then=then,
            )
            self._store_verdict(db, record)
            return record

    def _store_verdict(self, db: sqlite3.Connection, record: ReviewVerdict) -> None:
        db.execute(
            "INSERT INTO verdicts (item_id, seq, round, reviewer, verdict, final, body)"
            " VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM verdicts WHERE item_id = ?),"
            " ?, ?, ?, ?, ?)",
            (
                record.item_id,
                record.item_id,
                record.round,
                record.reviewer,
                record.verdict.value,
                int(record.final),
                record.model_dump_json(),
            ),
        )
        db.execute(
            "UPDATE items SET decided = ?, awaiting_senior = ?, lease_holder = NULL,"
            " lease_until_us = NULL WHERE id = ?",
            (int(record.final), int(record.then is Then.SENIOR), record.item_id),
        )
        if self._sink is not None:
            self._sink.append_review(record)

    def release(self, item_id: str, *, reviewer: Reviewer) -> ReviewItem:
        """Give the item back unjudged (skip): it is not offered to `reviewer` again for
        `lease_seconds`. LeaseLost when they do not hold it."""
        _check_reviewer(reviewer)
        with self._transaction() as db:
            now = self._now()
            row = _item_row(db, item_id)
            _check_lease(row, reviewer, now)
            db.execute(
                "UPDATE items SET lease_holder = NULL, lease_until_us = NULL WHERE id = ?",
                (item_id,),
            )
            db.execute(
                "INSERT OR REPLACE INTO skips (item_id, reviewer, until_us) VALUES (?, ?, ?)",
                (item_id, reviewer.name, now + self._lease_us),
            )
            if self._sink is not None:
                self._sink.append_review(
                    Skip(
                        item_id=item_id,
                        decision_id=row["decision_id"],
                        tenant=row["tenant"],
                        round=row["round"],
                        reviewer=reviewer.name,
                        at=_time(now),
                    )
                )
            return self._load(db, item_id, now)

    def appeal(self, decision_id: str, reason: str) -> ReviewItem:
        """Put the decided item of `decision_id` back at the top of the desk as an appeal, in a
        new round: its due time restarts from now, and its earlier reviewers are not offered it.

        UnknownItem when the desk holds no item for the decision; ReviewError while the item is
        still waiting for its verdict.
        """
        reason = check_text("the appeal's reason", reason, MAX_APPEAL_REASON, required=True)
        with self._transaction() as db:
            now = self._now()
            row = _decision_row(db, decision_id)
            if not row["decided"]:
                raise ReviewError(
                    f"decision {decision_id} is still waiting for a reviewer (item {row['id']});"
                    " appeal it once it is decided"
                )
            record = Appeal(
                item_id=row["id"],
                decision_id=decision_id,
                tenant=row["tenant"],
                round=row["round"] + 1,
                reason=reason,
                at=_time(now),
            )
            self._store_appeal(db, record, row["sla_us"], now)
            return self._load(db, row["id"], now)

    def _store_appeal(
        self, db: sqlite3.Connection, record: Appeal, sla_us: int | None, now: int
    ) -> None:
        db.execute(
            "UPDATE items SET kind = ?, round = ?, decided = 0, awaiting_senior = 0,"
            " lease_holder = NULL, lease_until_us = NULL, due_us = ? WHERE id = ?",
            (
                ItemKind.APPEAL.value,
                record.round,
                None if sla_us is None else now + sla_us,
                record.item_id,
            ),
        )
        db.execute(
            "INSERT INTO appeals (item_id, seq, body) VALUES"
            " (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM appeals WHERE item_id = ?), ?)",
            (record.item_id, record.item_id, record.model_dump_json()),
        )
        if self._sink is not None:
            self._sink.append_review(record)

    def final(self, decision_id: str) -> ReviewVerdict | None:
        """The latest final verdict on the decision's item, or None while there is none.

        UnknownItem when the desk holds no item for the decision.
        """
        with self._transaction("DEFERRED") as db:
            row = _decision_row(db, decision_id)
            verdict = db.execute(
                "SELECT body FROM verdicts WHERE item_id = ? AND final = 1"
                " ORDER BY seq DESC LIMIT 1",
                (row["id"],),
            ).fetchone()
        return None if verdict is None else ReviewVerdict.model_validate_json(verdict["body"])

    def get(self, item_id: str) -> ReviewItem:
        """The item with this id, with its verdicts and appeals; UnknownItem if there is none."""
        with self._transaction("DEFERRED") as db:
            return self._load(db, item_id, self._now())

    def find(self, decision_id: str) -> ReviewItem | None:
        """The item for this decision id, or None when the desk holds none."""
        with self._transaction("DEFERRED") as db:
            row = db.execute(
                "SELECT id FROM items WHERE decision_id = ?", (decision_id,)
            ).fetchone()
            return None if row is None else self._load(db, row["id"], self._now())

    def closed_images(self, before: datetime) -> list[str]:
        """The image-store keys of decided items created before `before` that no other item
        (undecided, or created since) still holds, sorted."""
        if before.tzinfo is None:
            raise ReviewError(f"closed_images needs a time with a time zone, got {before!r}")
        cutoff = (before - _EPOCH) // timedelta(microseconds=1)
        with self._transaction("DEFERRED") as db:
            rows = db.execute(_CLOSED_IMAGES, {"cutoff": cutoff}).fetchall()
        return [str(row[0]) for row in rows]

    def depth(self, reviewer: Reviewer) -> list[QueueDepth]:
        """Per granted tenant with undecided items: how many, how many leased now, the oldest's
        creation time, how many past due; sorted by tenant. Leases nothing."""
        _check_reviewer(reviewer)
        with self._transaction("DEFERRED") as db:
            rows = db.execute(_DEPTH, _reviewer_params(reviewer, self._now())).fetchall()
        return [
            QueueDepth(
                tenant=row["tenant"],
                waiting=row["waiting"],
                leased=row["leased"],
                oldest_created_at=_time(row["oldest_us"]),
                overdue=row["overdue"],
            )
            for row in rows
        ]

    def _load(self, db: sqlite3.Connection, item_id: str, now: int) -> ReviewItem:
        row = _item_row(db, item_id)
        verdicts = db.execute(
            "SELECT body FROM verdicts WHERE item_id = ? ORDER BY seq", (item_id,)
        ).fetchall()
        appeals = db.execute(
            "SELECT body FROM appeals WHERE item_id = ? ORDER BY seq", (item_id,)
        ).fetchall()
        leased = not row["decided"] and row["lease_holder"] and row["lease_until_us"] > now
        state = (
            ItemState.DECIDED if row["decided"] else ItemState.LEASED if leased else ItemState.OPEN
        )
        return ReviewItem(
            id=row["id"],
            decision_id=row["decision_id"],
            tenant=row["tenant"],
            kind=ItemKind(row["kind"]),
            priority=row["priority"],
            created_at=_time(row["created_us"]),
            due_at=None if row["due_us"] is None else _time(row["due_us"]),
            state=state,
            reviewers_needed=row["reviewers_needed"],
            round=row["round"],
            awaiting_senior=bool(row["awaiting_senior"]),
            lease_holder=row["lease_holder"] if leased else None,
            lease_until=_time(row["lease_until_us"]) if leased else None,
            verdicts=tuple(ReviewVerdict.model_validate_json(v["body"]) for v in verdicts),
            appeals=tuple(Appeal.model_validate_json(a["body"]) for a in appeals),
            **json.loads(row["body"]),
        )


def _new_item(item: Decision | NewItem, image: ItemImage | None) -> NewItem:
    if isinstance(item, Decision):
        return NewItem.of(item, image=image)
    if isinstance(item, NewItem):
        return item if image is None else item.model_copy(update={"image": image})
    raise ReviewError(f"enqueue takes a Decision or a NewItem, not {type(item).__name__}")


def _kind(kind: object) -> ItemKind:
    try:
        return ItemKind(str(kind))
    except ValueError:
        kinds = ", ".join(k.value for k in ItemKind)
        raise ReviewError(f"item kind {kind!r} is not one of {kinds}") from None


def _check_reviewer(reviewer: object) -> None:
    if not isinstance(reviewer, Reviewer):
        raise ReviewError(f"reviewer must be a Reviewer, not {type(reviewer).__name__}")


def _reviewer_params(reviewer: Reviewer, now: int) -> dict[str, Any]:
    every = reviewer.tenants == "*"
    return {
        "name": reviewer.name,
        "now": now,
        "senior": int(reviewer.senior),
        "all_tenants": int(every),
        "tenants": "[]" if every else json.dumps(sorted(reviewer.tenants)),
    }


def _item_row(db: sqlite3.Connection, item_id: str) -> sqlite3.Row:
    if not isinstance(item_id, str):
        raise ReviewError(f"an item id is text, not {type(item_id).__name__}")
    row: sqlite3.Row | None = db.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
    if row is None:
        raise UnknownItem(f"the review desk holds no item {item_id!r}")
    return row


def _decision_row(db: sqlite3.Connection, decision_id: str) -> sqlite3.Row:
    if not isinstance(decision_id, str):
        raise ReviewError(f"a decision id is text, not {type(decision_id).__name__}")
    row: sqlite3.Row | None = db.execute(
        "SELECT * FROM items WHERE decision_id = ?", (decision_id,)
    ).fetchone()
    if row is None:
        raise UnknownItem(f"the review desk holds no item for decision {decision_id!r}")
    return row


def _check_lease(row: sqlite3.Row, reviewer: Reviewer, now: int) -> None:
    """Refuse a reviewer who does not hold the item. A lease that expired is still theirs until
    another reviewer takes the item: a verdict given late is not thrown away for nothing."""
    item = row["id"]
    if row["decided"]:
        raise LeaseLost(f"item {item} is already decided; {reviewer.name} holds no lease on it")
    if row["lease_holder"] != reviewer.name:
        taken = row["lease_holder"] is not None and row["lease_until_us"] > now
        why = "another reviewer holds it now" if taken else "lease it with next() first"
        raise LeaseLost(f"{reviewer.name} does not hold item {item}: {why}")
    if row["awaiting_senior"] and not reviewer.senior:
        raise LeaseLost(f"item {item} awaits a senior reviewer; {reviewer.name} is not one")
