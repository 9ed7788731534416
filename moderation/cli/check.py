"""`moderation check`: moderate images from the command line."""

from __future__ import annotations

import os
from pathlib import Path

import click

from moderation.cli._common import load_store
from moderation.engine import Engine
from moderation.errors import ConfigurationError, ModerationError
from moderation.policy import PolicyStore
from moderation.ports import AuditLog
from moderation.settings import Settings

__all__ = ["EXIT_BAD_POLICIES", "EXIT_NOT_APPROVED", "EXIT_UNDECIDED", "check"]

EXIT_APPROVED, EXIT_NOT_APPROVED, EXIT_USAGE, EXIT_UNDECIDED, EXIT_BAD_POLICIES = 0, 1, 2, 3, 4

_EPILOG = """\b
Exit codes:
  0  every image approved
  1  at least one image rejected or sent to review
  2  usage error (unknown option, a path that does not exist, bad configuration)
  3  at least one image could not be moderated (not an image, S3 or detector failure)
  4  the policies are invalid

Settings come from the environment (MODERATION_POLICIES, MODERATION_REGION or AWS_REGION,
MODERATION_AUDIT, MODERATION_PROJECT_VERSION, MODERATION_JUDGE, MODERATION_TENANT_FALLBACK);
the options override them. Audit records go to stderr unless MODERATION_AUDIT or --audit
names another sink."""


def _usage(message: str) -> click.exceptions.Exit:
    click.echo(f"Error: {message}", err=True)
    return click.exceptions.Exit(EXIT_USAGE)


@click.command(epilog=_EPILOG)
@click.argument("images", nargs=-1, required=True)
@click.option("--tenant", default="default", show_default=True, help="Whose policy applies.")
@click.option("--policies", "directory", help="Policy directory (default: $MODERATION_POLICIES).")
@click.option("--json", "as_json", is_flag=True, help="Print each decision as a JSON line.")
@click.option(
    "--offline",
    "recordings",
    type=click.Path(file_okay=False, path_type=Path),
    help="Answer from recorded Rekognition/Bedrock responses in this directory; no AWS call.",
)
@click.option("--region", help="AWS region (default: $MODERATION_REGION, $AWS_REGION, boto3's).")
@click.option(
    "--audit",
    help="Audit sink: stderr (default), stdout, log, or a file path for JSON lines.",
)
@click.option("--context", "pairs", multiple=True, help="Caller context as key=value (repeatable).")
def check(
    images: tuple[str, ...],
    tenant: str,
    directory: str | None,
    as_json: bool,
    recordings: Path | None,
    region: str | None,
    audit: str | None,
    pairs: tuple[str, ...],
) -> None:
    """Moderate IMAGES (paths or s3://bucket/key): one line each, or JSON lines with --json.

    Each line shows the outcome, the stage that decided and the reason that decided. An image
    that cannot be moderated is reported and the others are still moderated.
    """
    from moderation.audit import audit_log_from_spec

    context: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="--context")
        context[key] = value
    missing = [i for i in images if not i.startswith("s3://") and not os.path.exists(i)]
    if missing:
        raise _usage("no such file: " + ", ".join(missing))
    try:
        settings = Settings.from_env().with_options(policies=directory, region=region, audit=audit)
        sink = audit_log_from_spec(
            settings.audit or "stderr",
            key=settings.audit_key,
            rotate_bytes=settings.audit_rotate_bytes,
            region=settings.region,
        )
    except (ConfigurationError, ValueError) as exc:
        raise _usage(str(exc)) from exc
    store = load_store(
        settings.policies,
        exit_code=EXIT_BAD_POLICIES,
        fallback_to_default=settings.tenant_fallback,
    )
    try:
        store.get(tenant)  # an unknown tenant is a mistake in the command, not in an image
    except ModerationError as exc:
        raise _usage(str(exc)) from exc
    engine = _engine(store, recordings, settings, sink)
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
            click.echo(
                f"{image}  {decision.outcome.value}  by {decision.decided_by.value}  "
                f"{decision.reason}"
            )
        if not decision.approved:
            worst = max(worst, EXIT_NOT_APPROVED)
    raise click.exceptions.Exit(worst)


def _engine(
    store: PolicyStore, recordings: Path | None, settings: Settings, audit: AuditLog
) -> Engine:
    if recordings is not None:
        from moderation.testing.recorded import RecordedDetector, RecordedJudge, Recordings

        try:
            recorded = Recordings.load(recordings)
        except ModerationError as exc:
            raise click.ClickException(str(exc)) from exc
        return Engine(store, RecordedDetector(recorded), RecordedJudge(recorded), audit)
    try:
        return Engine.from_settings(settings, audit=audit, policies=store)
    except ModerationError as exc:  # e.g. no AWS region: nothing can be moderated
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_UNDECIDED) from exc
