"""The review page's guards: the signed session cookie, the CSRF token, the login slowdown and
the security headers every response carries."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moderation.review._model import Reviewer
from moderation.review._reviewers import Reviewers

__all__ = [
    "COOKIE",
    "SECURITY_HEADERS",
    "LoginThrottle",
    "SecurityHeaders",
    "Session",
    "Sessions",
]

#: The session cookie's name.
COOKIE = "moderation_review"

#: On every response. No inline script or style anywhere: the page's one script and one style
#: sheet are served from /static.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


class SecurityHeaders:
    """ASGI middleware: the security headers on every response, and `Cache-Control: no-store`
    on every one that sets no cache policy of its own (pages and images are not to be kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in reviewer: who, and the CSRF token their forms carry."""

    reviewer: Reviewer
    csrf: str

    def csrf_ok(self, given: object) -> bool:
        """True when `given` is this session's CSRF token (compared in constant time)."""
        return isinstance(given, str) and hmac.compare_digest(given, self.csrf)


def _fingerprint(token_sha256: str) -> str:
    """What the cookie carries of the reviewer's token hash: enough to end the session when the
    token is rotated or the reviewer removed, nothing the reviewers file holds."""
    return hashlib.sha256(f"session:{token_sha256}".encode()).hexdigest()[:32]


class Sessions:
    """Session cookies signed with `secret` (itsdangerous, HMAC-SHA1 over a derived key): the
    reviewer's name, a fingerprint of their token hash, a CSRF token and the time of login.

    A session ends after `max_age` seconds, or as soon as the reviewer's entry in the reviewers
    file is gone or holds another token.
    """

    def __init__(self, secret: str | bytes, *, max_age: float, clock: Callable[[], float]) -> None:
        self._serializer = URLSafeSerializer(secret, salt="moderation-review-session")
        self.max_age = max_age
        self._clock = clock

    def issue(self, reviewer: Reviewer, token_sha256: str) -> str:
        """A new cookie value for `reviewer`, with a fresh CSRF token."""
        body = {
            "name": reviewer.name,
            "key": _fingerprint(token_sha256),
            "csrf": secrets.token_urlsafe(32),
            "at": self._clock(),
        }
        return str(self._serializer.dumps(body))

    def read(self, cookie: str | None, reviewers: Reviewers) -> Session | None:
        """The session `cookie` carries, or None: unsigned, expired, or its reviewer's token
        is no longer the one they logged in with."""
        if not cookie:
            return None
        try:
            body: Any = self._serializer.loads(cookie)
        except BadSignature:
            return None
        if not isinstance(body, dict) or not isinstance(body.get("at"), int | float):
            return None
        if not 0 <= self._clock() - body["at"] <= self.max_age:
            return None
        entry = reviewers.by_name(str(body.get("name")))
        key, csrf = body.get("key"), body.get("csrf")
        if entry is None or not isinstance(key, str) or not isinstance(csrf, str):
            return None
        if not hmac.compare_digest(key, _fingerprint(entry.token_sha256)):
            return None
        return Session(entry.reviewer(), csrf)


class LoginThrottle:
    """Slows failed logins down, per client address: the first failure waits `base` seconds,
    each further one twice as long, up to `cap`; a success, or `forget_after` seconds without
    a failure, starts again. One client's attempts are taken one at a time, so sending them in
    parallel does not get around the wait. Remembers at most `max_clients` addresses."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        base: float = 1.0,
        cap: float = 30.0,
        forget_after: float = 900.0,
        max_clients: int = 10_000,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.base, self.cap, self.forget_after = base, cap, forget_after
        self._max = max_clients
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, client: str) -> asyncio.Lock:
        """The lock one client's login attempts are taken under."""
        if len(self._locks) > self._max:
            self._locks = {k: v for k, v in self._locks.items() if v.locked()}
        return self._locks.setdefault(client, asyncio.Lock())

    def failures(self, client: str) -> int:
        """How many failures in a row `client` has had lately."""
        count, last = self._failures.get(client, (0, 0.0))
        return count if self._clock() - last <= self.forget_after else 0

    async def failed(self, client: str) -> float:
        """Count a failure for `client` and wait its delay; returns the delay waited."""
        count = self.failures(client) + 1
        self._failures[client] = (count, self._clock())
        self._failures.move_to_end(client)
        while len(self._failures) > self._max:
            self._failures.popitem(last=False)
        delay = float(min(self.base * 2 ** (count - 1), self.cap))
        await self._sleep(delay)
        return delay

    def succeeded(self, client: str) -> None:
        """Forget `client`'s failures."""
        self._failures.pop(client, None)
