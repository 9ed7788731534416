"""`moderation policy ...`: start, validate, show, print the schema of, and try tenant policies."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from moderation.cli._common import default_policies, load_store, print_problems
from moderation.decision import decision_schema
from moderation.detection import Detection
from moderation.errors import ModerationError, PolicyError, UnknownTenant
from moderation.policy import Policy, PolicyStore, policy_schema
from moderation.policy._starter import write_starter_policies
from moderation.triage import evaluate

__all__ = ["policy"]


@click.group()
def policy() -> None:
    """Validate, inspect and try per-tenant policies."""


@policy.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--force", is_flag=True, help="Overwrite starter policy files already there.")
def init(directory: Path, force: bool) -> None:
    """Write the starter policies shipped with the package into DIRECTORY.

    DIRECTORY/default.yaml and DIRECTORY/tenants/*.yaml (dating, forum, kids, medical), to edit
    and check with `moderation policy validate DIRECTORY`. Refuses, writing nothing, if any of
    those files exists, unless --force.
    """
    try:
        written = write_starter_policies(directory, overwrite=force)
    except FileExistsError as exc:
        raise click.ClickException(f"{exc}; nothing was written (--force overwrites them)") from exc
    except OSError as exc:
        raise click.ClickException(f"cannot write the starter policies: {exc}") from exc
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(
        f"next: edit them, then `moderation policy validate {directory}`; point "
        f"MODERATION_POLICIES (or --policies) at {directory}"
    )


@policy.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Warnings fail the run too (exit 1), for CI.")
@click.option(
    "--policies",
    "directory",
    help="The store a policy file outside any store is checked on top of "
    "(default: $MODERATION_POLICIES or ./policies).",
)
def validate(paths: tuple[Path, ...], strict: bool, directory: str | None) -> None:
    """Check the policies in each PATH: a policy directory, or a single policy file.

    A file inside a store (DIR/default.yaml, DIR/tenants/NAME.yaml) is checked with the whole store
    it belongs to. Any other file is a draft: it is checked as tenant NAME (its file name, in place
    of a tenant of that name) on top of the store given by --policies, so that what it extends and
    how it merges are checked too. With no PATH: $MODERATION_POLICIES or ./policies.

    Prints each problem as `file:line: key.path: message (hint)` and exits 1 if there is any (or,
    with --strict, any warning).
    """
    base = Path(directory or default_policies())
    stores: dict[Path, None] = {}
    drafts: list[Path] = []
    failed = False
    for path in paths or (Path(default_policies()),):
        if not os.path.lexists(path) and path.suffix in (".yaml", ".yml"):
            click.echo(f"{path}: no such file or directory", err=True)
            failed = True
            continue
        root = _store_of(path)
        if root is None:
            drafts.append(path)
        else:
            stores.setdefault(root)
    runs = [(root, ()) for root in stores] + ([(base, tuple(drafts))] if drafts else [])
    for root, on_top in runs:
        failed |= not _validate(root, on_top, strict=strict)
    raise click.exceptions.Exit(1 if failed else 0)


def _store_of(path: Path) -> Path | None:
    """The store directory `path` is, or is a file of; None for a file outside any store."""
    if not os.path.lexists(path):
        return path  # the store says it is not there
    if path.is_dir():
        if path.name == "tenants" and not (path / "default.yaml").exists():
            return path.parent if (path.parent / "default.yaml").exists() else path
        return path
    if path.name == "default.yaml":
        return path.parent
    in_tenants = path.parent.name == "tenants" and path.suffix in (".yaml", ".yml")
    if in_tenants and os.path.lexists(path.parent.parent / "default.yaml"):
        return path.parent.parent
    return None


def _validate(root: Path, drafts: tuple[Path, ...], *, strict: bool) -> bool:
    """Whether the store at `root`, with `drafts` on top, passes; what was found is printed."""
    try:
        store = PolicyStore(root, drafts=drafts)
    except PolicyError as exc:
        print_problems(exc.problems)
        print_problems(exc.warnings)
        return False
    print_problems(store.warnings)
    if strict and store.warnings:
        n = len(store.warnings)
        click.echo(
            f"error: {n} warning{'s' if n != 1 else ''}, and --strict makes warnings fatal",
            err=True,
        )
        return False
    count = len([t for t in store.tenants if t not in {d.stem for d in drafts}])
    existing = f"default and {count} tenant polic{'y' if count == 1 else 'ies'}"
    if not drafts:
        click.echo(f"ok: {existing} valid")
    for draft in drafts:
        click.echo(f"ok: {draft} valid as tenant '{draft.stem}' on top of {root} ({existing})")
    return True


_FALLBACK_HELP = (
    "A tenant without a policy file gets the default policy, as from a store built with "
    "fallback_to_default=True (without this flag it is an error, as in such a store by default)."
)


@policy.command()
@click.argument("tenant")
@click.option("--policies", "directory", help="Policy directory (default: ./policies).")
@click.option("--fallback-to-default", "fallback", is_flag=True, help=_FALLBACK_HELP)
def show(tenant: str, directory: str | None, fallback: bool) -> None:
    """Print TENANT's resolved policy as JSON, with its chain and sha256."""
    store = load_store(directory or default_policies(), fallback_to_default=fallback)
    resolved = _policies(store, (tenant,))[0]
    if tenant in store.candidates:
        naming = ", ".join(store.candidates[tenant])
        click.echo(
            f"note: {tenant!r} is a shadow candidate of {naming}: no tenant is moderated under it",
            err=True,
        )
    elif resolved.id != tenant:
        click.echo(
            f"note: no policy file for {tenant!r}; it falls back to {resolved.id!r}", err=True
        )
    body = resolved.model_dump(mode="json")
    body["sha256"] = resolved.sha256
    click.echo(json.dumps(body, indent=2, ensure_ascii=False))


def _policies(store: PolicyStore, names: Iterable[str]) -> list[Policy]:
    """Each name's policy as a tenant would get it; a shadow candidate's own, to be inspected."""
    try:
        return [store.policy(n) if n in store.candidates else store.get(n) for n in names]
    except UnknownTenant as exc:
        raise click.ClickException(f"{exc}; --fallback-to-default gives it the default") from exc
    except ModerationError as exc:
        raise click.ClickException(str(exc)) from exc


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
@click.option("--fallback-to-default", "fallback", is_flag=True, help=_FALLBACK_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def try_(
    responses: tuple[Path, ...],
    directory: str | None,
    tenants: tuple[str, ...],
    fallback: bool,
    as_json: bool,
) -> None:
    """Triage recorded DetectModerationLabels RESPONSES under each tenant's policy.

    Shows, for every response and tenant, the action and the finding that decided it. A tenant
    that falls back to the default policy is shown as `tenant (default)`.
    """
    store = load_store(directory or default_policies(), fallback_to_default=fallback)
    names = list(tenants) or ["default", *store.tenants]
    policies = _policies(store, names)
    rows: list[tuple[str, ...]] = []
    for path in responses:
        detection = _read_detection(path)
        for tenant, resolved in zip(names, policies, strict=True):
            triage = evaluate(resolved, detection)
            deciding = triage.deciding
            reason = deciding.describe() if deciding else "no label in any band"
            if as_json:
                record = {
                    "response": str(path),
                    "tenant": tenant,
                    "policy": resolved.id,
                    "policy_sha256": resolved.sha256,
                }
                record |= triage.model_dump(mode="json")
                click.echo(json.dumps(record, ensure_ascii=False))
            label = tenant if resolved.id == tenant else f"{tenant} ({resolved.id})"
            if tenant in store.candidates:
                label = f"{tenant} (shadow candidate)"
            rows.append((path.stem, label, triage.action.value, reason))
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
