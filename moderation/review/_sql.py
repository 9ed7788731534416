"""The review desk in SQL: one implementation of the port, for every SQL backend.

`SQLReviewDesk` holds the desk's logic once: the schema, the queries, the lease checks, the
consensus (`settle`), the records handed to the sink, the loading of items. A backend subclass
(`SQLiteReviewDesk`, `PostgresReviewDesk`) adds only what its database does differently: how it
connects and runs a transaction, the column types, how a reviewer's tenants are matched, how a key
is read out of the JSON body, and which row locks it takes.

Queries are written once with `?` and `:name` placeholders and SQL both databases read: `TRUE`
and `FALSE` for flags, `INSERT ... ON CONFLICT`. Times are whole microseconds since the epoch,
from the injected clock.

To add a table: its `CREATE` goes in `SCHEMA` (with `{int64}` and `{bool}` for those types), its
methods in `SQLReviewDesk`, written against `Db.execute`; a backend changes only if a query needs
a function its database names differently (then a `Dialect` field, as for `json_key`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from moderation._ids import new_ulid
from moderation.decision import Decision
from moderation.errors import LeaseLost, ReviewError, UnknownItem
from moderation.review._db import Db, Row
from moderation.review._desk import (
    DEFAULT_CLAIM_SECONDS,
    DEFAULT_LEASE_SECONDS,
    DeskRecord,
    ReviewRecordSink,
)
from moderation.review._golden import (
    GOLDEN,
    NOT_SEEN,
    SHOWING_KEY,
    Shown,
    golden_items,
    pick_golden,
    shown,
    store_golden,
    store_showing,
)
from moderation.review._model import (
    MAX_APPEAL_REASON,
    MAX_NOTE,
    Appeal,
    Delivery,
    DeskRules,
    GoldenItem,
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
    Waiting,
    check_categories,
    check_text,
    check_verdict,
    settle,
)
from moderation.review._outbox import (
    DELIVERIES,
    claim_due,
    mark_delivered,
    mark_failed,
    pending,
    store_delivery,
)
from moderation.review_sampling import golden_drawn

__all__ = ["SCHEMA", "SCHEMA_VERSION", "Db", "Dialect", "Row", "SQLReviewDesk"]

#: The layout of the desk's tables; a database with a higher version was written by a newer
#: release.
# 2: the outbox (deliveries); 3: golden items (a release without them would deliver the effects
# of a verdict on a golden showing). A release that lacks a table must not decide here.
SCHEMA_VERSION = 3

#: The tables, for `str.format` with the dialect's `int64` and `bool` column types.
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS items (
        id TEXT PRIMARY KEY,
        decision_id TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        kind TEXT NOT NULL,
        priority INTEGER NOT NULL,
        created_us {int64} NOT NULL,
        sla_us {int64},
        due_us {int64},
        reviewers_needed INTEGER NOT NULL,
        round INTEGER NOT NULL,
        awaiting_senior {bool} NOT NULL,
        decided {bool} NOT NULL,
        lease_holder TEXT,
        lease_until_us {int64},
        body TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS items_waiting ON items (decided, tenant)",
    """CREATE TABLE IF NOT EXISTS verdicts (
        item_id TEXT NOT NULL REFERENCES items (id),
        seq INTEGER NOT NULL,
        round INTEGER NOT NULL,
        reviewer TEXT NOT NULL,
        verdict TEXT NOT NULL,
        final {bool} NOT NULL,
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
        until_us {int64} NOT NULL,
        PRIMARY KEY (item_id, reviewer))""",
    *DELIVERIES,
    *GOLDEN,
)

# The order of docs/review.md: appeals, then overdue items, then priority, then the oldest. Only
# undecided items whose lease is free or expired, of a granted tenant, that this reviewer has not
# judged (in any round) nor skipped lately; after a disagreement, only for a senior.
_NEXT = """
SELECT id FROM items
WHERE decided = FALSE
  AND (lease_holder IS NULL OR lease_until_us <= :now)
  AND (:all_tenants OR {tenant_in})
  AND (awaiting_senior = FALSE OR :senior)
  AND NOT EXISTS (SELECT 1 FROM verdicts v WHERE v.item_id = items.id AND v.reviewer = :name)
  AND NOT EXISTS (
    SELECT 1 FROM skips s WHERE s.item_id = items.id AND s.reviewer = :name AND s.until_us > :now)
  {not_seen}
