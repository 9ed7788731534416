"""What the AWS sources share: their transports' settings, and the PolicyError of a failure."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from moderation.errors import AWSError, PolicyError, Problem

if TYPE_CHECKING:
    from moderation._retry import RetryPolicy

__all__ = ["CONNECT_TIMEOUT", "READ_TIMEOUT", "build", "retry_policy", "unreadable"]

T = TypeVar("T")

#: Connect and read timeouts of the clients built here: a check for new policies must not hang
#: (it runs beside the callers, who keep the version in force until it ends).
CONNECT_TIMEOUT: Final = 2.0
READ_TIMEOUT: Final = 5.0
#: Attempts per request (the transport retries throttling, 5xx and lost connections).
ATTEMPTS: Final = 3


def retry_policy() -> RetryPolicy:
    """The sources' retry policy: 3 attempts within 10 seconds."""
    from moderation._retry import RetryPolicy

    return RetryPolicy(attempts=ATTEMPTS, deadline=10.0)


def build(where: str, factory: Callable[..., T], client: Any | None, region: str | None) -> T:
    """A transport from `factory`, with the sources' timeouts and retries; a client that cannot
    be built (an invalid region name, a bad endpoint URL) is a PolicyError at `where`. No region
    at all stays a ConfigurationError: the environment, not the policies, is what is wrong."""
    try:
        return factory(
            client,
            region=region,
            retry=retry_policy(),
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
        )
    except AWSError as exc:
        raise PolicyError([Problem(where, "", f"cannot read the policies: {exc}")]) from exc


def unreadable(where: str, exc: AWSError, hint: str | None) -> PolicyError:
    """The PolicyError of a request that failed: the transport's own words, and what to do."""
    return PolicyError([Problem(where, "", str(exc), hint)])
