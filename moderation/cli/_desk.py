"""What the `moderation review` commands share: the desk's variables and exit codes, and the two
ways a command opens the desk: plain, or joined to the audit log it records verdicts in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from moderation import wiring
from moderation.errors import ConfigurationError, ModerationError, UnknownItem
from moderation.review import ReviewDesk, open_desk
from moderation.settings import Settings

__all__ = [
    "AUDIT_ENV",
    "DESK_ENV",
    "EXIT_BAD_POLICIES",
    "EXIT_DESK",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "IMAGES_ENV",
    "desk_work",
    "open_plain_desk",
    "recording_desk",
    "require_desk_and_audit",
]

DESK_ENV = "MODERATION_REVIEW"
AUDIT_ENV = "MODERATION_AUDIT"
IMAGES_ENV = "MODERATION_REVIEW_IMAGES"
EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_DESK, EXIT_BAD_POLICIES = 0, 1, 2, 3, 4


def open_plain_desk(url: str | None) -> ReviewDesk:
    """The desk at `url` (--desk, else MODERATION_REVIEW), for commands that record nothing in
    the audit log (backfill, ingest, purge, deliver); a usage error when there is none."""
    if not url:
        raise click.UsageError(f"no review desk: pass --desk URL or set {DESK_ENV}")
    try:
        return open_desk(url)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--desk") from exc
    except ModerationError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_USAGE) from exc


def recording_desk(settings: Settings) -> ReviewDesk:
    """The desk of `settings`, joined to the audit log its decisions are in (as the engine's
    wiring joins them): a command that records verdicts or appeals writes them to that log, in
    the same chain. A usage error when either is missing: a desk that records into no log would
    lose what it records."""
    require_desk_and_audit(settings)
    try:
        desk = wiring.review_desk(settings, wiring.audit_sink(settings))
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--desk") from exc
    except ModerationError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_USAGE) from exc
    assert desk is not None  # settings.review is set
    return desk


def require_desk_and_audit(settings: Settings) -> None:
    if not settings.review:
        raise click.UsageError(f"no review desk: pass --desk URL or set {DESK_ENV}")
    if not settings.audit:
        raise click.UsageError(
            f"no audit log: pass --audit LOG or set {AUDIT_ENV} (the log the desk's decisions "
            "are in; verdicts and appeals are recorded there)"
        )


@contextmanager
def desk_work(
    desk: ReviewDesk,
    failed: str = "{}",
    *,
    missing: tuple[type[Exception], ...] = (),
    also: tuple[type[Exception], ...] = (),
) -> Iterator[ReviewDesk]:
    """A command's work on `desk`, which is closed after it however it ends. An item the desk
    does not hold (or one of `missing`) exits 1 (`error: ...` on stderr); any other failure of
    the desk (or one of `also`) exits 3, its message put in `failed` (say what failed and what
    to run again)."""
    not_found: tuple[type[Exception], ...] = (UnknownItem, *missing)
    failures: tuple[type[Exception], ...] = (ModerationError, *also)
    try:
        yield desk
    except not_found as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_NOT_FOUND) from exc
    except failures as exc:
        click.echo(f"error: {failed.format(exc)}", err=True)
        raise click.exceptions.Exit(EXIT_DESK) from exc
    finally:
        desk.close()