ORDER BY kind = 'appeal' DESC, (due_us IS NOT NULL AND due_us <= :now) DESC, priority DESC,
  created_us, id
LIMIT 1{skip_locked}
"""

_HELD = """
SELECT id FROM items
WHERE decided = FALSE AND lease_holder = :name AND lease_until_us > :now
  AND (:all_tenants OR {tenant_in})
ORDER BY lease_until_us LIMIT 1{for_update}
"""

# Store keys of closed items older than the cutoff, less any key another item still holds (the
# same image may back several decisions) and any key of a golden item (shown again later).
_CLOSED_IMAGES = """
SELECT DISTINCT {key} AS image_key FROM items
WHERE decided = TRUE AND created_us < :cutoff AND {key} IS NOT NULL
EXCEPT
SELECT {key} FROM items
WHERE (decided = FALSE OR created_us >= :cutoff) AND {key} IS NOT NULL
EXCEPT
SELECT {key} FROM golden WHERE {key} IS NOT NULL
ORDER BY 1
"""

# The queue page: undecided items of the granted tenants, per tenant.
_DEPTH = """
SELECT tenant, COUNT(*) AS waiting,
  SUM(CASE WHEN lease_holder IS NOT NULL AND lease_until_us > :now THEN 1 ELSE 0 END) AS leased,
  MIN(created_us) AS oldest_us,
  SUM(CASE WHEN due_us IS NOT NULL AND due_us <= :now THEN 1 ELSE 0 END) AS overdue
FROM items
WHERE decided = FALSE AND (:all_tenants OR {tenant_in})
GROUP BY tenant ORDER BY tenant
"""

# The queue's statistics: every undecided item of the granted tenants, oldest first.
_WAITING = """
SELECT tenant, created_us, due_us,
  CASE WHEN lease_holder IS NOT NULL AND lease_until_us > :now THEN 1 ELSE 0 END AS leased
FROM items
WHERE decided = FALSE AND (:all_tenants OR {tenant_in})
ORDER BY created_us, id
"""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BODY_FIELDS = {"reasons", "findings", "rationale", "image"}


@dataclass(frozen=True, slots=True)
class Dialect:
    """What a database writes differently, as fragments of the shared queries.

    `tenant_in` matches `tenant` against the `:tenants` parameter that `tenants` makes;
    `json_key` reads an item image's store key out of `body`; `for_update` and `skip_locked` end
    a `SELECT` whose rows the transaction changes (empty where the database locks it all).
    """

    int64_type: str
    bool_type: str
    tenant_in: str
    tenants: Callable[[list[str]], Any]
    json_key: str
    for_update: str = ""
    skip_locked: str = ""

    def schema(self) -> list[str]:
        """The `CREATE` statements of `SCHEMA` in this database's column types."""
        return [s.format(int64=self.int64_type, bool=self.bool_type) for s in SCHEMA]

    def next_query(self) -> str:
        """The next item to lease, in the desk's order."""
        return _NEXT.format(
            tenant_in=self.tenant_in, skip_locked=self.skip_locked, not_seen=NOT_SEEN.strip()
        )

    def held_query(self) -> str:
        """The item a reviewer holds a live lease on."""
        return _HELD.format(tenant_in=self.tenant_in, for_update=self.for_update)

    def depth_query(self) -> str:
        """The queue's depth per granted tenant."""
        return _DEPTH.format(tenant_in=self.tenant_in)

    def waiting_query(self) -> str:
        """The undecided items that `waiting` returns."""
        return _WAITING.format(tenant_in=self.tenant_in)

    def closed_images_query(self) -> str:
        """The store keys that `closed_images` returns."""
        return _CLOSED_IMAGES.format(key=self.json_key)


