"""`moderation review ...`: the review desk from the command line (backfill, ingest, purge,
appeal, deliver)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import click

from moderation import wiring
from moderation.audit import VerifiedRecords, decisions
from moderation.aws.sqs import LONG_POLL_READ_TIMEOUT, SQSQueue, queue_region
from moderation.cli._common import (
    KEY_ENV,
    audit_key,
    default_policies,
    env_settings,
    load_store,
    print_problems,
)
from moderation.decision import Decision
from moderation.errors import (
    AWSError,
    ConfigurationError,
    ModerationError,
    PolicyError,
    ReviewError,
    UnknownItem,
    UnknownTenant,
)
from moderation.policy import Policy, PolicyStore
from moderation.review import (
    ALL_TENANTS,
    Delivery,
    DeliveryCount,
    DeskRules,
    Effects,
    IngestCount,
    ReviewDesk,
    ReviewersFile,
    ReviewMessage,
    Role,
    add_reviewer,
    backfill,
    ingest,
    message_rules,
    open_desk,
    open_image_store,
    purge_closed_images,
)
from moderation.settings import Settings, read_env

__all__ = ["review"]

DESK_ENV = "MODERATION_REVIEW"
AUDIT_ENV = "MODERATION_AUDIT"
EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_DESK, EXIT_BAD_POLICIES = 0, 1, 2, 3, 4

_EPILOG = f"""\b
Exit codes:
  0  done (every item the logs call for is on the desk)
  1  a log was not found, or (with a key) records that did not verify were left out
  2  usage error (no desk URL, a URL the desk refuses, an unreadable key file)
  3  the desk failed part way (the items before the failure are on it; run again)
  4  the policies are invalid

The desk is --desk, else ${DESK_ENV}. A keyed log's key comes from ${KEY_ENV} or
--key-file; with a key only records that verify are read. A LOG is a live log, read with its
rotated predecessors (LOG.1, LOG.2, ...)."""


@click.group(epilog=_EPILOG)
def review() -> None:
    """The human review desk: put decisions on it."""


@review.command(epilog=_EPILOG)
@click.argument("logs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--desk",
    "desk_url",
    envvar=DESK_ENV,
    metavar="URL",
    help=f"The review desk, sqlite:///PATH (default: ${DESK_ENV}).",
)
@click.option(
    "--policies",
    "policies_path",
    help="Where the policies are, for each item's desk rules (default: $MODERATION_POLICIES).",
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Read the HMAC key of a keyed log from FILE (default: ${KEY_ENV}).",
)
def backfill_command(
    logs: tuple[Path, ...],
    desk_url: str | None,
    policies_path: str | None,
    key_file: Path | None,
) -> None:
    """Enqueue every decision of the audit logs LOG... that should be a desk item and is not:
    each `review` decision, and each blind QA sample decided under a policy the store still holds
    unchanged. Idempotent by decision id: run it as often as you like.

    Prints how many items were added and how many the desk already held.
    """
    key = audit_key(key_file)
    desk = _open(desk_url)
    store = load_store(policies_path or default_policies(), exit_code=EXIT_BAD_POLICIES)
    reading = _Reading(logs, key)
    try:
        count = backfill(desk, reading, _policy_lookup(store))
    except (FileNotFoundError, IsADirectoryError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_NOT_FOUND) from exc
    except ModerationError as exc:
        click.echo(f"error: the review desk failed: {exc}; run the backfill again", err=True)
        raise click.exceptions.Exit(EXIT_DESK) from exc
    finally:
        desk.close()
    click.echo(f"{count.added} added, {count.held} already on the desk")
    if reading.ignored:
        click.echo(
            f"warning: {reading.ignored} records did not verify under the key and were left out",
            err=True,
        )
        raise click.exceptions.Exit(EXIT_NOT_FOUND)


review.add_command(backfill_command, name="backfill")


def _open(url: str | None) -> ReviewDesk:
    if not url:
        raise click.UsageError(f"no review desk: pass --desk URL or set {DESK_ENV}")
    try:
        return open_desk(url)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--desk") from exc
    except ModerationError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_USAGE) from exc


class _Reading:
    """The decisions of the logs: with a key, only those of records that verify (counted)."""

    def __init__(self, logs: tuple[Path, ...], key: bytes | None) -> None:
        self.logs = logs
        self.key = key
        self.ignored = 0

    def __iter__(self) -> Iterator[Decision]:
        if self.key is None:
            yield from decisions(self.logs)
            return
        verified = VerifiedRecords(self.logs, key=self.key)
        for _, record in verified:
            if record.decision is not None:
                yield record.decision
        self.ignored = verified.ignored_count


def _policy_lookup(store: PolicyStore) -> Callable[[Decision], Policy | None]:
    """The policy a decision was made under, by its id; None (the desk's default rules, with a
    warning once per id) when the store no longer holds it."""
    missing: set[str] = set()

    def policy_of(decision: Decision) -> Policy | None:
        try:
            return store.policy(decision.policy.id)
        except UnknownTenant:
            if decision.policy.id not in missing:
                missing.add(decision.policy.id)
                click.echo(
                    f"warning: no policy {decision.policy.id!r} in the store: its items get the "
                    "desk's default rules",
                    err=True,
                )
            return None

    return policy_of


IMAGES_ENV = "MODERATION_REVIEW_IMAGES"
_AGE = re.compile(r"(\d+(?:\.\d+)?)(s|m|h|d)")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _age(value: str) -> float:
    """Seconds in a duration written 30d, 12h, 90m or 45s."""
    m = _AGE.fullmatch(value.strip())
    if m is None or float(m.group(1)) <= 0:
        raise click.BadParameter(
            f"a duration is a positive number and a unit (s, m, h, d), like 30d; got {value!r}",
            param_hint="--older-than",
        )
    return float(m.group(1)) * _AGE_UNITS[m.group(2)]


@review.command(
    name="purge",
    epilog=f"""\b
