"""The desk backends every desk test runs against: a SQLite file, and a database on the session's
PostgreSQL server (tests/postgres.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from moderation.review import PostgresReviewDesk, ReviewDesk, SQLiteReviewDesk

BACKENDS = ["sqlite", "postgres"]


def desk_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new, empty desk of `backend` (a new database on the session's PostgreSQL)."""
    if backend == "postgres":
        return str(request.getfixturevalue("postgres_dsn"))
    return f"sqlite:///{tmp_path / 'desk.db'}"


def open_url(url: str, **kwargs: Any) -> ReviewDesk:
    """The desk at `url`, made with the backend's class and `kwargs` (clock, sink, new_id...)."""
    if url.startswith("sqlite:///"):
        return SQLiteReviewDesk(url.removeprefix("sqlite:///"), **kwargs)
    return PostgresReviewDesk(url, **kwargs)