def _time(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


class SQLReviewDesk:
    """A `ReviewDesk` over SQL tables; a backend subclass gives it a `dialect` and transactions.

    `clock` gives epoch seconds and `new_id` item ids (ULIDs by default); `sink` receives every
    verdict, skip and appeal before it is committed; `lease_seconds` is how long `next` leases an
    item. A subclass connects, then calls `_create_schema()`.
    """

    dialect: Dialect

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        sink: ReviewRecordSink | None = None,
    ) -> None:
        if not 0 < lease_seconds <= 86400:
            raise ReviewError(f"lease_seconds must be 1 second to 1 day, got {lease_seconds!r}")
        self._clock = clock
        self._new_id = new_id if new_id is not None else (lambda: new_ulid(clock))
        self._lease_us = round(lease_seconds * 1_000_000)
        self._sink = sink
        self._lock = threading.Lock()  # one transaction at a time on the one connection
        self._next = self.dialect.next_query()
        self._held = self.dialect.held_query()
        self._closed_images = self.dialect.closed_images_query()
        self._depth = self.dialect.depth_query()
        self._waiting = self.dialect.waiting_query()

    # -- what a backend provides -----------------------------------------------------------------

    def _transaction(self, write: bool = True) -> AbstractContextManager[Db]:
        """A transaction on the database, committed when the block ends, rolled back if it
        raises; `write` False for one that only reads."""
        raise NotImplementedError

    def _lock_schema(self, db: Db) -> None:
        """Hold off other processes creating the schema until this transaction ends."""

    def close(self) -> None:
        """Close the database connection."""
        raise NotImplementedError

    def _where(self) -> str:
        """The desk's database, as error messages name it (never with a password)."""
        raise NotImplementedError

    # -- the schema ------------------------------------------------------------------------------

    def _create_schema(self) -> None:
        with self._transaction() as db:
            self._lock_schema(db)
            for statement in self.dialect.schema():
                db.execute(statement)
            row = db.execute("SELECT MAX(version) AS version FROM schema_version").fetchone()
            if row["version"] is None:
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row["version"] < SCHEMA_VERSION:  # the tables it lacked were created just above
                db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
            elif row["version"] > SCHEMA_VERSION:
                raise ReviewError(
                    f"the review desk {self._where()} has schema version {row['version']}, "
                    f"written by a newer release; this one reads version {SCHEMA_VERSION}"
                )

    def __enter__(self) -> SQLReviewDesk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> int:
        return round(self._clock() * 1_000_000)

    def _record(self, record: DeskRecord) -> None:
        if self._sink is not None:
            self._sink.append_review(record)

    # -- the port --------------------------------------------------------------------------------

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
            found = self._item_of(db, new.decision_id)
            if found is None:
                # Another process may insert the same decision meanwhile: theirs is kept.
                self._insert(db, new, rules, kind, now)
                found = self._item_of(db, new.decision_id)
            assert found is not None  # inserted just now, or by the process that won
            return self._load(db, found, now)

    def _item_of(self, db: Db, decision_id: str) -> str | None:
        row = db.execute("SELECT id FROM items WHERE decision_id = ?", (decision_id,)).fetchone()
        return None if row is None else str(row["id"])

    def _insert(self, db: Db, new: NewItem, rules: DeskRules, kind: ItemKind, now: int) -> None:
        """Insert `new`'s item (unless another process did); when this call inserted a review or
        QA item whose golden draw falls below the tenant's rate, a golden showing beside it."""
        if new.decided_at is not None:  # the item has waited since the decision (never later)
            now = min(now, (new.decided_at - _EPOCH) // timedelta(microseconds=1))
        inserted = self._insert_row(
            db, self._new_id(), new.decision_id, new.tenant, kind, rules, now, _body(new, rules)
        )
        if (
            inserted
            and kind is not ItemKind.APPEAL
            and golden_drawn(new.decision_id, rules.golden_rate)
        ):
            self._show_golden(db, new, rules, now)

    def _insert_row(
        self,
        db: Db,
        item_id: str,
        key: str,
        tenant: str,
        kind: ItemKind,
        rules: DeskRules,
        created_us: int,
        body: str,
    ) -> bool:
        """Insert one `items` row; False when an item already holds `key` (its decision id)."""
        sla_us = None if rules.sla_seconds is None else round(rules.sla_seconds * 1_000_000)
        rows = db.execute(
            "INSERT INTO items (id, decision_id, tenant, kind, priority, created_us, sla_us,"
            " due_us, reviewers_needed, round, awaiting_senior, decided, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, FALSE, FALSE, ?)"
            " ON CONFLICT (decision_id) DO NOTHING",
            (
                item_id,
                key,
                tenant,
                kind.value,
                rules.priority,
                created_us,
                sla_us,
                None if sla_us is None else created_us + sla_us,
                rules.reviewers,
                body,
            ),
        )
        return rows.rowcount == 1

    def _show_golden(self, db: Db, new: NewItem, rules: DeskRules, created_us: int) -> None:
        """A showing of one of the tenant's golden items (`pick_golden`), beside `new`'s item:
        a `review` item with the same rules and creation time, so it waits where `new`'s does
        and looks like it; nothing when the tenant has no golden item to show now."""
        golden = pick_golden(db, new.tenant, new.decision_id)
        if golden is None:
            return
        item_id = self._new_id()
        same = DeskRules(
            reviewers=rules.reviewers, sla_seconds=rules.sla_seconds, priority=rules.priority
        )
        key = SHOWING_KEY + item_id
        body = golden["body"]
        self._insert_row(db, item_id, key, new.tenant, ItemKind.REVIEW, same, created_us, body)
        store_showing(db, item_id, golden, new.decision_id)

    def add_golden(
        self,
        item: Decision | NewItem,
        answer: VerdictChoice | str,
        *,
        image: ItemImage | None = None,
    ) -> GoldenItem:
        """Make the decision's image a golden item of its tenant with the known `answer`: from
        now on new items of the tenant bring it along at the tenant's `golden_rate`. Adding it
        again replaces its answer and what is shown (showings made before keep theirs)."""
        new = _new_item(item, image)
        choice = check_verdict(answer)
        with self._transaction() as db:
            return store_golden(db, new, choice, self._now())

    def golden(self, tenant: str | None = None) -> list[GoldenItem]:
        """The golden items (of `tenant`, or every tenant's), with how often each was shown."""
        with self._transaction(write=False) as db:
            return golden_items(db, tenant=tenant)

    def next(self, reviewer: Reviewer) -> ReviewItem | None:
        """The item leased to `reviewer` (the one they already hold, else the next in order), or
        None when nothing is waiting for them. The lease runs `lease_seconds` from now."""
        _check_reviewer(reviewer)
        with self._transaction() as db:
            now = self._now()
            params = self._reviewer_params(reviewer, now)
            row = db.execute(self._held, params).fetchone()
            row = row if row is not None else db.execute(self._next, params).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE items SET lease_holder = ?, lease_until_us = ? WHERE id = ?",
                (reviewer.name, now + self._lease_us, row["id"]),
            )
            return self._load(db, row["id"], now)

    def _reviewer_params(self, reviewer: Reviewer, now: int) -> dict[str, Any]:
        every = reviewer.tenants == "*"
        return {
            "name": reviewer.name,
            "now": now,
            "senior": reviewer.senior,
            "all_tenants": every,
            "tenants": self.dialect.tenants([] if every else sorted(reviewer.tenants)),
        }

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
            row = self._item_row(db, item_id, lock=True)
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
            golden = shown(db, row)
            record = ReviewVerdict(
                item_id=item_id,
                decision_id=_decision_id(row, golden),
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
                qa_rate=json.loads(row["body"]).get("qa_rate"),
                golden_answer=None if golden is None else golden.answer,
            )
            self._store_verdict(db, record)
            return record

    def _store_verdict(self, db: Db, record: ReviewVerdict) -> None:
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
                record.final,
                record.model_dump_json(),
            ),
        )
        db.execute(
            "UPDATE items SET decided = ?, awaiting_senior = ?, lease_holder = NULL,"
            " lease_until_us = NULL WHERE id = ?",
            (record.final, record.then is Then.SENIOR, record.item_id),
        )
        if record.final and record.golden_answer is None:  # a golden showing has no effects
            store_delivery(db, record, lambda: new_ulid(self._clock))
        self._record(record)

    def release(self, item_id: str, *, reviewer: Reviewer) -> ReviewItem:
        """Give the item back unjudged (skip): it is not offered to `reviewer` again for
        `lease_seconds`. LeaseLost when they do not hold it."""
        _check_reviewer(reviewer)
        with self._transaction() as db:
            now = self._now()
            row = self._item_row(db, item_id, lock=True)
            _check_lease(row, reviewer, now)
            db.execute(
                "UPDATE items SET lease_holder = NULL, lease_until_us = NULL WHERE id = ?",
                (item_id,),
            )
            db.execute(
                "INSERT INTO skips (item_id, reviewer, until_us) VALUES (?, ?, ?)"
                " ON CONFLICT (item_id, reviewer) DO UPDATE SET until_us = excluded.until_us",
                (item_id, reviewer.name, now + self._lease_us),
            )
            golden = shown(db, row)
            self._record(
                Skip(
                    item_id=item_id,
                    decision_id=_decision_id(row, golden),
                    tenant=row["tenant"],
                    round=row["round"],
                    reviewer=reviewer.name,
                    at=_time(now),
                    kind=ItemKind(row["kind"]),
                    golden_answer=None if golden is None else golden.answer,
                )
            )
            return self._load(db, item_id, now)

    def appeal(
        self,
        decision: str | Decision | NewItem,
        reason: str,
        *,
        by: str = "",
        rules: DeskRules | None = None,
    ) -> ReviewItem:
        """Put a decided image back at the top of the desk as an appeal: the decision's item in a
        new round (its due time restarts from now; its earlier reviewers are not offered it), or,
        for a decision the desk never held (an automatic outcome), a new `appeal` item made from
        it with `rules`. `by` is who filed it (a platform's user id, a reviewer's name).

        UnknownItem when only a decision id is given and the desk holds no item for it (pass the
        `Decision`); ReviewError while the item is still waiting for its verdict.
        """
        reason = check_text("the appeal's reason", reason, MAX_APPEAL_REASON, required=True)
        by = _check_by(by)
        new = None if isinstance(decision, str) else _new_item(decision, None)
        decision_id = new.decision_id if new is not None else decision
        if not isinstance(decision_id, str):
            raise ReviewError(f"a decision id is text, not {type(decision_id).__name__}")
        with self._transaction() as db:
            now = self._now()
            if new is not None and self._item_of(db, decision_id) is None:
                self._insert(db, new, rules or DeskRules(), ItemKind.APPEAL, now)
                row = self._decision_row(db, decision_id, lock=True)
                first = 1
            else:
                row = self._decision_row(db, decision_id, lock=True)
                first = row["round"] + 1
                if not row["decided"]:
                    raise ReviewError(
                        f"decision {decision_id} is still waiting for a reviewer (item "
                        f"{row['id']}); appeal it once it is decided"
                    )
            record = Appeal(
                item_id=row["id"],
                decision_id=decision_id,
                tenant=row["tenant"],
                round=first,
                reason=reason,
                at=_time(now),
                by=by,
            )
            self._store_appeal(db, record, row["sla_us"], now)
            return self._load(db, row["id"], now)

    def _store_appeal(self, db: Db, record: Appeal, sla_us: int | None, now: int) -> None:
        db.execute(
            "UPDATE items SET kind = ?, round = ?, decided = FALSE, awaiting_senior = FALSE,"
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
        self._record(record)

    def final(self, decision_id: str) -> ReviewVerdict | None:
        """The latest final verdict on the decision's item, or None while there is none.

        UnknownItem when the desk holds no item for the decision.
        """
        with self._transaction(write=False) as db:
            row = self._decision_row(db, decision_id)
            verdict = db.execute(
                "SELECT body FROM verdicts WHERE item_id = ? AND final = TRUE"
                " ORDER BY seq DESC LIMIT 1",
                (row["id"],),
            ).fetchone()
        return None if verdict is None else ReviewVerdict.model_validate_json(verdict["body"])

    def get(self, item_id: str) -> ReviewItem:
        """The item with this id, with its verdicts and appeals; UnknownItem if there is none."""
        with self._transaction(write=False) as db:
            return self._load(db, item_id, self._now())

    def find(self, decision_id: str) -> ReviewItem | None:
        """The item for this decision id, or None when the desk holds none."""
        with self._transaction(write=False) as db:
            found = self._item_of(db, decision_id)
            return None if found is None else self._load(db, found, self._now())

    def closed_images(self, before: datetime) -> list[str]:
        """The image-store keys of decided items created before `before` that no other item
        (undecided, or created since) still holds, sorted."""
        if before.tzinfo is None:
            raise ReviewError(f"closed_images needs a time with a time zone, got {before!r}")
        cutoff = (before - _EPOCH) // timedelta(microseconds=1)
        with self._transaction(write=False) as db:
            rows = db.execute(self._closed_images, {"cutoff": cutoff}).fetchall()
        return [str(row["image_key"]) for row in rows]

    # -- reading rows ----------------------------------------------------------------------------

    def depth(self, reviewer: Reviewer) -> list[QueueDepth]:
        """Per granted tenant with undecided items: how many, how many leased now, the oldest's
        creation time, how many past due; sorted by tenant. Leases nothing."""
        _check_reviewer(reviewer)
        with self._transaction(write=False) as db:
            rows = db.execute(self._depth, self._reviewer_params(reviewer, self._now())).fetchall()
        return [
            QueueDepth(
                tenant=row["tenant"],
                waiting=int(row["waiting"]),
                leased=int(row["leased"]),
                oldest_created_at=_time(row["oldest_us"]),
                overdue=int(row["overdue"]),
            )
            for row in rows
        ]

    def waiting(self, reviewer: Reviewer) -> list[Waiting]:
        """Every undecided item of the granted tenants, oldest first, with its creation and due
        time and whether it is leased now. Leases nothing."""
        _check_reviewer(reviewer)
        with self._transaction(write=False) as db:
            params = self._reviewer_params(reviewer, self._now())
            rows = db.execute(self._waiting, params).fetchall()
        return [
            Waiting(
                tenant=row["tenant"],
                created_at=_time(row["created_us"]),
                due_at=_time(row["due_us"]) if row["due_us"] is not None else None,
                leased=bool(row["leased"]),
            )
            for row in rows
        ]

    # -- the outbox: a final verdict's effects, delivered at least once (_outbox.py) -----------

    def due_deliveries(
        self, limit: int, *, claim_seconds: float = DEFAULT_CLAIM_SECONDS
    ) -> list[Delivery]:
        """Up to `limit` due deliveries, oldest due first, each claimed for `claim_seconds`: its
        next attempt time is pushed past the claim in the same transaction, so two deliverers
        never hold the same delivery."""
        if not 0 < claim_seconds <= 86400:
            raise ReviewError(f"claim_seconds must be 1 second to 1 day, got {claim_seconds!r}")
        with self._transaction() as db:
            now = self._now()
            until = now + round(claim_seconds * 1_000_000)
            lock = self.dialect.skip_locked
            return claim_due(db, now=now, until=until, limit=limit, lock=lock)

    def delivered(self, delivery_id: str) -> None:
        """Mark the delivery done; UnknownItem when the outbox holds no such delivery."""
        with self._transaction() as db:
            mark_delivered(db, delivery_id, self._now())

    def delivery_failed(self, delivery_id: str, error: str, retry_at: datetime) -> None:
        """Count a failed attempt, keep `error` (cut to 2,000 characters), due again at
        `retry_at`."""
        with self._transaction() as db:
            mark_failed(db, delivery_id, error, retry_at)

    def pending_deliveries(self, limit: int = 1000) -> list[Delivery]:
        """The deliveries not done yet, the soonest due first."""
        with self._transaction(write=False) as db:
            return pending(db, limit)

    def _load(self, db: Db, item_id: str, now: int) -> ReviewItem:
        row = self._item_row(db, item_id)
        verdicts = db.execute(
            "SELECT body FROM verdicts WHERE item_id = ? ORDER BY seq", (item_id,)
        ).fetchall()
        appeals = db.execute(
            "SELECT body FROM appeals WHERE item_id = ? ORDER BY seq", (item_id,)
        ).fetchall()
        return _item(
            row,
            now,
            decision_id=_decision_id(row, shown(db, row)),
            verdicts=tuple(ReviewVerdict.model_validate_json(v["body"]) for v in verdicts),
            appeals=tuple(Appeal.model_validate_json(a["body"]) for a in appeals),
        )

    def _item_row(self, db: Db, item_id: str, *, lock: bool = False) -> Row:
        """The item's row (locked against other transactions until this one ends, with `lock`)."""
        if not isinstance(item_id, str):
            raise ReviewError(f"an item id is text, not {type(item_id).__name__}")
        row: Row | None = db.execute(
            "SELECT * FROM items WHERE id = ?" + (self.dialect.for_update if lock else ""),
            (item_id,),
        ).fetchone()
        if row is None:
            raise UnknownItem(f"the review desk holds no item {item_id!r}")
        return row

    def _decision_row(self, db: Db, decision_id: str, *, lock: bool = False) -> Row:
        """The row of the decision's item (locked until this transaction ends, with `lock`)."""
        if not isinstance(decision_id, str):
            raise ReviewError(f"a decision id is text, not {type(decision_id).__name__}")
        row: Row | None = db.execute(
            "SELECT * FROM items WHERE decision_id = ?" + (self.dialect.for_update if lock else ""),
            (decision_id,),
        ).fetchone()
        if row is None:
            raise UnknownItem(f"the review desk holds no item for decision {decision_id!r}")
        return row


def _decision_id(row: Row, golden: Shown | None) -> str:
    """The decision id an `items` row shows: a golden showing's is its golden decision's."""
    return str(row["decision_id"]) if golden is None else golden.decision_id


def _item(
    row: Row,
    now: int,
    *,
    decision_id: str,
    verdicts: tuple[ReviewVerdict, ...],
    appeals: tuple[Appeal, ...],
) -> ReviewItem:
    """The item of an `items` row, with its verdicts and appeals, its state as of `now`."""
    decided = bool(row["decided"])
    leased = not decided and row["lease_holder"] is not None and row["lease_until_us"] > now
    state = ItemState.DECIDED if decided else ItemState.LEASED if leased else ItemState.OPEN
    return ReviewItem(
        id=row["id"],
        decision_id=decision_id,
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
        verdicts=verdicts,
        appeals=appeals,
        **json.loads(row["body"]),
    )


def _body(new: NewItem, rules: DeskRules) -> str:
    """An item's JSON body: what the reviewer sees, and a QA item's sampling rate."""
    body = new.model_dump(mode="json", include=_BODY_FIELDS)
    if rules.qa_rate is not None:
        body["qa_rate"] = rules.qa_rate
    return json.dumps(body, separators=(",", ":"))


def _new_item(item: Decision | NewItem, image: ItemImage | None) -> NewItem:
    if isinstance(item, Decision):
        new = NewItem.of(item, image=image)
    elif isinstance(item, NewItem):
        new = item if image is None else item.model_copy(update={"image": image})
    else:
        raise ReviewError(f"enqueue takes a Decision or a NewItem, not {type(item).__name__}")
    if new.decision_id.startswith(SHOWING_KEY):
        raise ReviewError(
            f"decision id {new.decision_id!r} starts with {SHOWING_KEY!r}, which the desk keeps "
            "for golden showings"
        )
    return new


def _kind(kind: object) -> ItemKind:
    try:
        return ItemKind(str(kind))
    except ValueError:
        kinds = ", ".join(k.value for k in ItemKind)
        raise ReviewError(f"item kind {kind!r} is not one of {kinds}") from None


def _check_reviewer(reviewer: object) -> None:
    if not isinstance(reviewer, Reviewer):
        raise ReviewError(f"reviewer must be a Reviewer, not {type(reviewer).__name__}")


def _check_by(by: object) -> str:
    """Who filed an appeal: a name of at most 128 characters without control characters."""
    name = check_text("who filed the appeal (by)", by, 128).strip()
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise ReviewError(f"who filed the appeal (by) has a control character: {name!r}")
    return name


def _check_lease(row: Row, reviewer: Reviewer, now: int) -> None:
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
