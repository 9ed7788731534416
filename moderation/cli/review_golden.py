"""`moderation review golden add|list`: decided images with a known answer, shown blind among a
tenant's items to measure its reviewers (docs/review.md, "Golden items")."""

from __future__ import annotations

import json

import click

from moderation.cli._common import env_settings
from moderation.cli._desk import AUDIT_ENV, DESK_ENV, desk_work, open_plain_desk
from moderation.cli.review_outcome import _logged_decision
from moderation.decision import Outcome
from moderation.review import GoldenItem, ItemKind, NewItem, ReviewDesk, VerdictChoice
from moderation.settings import Settings

__all__ = ["golden_group"]


@click.group(name="golden")
def golden_group() -> None:
    """Golden items: decided images with a known answer, mixed blind into reviewers' queues at
    the tenant's `review.golden_rate` to measure how often each reviewer gets them right."""


@golden_group.command(
    name="add",
    epilog=f"""\b
Exit codes:
  0  the decision's image is a golden item of its tenant
  1  neither the desk nor the audit log holds the decision
  2  usage error (no desk, a bad --answer, a URL the desk refuses)
  3  the desk failed

The desk is --desk, else ${DESK_ENV}; a decision the desk holds no item for is read from the
audit log, --audit, else ${AUDIT_ENV} (a file).""",
)
@click.argument("decision_id")
@click.option(
    "--answer",
    required=True,
    type=click.Choice([c.value for c in VerdictChoice]),
    help="The known right verdict on the image.",
)
@click.option("--desk", "desk_url", envvar=DESK_ENV, metavar="URL", help="The review desk.")
@click.option("--audit", metavar="LOG", help=f"The audit log (default: ${AUDIT_ENV}).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def add_command(
    decision_id: str, answer: str, desk_url: str | None, audit: str | None, as_json: bool
) -> None:
    """Make decided decision DECISION_ID's image a golden item of its tenant, with the known
    --answer. It is shown exactly like a review item (its decision id, reasons, findings and
    image); verdicts on it measure the reviewer and never change the decision's outcome. Adding
    a decision again replaces its answer."""
    settings = env_settings(review=desk_url, audit=audit)
    with desk_work(open_plain_desk(settings.review)) as desk:
        new, telling = _golden_source(desk, decision_id, settings)
        golden = desk.add_golden(new, answer)
    if telling:
        click.echo(
            f"warning: decision {decision_id} was not a review outcome ({telling}); its reasons, "
            "shown with the golden item, may tell a reviewer it is not an ordinary review item",
            err=True,
        )
    if as_json:
        click.echo(json.dumps(golden.model_dump(mode="json"), sort_keys=True))
    else:
        click.echo(
            f"decision {golden.decision_id} is a golden item of {golden.tenant}: "
            f"answer {golden.answer.value}"
        )


def _golden_source(desk: ReviewDesk, decision_id: str, settings: Settings) -> tuple[NewItem, str]:
    """What a showing of the decision shows: its desk item's evidence, else its decision read
    from the audit log; and, when the decision was an automatic outcome, which (else "")."""
    item = desk.find(decision_id)
    if item is not None:
        new = NewItem(
            decision_id=item.decision_id,
            tenant=item.tenant,
            reasons=item.reasons,
            findings=item.findings,
            rationale=item.rationale,
            image=item.image,
        )
        return new, "a blind QA sample" if item.kind is ItemKind.QA else ""
    decision = _logged_decision(decision_id, settings)
    telling = "" if decision.outcome is Outcome.REVIEW else decision.outcome.value
    return NewItem.of(decision), telling


@golden_group.command(
    name="list",
    epilog=f"""\b
Exit codes:
  0  listed (also when there are none)
  2  usage error (no desk, a URL the desk refuses)
  3  the desk failed

The desk is --desk, else ${DESK_ENV}.""",
)
@click.option("--tenant", metavar="TENANT", help="Only this tenant's golden items.")
@click.option("--desk", "desk_url", envvar=DESK_ENV, metavar="URL", help="The review desk.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def list_command(tenant: str | None, desk_url: str | None, as_json: bool) -> None:
    """The golden items, by tenant: decision id, answer, when added, how often shown."""
    with desk_work(open_plain_desk(desk_url)) as desk:
        found: list[GoldenItem] = desk.golden(tenant)
    if as_json:
        click.echo(json.dumps({"golden": [g.model_dump(mode="json") for g in found]}))
        return
    if not found:
        click.echo("no golden items" + (f" of {tenant}" if tenant else ""))
    for g in found:
        click.echo(
            f"{g.tenant}  {g.decision_id}  {g.answer.value}  shown {g.shown}  "
            f"added {g.added_at.isoformat()}"
        )