Exit codes:
  0  done
  2  usage error (no desk or image store, a bad duration or URL)
  3  the desk or the image store failed part way (run again)

The desk is --desk, else ${DESK_ENV}; the image store --images, else ${IMAGES_ENV}.""",
)
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="DURATION",
    help="Items created longer ago than this (30d, 12h, ...).",
)
@click.option(
    "--desk",
    "desk_url",
    envvar=DESK_ENV,
    metavar="URL",
    help=f"The review desk (default: ${DESK_ENV}).",
)
@click.option(
    "--images",
    "images_spec",
    envvar=IMAGES_ENV,
    metavar="SPEC",
    help=f"The image store, a directory or s3://bucket/prefix (default: ${IMAGES_ENV}).",
)
def purge_command(older_than: str, desk_url: str | None, images_spec: str | None) -> None:
    """Delete the stored images of decided items older than --older-than.

    An image another item still needs (open, leased, or created since: the same image may back
    several decisions) is kept. Prints how many images were deleted.
    """
    before = datetime.now(UTC) - timedelta(seconds=_age(older_than))
    if not images_spec:
        raise click.UsageError(f"no image store: pass --images SPEC or set {IMAGES_ENV}")
    try:
        store = open_image_store(images_spec)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--images") from exc
    desk = _open(desk_url)
    try:
        count = purge_closed_images(desk, store, before)
    except (ModerationError, OSError) as exc:
        click.echo(f"error: the purge failed part way: {exc}; run it again", err=True)
        raise click.exceptions.Exit(EXIT_DESK) from exc
    finally:
        desk.close()
    gone = f" ({count.gone} already gone)" if count.gone else ""
    click.echo(f"{count.deleted} deleted{gone}")


EXIT_MALFORMED, EXIT_QUEUE = 1, 5

_INGEST_EPILOG = f"""\b
Exit codes:
  0  done: every message received is on the desk and deleted from the queue
  1  messages that are not review messages were left on the queue (its redrive policy
     moves them to the dead-letter queue)
  2  usage error (no desk URL, a URL the desk refuses, a malformed queue URL)
  3  the desk failed (that message and the rest stay on the queue; run again)
  4  the policies are invalid
  5  the queue failed (receiving or deleting; the items stored are on the desk)

