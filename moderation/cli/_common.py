"""What every command group shares: loading the policies, printing problems, exit codes."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import click

from moderation.errors import ConfigurationError, PolicyError, Problem
from moderation.policy import PolicyStore
from moderation.settings import policies_location

__all__ = ["POLICIES_ENV", "default_policies", "load_store", "print_problems"]

POLICIES_ENV = "MODERATION_POLICIES"
REGION_ENV = "MODERATION_REGION"


def default_policies() -> str:
    """Where the policies are: $MODERATION_POLICIES (a directory, s3://bucket/prefix or
    appconfig://application/environment/profile), else ./policies."""
    return os.environ.get(POLICIES_ENV, "policies")


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
    `region` (default $MODERATION_REGION, else AWS_REGION or boto3's) is for S3 and AppConfig.
    A command reads one version of the policies: the store is not checked again while it runs.
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
            return PolicyStore.load(
                path,
                ttl=math.inf,
                fallback_to_default=fallback_to_default,
                region=region or os.environ.get(REGION_ENV) or None,
            )
        return PolicyStore(path, fallback_to_default=fallback_to_default, drafts=drafts)
    except PolicyError as exc:
        print_problems(exc.problems)
        print_problems(exc.warnings)
        raise click.exceptions.Exit(exit_code) from exc
    except ConfigurationError as exc:  # e.g. no AWS region for S3 or AppConfig: a usage error
        click.echo(f"Error: {exc}", err=True)
        raise click.exceptions.Exit(2) from exc
