"""Engines for tests: one installed for module-level `moderate()` for a while, and offline ones."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Mapping
from contextlib import ContextDecorator
from types import TracebackType
from typing import Any, TypeVar, cast

import moderation.engine as _engine_module
from moderation.audit import InMemoryAuditLog
from moderation.engine import Engine
from moderation.policy import PolicyStore
from moderation.ports import AuditLog, Detector, Judge
from moderation.testing.fakes import StaticDetector, StaticJudge
from moderation.testing.recorded import RecordedDetector, RecordedJudge, Recordings

__all__ = ["offline_engine", "use_engine"]

F = TypeVar("F", bound=Callable[..., Any])


# Lower case like contextlib.suppress: it reads as a verb at the `with` and on the decorator.
class use_engine(ContextDecorator):
    """Makes `engine` the one module-level `moderation.moderate()` uses, until the block ends.

    `with use_engine(engine): ...` or `@use_engine(engine)` on a function (sync or async). On exit,
    normal or by an exception, the engine that was installed before is put back exactly, None
    included: no engine is built from the environment. Nesting works; `__enter__` returns `engine`.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # A stack, not one slot: the same instance may be entered again while active (a decorated
        # function that recurses, or one object used around several nested blocks).
        self._previous: list[Engine | None] = []

    def __enter__(self) -> Engine:
        # Read and swap under the module's lock, not via get_engine(): that would build an engine
        # from the environment when none is installed, and a concurrent configure() could slip
        # between a read and a write.
        with _engine_module._default_lock:
            self._previous.append(_engine_module._default)
            _engine_module._default = self.engine
        return self.engine

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with _engine_module._default_lock:
            _engine_module._default = self._previous.pop()

    def __call__(self, func: F) -> F:
        """`func` wrapped so that the engine is installed while it runs (awaited, if async)."""
        if inspect.iscoroutinefunction(func):
            # ContextDecorator alone would leave the block as soon as the coroutine is created,
            # before any of its body has run.
            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await func(*args, **kwargs)

            return cast(F, run_async)
        return super().__call__(func)


def offline_engine(
    policies: str | os.PathLike[str] | PolicyStore | Mapping[str, str] = "policies",
    recordings: str | os.PathLike[str] | Recordings | None = None,
    *,
    detector: Detector | None = None,
    judge: Judge | None = None,
    audit: AuditLog | None = None,
) -> Engine:
    """An Engine that makes no AWS call: recorded or static fakes and an in-memory audit log.

    `policies` is a policy directory, a `PolicyStore`, or `{"default": yaml, "kids": yaml}`.
    With `recordings` (a directory or `Recordings`), the detector and judge answer from them;
    without, the detector sees nothing (`StaticDetector()`) and the judge answers "unsure"
    (`StaticJudge("unsure")`), so a borderline image goes to review. `detector`, `judge` and
    `audit` replace the defaults; the default audit log is an `InMemoryAuditLog` (`.decisions`).
    """
    store = PolicyStore.of(policies)
    recorded: Recordings | None
    if recordings is None or isinstance(recordings, Recordings):
        recorded = recordings
    else:
        recorded = Recordings.load(recordings)
    if detector is None:
        detector = RecordedDetector(recorded) if recorded is not None else StaticDetector()
    if judge is None:
        judge = (
            RecordedJudge(recorded)
            if recorded is not None
            else StaticJudge("unsure", "offline_engine: no recordings and no judge were given")
        )
    return Engine(store, detector, judge, audit if audit is not None else InMemoryAuditLog())
