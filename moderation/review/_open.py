"""`open_desk(url)`: the review desk a URL names (`sqlite:///PATH` today)."""

from __future__ import annotations

from moderation.errors import ConfigurationError
from moderation.review._desk import DEFAULT_LEASE_SECONDS, ReviewDesk, ReviewRecordSink
from moderation.review._sqlite import SQLiteReviewDesk

__all__ = ["open_desk"]


def open_desk(
    url: str,
    *,
    sink: ReviewRecordSink | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> ReviewDesk:
    """The desk at `url`: `sqlite:///desk.db` (a relative path) or `sqlite:////var/desk.db`.

    ConfigurationError for any other URL; `postgresql://` comes with the PostgreSQL backend.
    """
    scheme, sep, rest = url.partition("://") if isinstance(url, str) else ("", "", "")
    if scheme == "sqlite" and sep:
        if not rest.startswith("/") or rest == "/":
            raise ConfigurationError(
                [f"review desk URL {url!r}: write sqlite:///PATH (three slashes, then the path)"]
            )
        return SQLiteReviewDesk(rest[1:], sink=sink, lease_seconds=lease_seconds)
    if scheme in ("postgresql", "postgres") and sep:
        # Never echo the URL: it may hold a password.
        raise ConfigurationError(
            [
                "review desk URL postgresql://...: postgresql:// comes with the PostgreSQL "
                "backend, which this release does not have; use sqlite:///PATH"
            ]
        )
    shown = f"{scheme}://..." if sep else repr(url)
    raise ConfigurationError([f"review desk URL {shown}: not a desk URL; use sqlite:///PATH"])
