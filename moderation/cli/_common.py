"""What every command group shares: the environment's settings, loading the policies, the audit
log's key, printing problems, exit codes.

The environment is read through `moderation.settings` (the one table of variables) and the
policies are built by `moderation.wiring`, as the engine and the Lambda build them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from moderation import wiring
from moderation.errors import ConfigurationError, ModerationError, PolicyError, Problem
from moderation.policy import Policy, PolicyStore
from moderation.settings import Settings, policies_location, read_env

__all__ = [
    "EXIT_USAGE",
    "KEY_ENV",
    "POLICIES_ENV",
    "audit_key",
    "default_policies",
    "env_policies",
    "env_settings",
    "load_store",
    "print_problems",
]

POLICIES_ENV = "MODERATION_POLICIES"
KEY_ENV = "MODERATION_AUDIT_KEY"
EXIT_USAGE = 2


def env_settings(**options: Any) -> Settings:
    """The environment's settings with the command-line `options` that are not None over them,
    or every bad variable printed and an exit 2."""
    try:
        return Settings.from_env().with_options(**options)
    except ConfigurationError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_USAGE) from exc


def env_policies() -> str | None:
    """$MODERATION_POLICIES (a directory, s3://bucket/prefix or
    appconfig://application/environment/profile) when it is set. Only a bad MODERATION_POLICIES
    stops the command (exit 2): a command that reads no other variable is not failed by one."""
    reading = read_env()
    if POLICIES_ENV in reading.bad:
        bad = [p for p in reading.problems if p.startswith(f"{POLICIES_ENV}:")]
        click.echo(f"Error: {ConfigurationError(bad)}", err=True)
        raise click.exceptions.Exit(EXIT_USAGE)
    return reading.settings.policies if POLICIES_ENV in os.environ else None


def default_policies() -> str:
    """Where the policies are: $MODERATION_POLICIES, else ./policies."""
    return env_policies() or Settings().policies


def print_problems(problems: tuple[Problem, ...], *, err: bool = True) -> None:
    """One line per problem, `warning: ` before the warnings."""
    for problem in problems:
        label = "warning: " if problem.severity == "warning" else ""
        click.echo(f"{label}{problem.render()}", err=err)


def load_store(
    path: str | Path,
    *,
    exit_code: int = 1,
    fallback_to_default: bool = False,
    drafts: Iterable[Path] = (),
    region: str | None = None,
) -> PolicyStore:
    """The store at `path` (a directory, `s3://bucket/prefix` or `appconfig://app/env/profile`),
    or every problem printed and an exit with `exit_code`.

    `fallback_to_default` and `drafts` are passed to `PolicyStore`; drafts need a directory.
    `region` (default the environment's: $MODERATION_REGION, else AWS_REGION or boto3's) is for
    S3 and AppConfig. A command reads one version of the policies: the store is not checked again
    while it runs.
    """
    drafts = list(drafts)
    remote = isinstance(path, str) and policies_location(path) != "dir"
    if remote and drafts:
        raise click.UsageError(
            f"draft policy files can only be checked against a policy directory, not {path}; "
            "copy the policies to a directory (or pass --policies DIR) to check drafts"
        )
    try:
        if remote:
            settings = Settings(
                policies=str(path),
                tenant_fallback=fallback_to_default,
                region=region or read_env().settings.region,
            )
            return wiring.policy_store(settings, ttl=math.inf)
        return PolicyStore(path, fallback_to_default=fallback_to_default, drafts=drafts)
    except PolicyError as exc:
        print_problems(exc.problems)
        print_problems(exc.warnings)
        raise click.exceptions.Exit(exit_code) from exc
    except ConfigurationError as exc:  # e.g. no AWS region for S3 or AppConfig: a usage error
        click.echo(f"Error: {exc}", err=True)
        raise click.exceptions.Exit(2) from exc


def usage_exit(message: str) -> click.exceptions.Exit:
    """`Error: message` on stderr, and the usage exit (2) to raise."""
    click.echo(f"Error: {message}", err=True)
    return click.exceptions.Exit(EXIT_USAGE)


def tenant_store(settings: Settings, tenant: str, *, exit_code: int) -> tuple[PolicyStore, Policy]:
    """The store at `settings.policies`, read once, and `tenant`'s policy: invalid policies exit
    with `exit_code` (every problem printed), an unknown tenant is a usage error (a mistake in
    the command, not in an image)."""
    store = load_store(
        settings.policies,
        exit_code=exit_code,
        fallback_to_default=settings.tenant_fallback,
        region=settings.region,
    )
    try:
        return store, store.get(tenant)
    except ModerationError as exc:
        raise usage_exit(str(exc)) from exc


def audit_key(key_file: Path | None) -> bytes | None:
    """The key of a keyed audit log: `key_file`'s bytes (one trailing newline dropped), else
    $MODERATION_AUDIT_KEY, else None; a usage error when either is empty or unreadable."""
    if key_file is not None:
        try:
            raw = key_file.read_bytes()
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {key_file}: {exc}", param_hint="--key-file"
            ) from exc
        key = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
        if not key:
            raise click.BadParameter(f"{key_file} is empty", param_hint="--key-file")
        return key
    value = os.environ.get(KEY_ENV)
    if value is None:
        return None
    if not value.strip():
        raise click.UsageError(f"{KEY_ENV} is set but empty (unset it for an unkeyed log)")
    return value.encode()
