"""The review page: a server-rendered Starlette app over a `ReviewDesk` (docs/review.md has its
routes, their form fields and status codes)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from moderation.errors import (
    AWSError,
    LeaseLost,
    ModerationError,
    ReviewError,
    UnknownItem,
    UnknownTenant,
)
from moderation.policy import Policy, PolicyStore
from moderation.review._desk import ReviewDesk
from moderation.review._images import ImageStore
from moderation.review._model import (
    MAX_NOTE,
    ItemState,
    ReviewItem,
    check_categories,
    check_text,
)
from moderation.review._reviewers import Reviewers, ReviewersFile
from moderation.review.web._images import ImageGone, ItemImages, media_type
from moderation.review.web._security import (
    COOKIE,
    LoginThrottle,
    SecurityHeaders,
    Session,
    Sessions,
)
from moderation.review.web._view import item_view, queue_rows

__all__ = ["DEFAULT_SESSION_SECONDS", "create_app"]

#: How long a login lasts: a working day's shift.
DEFAULT_SESSION_SECONDS = 12 * 3600.0

_log = logging.getLogger("moderation.review")
_LAST = {"approve": "Approved", "reject": "Rejected", "skip": "Skipped"}
_STATIC = {"desk.js": "text/javascript; charset=utf-8", "desk.css": "text/css; charset=utf-8"}


@dataclass
class _Page:
    """What every route shares: the desk and its helpers."""

    desk: ReviewDesk
    reviewers: Callable[[], Reviewers]
    images: ItemImages
    policies: PolicyStore | None
    sessions: Sessions
    throttle: LoginThrottle
    templates: Environment
    secure_cookies: bool
    clock: Callable[[], float]

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.templates.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status)

    def message(self, status: int, title: str, text: str, session: Session | None) -> Response:
        return self.render("message.html", status, title=title, text=text, session=session)

    def session(self, request: Request) -> Session | None:
        return self.sessions.read(request.cookies.get(COOKIE), self.reviewers())

    def policy(self, tenant: str) -> Policy | None:
        if self.policies is None:
            return None
        try:
            return self.policies.get(tenant)
        except (UnknownTenant, ModerationError) as exc:
            _log.warning("no policy for tenant %r on the review page: %s", tenant, exc)
            return None


def create_app(
    desk: ReviewDesk,
    reviewers: Reviewers | ReviewersFile,
    images: ImageStore | ItemImages | None = None,
    policies: PolicyStore | None = None,
    *,
    secret: str | bytes | None = None,
    secure_cookies: bool = False,
    session_seconds: float = DEFAULT_SESSION_SECONDS,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> Starlette:
    """The review page over `desk`, for the reviewers of `reviewers` (a `ReviewersFile` is read
    again when it changes). `images` reads the items' images (an image store, or `ItemImages`
    for S3 too); `policies` give each tenant's blur categories and guidance. `secret` signs the
    session cookies (random per app when None: a restart logs everyone out). `secure_cookies`
    marks the cookie Secure even when the request did not arrive over https (behind a TLS
    proxy that does not say so). `clock` and `sleep` are for tests."""
    page = _Page(
        desk=desk,
        reviewers=reviewers.current if isinstance(reviewers, ReviewersFile) else lambda: reviewers,
        images=images if isinstance(images, ItemImages) else ItemImages(images),
        policies=policies,
        sessions=Sessions(
            secret if secret is not None else secrets.token_bytes(32),
            max_age=session_seconds,
            clock=clock,
        ),
        throttle=LoginThrottle(clock=clock, sleep=sleep),
        templates=Environment(
            loader=PackageLoader("moderation.review.web", "templates"), autoescape=True
        ),
        secure_cookies=secure_cookies,
        clock=clock,
    )
    routes = [
        Route("/login", _endpoint(page, _login_form), methods=["GET"]),
        Route("/login", _endpoint(page, _login), methods=["POST"]),
        Route("/logout", _endpoint(page, _logout), methods=["POST"]),
        Route("/", _endpoint(page, _next_item), methods=["GET"]),
        Route("/queue", _endpoint(page, _queue), methods=["GET"]),
        Route("/items/{item_id}/image", _endpoint(page, _image), methods=["GET"]),
        Route("/items/{item_id}/decision", _endpoint(page, _decision), methods=["POST"]),
        Route("/static/{name}", _static, methods=["GET"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])


Handler = Callable[[_Page, Request], Awaitable[Response]]


def _endpoint(page: _Page, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(page, request)
        except (ModerationError, OSError) as exc:  # the desk locked, the audit log failing
            # Nothing half-done: the desk rolls a verdict back when its audit record fails.
            _log.error("review page: %s %s failed: %s", request.method, request.url.path, exc)
            return page.message(
                503, "The desk is not answering", f"{exc}. Try again in a moment.", None
            )

    return endpoint


async def _static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in _STATIC:
        return Response("not found", status_code=404, media_type="text/plain")
    body = resources.files("moderation.review.web").joinpath("static", name).read_bytes()
    return Response(body, media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})


# -- logging in and out ------------------------------------------------------------------------


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _login_form(page: _Page, request: Request) -> Response:
    if page.session(request) is not None:
        return RedirectResponse("/", status_code=303)
    return page.render("login.html", session=None, error=None)


async def _login(page: _Page, request: Request) -> Response:
    form = await request.form()
    token = form.get("token")
    client = _client(request)
    async with page.throttle.lock(client):
        found = page.reviewers().by_token(token.strip()) if isinstance(token, str) else None
        if found is None:
            await page.throttle.failed(client)
            _log.warning("review page: a failed login from %s", client)
            return page.render("login.html", 401, session=None, error="That token is not valid.")
        page.throttle.succeeded(client)
    reviewer, token_sha256 = found
    _log.info("review page: %s logged in from %s", reviewer.name, client)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        page.sessions.issue(reviewer, token_sha256),
        max_age=int(page.sessions.max_age),
        path="/",
        httponly=True,
        samesite="strict",
        secure=page.secure_cookies or request.url.scheme == "https",
    )
    return response


async def _logout(page: _Page, request: Request) -> Response:
    checked = await _posting(page, request)
    if isinstance(checked, Response):
        return checked
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


async def _posting(page: _Page, request: Request) -> Session | Response:
    """The session of a POST whose form carries its CSRF token; else the 403 page to answer."""
    session = page.session(request)
    form = await request.form()
    if session is None:
        return page.message(
            403, "Your session has ended", "Log in again: nothing was recorded.", None
        )
    if not session.csrf_ok(form.get("csrf")):
        return page.message(
            403,
            "This form has expired",
            "The form did not carry this session's token, so nothing was recorded. "
            "Go back to the desk and try again.",
            session,
        )
    return session


# -- the desk ----------------------------------------------------------------------------------


async def _next_item(page: _Page, request: Request) -> Response:
    session = page.session(request)
    if session is None:
        return RedirectResponse("/login", status_code=303)
    item = await run_in_threadpool(page.desk.next, session.reviewer)
    last = _LAST.get(request.query_params.get("last", ""))
    if item is None:
        return page.render("empty.html", session=session, last=last)
    policy = await run_in_threadpool(page.policy, item.tenant)
    view = item_view(item, policy, session.reviewer, page.now())
    return page.render("item.html", session=session, view=view, last=last)


async def _queue(page: _Page, request: Request) -> Response:
    session = page.session(request)
    if session is None:
        return RedirectResponse("/login", status_code=303)
    depths = await run_in_threadpool(page.desk.depth, session.reviewer)
    rows = queue_rows(depths, session.reviewer, page.now())
    return page.render("queue.html", session=session, rows=rows, now=page.now())


async def _granted_item(page: _Page, session: Session, item_id: str) -> ReviewItem | Response:
    """The item, when it is of a tenant granted to `session`'s reviewer; else the page to answer."""
    try:
        item = await run_in_threadpool(page.desk.get, item_id)
    except UnknownItem:
        return page.message(404, "No such item", f"The desk holds no item {item_id}.", session)
    if not session.reviewer.may_see(item.tenant):
        return page.message(
            403, "Not your tenant", "This item belongs to a tenant you do not review.", session
        )
    return item


