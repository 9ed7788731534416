"""`moderation tune`: category thresholds proposed from reviewers' verdicts in the audit log."""

from __future__ import annotations

import json
from pathlib import Path

import click

from moderation.audit import log_files
from moderation.cli._common import POLICIES_ENV, audit_key, env_policies, print_problems
from moderation.errors import PolicyError, TuningError, UnknownTenant
from moderation.tuning import render, to_json, tune

__all__ = ["tune_command"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BAD_LOG, EXIT_BAD_POLICIES = 0, 1, 2, 3, 4

_EPILOG = """\b
Exit codes:
  0  done (a proposal, or none where the labels prove nothing; see the notes)
  1  nothing to tune from: no labels for the tenant, or an unknown tenant
  2  usage error (a rate or confidence out of range, no --policies, scipy missing)
  3  a named log does not exist or cannot be read
  4  the policies are invalid

The live policy is never edited: the proposal is printed as a diff of the tenant's file, and
--write FILE writes it as a candidate policy to run as a shadow of the live one. docs/tuning.md
says what the method proves and assumes."""


# A rate or a confidence: strictly between 0 and 1.
_RATE = click.FloatRange(min=0, max=1, min_open=True, max_open=True)


@click.command("tune", epilog=_EPILOG)
@click.argument("tenant")
@click.argument("logs", nargs=-1, required=True)
@click.option("--policies", "directory", help="Policy directory (default: $MODERATION_POLICIES).")
@click.option(
    "--max-false-approve",
    type=_RATE,
    required=True,
    help="Highest acceptable share of harmful images among automatic approvals (0..1).",
)
@click.option(
    "--max-false-reject",
    type=_RATE,
    required=True,
    help="Highest acceptable share of harmless images among automatic rejections (0..1).",
)
@click.option(
    "--confidence",
    type=_RATE,
    default=0.95,
    show_default=True,
    help="Probability with which both rates hold for each rule changed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option(
    "--write",
    "write",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the proposal as a policy file to run as a shadow of the live one.",
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Key of a keyed audit log: only verified review records count as labels.",
)
def tune_command(
    tenant: str,
    logs: tuple[str, ...],
    directory: str | None,
    max_false_approve: float,
    max_false_reject: float,
    confidence: float,
    as_json: bool,
    write: Path | None,
    key_file: Path | None,
) -> None:
    """Propose TENANT's category thresholds from the reviewers' verdicts in the audit logs LOGS:
    the thresholds that send the fewest images to the judge and to people while, with the asked
    confidence, false approvals and false rejections stay under their limits.
    """
    directory = directory or env_policies()
    if not directory:
        raise click.UsageError(f"--policies DIR is required (or set {POLICIES_ENV})")
    key = audit_key(key_file)
    _check_logs(logs)
    try:
        proposal = tune(
            list(logs),
            directory,
            tenant,
            max_false_approve=max_false_approve,
            max_false_reject=max_false_reject,
            confidence=confidence,
            key=key,
        )
    except PolicyError as exc:
        print_problems(exc.problems)
        raise click.exceptions.Exit(EXIT_BAD_POLICIES) from exc
    except (TuningError, UnknownTenant) as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_ERROR) from exc
    except ImportError as exc:  # scipy, the `tuning` extra, is not installed
        click.echo(f"Error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_USAGE) from exc
    written = None
    if write is not None and proposal.shadow_text is not None:
        write.write_text(proposal.shadow_text, encoding="utf-8")
        written = str(write)
    elif write is not None:
        click.echo(f"nothing written to {write}: no change is proposed", err=True)
    if as_json:
        click.echo(json.dumps(to_json(proposal, written)))
    else:
        click.echo(render(proposal, written), nl=False)


def _check_logs(logs: tuple[str, ...]) -> None:
    for path in logs:
        try:
            log_files(path)
        except OSError as exc:
            click.echo(f"error: {exc}", err=True)
            raise click.exceptions.Exit(EXIT_BAD_LOG) from exc
