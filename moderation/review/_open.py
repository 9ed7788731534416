"""`open_desk(url)`: the review desk a URL names (`sqlite:///PATH` or `postgresql://...`)."""

from __future__ import annotations

from moderation.errors import ConfigurationError
from moderation.review._desk import DEFAULT_LEASE_SECONDS, ReviewDesk, ReviewRecordSink
from moderation.review._postgres import PostgresReviewDesk
from moderation.review._sqlite import SQLiteReviewDesk

__all__ = ["open_desk"]

_URLS = "use sqlite:///PATH or postgresql://USER@HOST/DATABASE"


def open_desk(
    url: str,
    *,
    sink: ReviewRecordSink | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> ReviewDesk:
    """The desk at `url`: `sqlite:///desk.db` (a relative path), `sqlite:////var/desk.db`, or
    `postgresql://user:password@host:5432/dbname` (`postgres://` too; any libpq URI).

    ConfigurationError for any other URL, naming its scheme only (a URL may hold a password);
    ReviewError when the database cannot be opened.
    """
    scheme, sep, rest = url.partition("://") if isinstance(url, str) else ("", "", "")
    if scheme == "sqlite" and sep:
        if not rest.startswith("/") or rest == "/":
            raise ConfigurationError(
                [f"review desk URL {url!r}: write sqlite:///PATH (three slashes, then the path)"]
            )
        return SQLiteReviewDesk(rest[1:], sink=sink, lease_seconds=lease_seconds)
    if scheme in ("postgresql", "postgres") and sep:
        return PostgresReviewDesk(url, sink=sink, lease_seconds=lease_seconds)
    shown = f"{scheme}://..." if sep else _shown(url)
    raise ConfigurationError([f"review desk URL {shown}: not a desk URL; {_URLS}"])


def _shown(value: object) -> str:
    """A value that is no URL as an error shows it: not at all if it may hold a password."""
    if isinstance(value, str) and not any(c in value for c in "=@:"):
        return repr(value)
    return "(not shown: it may hold a password)"
