"""One boto3 session for every client a deployment builds, made when the first client is.

botocore reads its data files (endpoint rules, partitions, each service's model) once per
session and keeps them: clients built from one session share what it read, while each new session
reads them all again (S3's model alone is several megabytes of JSON). So the wiring and the Lambda
handler build all their parts inside `one_session()`, and every transport built there without a
session or client of its own takes the scope's `SharedSession`.

A boto3 session is not safe to share between threads while it builds clients (the clients it
builds are): `SharedSession.client` builds one at a time. Importing this module imports neither
boto3 nor botocore.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import boto3

__all__ = ["SharedSession", "current_session", "one_session"]


class SharedSession:
    """A boto3 session created on first use (or the one given), from which clients are built one
    at a time."""

    def __init__(self, session: boto3.Session | None = None) -> None:
        self._session = session
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"SharedSession(created={self._session is not None})"

    @property
    def session(self) -> boto3.Session:
        """The boto3 session, created now (`boto3.Session()`) if it was not yet."""
        with self._lock:
            if self._session is None:
                import boto3

                self._session = boto3.Session()
            return self._session

    @property
    def region_name(self) -> str | None:
        """The region the session resolves (AWS_DEFAULT_REGION, the config file), or None."""
        return self.session.region_name

    def client(self, service: str, **kwargs: Any) -> Any:
        """`session.client(service, **kwargs)`, built while no other thread builds one."""
        with self._lock:
            return self.session.client(service, **kwargs)  # type: ignore[call-overload]


_CURRENT: ContextVar[SharedSession | None] = ContextVar("moderation_aws_session", default=None)


def current_session() -> SharedSession | None:
    """The session of the enclosing `one_session()` block, if any."""
    return _CURRENT.get()


@contextmanager
def one_session(shared: SharedSession | None = None) -> Iterator[SharedSession]:
    """Within the block, transports built without a client or session share one session:
    `shared`, else the enclosing block's, else a new one (created when its first client is)."""
    chosen = shared or _CURRENT.get() or SharedSession()
    token = _CURRENT.set(chosen)
    try:
        yield chosen
    finally:
        _CURRENT.reset(token)
