"""A local HTTP endpoint that speaks the real wire formats of the two AWS operations we call.

Point a real boto3 client at `AWSEndpoint.url` (or use `AWSEndpoint.client`) and the whole botocore
path runs: parameter serialisation, SigV4 signing, connection pooling and keep-alive, error
parsing, retries and timeouts. Only two operations are served:

- Rekognition `DetectModerationLabels`: AWS JSON 1.1, `POST /` with
  `X-Amz-Target: RekognitionService.DetectModerationLabels`. Errors are a 400 (500 for
  `InternalServerError`) whose body is `{"__type": <code>, "Message": <message>}`.
- Bedrock Runtime `Converse`: REST-JSON, `POST /model/{modelId}/converse`. Errors carry the status
  of the service model (429 for `ThrottlingException`, ...), the header
  `x-amzn-ErrorType: <code>:http://internal.amazon.com/coral/...` and a `{"message": ...}` body.

Replies are scripted per operation (`AWSEndpoint.script`) and fall back to a per-operation default;
a request nobody scripted an answer for gets a retryable 500 and is listed in
`AWSEndpoint.unexpected`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import struct
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Self, overload
from urllib.parse import unquote, urlsplit

import boto3
import botocore.session
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient
    from mypy_boto3_rekognition import RekognitionClient

__all__ = [
    "BEDROCK_ERROR_STATUS",
    "CONVERSE",
    "DETECT",
    "OPERATIONS",
    "AWSEndpoint",
    "Recorded",
    "Reply",
    "ReplySource",
]

DETECT: Final = "DetectModerationLabels"
CONVERSE: Final = "Converse"
OPERATIONS: Final = (DETECT, CONVERSE)

_REKOGNITION_TARGET_PREFIX: Final = "RekognitionService."
_JSON_11: Final = "application/x-amz-json-1.1"
_CONVERSE_PATH: Final = re.compile(r"^/model/(?P<model>[^/]+)/converse$")
_CORAL_NAMESPACE: Final = "http://internal.amazon.com/coral/com.amazon.bedrock/"

#: HTTP status of every Bedrock Runtime error shape, as in botocore's bedrock-runtime service model.
BEDROCK_ERROR_STATUS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "AccessDeniedException": 403,
        "ConflictException": 400,
        "InternalServerException": 500,
        "ModelErrorException": 424,
        "ModelNotReadyException": 429,
        "ModelStreamErrorException": 424,
        "ModelTimeoutException": 408,
        "ResourceNotFoundException": 404,
        "ServiceQuotaExceededException": 400,
        "ServiceUnavailableException": 503,
        "ThrottlingException": 429,
        "ValidationException": 400,
    }
)

# Rekognition (JSON 1.1) answers every client-side error, throttling included, with a 400.
_REKOGNITION_ERROR_STATUS: Final[Mapping[str, int]] = {
    "InternalServerError": 500,
    "ServiceUnavailableException": 503,
}

# How long `close()` waits for each connection's handler thread once its socket is shut down.
_JOIN_TIMEOUT: Final = 2.0


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a JSON body, a protocol-formatted AWS error, a delay, or a fault.

    `error` names an AWS error code; the server formats it as the operation's protocol does. With
    an error, `status` 200 means "the status the real service uses for that error". `body` is a
    JSON-serialisable object (for an error, extra fields merged into the error body) or raw bytes
    sent as they are. `delay` waits before answering (interrupted by `AWSEndpoint.close`); `reset`
    aborts the connection with a TCP RST instead of answering.
    """

    status: int = 200
    body: Any = None
    error: str | None = None
    message: str = ""
    delay: float = 0.0
    reset: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"Reply.status must be an HTTP status code, got {self.status}")
        if self.delay < 0:
            raise ValueError(f"Reply.delay must be >= 0 seconds, got {self.delay}")

    @classmethod
    def ok(cls, body: Any = None) -> Reply:
        """A 200 whose JSON body is `body` (`{}` when None)."""
        return cls(body=body)

    @classmethod
    def fail(cls, error: str, message: str = "", status: int | None = None) -> Reply:
        """An AWS error `error`, with the service's status for it unless `status` is given."""
        return cls(status=200 if status is None else status, error=error, message=message)

    @classmethod
    def throttle(cls, message: str = "Rate exceeded") -> Reply:
        """A `ThrottlingException` (400 from Rekognition, 429 from Bedrock)."""
        return cls(error="ThrottlingException", message=message)

    @classmethod
    def reset_connection(cls) -> Reply:
        """No answer at all: the connection is aborted with a TCP RST once the request is read."""
        return cls(reset=True)

    @classmethod
    def slow(cls, seconds: float, body: Any = None) -> Reply:
        """A 200 with `body`, sent only after `seconds` (to trigger client read timeouts)."""
        return cls(body=body, delay=seconds)

    @classmethod
    def garbage(cls, data: bytes, status: int = 200) -> Reply:
        """A response whose body is exactly `data` (e.g. malformed JSON) with status `status`."""
        return cls(status=status, body=bytes(data))


