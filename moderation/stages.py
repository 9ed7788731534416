"""The judge stage: escalations wait here for the judge, so that detection never waits for them.

`Engine.moderate_many` and `Engine.amoderate` detect on their own threads; an image that triage
escalates is handed to the engine's `JudgeStage` and the detection thread moves on to the next
image. The stage judges on threads of its own (`workers`), each call paced by the Bedrock limiter
inside the judge, and holds at most `bound` escalations at once (waiting for a thread, for the
limiter, or in the call): a detection thread with one more to hand over waits until one is
decided. So Rekognition runs at its quota while the judge works through its backlog at its own,
and memory stays bounded however long that backlog grows.

`depth` is the escalations held now. A handed-over escalation is always decided (and audited):
the future `submit` returns cannot be cancelled, and `shutdown` waits for every one.

Pure: threads and the standard library only.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["JudgeStage", "StageStats"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StageStats:
    """What a stage reports: escalations held now (`depth`) and at most (`peak`) of `bound`,
    handed over in all (`submitted`), and the callers (detection threads) waiting for room now
    (`blocked`) and the seconds they waited in all (`waited_s`)."""

    depth: int
    peak: int
    bound: int
    workers: int
    submitted: int
    blocked: int
    waited_s: float


class JudgeStage(Generic[T]):
    """A bounded queue of pending judgments and the threads that make them. Thread-safe."""

    def __init__(
        self,
        *,
        workers: int,
        bound: int,
        name: str = "judge",
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        for what, value in (("workers", workers), ("bound", bound)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{what} must be a whole number of at least 1, got {value!r}")
        self.workers = workers
        self.bound = bound
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._room = threading.BoundedSemaphore(bound)
        self._lock = threading.Lock()
        self._timer = timer
        self._depth = 0
        self._peak = 0
        self._submitted = 0
        self._blocked = 0
        self._waited = 0.0

    def submit(self, judgment: Callable[[], T]) -> Future[T]:
        """Hand `judgment` over, waiting while `bound` are held; its future, already running
        (so that nothing can cancel it: the judgment is made, and audited, whatever the caller
        does). Runs in the caller's context variables."""
        if not self._room.acquire(blocking=False):
            start = self._timer()
            with self._lock:
                self._blocked += 1
            self._room.acquire()
            with self._lock:
                self._blocked -= 1
                self._waited += self._timer() - start
        with self._lock:
            self._depth += 1
            self._peak = max(self._peak, self._depth)
            self._submitted += 1
        out: Future[T] = Future()
        out.set_running_or_notify_cancel()
        try:
            inner = self._executor.submit(contextvars.copy_context().run, judgment)
        except BaseException:
            self._release()
            raise
        inner.add_done_callback(lambda done: self._finish(done, out))
        return out

    def _finish(self, done: Future[T], out: Future[T]) -> None:
        self._release()
        error = done.exception()
        if error is None:
            out.set_result(done.result())
        else:
            out.set_exception(error)

    def _release(self) -> None:
        with self._lock:
            self._depth -= 1
        self._room.release()

    @property
    def depth(self) -> int:
        """Escalations held now: waiting for a thread, for the judge's limiter, or in the call."""
        with self._lock:
            return self._depth

    def stats(self) -> StageStats:
        """The stage's counts so far (see `StageStats`)."""
        with self._lock:
            return StageStats(
                depth=self._depth,
                peak=self._peak,
                bound=self.bound,
                workers=self.workers,
                submitted=self._submitted,
                blocked=self._blocked,
                waited_s=self._waited,
            )

    def shutdown(self) -> None:
        """Stop the threads once every escalation handed over is decided."""
        self._executor.shutdown(wait=True)
