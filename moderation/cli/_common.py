"""What every command group shares: loading the policies, printing problems, exit codes."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import click

from moderation.errors import PolicyError, Problem
from moderation.policy import PolicyStore

__all__ = ["POLICIES_ENV", "default_policies", "load_store", "print_problems"]

POLICIES_ENV = "MODERATION_POLICIES"


def default_policies() -> str:
    """The policy directory: $MODERATION_POLICIES, else ./policies."""
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
) -> PolicyStore:
    """The store at `path`, or every problem printed and an exit with `exit_code`.

    `fallback_to_default` and `drafts` are passed to `PolicyStore`.
    """
    try:
        return PolicyStore(path, fallback_to_default=fallback_to_default, drafts=drafts)
    except PolicyError as exc:
        print_problems(exc.problems)
        print_problems(exc.warnings)
        raise click.exceptions.Exit(exit_code) from exc