class _Headers(Mapping[str, str]):
    """Request headers: looked up case-insensitively, iterated in the case they were sent."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            self._items[name.lower()] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return repr(dict(self._items.values()))


@dataclass(frozen=True)
class Recorded:
    """One request as the endpoint received it: operation, path, headers and parsed JSON body.

    `operation` is "DetectModerationLabels" or "Converse" for the served operations; for anything
    else it is the operation the request named (the X-Amz-Target suffix) or "METHOD /path".
    `body` is the parsed JSON, or the raw bytes when they are not JSON. `headers` is looked up
    case-insensitively. `model_id` is the URL-decoded Bedrock model id for Converse.
    """

    operation: str
    path: str
    headers: Mapping[str, str]
    body: Any
    model_id: str | None = None


ReplySource = Reply | Callable[[Recorded], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # close() shuts connections down and joins their threads itself
    request_queue_size = 128  # the default 5 drops SYNs from concurrent clients (1 s retransmit)

    def __init__(self, endpoint: AWSEndpoint) -> None:
        self.endpoint = endpoint
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet for connection faults (client gone, reset, shut down); loud for bugs."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    server_version = "AWSEndpoint"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every response on a kept-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.current_thread().name = f"AWSEndpoint-conn-{self.client_address[1]}"
        self.server.endpoint._register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.endpoint._unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the test output is not the place for an access log."""

    def do_POST(self) -> None:
        self._serve()

    do_GET = do_PUT = do_DELETE = do_PATCH = do_POST

    def _serve(self) -> None:
        raw = self._read_body()
        if raw is None:
            return
        self.server.endpoint._serve(self, raw)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.send_error(411, "AWSEndpoint needs a Content-Length")
            self.close_connection = True
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.send_error(400, "Bad Content-Length")
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def send_bytes(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """Write a complete response; Content-Length always set so keep-alive stays in sync."""
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def abort(self) -> None:
        """Close the connection with a RST (SO_LINGER 0) and no response."""
        self.close_connection = True
        sock = self.connection
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The fd only closes once rfile's reference to it is released as well.
        self.rfile.close()
        sock.close()

    def drop(self) -> None:
        """Close the connection without a response (the endpoint is shutting down)."""
        self.close_connection = True


@dataclass
class _Route:
    operation: str
    protocol: Literal["json", "rest-json"]
    served: bool
    model_id: str | None = None


class AWSEndpoint:
    """A running local endpoint; `url` is what to give boto3 as `endpoint_url`.

    Use it as a context manager::

        with AWSEndpoint(default_detect=Reply.ok({"ModerationLabels": []})) as aws:
            aws.script("Converse", Reply.throttle(), Reply.ok(converse_body))
            rekognition = aws.client("rekognition", retries={"total_max_attempts": 1})
            ...
            assert aws.count("Converse") == 2

    A `Reply` or a callable `(Recorded) -> Reply` answers each request: first the replies queued
    with `script` for its operation, in order, then the operation's default. The server starts in
    the constructor and stops in `close()` (or on leaving the `with` block).
    """

    def __init__(
        self,
        *,
        default_detect: ReplySource | None = None,
        default_converse: ReplySource | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._queues: dict[str, deque[ReplySource]] = {op: deque() for op in OPERATIONS}
        self._defaults: dict[str, ReplySource | None] = {
            DETECT: default_detect,
            CONVERSE: default_converse,
        }
        self._requests: list[Recorded] = []
        self._unexpected: list[Recorded] = []
        self._sockets: dict[socket.socket, threading.Thread] = {}
        self._connections = 0
        self._clients: list[Any] = []
        self._closed = False
        self._server = _Server(self)
        host, port = self._server.server_address[:2]
        self.url: str = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"AWSEndpoint-{port}",
            daemon=True,
        )
        self._thread.start()

    # -- context manager ---------------------------------------------------------------------

    def __enter__(self) -> Self:
        """The endpoint itself, already serving."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- scripting ---------------------------------------------------------------------------

    def script(self, operation: str, *replies: ReplySource) -> None:
        """Queue `replies` for `operation`; each request consumes the next one, in order."""
        self._check_operation(operation)
        with self._lock:
            self._queues[operation].extend(replies)

    def set_default(self, operation: str, reply: ReplySource | None) -> None:
        """Replace the answer `operation` gets once its script is exhausted (None: unexpected)."""
        self._check_operation(operation)
        with self._lock:
            self._defaults[operation] = reply

    def pending(self, operation: str) -> int:
        """How many scripted replies for `operation` have not been consumed yet."""
        self._check_operation(operation)
        with self._lock:
            return len(self._queues[operation])

    # -- observation -------------------------------------------------------------------------

    @property
    def requests(self) -> list[Recorded]:
        """A copy of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def unexpected(self) -> list[Recorded]:
        """Requests answered with a 500 because nothing was scripted, or for unknown operations."""
        with self._lock:
            return list(self._unexpected)

    @property
    def connections(self) -> int:
        """How many TCP connections have been accepted (keep-alive reuses one for many calls)."""
        with self._lock:
            return self._connections

    def count(self, operation: str) -> int:
        """How many requests for `operation` have been received."""
        with self._lock:
            return sum(1 for r in self._requests if r.operation == operation)

    # -- clients -----------------------------------------------------------------------------

    @overload
    def client(
        self, service: Literal["rekognition"], **config_kwargs: Any
    ) -> RekognitionClient: ...

    @overload
    def client(
        self, service: Literal["bedrock-runtime"], **config_kwargs: Any
    ) -> BedrockRuntimeClient: ...

    def client(self, service: str, **config_kwargs: Any) -> Any:
        """A real boto3 client for `service` aimed at this endpoint, closed by `close()`.

        Region us-east-1, fake static credentials, and `botocore.config.Config(**config_kwargs)`
        (e.g. `retries={"total_max_attempts": 1}`, `read_timeout=0.3`). The user's AWS config
        and credentials files and AWS_PROFILE are ignored so that tests are hermetic.
        """
        if service not in ("rekognition", "bedrock-runtime"):
            raise ValueError(f"AWSEndpoint serves rekognition and bedrock-runtime, not {service!r}")
        config = Config(**config_kwargs)
        made: Any
        with _SESSION_LOCK:  # boto3 sessions are not thread-safe; clients are
            session = _shared_session()
            if service == "rekognition":
                made = session.client("rekognition", endpoint_url=self.url, config=config)
            else:
                made = session.client("bedrock-runtime", endpoint_url=self.url, config=config)
        with self._lock:
            self._clients.append(made)
        return made

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop serving, abandon delayed replies, drop open connections; idempotent, never hangs."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            clients, self._clients = self._clients, []
        self._stopping.set()
        self._server.shutdown()
        with self._lock:
            open_sockets = dict(self._sockets)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in open_sockets.values():
            if thread is not threading.current_thread():
                thread.join(_JOIN_TIMEOUT)
        self._server.server_close()
        self._thread.join(_JOIN_TIMEOUT)
        for made in clients:
            with contextlib.suppress(Exception):
                made.close()

    # -- server side -------------------------------------------------------------------------

    def _register(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections += 1
            if not self._closed:
                self._sockets[sock] = threading.current_thread()
                return
        # Accepted just as close() began: end it now, close() no longer looks for it.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def _unregister(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.pop(sock, None)

    @staticmethod
    def _check_operation(operation: str) -> None:
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; expected one of {OPERATIONS}")

    def _serve(self, handler: _Handler, raw: bytes) -> None:
        path = urlsplit(handler.path).path
        route = _route(handler.command, path, handler.headers.get("X-Amz-Target"))
        body: Any
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = raw
        recorded = Recorded(
            operation=route.operation,
            path=handler.path,
            headers=_Headers(handler.headers.items()),
            body=body,
            model_id=route.model_id,
        )
        with self._lock:
            self._requests.append(recorded)
        reply = self._answer(route, recorded, raw_is_json=not isinstance(body, bytes))
        if reply.delay and self._stopping.wait(reply.delay):
            handler.drop()
            return
        if self._stopping.is_set():
            handler.drop()
            return
        if reply.reset:
            handler.abort()
            return
        try:
            status, headers, payload = _render(reply, route.protocol)
        except (TypeError, ValueError) as exc:  # a body json.dumps cannot encode
            self._mark_unexpected(recorded)
            bad = _internal_error(route, f"AWSEndpoint: cannot encode the reply body: {exc}")
            status, headers, payload = _render(bad, route.protocol)
        handler.send_bytes(status, headers, payload)

    def _answer(self, route: _Route, recorded: Recorded, *, raw_is_json: bool) -> Reply:
        if not route.served:
            self._mark_unexpected(recorded)
            return Reply.fail(
                "UnknownOperationException",
                f"AWSEndpoint does not serve {route.operation}",
                status=400,
            )
        if not raw_is_json:
            self._mark_unexpected(recorded)
            return Reply.fail("SerializationException", "request body is not JSON", status=400)
        with self._lock:
            queue = self._queues[route.operation]
            source = queue.popleft() if queue else self._defaults[route.operation]
        if source is None:
            self._mark_unexpected(recorded)
            return _internal_error(route, f"AWSEndpoint: no reply scripted for {route.operation}")
        if isinstance(source, Reply):
            return source
        try:
            reply = source(recorded)
        except Exception as exc:
            self._mark_unexpected(recorded)
            return _internal_error(route, f"AWSEndpoint: reply callable raised {exc!r}")
        if not isinstance(reply, Reply):
            self._mark_unexpected(recorded)
            return _internal_error(route, f"AWSEndpoint: reply callable returned {reply!r}")
        return reply

    def _mark_unexpected(self, recorded: Recorded) -> None:
        with self._lock:
            self._unexpected.append(recorded)


_SESSION_LOCK: Final = threading.Lock()
_SESSION: list[boto3.session.Session] = []


def _shared_session() -> boto3.session.Session:
    """One boto3 session for every client (loading the service models once); hold _SESSION_LOCK.

    Fake static credentials and us-east-1. The `profile` lookup (AWS_PROFILE) is disabled and the
    config and credentials files are /dev/null, so a developer's AWS setup cannot leak in.
    """
    if not _SESSION:
        core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
        core.set_config_variable("config_file", os.devnull)
        core.set_config_variable("credentials_file", os.devnull)
        _SESSION.append(
            boto3.session.Session(
                aws_access_key_id="AKIDAWSENDPOINTTEST",
                aws_secret_access_key="aws-endpoint-test-secret",
                region_name="us-east-1",
                botocore_session=core,
            )
        )
    return _SESSION[0]


def _route(method: str, path: str, target: str | None) -> _Route:
    """Which operation (and protocol) a request addresses, the way the real services route it."""
    if target is not None:
        operation = target.removeprefix(_REKOGNITION_TARGET_PREFIX)
        served = method == "POST" and path == "/" and target == _REKOGNITION_TARGET_PREFIX + DETECT
        return _Route(operation=operation, protocol="json", served=served)
    match = _CONVERSE_PATH.match(path)
    if method == "POST" and match is not None:
        return _Route(
            operation=CONVERSE,
            protocol="rest-json",
            served=True,
            model_id=unquote(match["model"]),
        )
    return _Route(operation=f"{method} {path}", protocol="rest-json", served=False)


def _internal_error(route: _Route, message: str) -> Reply:
    code = "InternalServerError" if route.protocol == "json" else "InternalServerException"
    return Reply.fail(code, message, status=500)


def _render(
    reply: Reply, protocol: Literal["json", "rest-json"]
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body bytes for `reply` in `protocol`'s wire format."""
    content_type = _JSON_11 if protocol == "json" else "application/json"
    headers: dict[str, str] = {
        "Content-Type": content_type,
        "x-amzn-RequestId": str(uuid.uuid4()),
    }
    status = reply.status
    if reply.error is None:
        payload = _encode(reply.body if reply.body is not None else {})
    else:
        if status == 200:
            status = _error_status(reply.error, protocol)
        if protocol == "json":
            error_body: dict[str, Any] = {"__type": reply.error, "Message": reply.message}
        else:
            headers["x-amzn-ErrorType"] = f"{reply.error}:{_CORAL_NAMESPACE}"
            error_body = {"message": reply.message}
        if isinstance(reply.body, Mapping):
            error_body.update(reply.body)
        payload = reply.body if isinstance(reply.body, bytes) else _encode(error_body)
    headers.update(reply.headers)
    return status, headers, payload


def _error_status(error: str, protocol: Literal["json", "rest-json"]) -> int:
    if protocol == "json":
        return _REKOGNITION_ERROR_STATUS.get(error, 400)
    return BEDROCK_ERROR_STATUS.get(error, 400)


def _encode(body: Any) -> bytes:
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    return json.dumps(body, separators=(",", ":")).encode("utf-8")
