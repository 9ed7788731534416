"""The review page: a small server-rendered web app where reviewers work the desk.

`create_app(desk, reviewers, images, policies)` builds it (Starlette, Jinja2; the `review`
extra); `moderation review serve` runs it with uvicorn. docs/review.md documents the routes.
"""

from moderation.review.web._app import DEFAULT_SESSION_SECONDS, create_app
from moderation.review.web._images import ImageGone, ItemImages
from moderation.review.web._security import COOKIE, SECURITY_HEADERS, LoginThrottle

__all__ = [
    "COOKIE",
    "DEFAULT_SESSION_SECONDS",
    "SECURITY_HEADERS",
    "ImageGone",
    "ItemImages",
    "LoginThrottle",
    "create_app",
]