The desk is --desk, else ${DESK_ENV}."""


@review.command(name="ingest", epilog=_INGEST_EPILOG)
@click.argument("queue_url", metavar="QUEUE_URL")
@click.option("--desk", "desk_url", envvar=DESK_ENV, metavar="URL", help="The review desk.")
@click.option(
    "--policies",
    "policies_path",
    help="Where the policies are, for each item's desk rules (default: $MODERATION_POLICIES).",
)
@click.option(
    "--max-messages",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after receiving N messages (default: until the queue is empty).",
)
@click.option(
    "--wait",
    "wait_seconds",
    type=click.IntRange(0, 20),
    default=20,
    show_default=True,
    metavar="SECONDS",
    help="Long-poll each receive up to SECONDS for a message before calling the queue empty.",
)
def ingest_command(
    queue_url: str,
    desk_url: str | None,
    policies_path: str | None,
    max_messages: int | None,
    wait_seconds: int,
) -> None:
    """Move the Lambda's review messages from the SQS queue QUEUE_URL onto the desk: each
    becomes an item (idempotent by decision id) and is deleted once its item is stored.

    Prints how many items were added, how many the desk already held, and how many messages
    failed (left on the queue).
    """
    queue = _sqs_queue(queue_url)
    store = load_store(policies_path or default_policies(), exit_code=EXIT_BAD_POLICIES)
    desk = _open(desk_url)
    try:
        count = ingest(
            queue,
            desk,
            _message_rules_lookup(store),
            max_messages=max_messages,
            wait_seconds=wait_seconds,
        )
    except AWSError as exc:
        click.echo(f"error: the queue failed: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_QUEUE) from exc
    finally:
        desk.close()
    _report_ingest(count)


def _sqs_queue(url: str) -> SQSQueue:
    if queue_region(url) is None:
        raise click.BadParameter(
            "must be an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME), "
            f"got {url!r}",
            param_hint="QUEUE_URL",
        )
    return SQSQueue(url, read_timeout=LONG_POLL_READ_TIMEOUT)


def _report_ingest(count: IngestCount) -> None:
    failed = len(count.failed)
    click.echo(f"{count.added} added, {count.held} already on the desk, {failed} failed")
    for message_id, why in count.failed:
        click.echo(f"error: message {message_id} left on the queue: {why}", err=True)
    if count.desk_error is not None:
        raise click.exceptions.Exit(EXIT_DESK)
    if failed:
        raise click.exceptions.Exit(EXIT_MALFORMED)


def _message_rules_lookup(store: PolicyStore) -> Callable[[ReviewMessage], DeskRules | None]:
    """The desk rules of a message's policy, by its id; None (the desk's default rules, with a
    warning once per id) when the store does not hold it."""
    missing: set[str] = set()

    def rules_of(message: ReviewMessage) -> DeskRules | None:
        try:
            return message_rules(message, store.policy(message.policy_id))
        except UnknownTenant:
            if message.policy_id not in missing:
                missing.add(message.policy_id)
                click.echo(
                    f"warning: no policy {message.policy_id!r} in the store: its items get the "
                    "desk's default rules",
                    err=True,
                )
            return None

    return rules_of


def recording_desk(settings: Settings) -> ReviewDesk:
    """The desk of `settings`, joined to the audit log its decisions are in (as the engine's
    wiring joins them): a command that records verdicts or appeals writes them to that log, in
    the same chain. A usage error when either is missing: a desk that records into no log would
    lose what it records."""
    _require_desk_and_audit(settings)
    try:
        desk = wiring.review_desk(settings, wiring.audit_sink(settings))
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--desk") from exc
    except ModerationError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_USAGE) from exc
    assert desk is not None  # settings.review is set
    return desk


def _require_desk_and_audit(settings: Settings) -> None:
    if not settings.review:
        raise click.UsageError(f"no review desk: pass --desk URL or set {DESK_ENV}")
    if not settings.audit:
        raise click.UsageError(
            f"no audit log: pass --audit LOG or set {AUDIT_ENV} (the log the desk's decisions "
            "are in; verdicts and appeals are recorded there)"
        )


@review.group(name="reviewer")
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


@review.command(name="serve", epilog=_SERVE_EPILOG)
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
    _require_desk_and_audit(settings)
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


_APPEAL_EPILOG = f"""\b
Exit codes:
  0  the decision is back on the desk, first in line, as an appeal
  1  the desk holds no item for the decision
  2  usage error (no desk or audit log, a URL the desk refuses)
  3  the desk refused the appeal (the item still waits for its verdict) or failed

