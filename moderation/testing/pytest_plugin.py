"""pytest fixtures for golden-decision tests; pytest loads them wherever moderation is installed.

The package declares this module as a `pytest11` entry point named `moderation`, so its fixtures
are there in every test without an import:

- `assert_replay`: `moderation.testing.assert_replay(source, policies, *, allow=(), tenant=None)`,
  which fails the test when a recorded decision flips under `policies`.
- `engine_from_log`: a factory, `engine_from_log(source, policies, *, audit=None,
  allow_other_model=False, install=False) -> Engine`, for an offline engine that answers as the
  log recorded; with `install=True` module-level `moderation.moderate()` uses it until the test
  ends, and the engine installed before is put back.

With plugin autoloading off (`PYTEST_DISABLE_PLUGIN_AUTOLOAD=1`), load it with `-p moderation`.
pytest imports this module at the start of every run: it imports no boto3 and does no work (its
parent packages, `moderation` and `moderation.testing`, are the whole cost); the fixtures import
what they use when a test asks for them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from moderation.engine import Engine
    from moderation.policy import PolicyStore
    from moderation.ports import AuditLog
    from moderation.testing._from_log import DecisionLog, LogSource

__all__ = ["EngineFromLog", "assert_replay", "engine_from_log"]


class EngineFromLog(Protocol):
    """The `engine_from_log` fixture's factory."""

    def __call__(
        self,
        source: DecisionLog | LogSource,
        policies: PolicyStore | str | os.PathLike[str] | Mapping[str, str],
        *,
        audit: AuditLog | None = None,
        allow_other_model: bool = False,
        install: bool = False,
    ) -> Engine:
        """An offline engine answering from the log; installed for the test with install=True."""
        ...


@pytest.fixture
def assert_replay() -> Callable[..., Any]:
    """`moderation.testing.assert_replay`: fails the test when a recorded decision flips.

    `assert_replay(source, policies, *, allow=(), tenant=None)` passes when no decision of the log
    at `source` changes its outcome under `policies` (or only the decision ids in `allow`), and
    fails on decisions that would need a new judgment and on unreadable records, with a table.
    It returns the replay report.
    """
    from moderation.testing import assert_replay as function

    replay: Callable[..., Any] = function
    return replay


@pytest.fixture
def engine_from_log() -> Iterator[EngineFromLog]:
    """A factory for offline engines that answer as a decision log recorded.

    `engine_from_log(source, policies, *, audit=None, allow_other_model=False, install=False)`;
    see `moderation.testing.engine_from_log`. With `install=True` the engine is the one
    module-level `moderation.moderate()` uses until the test ends; the previous one is put back
    then, whatever the test did.
    """
    from moderation.testing import engine_from_log as build
    from moderation.testing import use_engine

    installed: list[use_engine] = []

    def make(
        source: DecisionLog | LogSource,
        policies: PolicyStore | str | os.PathLike[str] | Mapping[str, str],
        *,
        audit: AuditLog | None = None,
        allow_other_model: bool = False,
        install: bool = False,
    ) -> Engine:
        engine = build(source, policies, audit=audit, allow_other_model=allow_other_model)
        if install:
            block = use_engine(engine)
            block.__enter__()
            installed.append(block)
        return engine

    yield make
    # Last installed first: each puts back exactly what was there when it was entered.
    for block in reversed(installed):
        block.__exit__(None, None, None)
