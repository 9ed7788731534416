"""What the SQL desk needs of a database connection: run a query, read rows by name.

`sqlite3` and psycopg (with dict rows) both fit; moderation/review/_sql.py writes its queries
against these.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

__all__ = ["Db", "Row", "Rows"]

#: A row read by name (`sqlite3.Row`, or psycopg's dict rows).
Row = Mapping[str, Any]


class Rows(Protocol):
    """What `Db.execute` returns: a cursor over rows."""

    def fetchone(self) -> Any:
        """The next row, or None."""

    def fetchall(self) -> list[Any]:
        """The rows left."""

    @property
    def rowcount(self) -> int:
        """How many rows an UPDATE or DELETE changed."""

    def __iter__(self) -> Iterator[Any]:
        """The rows left, one at a time."""


class Db(Protocol):
    """The connection inside a transaction: runs a query written with `?` or `:name`."""

    def execute(self, query: str, params: Any = (), /) -> Rows:
        """Run `query` with `params` (a sequence for `?`, a mapping for `:name`)."""
