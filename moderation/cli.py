"""The `moderation` command line: moderate images, and validate, show and try policies.

Exit codes of `moderation check`: 0 every image approved; 1 at least one rejected or sent to review;
2 usage error; 3 at least one image could not be moderated (not an image, detector failure, no
recording); 4 the policies are invalid. `moderation policy …`: 0 ok, 1 invalid input, 2 usage.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from moderation.detection import Detection
from moderation.errors import ModerationError, PolicyError, Problem
from moderation.policy import PolicyStore
from moderation.schema import decision_schema, policy_schema
from moderation.triage import evaluate

__all__ = ["main"]

POLICIES_ENV = "MODERATION_POLICIES"


def _default_policies() -> str:
    return os.environ.get(POLICIES_ENV, "policies")


def _print_problems(problems: tuple[Problem, ...], *, err: bool = True) -> None:
    for problem in problems:
        label = "warning: " if problem.severity == "warning" else ""
        click.echo(f"{label}{problem.render()}", err=err)


def _load_store(path: str, *, exit_code: int = 1) -> PolicyStore:
    try:
        return PolicyStore(path)
    except PolicyError as exc:
        _print_problems(exc.problems)
        _print_problems(exc.warnings)
        raise click.exceptions.Exit(exit_code) from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="moderation")
def main() -> None:
    """Decide whether uploaded images may be published."""


EXIT_APPROVED, EXIT_NOT_APPROVED, EXIT_UNDECIDED, EXIT_BAD_POLICIES = 0, 1, 3, 4


@main.command()
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
    store = _load_store(directory or _default_policies(), exit_code=EXIT_BAD_POLICIES)
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


@main.group()
def policy() -> None:
    """Validate, inspect and try per-tenant policies."""


@policy.command()
@click.argument("directory", required=False)
def validate(directory: str | None) -> None:
    """Check every policy in DIRECTORY (default: $MODERATION_POLICIES or ./policies).

    Prints each problem as `file:line: key.path: message (hint)` and exits 1 if there is any.
    """
    store = _load_store(directory or _default_policies())
    _print_problems(store.warnings)
    count = len(store.tenants) + 1
    click.echo(f"ok: default and {count - 1} tenant polic{'y' if count == 2 else 'ies'} valid")


@policy.command()
@click.argument("tenant")
@click.option("--policies", "directory", help="Policy directory (default: ./policies).")
def show(tenant: str, directory: str | None) -> None:
    """Print TENANT's resolved policy as JSON, with its chain and sha256."""
    store = _load_store(directory or _default_policies())
    try:
        resolved = store.get(tenant)
    except ModerationError as exc:
        raise click.ClickException(str(exc)) from exc
    if resolved.id != tenant:
        click.echo(f"note: no policy file for {tenant!r}; it gets {resolved.id!r}", err=True)
    body = resolved.model_dump(mode="json")
    body["sha256"] = resolved.sha256
    click.echo(json.dumps(body, indent=2, ensure_ascii=False))


@policy.command()
@click.option("--decision", is_flag=True, help="Print the Decision record's schema instead.")
def schema(decision: bool) -> None:
    """Print the JSON Schema of a policy file (for editors), or of a Decision."""
    click.echo(json.dumps(decision_schema() if decision else policy_schema(), indent=2))


def _read_detection(path: Path) -> Detection:
    try:
        response: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.ClickException(f"{path}: cannot read a JSON response: {exc}") from exc
    try:
        return Detection.from_rekognition(response)
    except ModerationError as exc:
        raise click.ClickException(f"{path}: {exc}") from exc


@policy.command(name="try")
@click.argument("responses", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--policies", "directory", help="Policy directory (default: ./policies).")
@click.option("--tenant", "tenants", multiple=True, help="Tenant(s); default: every policy.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def try_(
    responses: tuple[Path, ...], directory: str | None, tenants: tuple[str, ...], as_json: bool
) -> None:
    """Triage recorded DetectModerationLabels RESPONSES under each tenant's policy.

    Shows, for every response and tenant, the action and the finding that decided it.
    """
    store = _load_store(directory or _default_policies())
    names = list(tenants) or ["default", *store.tenants]
    try:
        policies = [store.get(t) for t in names]
    except ModerationError as exc:
        raise click.ClickException(str(exc)) from exc
    rows: list[tuple[str, ...]] = []
    for path in responses:
        detection = _read_detection(path)
        for tenant, resolved in zip(names, policies, strict=True):
            triage = evaluate(resolved, detection)
            deciding = triage.deciding
            reason = deciding.describe() if deciding else "no label in any band"
            if as_json:
                record = {"response": str(path), "tenant": tenant, "policy_sha256": resolved.sha256}
                record |= triage.model_dump(mode="json")
                click.echo(json.dumps(record, ensure_ascii=False))
            rows.append((path.stem, tenant, triage.action.value, reason))
    if not as_json:
        _print_table(("example", "tenant", "action", "deciding finding"), rows)


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]

    def line(row: tuple[str, ...]) -> str:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        return "  ".join([*cells, row[-1]])

    click.echo(line(header))
    click.echo("  ".join("-" * w for w in widths) + "  " + "-" * len(header[-1]))
    previous = None
    for row in rows:
        if previous is not None and row[0] != previous:
            click.echo("")
        previous = row[0]
        click.echo(line(row))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
