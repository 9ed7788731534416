"""The base every AWS transport shares: client building, one retry owner, timing, error translation.

Clients this library builds have botocore's retries switched off (`total_max_attempts: 1`) and
tenacity retries instead, with exponential backoff, full jitter and a deadline. A client the caller
injects keeps its own configuration: if it retries by itself, this layer makes exactly one attempt,
so attempts never multiply (3 x 3 = 9 requests is what two owners would send).

`AWSTransport` is the base of the S3 reader, the Rekognition detector and the Bedrock judge: a
subclass names its service and timeouts, says which failures are worth another attempt, and turns
any failure into the library's own error. Whatever botocore raises (including its parser's own
failures on a garbled body, which are not `BotoCoreError`s), a transport raises only the error
its port promises.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
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
    NoRegionError,
    ReadTimeoutError,
)

from moderation._retry import RetryPolicy, call_with_retries

__all__ = [
    "CONNECTION_ERRORS",
    "NO_BOTOCORE_RETRIES",
    "NO_REGION_HINT",
    "TRANSIENT_STATUS_CODES",
    "AWSTransport",
    "Attempted",
    "RetryPolicy",
    "aws_client",
    "call_with_retries",
    "client_retries_itself",
    "error_code",
    "http_status",
    "plural_attempts",
    "requests_sent",
    "requests_sent_before",
    "transient_status",
]

T = TypeVar("T")

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


def aws_client(
    service: str,
    *,
    client: Any | None,
    session: boto3.Session | None,
    region: str | None,
    connect_timeout: float,
    read_timeout: float,
    retry: RetryPolicy | None,
    failure: Callable[[str], Exception],
) -> tuple[Any, RetryPolicy]:
    """The client an adapter uses and the retry policy that goes with it: one retry owner.

    An injected client is used as it is; if it retries by itself we make one attempt. A client
    built here has botocore's retries off and tenacity owns them.
    """
    policy = retry if retry is not None else RetryPolicy()
    if client is not None:
        if session is not None or region is not None:
            raise TypeError(
                f"{service}: pass either an injected client or session/region to build one, not "
                "both (an injected client keeps its own configuration)"
            )
        return client, policy.single() if client_retries_itself(client) else policy
    from moderation._version import __version__

    config = Config(
        retries=dict(NO_BOTOCORE_RETRIES),  # type: ignore[arg-type]  # a copy: botocore edits it
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        user_agent_extra=f"moderation/{__version__}",
    )
    session = session or boto3.Session()
    if region is None and session.region_name is None:
        # botocore reads AWS_DEFAULT_REGION and the config file, not AWS_REGION, which is the one
        # Lambda and most container platforms set (the other AWS SDKs read it).
        region = os.environ.get("AWS_REGION") or None
    try:
        built = session.client(service, region_name=region, config=config)  # type: ignore[call-overload]
    except NoRegionError as exc:
        raise failure(f"{service}: {NO_REGION_HINT}") from exc
    except (BotoCoreError, ValueError) as exc:  # an invalid region name, a bad endpoint URL, ...
        raise failure(f"{service}: cannot build the client: {type(exc).__name__}: {exc}") from exc
    return built, policy


@dataclass(frozen=True, slots=True)
class Attempted(Generic[T]):
    """A call's result with what it took: requests sent and the last attempt's latency."""

    value: T
    requests: int
    latency_ms: float


class AWSTransport:
    """One AWS client, its retry owner, and the translation of every failure into our errors.

    Subclasses set `service`, the default timeouts, `retryable(exc)` and `translate(exc,
    operation, requests)`; they call `self.invoke(operation, fn)` for every request.
    """

    service: ClassVar[str]
    default_connect_timeout: ClassVar[float] = 3.0
    default_read_timeout: ClassVar[float] = 10.0

    def __init__(
        self,
        client: Any | None = None,
        *,
        session: boto3.Session | None = None,
        region: str | None = None,
        retry: RetryPolicy | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> None:
        connect = self.default_connect_timeout if connect_timeout is None else connect_timeout
        read = self.default_read_timeout if read_timeout is None else read_timeout
        if connect <= 0 or read <= 0:
            raise ValueError("connect_timeout and read_timeout must be positive")
        self._client, self._retry = aws_client(
            self.service,
            client=client,
            session=session,
            region=region,
            connect_timeout=connect,
            read_timeout=read,
            retry=retry,
            failure=self.failure,
        )
        self._owns_retries = client is None or not client_retries_itself(client)

    @property
    def client(self) -> Any:
        """The boto3 client calls go through (built here or injected)."""
        return self._client

    @property
    def retry(self) -> RetryPolicy:
        """The policy applied to each call: `retry`, or one attempt for a self-retrying client."""
        return self._retry

    @property
    def owns_retries(self) -> bool:
        """True when this transport retries (tenacity); False when the injected client does."""
        return self._owns_retries

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
        """
        started = [0.0]

        def attempt() -> T:
            started[0] = time.perf_counter()
            return fn()

        try:
            value, attempts = call_with_retries(
                attempt, policy=self._retry, retryable=self.retryable
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
