"""`moderation policy ...`: validate, show, print the schema of, and try tenant policies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from moderation.cli._common import default_policies, load_store, print_problems
from moderation.decision import decision_schema
from moderation.detection import Detection
from moderation.errors import ModerationError
from moderation.policy import policy_schema
from moderation.triage import evaluate

__all__ = ["policy"]


@click.group()
def policy() -> None:
    """Validate, inspect and try per-tenant policies."""


@policy.command()
@click.argument("directory", required=False)
def validate(directory: str | None) -> None:
    """Check every policy in DIRECTORY (default: $MODERATION_POLICIES or ./policies).

    Prints each problem as `file:line: key.path: message (hint)` and exits 1 if there is any.
    """
    store = load_store(directory or default_policies())
    print_problems(store.warnings)
    count = len(store.tenants) + 1
    click.echo(f"ok: default and {count - 1} tenant polic{'y' if count == 2 else 'ies'} valid")


@policy.command()
@click.argument("tenant")
@click.option("--policies", "directory", help="Policy directory (default: ./policies).")
def show(tenant: str, directory: str | None) -> None:
    """Print TENANT's resolved policy as JSON, with its chain and sha256."""
    store = load_store(directory or default_policies())
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
    store = load_store(directory or default_policies())
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
