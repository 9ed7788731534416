"""The review desk in one SQLite file, safe for several processes on one machine.

The file runs in WAL mode (readers never wait for the writer); every change is one
`BEGIN IMMEDIATE` transaction, so two processes leasing at once are put in order by SQLite's
write lock, and a waiting process retries for `busy_timeout` seconds before it gives up. The
desk's logic is `SQLReviewDesk`'s (moderation/review/_sql.py); this is the connection.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from moderation.errors import ReviewError
from moderation.review._db import Db
from moderation.review._desk import DEFAULT_LEASE_SECONDS, ReviewRecordSink
from moderation.review._sql import SCHEMA_VERSION, Dialect, SQLReviewDesk

__all__ = ["SCHEMA_VERSION", "SQLiteReviewDesk"]

#: SQLite's flags are integers 0 and 1 (it reads TRUE and FALSE as those); one writer at a time,
#: so no row locks. A reviewer's tenants are one JSON array parameter.
SQLITE = Dialect(
    int64_type="INTEGER",
    bool_type="INTEGER",
    tenant_in="tenant IN (SELECT value FROM json_each(:tenants))",
    tenants=json.dumps,
    json_key="json_extract(body, '$.image.store_key')",
)


class SQLiteReviewDesk(SQLReviewDesk):
    """A `ReviewDesk` in one SQLite file (created, with its schema, on first open).

    `clock` gives epoch seconds and `new_id` item ids (ULIDs by default); `sink` receives every
    verdict and appeal before it is committed; `lease_seconds` is how long `next` leases an item.
    Open one desk per process (or thread pool): the connection is not shared across a fork.
    """

    dialect = SQLITE

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
        super().__init__(clock=clock, new_id=new_id, lease_seconds=lease_seconds, sink=sink)
        self.path = Path(path)
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

    def close(self) -> None:
        """Close the file's connection."""
        self._db.close()

    def __enter__(self) -> SQLiteReviewDesk:
        return self

    def __repr__(self) -> str:
        return f"SQLiteReviewDesk({str(self.path)!r})"

    def _where(self) -> str:
        return str(self.path)

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Db]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
                try:
                    yield self._db
                except BaseException:
                    self._db.rollback()
                    raise
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                raise ReviewError(f"review desk {self.path}: {exc}") from exc
