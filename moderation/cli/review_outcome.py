"""`moderation review appeal` and `moderation review deliver`: a decided image goes back to the
desk; a final verdict's effects (S3, the webhook) are delivered."""

from __future__ import annotations

from dataclasses import replace

import click

from moderation.audit import history
from moderation.cli._common import default_policies, env_settings, load_store
from moderation.cli._desk import (
    AUDIT_ENV,
    DESK_ENV,
    EXIT_BAD_POLICIES,
    desk_work,
    open_plain_desk,
    recording_desk,
)
from moderation.decision import Decision
from moderation.errors import ConfigurationError, UnknownItem, UnknownTenant
from moderation.review import Delivery, DeliveryCount, DeskRules, Effects, desk_rules
from moderation.settings import Settings, is_file_sink, read_env

__all__ = ["appeal_command", "deliver_command"]


_APPEAL_EPILOG = f"""\b
Exit codes:
  0  the decision is back on the desk, first in line, as an appeal
  1  neither the desk nor the audit log holds the decision
  2  usage error (no desk or audit log, a URL the desk refuses)
  3  the desk refused the appeal (the item still waits for its verdict) or failed

The desk is --desk, else ${DESK_ENV}; the audit log is --audit, else ${AUDIT_ENV}."""


@click.command(name="appeal", epilog=_APPEAL_EPILOG)
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
@click.option(
    "--policies",
    "policies_path",
    help="Where the policies are, for the desk rules of an automatic outcome appealed "
    "(default: $MODERATION_POLICIES, else ./policies).",
)
def appeal_command(
    decision_id: str,
    reason: str,
    filed_by: str,
    desk_url: str | None,
    audit: str | None,
    policies_path: str | None,
) -> None:
    """Put decided decision ID back at the top of the desk with --reason: the reviewer sees the
    original decision and its history. An automatic outcome the desk never held is read from the
    audit log (a file) and becomes an appeal item. The appeal is recorded in the audit log."""
    settings = env_settings(review=desk_url, audit=audit)
    with desk_work(recording_desk(settings)) as desk:
        if desk.find(decision_id) is not None:
            item = desk.appeal(decision_id, reason, by=filed_by)
        else:
            decision = _logged_decision(decision_id, settings)
            rules = _appeal_rules(decision, policies_path)
            item = desk.appeal(decision, reason, by=filed_by, rules=rules)
    click.echo(f"decision {decision_id} is back on the desk: item {item.id}, round {item.round}")


def _logged_decision(decision_id: str, settings: Settings) -> Decision:
    """Decision `decision_id` from the file audit log; UnknownItem when it holds none."""
    log = settings.audit or ""
    if not is_file_sink(log):
        raise UnknownItem(
            f"the review desk holds no item for decision {decision_id!r}, and the audit log "
            f"{log} is not a file to find the decision in"
        )
    found = history(decision_id, log, key=settings.audit_key)
    if found is None:
        raise UnknownItem(
            f"the review desk holds no item for decision {decision_id!r}, and {log} holds no "
            "such decision"
        )
    return found.decision


def _appeal_rules(decision: Decision, policies_path: str | None) -> DeskRules | None:
    """The desk rules of the decision's policy (None, the desk's defaults, when the store does
    not hold it); never a QA rate: an appeal is no sample."""
    store = load_store(policies_path or default_policies(), exit_code=EXIT_BAD_POLICIES)
    try:
        policy = store.policy(decision.policy.id)
    except UnknownTenant:
        return None
    return replace(desk_rules(decision, policy), qa_rate=None)


# The variables `review deliver` reads (beside the desk): a problem in another does not stop it.
_DELIVER_VARS = (
    "MODERATION_REVIEW_WEBHOOK",
    "MODERATION_REVIEW_WEBHOOK_KEY",
    "MODERATION_QUARANTINE_BUCKET",
    "MODERATION_REGION",
)
EXIT_UNDELIVERED = 1


@click.command(
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
    with desk_work(open_plain_desk(desk_url), "the review desk failed: {}; run again") as desk:
        if list_only:
            _list_deliveries(desk.pending_deliveries())
            return
        try:
            count = Effects.from_settings(desk, reading.settings).deliver_due()
        except ConfigurationError as exc:
            raise click.UsageError(str(exc)) from exc
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
