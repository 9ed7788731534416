"""`moderation review ...`: the review desk from the command line. Here the commands that put
decisions on the desk and keep it (backfill, ingest, purge); the review page's in review_page.py
(reviewer add, serve), a decided image's in review_outcome.py (appeal, deliver)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from moderation.audit import VerifiedRecords, decisions
from moderation.aws.sqs import LONG_POLL_READ_TIMEOUT, SQSQueue, queue_region
from moderation.cli._common import (
    KEY_ENV,
    audit_key,
    default_policies,
    load_store,
)
from moderation.cli._desk import (
    DESK_ENV,
    EXIT_BAD_POLICIES,
    EXIT_DESK,
    EXIT_NOT_FOUND,
    IMAGES_ENV,
    desk_work,
    open_plain_desk,
)
from moderation.cli.review_golden import golden_group
from moderation.cli.review_outcome import appeal_command, deliver_command
from moderation.cli.review_page import reviewer_group, serve_command
from moderation.cli.review_stats import stats_command
from moderation.decision import Decision
from moderation.errors import (
    AWSError,
    ConfigurationError,
    UnknownTenant,
)
from moderation.policy import Policy, PolicyStore
from moderation.review import (
    DeskRules,
    IngestCount,
    ReviewMessage,
    backfill,
    ingest,
    message_rules,
    open_image_store,
    purge_closed_images,
)

__all__ = ["review"]


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
    with desk_work(
        open_plain_desk(desk_url),
        "the review desk failed: {}; run the backfill again",
        missing=(FileNotFoundError, IsADirectoryError),
    ) as desk:
        store = load_store(policies_path or default_policies(), exit_code=EXIT_BAD_POLICIES)
        reading = _Reading(logs, key)
        count = backfill(desk, reading, _policy_lookup(store))
    click.echo(f"{count.added} added, {count.held} already on the desk")
    if reading.ignored:
        click.echo(
            f"warning: {reading.ignored} records did not verify under the key and were left out",
            err=True,
        )
        raise click.exceptions.Exit(EXIT_NOT_FOUND)


review.add_command(backfill_command, name="backfill")


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
    failed = "the purge failed part way: {}; run it again"
    with desk_work(open_plain_desk(desk_url), failed, also=(OSError,)) as desk:
        count = purge_closed_images(desk, store, before)
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
    desk = open_plain_desk(desk_url)
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


review.add_command(reviewer_group)
review.add_command(serve_command)
review.add_command(appeal_command)
review.add_command(deliver_command)
review.add_command(stats_command)
review.add_command(golden_group)
