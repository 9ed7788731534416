"""The one way to AWS: client building, one retry owner, the error table, the limiter hook.

Every boto3 call the library makes goes through a subclass of `AWSTransport` in this package; no
module outside `moderation.aws` (but the Lambda handler's package and the test kit's endpoint)
imports boto3 or botocore.

Clients this library builds have botocore's retries switched off (`total_max_attempts: 1`) and
tenacity retries instead, with exponential backoff, full jitter and a deadline. A client the caller
injects keeps its own configuration: if it retries by itself, this layer makes exactly one attempt,
so attempts never multiply (3 x 3 = 9 requests is what two owners would send).

`AWSTransport` is the base of the S3 reader, the Rekognition detector and the Bedrock judge: a
subclass names its service and timeouts, says which failures are worth another attempt, and turns
any failure into the library's own error. `AWSService` is the base of the others (S3 writes and
listings, DynamoDB, SQS, AppConfig): its failures leave as `AWSError`, classified by the one table
below (`classify`: botocore error -> `Failure`) and worded one way (`error_message`). Whatever
botocore raises (including its parser's own failures on a garbled body, which are not
`BotoCoreError`s), a transport raises only the error its port promises.

Every request counts against a service quota, retries included, so the rate limiter a transport
is given (`AWSTransport.limiter`, a `moderation.limits.RateLimiter` shared by every thread) is
consulted before each attempt, and told whether the service throttled it. And a client shared by
many threads needs a connection pool as large as their number (`AWSTransport.ensure_pool`):
botocore's default pool holds 10, and a thread beyond that opens a new connection for each request
and throws it away.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, Final, Generic, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)

from moderation._retry import RetryPolicy, call_with_retries
from moderation.aws.session import SharedSession, current_session
from moderation.errors import AWSError, ConfigurationError
from moderation.limits import THROTTLE_CODES, RateLimiter

__all__ = [
    "CONNECTION_ERRORS",
    "DEFAULT_POOL_CONNECTIONS",
    "NO_BOTOCORE_RETRIES",
    "NO_REGION_HINT",
    "S3_DENIED_CODES",
    "S3_NOT_FOUND_CODES",
    "THROTTLE_CODES",
    "TRANSIENT_STATUS_CODES",
    "AWSError",
    "AWSService",
    "AWSTransport",
    "Attempted",
    "Failure",
    "RetryPolicy",
    "SharedSession",
    "aws_client",
    "call_with_retries",
    "classify",
    "client_retries_itself",
    "error_code",
    "error_message",
    "http_status",
    "is_retryable",
    "is_throttle",
    "plural_attempts",
    "requests_sent",
    "requests_sent_before",
    "sdk_client",
    "transient_status",
]

T = TypeVar("T")

logger = logging.getLogger("moderation.aws")

#: botocore's own default size of a client's connection pool.
DEFAULT_POOL_CONNECTIONS: Final = 10

NO_REGION_HINT = (
    "no AWS region: set MODERATION_REGION, AWS_REGION or AWS_DEFAULT_REGION (or a region in the"
    " AWS config file), or pass region=... (--region on the command line)"
)

# Read-only: botocore rewrites the retries dict given to Config in place, so pass a copy.
NO_BOTOCORE_RETRIES: Mapping[str, Any] = MappingProxyType({"total_max_attempts": 1})


#: HTTP statuses that are transient whatever their error code (what botocore's standard mode
#: retries): a load balancer's 502/503/504 carries no service error code at all.
TRANSIENT_STATUS_CODES: Final = frozenset({500, 502, 503, 504})

#: Connection-level failures: the request may not have reached the service, or its answer was
#: lost. Safe to repeat for idempotent reads; a transport that is billed per call decides itself.
CONNECTION_ERRORS: Final[tuple[type[BotoCoreError], ...]] = (
    EndpointConnectionError,
    ConnectionClosedError,
    ReadTimeoutError,
    ConnectTimeoutError,
)


# A 429 that is not about the request rate: Bedrock's model is still loading (an imported model
# scaled to zero). Slowing down would not help, so it does not lower a limiter's rate.
_NOT_THROTTLES: Final = frozenset({"ModelNotReadyException"})


def is_throttle(exc: BaseException) -> bool:
    """Whether `exc` is the service refusing a request for the rate: a code in THROTTLE_CODES,
    or an HTTP 429 (except Bedrock's ModelNotReadyException: the model is loading)."""
    code = error_code(exc)
    if code in THROTTLE_CODES:
        return True
    return http_status(exc) == 429 and code not in _NOT_THROTTLES


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a botocore ClientError, else None."""
    if not isinstance(exc, ClientError):
        return None
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else None


def transient_status(exc: BaseException) -> bool:
    """A retry predicate: a ClientError whose HTTP status is in TRANSIENT_STATUS_CODES."""
    return http_status(exc) in TRANSIENT_STATUS_CODES


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError, else None."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def client_retries_itself(client: Any) -> bool:
    """True unless the client was configured to make a single attempt."""
    config: Config | None = getattr(getattr(client, "meta", None), "config", None)
    retries = getattr(config, "retries", None) or {}
    # Unset means botocore's defaults (and AWS_MAX_ATTEMPTS): the client retries by itself.
    single = retries.get("total_max_attempts") == 1 or retries.get("max_attempts") == 0
    return not single


def requests_sent(attempts: int, response: Mapping[str, Any] | None) -> int:
    """Requests that went out: ours, plus the retries a self-retrying injected client made within
    the last one (botocore reports them as ResponseMetadata.RetryAttempts)."""
    made = attempts if attempts > 0 else 1
    retried = (response or {}).get("ResponseMetadata", {}).get("RetryAttempts")
    return made + retried if isinstance(retried, int) and retried > 0 else made


def requests_sent_before(exc: BaseException) -> int:
    """`requests_sent` for a call that ended in `exc` (attempts are set on it by the retrier)."""
    attempts = getattr(exc, "attempts", None)
    response = exc.response if isinstance(exc, ClientError) else None
    return requests_sent(attempts if isinstance(attempts, int) else 1, response)


def plural_attempts(n: int) -> str:
    """`1 attempt`, `3 attempts`."""
    return f"{n} attempt" if n == 1 else f"{n} attempts"


def codes(*names: str) -> Callable[[BaseException], bool]:
    """A retry predicate that accepts ClientErrors with one of these codes."""
    wanted = frozenset(names)
    return lambda exc: error_code(exc) in wanted


def any_of(*predicates: Callable[[BaseException], bool]) -> Callable[[BaseException], bool]:
    """A retry predicate true when any of `predicates` is."""
    return lambda exc: any(p(exc) for p in predicates)


def instances(types: Iterable[type[BaseException]]) -> Callable[[BaseException], bool]:
    """A retry predicate that accepts exceptions of these types."""
    kinds = tuple(types)
    return lambda exc: isinstance(exc, kinds)


# --------------------------------------------------------------------------- the error table


class Failure(StrEnum):
    """What went wrong with an AWS request, whichever service and module made it."""

    NOT_FOUND = "not found"
    DENIED = "denied"
    CHANGED = "changed"  # a precondition (If-Match, If-None-Match) failed
    THROTTLED = "throttled"
    UNAVAILABLE = "unavailable"  # 5xx: the service failed
    CONNECTION = "connection"  # the request or its answer was lost on the way
    NO_CREDENTIALS = "no credentials"
    REFUSED = "refused"  # any other answer of the service
    FAILED = "failed"  # anything else (a garbled answer, a bug)


#: S3's error codes, one set for every S3 call. HEAD answers have no body: there the status
#: (404, 403) is the code.
S3_NOT_FOUND_CODES: Final = frozenset(
    {"404", "NoSuchKey", "NotFound", "NoSuchVersion", "NoSuchBucket"}
)
S3_DENIED_CODES: Final = frozenset({"403", "AccessDenied", "Forbidden", "AllAccessDisabled"})

#: Error code -> failure, for every service this library calls.
_CODE_FAILURES: Final[Mapping[str, Failure]] = MappingProxyType(
    {
        **dict.fromkeys(S3_NOT_FOUND_CODES, Failure.NOT_FOUND),
        **dict.fromkeys(S3_DENIED_CODES, Failure.DENIED),
        "ResourceNotFoundException": Failure.NOT_FOUND,  # DynamoDB, AppConfig
        "AWS.SimpleQueueService.NonExistentQueue": Failure.NOT_FOUND,
        "QueueDoesNotExist": Failure.NOT_FOUND,
        "AccessDeniedException": Failure.DENIED,
        "UnrecognizedClientException": Failure.DENIED,  # unknown or revoked credentials
        "InvalidClientTokenId": Failure.DENIED,
        "ExpiredToken": Failure.DENIED,
        "ExpiredTokenException": Failure.DENIED,
        "PreconditionFailed": Failure.CHANGED,
        "412": Failure.CHANGED,
        "ConditionalCheckFailedException": Failure.CHANGED,
        "SlowDown": Failure.THROTTLED,
        **dict.fromkeys(THROTTLE_CODES, Failure.THROTTLED),
        "InternalError": Failure.UNAVAILABLE,
        "InternalServerError": Failure.UNAVAILABLE,
        "InternalServerException": Failure.UNAVAILABLE,
        "ServiceUnavailable": Failure.UNAVAILABLE,
        "ServiceUnavailableException": Failure.UNAVAILABLE,
        "RequestTimeout": Failure.UNAVAILABLE,
        "503": Failure.UNAVAILABLE,
    }
)
_STATUS_FAILURES: Final[Mapping[int, Failure]] = MappingProxyType(
    {
        404: Failure.NOT_FOUND,
        403: Failure.DENIED,
        412: Failure.CHANGED,
        429: Failure.THROTTLED,
        **dict.fromkeys(TRANSIENT_STATUS_CODES, Failure.UNAVAILABLE),
    }
)
#: Failures worth another attempt (every call made through `AWSService` is safe to repeat).
_RETRYABLE_FAILURES: Final = frozenset({Failure.THROTTLED, Failure.UNAVAILABLE, Failure.CONNECTION})


def classify(exc: BaseException) -> Failure:
    """The failure `exc` is, by the one table: its AWS error code, else its HTTP status, else
    its botocore exception type."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code is not None and code in _CODE_FAILURES:
            return _CODE_FAILURES[code]
        if is_throttle(exc):
            return Failure.THROTTLED
        return _STATUS_FAILURES.get(http_status(exc) or 0, Failure.REFUSED)
    if isinstance(exc, NoCredentialsError):
        return Failure.NO_CREDENTIALS
    if isinstance(exc, CONNECTION_ERRORS):
        return Failure.CONNECTION
    return Failure.FAILED


def is_retryable(exc: BaseException) -> bool:
    """Whether the table calls `exc` worth another attempt: throttled, unavailable (5xx), or a
    lost connection (for calls safe to repeat)."""
    return classify(exc) in _RETRYABLE_FAILURES


def _said(exc: BaseException) -> str:
    """What the service (its code and message) or botocore said."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        message = str(exc.response.get("Error", {}).get("Message") or "")
        status = http_status(exc)
        if code and message and code not in message:
            return f"{code}: {message}"
        return message or code or f"HTTP {status}"
    return f"{type(exc).__name__}: {exc}"


def error_message(
    service: str,
    operation: str,
    resource: str,
    failure: Failure,
    exc: BaseException,
    requests: int,
    permission: str | None = None,
) -> str:
    """The one wording of a failed request: `s3 PutObject failed for s3://b/k: denied (the caller
    needs s3:PutObject; AccessDenied: Access Denied; 1 attempt)`."""
    notes = []
    if failure is Failure.DENIED and permission:
        notes.append(f"the caller needs {permission}")
    if failure is Failure.NO_CREDENTIALS:
        notes.append("no AWS credentials: give the process a role, or set AWS_PROFILE or keys")
    else:
        notes.append(_said(exc))
    notes.append(plural_attempts(requests))
    what = "" if failure is Failure.FAILED else f": {failure.value}"
    return f"{service} {operation} failed for {resource}{what} ({'; '.join(notes)})"


def _config(connect_timeout: float, read_timeout: float, max_pool_connections: int) -> Config:
    """What every client this library builds is configured with: botocore's retries off, the
    timeouts, the user agent, the pool size."""
    from moderation._version import __version__

    return Config(
        retries=dict(NO_BOTOCORE_RETRIES),  # type: ignore[arg-type]  # a copy: botocore edits it
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        user_agent_extra=f"moderation/{__version__}",
        max_pool_connections=max_pool_connections,
    )


def _shared(session: boto3.Session | SharedSession | None) -> SharedSession:
    """`session` as a SharedSession: the one given, the enclosing `one_session()`'s, or new."""
    if isinstance(session, SharedSession):
        return session
    if session is not None:
        return SharedSession(session)
    return current_session() or SharedSession()


def _default_region(region: str | None) -> str | None:
    # botocore reads AWS_DEFAULT_REGION and the config file, not AWS_REGION, which is the one
    # Lambda and most container platforms set; the other AWS SDKs read it first, and so do we.
    return region if region is not None else os.environ.get("AWS_REGION") or None


def _build(
    service: str,
    shared: SharedSession,
    region: str | None,
    config: Config,
    failure: Callable[[str], Exception],
) -> Any:
    """A client of `service` from `shared`; the errors `aws_client` promises."""
    try:
        return shared.client(service, region_name=region, config=config)
    except NoRegionError as exc:
        # The environment is incomplete, not the service down: no retry, no 503, fix the setup.
        raise ConfigurationError([f"{service}: {NO_REGION_HINT}"]) from exc
    except (BotoCoreError, ValueError) as exc:  # an invalid region name, a bad endpoint URL, ...
        raise failure(f"{service}: cannot build the client: {type(exc).__name__}: {exc}") from exc


def aws_client(
    service: str,
    *,
    client: Any | None,
    session: boto3.Session | SharedSession | None,
    region: str | None,
    connect_timeout: float,
    read_timeout: float,
    retry: RetryPolicy | None,
    failure: Callable[[str], Exception],
    max_pool_connections: int = DEFAULT_POOL_CONNECTIONS,
) -> tuple[Any, RetryPolicy]:
    """The client an adapter uses and the retry policy that goes with it: one retry owner.

    An injected client is used as it is; if it retries by itself we make one attempt. A client
    built here has botocore's retries off and tenacity owns them, and a connection pool of
    `max_pool_connections` (botocore's default, 10, unless more threads share the client).

    No region anywhere is a `ConfigurationError` (the environment is incomplete, and retrying or
    answering 503 would not fix it); any other failure to build the client is `failure(message)`.
    """
    _check_pool(max_pool_connections)
    policy = retry if retry is not None else RetryPolicy()
    if client is not None:
        if session is not None or region is not None:
            raise TypeError(
                f"{service}: pass either an injected client or session/region to build one, not "
                "both (an injected client keeps its own configuration)"
            )
        return client, policy.single() if client_retries_itself(client) else policy
    config = _config(connect_timeout, read_timeout, max_pool_connections)
    return _build(service, _shared(session), _default_region(region), config, failure), policy


def _check_pool(max_pool_connections: int) -> None:
    if isinstance(max_pool_connections, bool) or not isinstance(max_pool_connections, int):
        raise TypeError(f"max_pool_connections must be an int, got {max_pool_connections!r}")
    if max_pool_connections < 1:
        raise ValueError(f"max_pool_connections must be at least 1, got {max_pool_connections}")


def sdk_client(
    service: str, *, region: str | None, session: boto3.Session | SharedSession | None = None
) -> Any:
    """A client for another library that makes its own calls with it (Powertools' idempotency
    layer): the same timeouts, user agent and region rules as `aws_client`, but botocore's
    standard retries (3 attempts) on, since no transport of ours wraps those calls."""
    from moderation._version import __version__

    config = Config(
        retries={"mode": "standard", "total_max_attempts": 3},
        connect_timeout=AWSTransport.default_connect_timeout,
        read_timeout=AWSTransport.default_read_timeout,
        user_agent_extra=f"moderation/{__version__}",
    )
    try:
        return _shared(session).client(service, region_name=_default_region(region), config=config)
    except NoRegionError as exc:
        raise ConfigurationError([f"{service}: {NO_REGION_HINT}"]) from exc


@dataclass(frozen=True, slots=True)
class Attempted(Generic[T]):
    """A call's result with what it took: requests sent and the last attempt's latency."""

    value: T
    requests: int
    latency_ms: float


class AWSTransport:
    """One AWS client, its retry owner, and the translation of every failure into our errors.

    Subclasses set `service`, the default timeouts, `retryable(exc)` and `translate(exc,
    operation, requests)`; they call `self.invoke(operation, fn)` for every request, and reach
    the client through `self._client` (or the `client` property) inside `fn`, never a copy of it:
    `ensure_pool` may swap it for a larger-pooled one.

    A client built here is built on first use, from `session`, else the session of the enclosing
    `one_session()` block (the wiring's, the Lambda handler's), else a session of its own; its
    region is checked when the transport is built, so a missing or invalid one fails there.

    With a `limiter` set, every attempt (retries included) first waits for the limiter's
    permission, and reports the outcome: a throttle (`is_throttle`) lowers the limiter's rate, a
    success lets it recover; other failures say nothing about the rate. A client that retries by
    itself (an injected one with botocore's retries on) sends its retries unseen by the limiter:
    give such a transport a client with `retries={"total_max_attempts": 1}` to count them all.

    Safe to share between threads.
    """

    service: ClassVar[str]
    default_connect_timeout: ClassVar[float] = 3.0
    default_read_timeout: ClassVar[float] = 10.0

    def __init__(
        self,
        client: Any | None = None,
        *,
        session: boto3.Session | SharedSession | None = None,
        region: str | None = None,
        retry: RetryPolicy | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> None:
        connect = self.default_connect_timeout if connect_timeout is None else connect_timeout
        read = self.default_read_timeout if read_timeout is None else read_timeout
        if connect <= 0 or read <= 0:
            raise ValueError("connect_timeout and read_timeout must be positive")
        self._timeouts = (connect, read)
        self._pool_lock = threading.RLock()
        self._pool_warned = 0  # the largest worker count already warned about (injected client)
        self._limiter: RateLimiter | None = None
        self._count_lock = threading.Lock()
        self._throttles = 0
        self._built = client is None  # built here (on first use), not injected
        self._pool = DEFAULT_POOL_CONNECTIONS  # the pool a client built here gets
        self._current: Any | None = None
        if client is not None:
            self._current, self._retry = aws_client(
                self.service,
                client=client,
                session=session,
                region=region,
                connect_timeout=connect,
                read_timeout=read,
                retry=retry,
                failure=self.failure,
            )
            self._owns_retries = not client_retries_itself(client)
            self._region = getattr(getattr(client, "meta", None), "region_name", None) or region
            return
        self._retry = retry if retry is not None else RetryPolicy()
        self._owns_retries = True
        # What building the client (now or later, with a larger pool) needs: one session, the
        # region it resolves to, the same timeouts.
        self._session = _shared(session)
        self._region = self._checked_region(region)
        if self._region is None:
            # botocore alone knows what a region-less client of this service does (S3 takes its
            # global endpoint; the others raise NoRegionError): build it now, as it would.
            self._build_client()

    def _checked_region(self, region: str | None) -> str | None:
        """The region the client will be built in, checked now as botocore would check it then,
        so that a bad one fails where the transport is built; None when none is set anywhere."""
        from botocore.utils import validate_region_name

        resolved = _default_region(region) or self._session.region_name
        if resolved is not None:
            try:
                validate_region_name(resolved)
            except (BotoCoreError, ValueError) as exc:
                raise self.failure(
                    f"{self.service}: cannot build the client: {type(exc).__name__}: {exc}"
                ) from exc
        return resolved

    def _build_client(self) -> Any:
        """The client, built now from the transport's session if it was not yet."""
        with self._pool_lock:
            if self._current is None:
                connect, read = self._timeouts
                self._current = _build(
                    self.service,
                    self._session,
                    self._region,
                    _config(connect, read, self._pool),
                    self.failure,
                )
                self._region = getattr(self._current.meta, "region_name", None) or self._region
            return self._current

    @property
    def _client(self) -> Any:
        """The client calls go through: injected, or built here on first use."""
        current = self._current
        return current if current is not None else self._build_client()

    @property
    def client(self) -> Any:
        """The boto3 client calls go through (built here, now if not yet, or injected)."""
        return self._client

    @property
    def retry(self) -> RetryPolicy:
        """The policy applied to each call: `retry`, or one attempt for a self-retrying client."""
        return self._retry

    @property
    def owns_retries(self) -> bool:
        """True when this transport retries (tenacity); False when the injected client does."""
        return self._owns_retries

    @property
    def limiter(self) -> RateLimiter | None:
        """The rate limiter every attempt waits for (None: no limit). Share one between all the
        transports and threads that spend the same quota."""
        return self._limiter

    @limiter.setter
    def limiter(self, limiter: RateLimiter | None) -> None:
        if limiter is not None and not isinstance(limiter, RateLimiter):
            raise TypeError(
                f"{self.service}: limiter must be a moderation.limits.RateLimiter or None,"
                f" got {type(limiter).__name__}"
            )
        self._limiter = limiter

    @property
    def throttles(self) -> int:
        """How many attempts the service throttled (`is_throttle`), limiter or not."""
        with self._count_lock:
            return self._throttles

    @property
    def pool_size(self) -> int | None:
        """The client's connection pool size (`max_pool_connections`); None when it cannot tell
        (a stand-in client without botocore's `meta.config`). A client built here and not yet
        built: the size it will be built with."""
        if self._built and self._current is None:
            return self._pool
        config = getattr(getattr(self._client, "meta", None), "config", None)
        size = getattr(config, "max_pool_connections", None)
        return size if isinstance(size, int) and not isinstance(size, bool) else None

    def ensure_pool(self, n: int) -> bool:
        """Make the connection pool hold at least `n` connections, for `n` threads sharing this
        transport; True when the pool was widened for it.

        A client built here and not built yet is built with `max_pool_connections=n` when it is.
        A client built here whose pool is smaller is rebuilt (same session, region, timeouts,
        retries off, user agent) with `max_pool_connections=n` and swapped in; requests already
        under way finish on the old one. An injected client is never rebuilt: if its pool is
        smaller, one warning on the `moderation.aws` logger says so, and this returns False.
        Best called once, before the threads start.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"ensure_pool needs a number of workers >= 1, got {n!r}")
        with self._pool_lock:
            size = self.pool_size
            if size is not None and size >= n:
                return False
            if self._built and self._current is None:
                self._pool = n
                return True
            if not self._built:
                if size is None:
                    logger.debug(
                        "%s: cannot tell the connection pool size of the injected client %r",
                        self.service,
                        self._client,
                    )
                elif n > self._pool_warned:
                    self._pool_warned = n
                    logger.warning(
                        "%s: the injected client's connection pool holds %d connections, fewer"
                        " than the %d workers that share it: the workers beyond %d open a new"
                        " connection for every request. Build the client with"
                        " botocore.config.Config(max_pool_connections=%d), or let the library"
                        " build it",
                        self.service,
                        size,
                        n,
                        size,
                        n,
                    )
                return False
            connect, read = self._timeouts
            config = _config(connect, read, n)
            self._current = _build(self.service, self._session, self._region, config, self.failure)
            self._pool = n
            return True

    def failure(self, message: str) -> Exception:
        """This transport's own error for `message` (the client cannot be built, a bug in
        `translate`): what the port promises to raise."""
        raise NotImplementedError

    def retryable(self, exc: BaseException) -> bool:
        """Whether `exc` is worth another attempt."""
        raise NotImplementedError

    def translate(
        self, exc: BaseException, operation: str, requests: int, context: Any = None
    ) -> Exception:
        """The library's error for `exc` (after `requests` requests), raised from `exc`."""
        raise NotImplementedError

    def invoke(self, operation: str, fn: Callable[[], T], context: Any = None) -> Attempted[T]:
        """Call `fn` under the retry policy; every failure leaves as `translate(...)`.

        `context` (what the call was about: an image, a model id) is handed to `translate`.
        Each attempt first waits for the limiter, if one is set; the time waited is not part of
        the latency.
        """
        # Built (on first use) outside the attempts: a client that cannot be built is this
        # transport's own error (`failure`), not a failed request to retry.
        self._client  # noqa: B018
        started = [0.0]

        def attempt() -> T:
            limiter = self._limiter
            if limiter is not None:
                limiter.acquire()
            started[0] = time.perf_counter()
            try:
                value = fn()
            except Exception as exc:
                if is_throttle(exc):
                    with self._count_lock:
                        self._throttles += 1
                    if limiter is not None:
                        limiter.throttled()
                raise
            if limiter is not None:
                limiter.succeeded()
            return value

        try:
            # Under a rate limiter a throttle is not an attempt wasted: the limiter has slowed
            # every request down, so the call waits for capacity (within its deadline) instead of
            # failing after a storm it did not cause.
            value, attempts = call_with_retries(
                attempt,
                policy=self._retry,
                retryable=self.retryable,
                uncounted=is_throttle if self._limiter is not None else None,
            )
        except Exception as exc:
            requests = requests_sent_before(exc)
            try:
                error = self.translate(exc, operation, requests, context)
            except Exception as bug:  # the port's promise holds even if translating fails
                error = self.failure(
                    f"{self.service} {operation} failed ({type(exc).__name__}: {exc}); "
                    f"translating it failed too ({type(bug).__name__}: {bug})"
                )
            raise error from exc
        latency_ms = (time.perf_counter() - started[0]) * 1000.0
        response = value if isinstance(value, Mapping) else None
        return Attempted(value, requests_sent(attempts, response), latency_ms)


class AWSService(AWSTransport):
    """A transport whose every failure leaves as `AWSError`, classified by `classify` and worded
    by `error_message`; retried on throttling, 5xx and connection failures (its calls are safe to
    repeat). Subclasses name their `service` and the IAM action each operation needs."""

    #: Operation -> the IAM permission it needs, where that is not `<service>:<operation>`.
    permissions: ClassVar[Mapping[str, str]] = MappingProxyType({})
    #: The IAM prefix of the service's actions (`s3`, `dynamodb`); `service` when empty.
    iam_prefix: ClassVar[str] = ""

    def failure(self, message: str) -> Exception:
        """Failures to build the client (an invalid region name, a bad endpoint URL)."""
        return AWSError(message, kind=Failure.FAILED.value)

    def retryable(self, exc: BaseException) -> bool:
        """Throttling, 5xx and connection failures."""
        return is_retryable(exc)

    def permission(self, operation: str) -> str:
        """The IAM permission `operation` needs, for the message of a denied request."""
        return self.permissions.get(operation) or f"{self.iam_prefix or self.service}:{operation}"

    def translate(
        self, exc: BaseException, operation: str, requests: int, context: Any = None
    ) -> Exception:
        """`AWSError` of the failure `classify` names; `context` is the resource's name."""
        failure = classify(exc)
        resource = str(context) if context is not None else self.service
        message = error_message(
            self.service, operation, resource, failure, exc, requests, self.permission(operation)
        )
        return AWSError(
            message,
            kind=failure.value,
            operation=operation,
            resource=resource,
            code=error_code(exc),
            retryable=failure in _RETRYABLE_FAILURES,
            attempts=requests,
        )

    def call(self, operation: str, fn: Callable[[], T], resource: str) -> T:
        """`fn()` under the retries and the limiter; `AWSError` naming `resource` on failure."""
        return self.invoke(operation, fn, resource).value