async def _image(page: _Page, request: Request) -> Response:
    session = page.session(request)
    if session is None:
        return page.message(403, "Your session has ended", "Log in again.", None)
    item = await _granted_item(page, session, request.path_params["item_id"])
    if isinstance(item, Response):
        return item
    held = item.state is ItemState.LEASED and item.lease_holder == session.reviewer.name
    if not held:
        return page.message(
            403, "Not your item", "Only the reviewer holding the item sees its image.", session
        )
    if item.image is None:
        return page.message(404, "No image", "No copy of this item's image was kept.", session)
    try:
        data = await run_in_threadpool(page.images.read, item.image)
    except ImageGone as exc:
        return page.message(404, "The image is gone", str(exc), session)
    except AWSError as exc:
        return page.message(502, "S3 did not give the image", str(exc), session)
    media = media_type(data)
    if media is None:
        return page.message(502, "Not an image", "The stored bytes are not an image.", session)
    return Response(data, media_type=media, headers={"Cache-Control": "no-store"})


async def _decision(page: _Page, request: Request) -> Response:
    session = await _posting(page, request)
    if isinstance(session, Response):
        return session
    item_id = request.path_params["item_id"]
    granted = await _granted_item(page, session, item_id)
    if isinstance(granted, Response):
        return granted
    form = await request.form()
    verdict = form.get("verdict")
    if verdict not in _LAST:
        return page.message(400, "No verdict", "Choose approve, reject or skip.", session)
    try:
        note = check_text("the note", str(form.get("note") or "").replace("\r\n", "\n"), MAX_NOTE)
        categories = check_categories(c for c in form.getlist("categories") if isinstance(c, str))
    except ReviewError as exc:
        return page.message(400, "The verdict was not recorded", str(exc), session)
    try:
        if verdict == "skip":
            await run_in_threadpool(page.desk.release, item_id, reviewer=session.reviewer)
        else:
            await run_in_threadpool(
                lambda: page.desk.decide(
                    item_id,
                    str(verdict),
                    reviewer=session.reviewer,
                    note=note,
                    categories=categories,
                )
            )
    except LeaseLost as exc:
        return page.message(
            409, "This item is no longer yours", f"{exc}. Your verdict was not recorded.", session
        )
    except UnknownItem as exc:
        return page.message(404, "No such item", str(exc), session)
    return RedirectResponse(f"/?last={verdict}", status_code=303)