The desk is --desk, else ${DESK_ENV}; the audit log is --audit, else ${AUDIT_ENV}."""


@review.command(name="appeal", epilog=_APPEAL_EPILOG)
@click.argument("decision_id", metavar="ID")
@click.option("--reason", required=True, help="Why the decision should be looked at again.")
@click.option(
    "--by",
    "filed_by",
    default="cli",
    show_default=True,
    metavar="NAME",
    help="Who files it: the platform's user or service id, or a reviewer's name.",
)
@click.option("--desk", "desk_url", envvar=DESK_ENV, metavar="URL", help="The review desk.")
@click.option("--audit", metavar="LOG", help=f"The audit log (default: ${AUDIT_ENV}).")
def appeal_command(
    decision_id: str, reason: str, filed_by: str, desk_url: str | None, audit: str | None
) -> None:
    """Put decided decision ID back at the top of the desk with --reason: the reviewer sees the
    original decision and its history. The appeal is recorded in the audit log."""
    desk = recording_desk(env_settings(review=desk_url, audit=audit))
    try:
        item = desk.appeal(decision_id, reason, by=filed_by)
    except UnknownItem as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_NOT_FOUND) from exc
    except ModerationError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_DESK) from exc
    finally:
        desk.close()
    click.echo(f"decision {decision_id} is back on the desk: item {item.id}, round {item.round}")


# The variables `review deliver` reads (beside the desk): a problem in another does not stop it.
_DELIVER_VARS = (
    "MODERATION_REVIEW_WEBHOOK",
    "MODERATION_REVIEW_WEBHOOK_KEY",
    "MODERATION_QUARANTINE_BUCKET",
    "MODERATION_REGION",
)
EXIT_UNDELIVERED = 1


@review.command(
    name="deliver",
    epilog=f"""\b
Exit codes:
  0  every due delivery was delivered (with --list: listed)
  1  some failed: they stay in the outbox, due again later (see --list)
  2  usage error (no desk URL, a URL the desk refuses, a bad webhook setting)
  3  the desk failed (run again: nothing is lost)

The desk is --desk, else ${DESK_ENV}. The webhook is $MODERATION_REVIEW_WEBHOOK, signed with
$MODERATION_REVIEW_WEBHOOK_KEY; a rejected object in S3 is moved to
$MODERATION_QUARANTINE_BUCKET when it is set.""",
)
@click.option(
    "--desk",
    "desk_url",
    envvar=DESK_ENV,
    metavar="URL",
    help=f"The review desk (default: ${DESK_ENV}).",
)
@click.option(
    "--list",
    "list_only",
    is_flag=True,
    help="List the deliveries not done yet (due or waiting, with their last error); send nothing.",
)
def deliver_command(desk_url: str | None, list_only: bool) -> None:
    """Deliver the effects of final verdicts that are due in the desk's outbox: the S3 object's
    tags (and quarantine of a rejection), then the signed webhook.

    Prints how many were delivered and how many failed; a failed one stays in the outbox, due
    again after a growing delay (1 min, 5 min, 30 min, 2 h, then every 6 h).
    """
    reading = read_env()
    problems = [p for p in reading.problems if p.split(":", 1)[0] in _DELIVER_VARS]
    if problems:
        raise click.UsageError(str(ConfigurationError(problems)))
    desk = _open(desk_url)
    try:
        if list_only:
            _list_deliveries(desk.pending_deliveries())
            return
        count = Effects.from_settings(desk, reading.settings).deliver_due()
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from exc
    except ModerationError as exc:
        click.echo(f"error: the review desk failed: {exc}; run again", err=True)
        raise click.exceptions.Exit(EXIT_DESK) from exc
    finally:
        desk.close()
    _report_delivery(count)


def _list_deliveries(pending: list[Delivery]) -> None:
    for d in pending:
        tried = f"{d.attempts} failed attempt{'s' if d.attempts != 1 else ''}"
        error = f"  last error: {d.last_error}" if d.last_error else ""
        click.echo(
            f"{d.id}  decision {d.verdict.decision_id}  {d.verdict.verdict.value}  {tried}, "
            f"next {d.next_attempt_at.isoformat(timespec='seconds')}{error}"
        )
    failing = sum(1 for d in pending if d.attempts)
    click.echo(f"{len(pending)} pending, {failing} of them failed before")


def _report_delivery(count: DeliveryCount) -> None:
    failed = len(count.failed)
    click.echo(f"{count.delivered} delivered, {failed} failed")
    for delivery_id, why in count.failed:
        click.echo(f"error: delivery {delivery_id} kept in the outbox: {why}", err=True)
    if failed:
        raise click.exceptions.Exit(EXIT_UNDELIVERED)
