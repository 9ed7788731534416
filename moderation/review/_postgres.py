"""The review desk in a PostgreSQL database, shared by processes on many hosts.

Each change is one transaction (READ COMMITTED) that locks the rows it changes: `next` takes the
first waiting item with `SELECT ... FOR UPDATE SKIP LOCKED`, so reviewers leasing at once each get
a different item and none waits for another; `decide`, `release` and `appeal` lock the item's row
(`FOR UPDATE`) before they check the lease, so a verdict and a lease on one item are put in
order. The desk's logic is `SQLReviewDesk`'s (moderation/review/_sql.py); this is the connection.
psycopg 3 is imported when a desk is opened: it is the `postgres` extra.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from moderation.errors import ReviewError
from moderation.review._db import Db, Rows
from moderation.review._desk import DEFAULT_LEASE_SECONDS, ReviewRecordSink
from moderation.review._sql import Dialect, SQLReviewDesk

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresReviewDesk"]

#: Real BOOLEAN and BIGINT columns; a reviewer's tenants are one text[] parameter; the rows a
#: transaction changes are locked (and rows another has locked are skipped by `next`).
POSTGRES = Dialect(
    int64_type="BIGINT",
    bool_type="BOOLEAN",
    tenant_in="tenant = ANY(CAST(:tenants AS text[]))",
    tenants=list,
    json_key="(CAST(body AS jsonb) -> 'image' ->> 'store_key')",
    for_update=" FOR UPDATE",
    skip_locked=" FOR UPDATE SKIP LOCKED",
)

# A `keyword=value` of a libpq connection string (the value may be quoted).
_KEYWORD = r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)"

# Any number, the same in every process: the schema is created by one process at a time.
_SCHEMA_LOCK = 0x6D6F6465726174


class PostgresReviewDesk(SQLReviewDesk):
    """A `ReviewDesk` in a PostgreSQL database, its tables created on first open.

    `dsn` is a libpq connection string: `postgresql://user:password@host:5432/dbname` or
    `host=... dbname=...`; the password never appears in an error or in `repr`. `clock`,
    `new_id`, `lease_seconds` and `sink` are as for `SQLiteReviewDesk`. One connection, shared
    by threads one transaction at a time; a broken connection is opened again on the next call.
    """

    dialect = POSTGRES

    def __init__(
        self,
        dsn: str,
        *,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        sink: ReviewRecordSink | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        super().__init__(clock=clock, new_id=new_id, lease_seconds=lease_seconds, sink=sink)
        if not isinstance(dsn, str) or not dsn.strip():
            raise ReviewError("a PostgreSQL review desk needs a connection string (postgresql://)")
        self._dsn = dsn
        self._secrets = _secrets(dsn)
        self._connect_timeout = max(1, round(connect_timeout))
        self.shown = _shown(dsn)
        self._conn = self._connect()
        self._create_schema()

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        try:
            import psycopg
            from psycopg.rows import dict_row
        except ImportError as exc:
            raise ReviewError(
                "the PostgreSQL review desk needs psycopg 3: pip install 'moderation[postgres]'"
            ) from exc
        try:
            return psycopg.connect(
                self._dsn,
                autocommit=True,  # each transaction is explicit: conn.transaction()
                row_factory=dict_row,
                connect_timeout=self._connect_timeout,
            )
        except psycopg.Error as exc:
            raise ReviewError(
                f"cannot open the review desk {self.shown}: {self._hide(exc)}"
            ) from exc

    def _hide(self, exc: BaseException) -> str:
        """The error's text, any password blanked out should the driver ever quote it."""
        text = str(exc).strip().replace(self._dsn, self.shown)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> PostgresReviewDesk:
        return self

    def __repr__(self) -> str:
        return f"PostgresReviewDesk({self.shown!r})"

    def _where(self) -> str:
        return self.shown

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Db]:
        import psycopg

        with self._lock:
            try:
                if self._conn.broken:
                    self._conn = self._connect()
                with self._conn.transaction():
                    yield _Connection(self._conn)
            except psycopg.OperationalError as exc:
                raise ReviewError(f"review desk {self.shown}: {self._hide(exc)}") from exc

    def _lock_schema(self, db: Db) -> None:
        db.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))


class _Connection:
    """A psycopg connection that runs the desk's queries, written with `?` and `:name`."""

    def __init__(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        self._conn = conn

    def execute(self, query: str, params: Any = (), /) -> Rows:
        return self._conn.execute(_pyformat(query), params or None)


@functools.lru_cache(maxsize=64)
def _pyformat(query: str) -> str:
    """`query` with psycopg's placeholders: `%s` for `?`, `%(name)s` for `:name`."""
    named = re.sub(r"(?<![:\w]):([A-Za-z_]\w*)", r"%(\1)s", query)
    return named.replace("?", "%s")


def _secrets(dsn: str) -> tuple[str, ...]:
    """The passwords in `dsn` (as written and decoded), to keep out of messages."""
    found = [v for k, v in re.findall(_KEYWORD, dsn) if k.lower() == "password"]
    found += re.findall(r"://[^/@:]*:([^/@]*)@", dsn)  # even where the URL does not parse
    if "://" in dsn:
        try:
            url = urlsplit(dsn)
            found += [url.password or "", *(v for k, v in parse_qsl(url.query) if k == "password")]
        except ValueError:
            pass
    found = [v.strip("'") for v in found if v.strip("'")]
    return tuple(dict.fromkeys([*found, *(unquote(v) for v in found)]))


def _shown(dsn: str) -> str:
    """`dsn` as messages show it: user, host, port, database and options, never the password."""
    if "://" in dsn:
        try:
            url = urlsplit(dsn)
            host = url.hostname or ""
            port = f":{url.port}" if url.port else ""
        except ValueError:
            return "postgresql://..."
        user = f"{url.username}@" if url.username else ""
        options = [(k, v) for k, v in parse_qsl(url.query) if k.lower() != "password"]
        query = "?" + urlencode(options, safe="/") if options else ""
        return f"{url.scheme}://{user}{host}{port}{url.path}{query}"
    words = dict(re.findall(_KEYWORD, dsn))
    return " ".join(f"{k}={v}" for k, v in words.items() if k.lower() != "password")
