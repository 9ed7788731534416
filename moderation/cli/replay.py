"""`moderation replay`: what today's policies would have done to recorded decisions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from moderation import wiring
from moderation.audit import log_files
from moderation.audit._s3read import is_s3
from moderation.cli._common import POLICIES_ENV, env_policies, env_settings, load_store
from moderation.errors import ModerationError, ReplayError
from moderation.ports import Judge
from moderation.replay._live import LiveJudging, LivePlan
from moderation.replay._report import DEFAULT_KEEP, ReplayReport
from moderation.replay._run import replay as run_replay
from moderation.replay._run import shadow_reports

__all__ = ["EXIT_BAD_POLICIES", "EXIT_BAD_RECORD", "EXIT_FLIPPED", "replay"]

EXIT_OK, EXIT_FLIPPED, EXIT_USAGE, EXIT_BAD_RECORD, EXIT_BAD_POLICIES = 0, 1, 2, 3, 4

_EPILOG = """\b
Exit codes:
  0  replayed (flips and bad records are reported, not failed on)
  1  --fail-on-flip and at least one decision flipped
  2  usage error
  3  --strict and a bad record (file:line named), or a named log does not exist
  4  the policies are invalid

A PATH is a live log, read with its rotated predecessors (PATH.1, PATH.2, ...). Nothing in a log
makes replay open another file; with --live, images are read only from --images."""


def _usage(message: str) -> click.exceptions.Exit:
    click.echo(f"Error: {message}", err=True)
    return click.exceptions.Exit(EXIT_USAGE)


def _bedrock_judge(region: str | None) -> Judge:
    """The judge `Engine.from_settings` builds, from the environment and --region."""
    settings = env_settings(region=region)
    try:
        judge = wiring.judge(settings)
    except ModerationError as exc:  # e.g. no AWS region
        raise _usage(f"cannot build the judge: {exc}") from exc
    if judge is None:
        raise _usage("--live needs a judge, but MODERATION_JUDGE=none")
    return judge


@click.command(epilog=_EPILOG)
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--policies",
    "directory",
    help="Policy directory to replay under (default: $MODERATION_POLICIES).",
)
@click.option("--tenant", help="Replay only this tenant's decisions.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--fail-on-flip", is_flag=True, help="Exit 1 when any decision flipped (for CI).")
@click.option("--strict", is_flag=True, help="Stop at the first bad record (exit 3).")
@click.option(
    "--shadow",
    is_flag=True,
    help="Compare live outcomes with the shadow results recorded in the log; no policies needed.",
)
@click.option(
    "--keep",
    type=click.IntRange(min=0),
    default=DEFAULT_KEEP,
    show_default=True,
    help="At most this many flips, ids and bad records listed (counts stay exact).",
)
@click.option(
    "--live", is_flag=True, help="Ask the judge about needs-judgment cases (costs money)."
)
@click.option(
    "--max-judge-calls", type=click.IntRange(min=0), help="With --live: the most calls to make."
)
@click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="With --live: a directory of the original images, matched by the sha256 of their bytes.",
)
@click.option(
    "--region", help="With --live: AWS region (default: $MODERATION_REGION, $AWS_REGION)."
)
def replay(
    paths: tuple[str, ...],
    directory: str | None,
    tenant: str | None,
    as_json: bool,
    fail_on_flip: bool,
    strict: bool,
    shadow: bool,
    keep: int,
    live: bool,
    max_judge_calls: int | None,
    images: Path | None,
    region: str | None,
) -> None:
    """Re-run triage on the decisions recorded in the audit logs PATHS under the policies as they
    are now, and report what would change: the decisions that flip, the ones that would need a
    judge's verdict the log does not hold, and the escalation rate and cost before and after.
    """
    _check_live_options(live, shadow, max_judge_calls, images)
    directory = directory or env_policies()
    if not shadow and not directory:
        raise _usage(f"--policies DIR is required (or set {POLICIES_ENV})")
    _check_logs_exist(paths)
    try:
        if shadow:
            flipped = _replay_shadows(paths, tenant, strict, keep, as_json)
        else:
            assert directory is not None
            store = load_store(directory, exit_code=EXIT_BAD_POLICIES)
            judging = None
            if live:
                assert max_judge_calls is not None
                judging = LiveJudging(
                    judge=_bedrock_judge(region),
                    max_calls=max_judge_calls,
                    images=images,
                    on_plan=_tell_plan,
                )
            report = run_replay(
                list(paths), store, tenant=tenant, live=judging, strict=strict, keep=keep
            )
            _print(report, as_json)
            flipped = report.flipped > 0
    except ReplayError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_BAD_RECORD) from exc
    except OSError as exc:  # a log removed between the check and the read
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_BAD_RECORD) from exc
    raise click.exceptions.Exit(EXIT_FLIPPED if fail_on_flip and flipped else EXIT_OK)


def _check_live_options(
    live: bool, shadow: bool, max_judge_calls: int | None, images: Path | None
) -> None:
    """--live needs a call budget and the images; the other two options need --live."""
    if live:
        if shadow:
            raise _usage("--live cannot be used with --shadow")
        if max_judge_calls is None:
            raise _usage("--live needs --max-judge-calls N: the most judge calls it may make")
        if images is None:
            raise _usage("--live needs --images DIR: a log holds no image bytes")
    elif max_judge_calls is not None or images is not None:
        raise _usage("--max-judge-calls and --images only apply with --live")


def _check_logs_exist(paths: tuple[str, ...]) -> None:
    """Exit 3 before any work when a named log does not exist."""
    for path in paths:
        if is_s3(path):  # an S3 trail: a missing one fails when it is listed
            continue
        try:
            log_files(path)
        except OSError as exc:
            click.echo(f"error: {exc}", err=True)
            raise click.exceptions.Exit(EXIT_BAD_RECORD) from exc


def _replay_shadows(
    paths: tuple[str, ...], tenant: str | None, strict: bool, keep: int, as_json: bool
) -> bool:
    """Print the shadow comparisons recorded in the logs; whether any decision flipped."""
    reports, common = shadow_reports(list(paths), tenant=tenant, strict=strict, keep=keep)
    _print_shadows(reports, common.records_read, common.errors, as_json)
    return any(report.flipped for report in reports.values())


def _tell_plan(plan: LivePlan) -> None:
    click.echo(plan.describe(), err=True)


def _print(report: ReplayReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_json()))
    else:
        click.echo(report.render(), nl=False)


def _print_shadows(
    reports: dict[str, ReplayReport], records_read: int, errors: Any, as_json: bool
) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {
                    "shadows": {pid: report.to_json() for pid, report in reports.items()},
                    "records_read": records_read,
                    "errors": [error.model_dump(mode="json") for error in errors],
                }
            )
        )
        return
    if not reports:
        click.echo(f"no shadow results in the {records_read:,} records read")
        for error in errors:
            click.echo(f"  {error.where}: {error.message}")
        return
    for i, (policy_id, report) in enumerate(reports.items()):
        if i:
            click.echo("")
        click.echo(f"== shadow policy {policy_id} (before: live outcome, after: shadow) ==")
        click.echo(report.render(), nl=False)
