"""`moderation check`: moderate images from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from moderation.cli._common import default_policies, load_store
from moderation.errors import ModerationError
from moderation.policy import PolicyStore

__all__ = ["check"]


EXIT_APPROVED, EXIT_NOT_APPROVED, EXIT_UNDECIDED, EXIT_BAD_POLICIES = 0, 1, 3, 4


@click.command()
@click.argument("images", nargs=-1, required=True)
@click.option("--tenant", default="default", show_default=True, help="Whose policy applies.")
@click.option("--policies", "directory", help="Policy directory (default: ./policies).")
@click.option("--json", "as_json", is_flag=True, help="Print each decision as a JSON line.")
@click.option(
    "--offline",
    "recordings",
    type=click.Path(file_okay=False, path_type=Path),
    help="Answer from recorded Rekognition/Bedrock responses in this directory; no AWS call.",
)
@click.option("--region", help="AWS region (default: boto3's resolution).")
@click.option(
    "--audit",
    default="log",
    show_default=True,
    help="Audit sink: log, stdout, stderr, or a file path for JSON lines.",
)
@click.option("--context", "pairs", multiple=True, help="Caller context as key=value (repeatable).")
def check(
    images: tuple[str, ...],
    tenant: str,
    directory: str | None,
    as_json: bool,
    recordings: Path | None,
    region: str | None,
    audit: str,
    pairs: tuple[str, ...],
) -> None:
    """Moderate IMAGES (paths or s3://bucket/key): one line each, or JSON lines with --json."""
    from moderation.audit import audit_log_from_spec

    context: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="--context")
        context[key] = value
    store = load_store(directory or default_policies(), exit_code=EXIT_BAD_POLICIES)
    engine = _engine(store, recordings, region, audit_log_from_spec(audit))
    worst = EXIT_APPROVED
    for image in images:
        try:
            decision = engine.moderate(image, tenant=tenant, context=context)
        except (ModerationError, ValueError) as exc:
            click.echo(f"{image}: error: {exc}", err=True)
            worst = max(worst, EXIT_UNDECIDED)
            continue
        if as_json:
            click.echo(decision.model_dump_json())
        else:
            reason = decision.reasons[-1] if decision.reasons else ""
            click.echo(
                f"{image}  {decision.outcome.value}  by {decision.decided_by.value}  {reason}"
            )
        if not decision.approved:
            worst = max(worst, EXIT_NOT_APPROVED)
    raise click.exceptions.Exit(worst)


def _engine(store: PolicyStore, recordings: Path | None, region: str | None, audit: Any) -> Any:
    from moderation.engine import Engine

    if recordings is not None:
        from moderation.testing.recorded import RecordedDetector, RecordedJudge, Recordings

        try:
            recorded = Recordings.load(recordings)
        except ModerationError as exc:
            raise click.ClickException(str(exc)) from exc
        return Engine(store, RecordedDetector(recorded), RecordedJudge(recorded), audit)
    from moderation.aws.bedrock import BedrockJudge
    from moderation.aws.rekognition import RekognitionDetector

    try:
        detector = RekognitionDetector(region=region)
        judge = BedrockJudge(region=region)
    except ModerationError as exc:  # e.g. no AWS region: nothing can be moderated
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_UNDECIDED) from exc
    return Engine(store, detector, judge, audit)
