"""`moderation review reviewer add` and `moderation review serve`: who may log in to the review
page, and the page itself (moderation/review/web/)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click

from moderation import wiring
from moderation.cli._common import (
    env_settings,
    print_problems,
)
from moderation.cli._desk import (
    DESK_ENV,
    EXIT_BAD_POLICIES,
    EXIT_DESK,
    EXIT_USAGE,
    IMAGES_ENV,
    recording_desk,
    require_desk_and_audit,
)
from moderation.errors import (
    ConfigurationError,
    PolicyError,
    ReviewError,
)
from moderation.policy import PolicyStore
from moderation.review import (
    ALL_TENANTS,
    ReviewersFile,
    Role,
    add_reviewer,
)
from moderation.settings import Settings

__all__ = ["reviewer_group", "serve_command"]


@click.group(name="reviewer")
def reviewer_group() -> None:
    """The reviewers file: who may log in to the review page."""


@reviewer_group.command(name="add")
@click.argument("name")
@click.option(
    "--tenants",
    required=True,
    metavar="IDS",
    help="The tenants they may review, comma-separated (kids,forum), or '*' for every tenant.",
)
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    default=Role.REVIEWER.value,
    show_default=True,
    help="senior and admin also settle disagreements.",
)
@click.option(
    "--reviewers",
    "reviewers_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The reviewers file (created when missing).",
)
@click.option(
    "--rotate",
    is_flag=True,
    help="Replace an existing reviewer: a new token (the old one stops working), these tenants "
    "and role.",
)
def reviewer_add(name: str, tenants: str, role: str, reviewers_path: Path, rotate: bool) -> None:
    """Add the reviewer NAME to the reviewers file and print their new token.

    The token is printed once, alone on stdout; the file keeps only its sha256. Hand it to the
    reviewer over a channel you trust. A NAME already in the file is refused unless --rotate.
    """
    granted = _tenant_list(tenants)
    try:
        token = add_reviewer(reviewers_path, name, granted, role=role, rotate=rotate)
    except ReviewError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_USAGE) from exc
    except OSError as exc:
        click.echo(f"error: cannot write the reviewers file {reviewers_path}: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_DESK) from exc
    click.echo(token)
    action = "rotated" if rotate else "added"
    click.echo(f"{action} reviewer {name!r} in {reviewers_path}", err=True)


def _tenant_list(value: str) -> list[str] | Literal["*"]:
    if value.strip() == ALL_TENANTS:
        return ALL_TENANTS
    names = [t.strip() for t in value.split(",") if t.strip()]
    if not names:
        raise click.BadParameter("name at least one tenant, or '*'", param_hint="--tenants")
    return names


_SERVE_EPILOG = f"""\b
Exit codes:
  0  stopped (Ctrl-C)
  2  usage error (no desk, no audit log, a bad reviewers file, the `review` extra missing)
  4  the policies are invalid

The desk is --desk, else ${DESK_ENV}; verdicts go to --audit, else $MODERATION_AUDIT (the
engine's audit log); the images come from --images, else ${IMAGES_ENV}, and from S3. The session
cookies are signed with $MODERATION_REVIEW_SECRET, else a random key per process."""


@click.command(name="serve", epilog=_SERVE_EPILOG)
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option(
    "--reviewers",
    "reviewers_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The reviewers file (moderation review reviewer add); read again when it changes.",
)
@click.option("--desk", "desk_url", metavar="URL", help=f"The review desk (default: ${DESK_ENV}).")
@click.option("--policies", "policies_path", help="The policies (default: $MODERATION_POLICIES).")
@click.option("--images", "images_spec", metavar="SPEC", help=f"The image store (${IMAGES_ENV}).")
@click.option("--audit", metavar="SPEC", help="The audit log verdicts go to ($MODERATION_AUDIT).")
@click.option(
    "--secure-cookies",
    is_flag=True,
    help="Mark the session cookie Secure on every response (behind a TLS proxy that does not "
    "send X-Forwarded-Proto).",
)
def serve_command(
    host: str,
    port: int,
    reviewers_path: Path,
    desk_url: str | None,
    policies_path: str | None,
    images_spec: str | None,
    audit: str | None,
    secure_cookies: bool,
) -> None:
    """Serve the review page, where reviewers log in with their token and work the desk."""
    try:
        import python_multipart  # noqa: F401  (Starlette imports it only when a form arrives)
        import uvicorn

        from moderation.review.web import ItemImages, create_app
    except ImportError as exc:
        click.echo(
            f"error: the review page needs the `review` extra (missing: {exc.name}); "
            "pip install 'moderation[review]'",
            err=True,
        )
        raise click.exceptions.Exit(EXIT_USAGE) from exc
    settings = env_settings(
        review=desk_url, policies=policies_path, review_images=images_spec, audit=audit
    )
    require_desk_and_audit(settings)
    reviewers = _reviewers_file(reviewers_path)
    policies = _serving_policies(settings)
    desk = recording_desk(settings)
    images = ItemImages(wiring.review_image_store(settings), region=settings.region)
    app = create_app(
        desk,
        reviewers,
        images,
        policies,
        secret=settings.review_secret,
        secure_cookies=secure_cookies,
    )
    if host not in ("127.0.0.1", "localhost", "::1") and not secure_cookies:
        click.echo(
            f"warning: serving on {host}: put a TLS proxy in front (the cookie is Secure only "
            "over https: pass --secure-cookies behind a proxy)",
            err=True,
        )
    try:
        uvicorn.run(app, host=host, port=port, server_header=False, proxy_headers=True)
    finally:
        desk.close()


def _reviewers_file(path: Path) -> ReviewersFile:
    try:
        return ReviewersFile(path)
    except ReviewError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_USAGE) from exc


def _serving_policies(settings: Settings) -> PolicyStore:
    """The policies, read again as their store's TTL says (S3 and AppConfig) while serving."""
    try:
        return wiring.policy_store(settings)
    except PolicyError as exc:
        print_problems(exc.problems)
        raise click.exceptions.Exit(EXIT_BAD_POLICIES) from exc
    except ConfigurationError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_USAGE) from exc
