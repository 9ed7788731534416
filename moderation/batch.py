"""Many images at once: a bounded pool of threads, every input accounted for.

`Engine.moderate_many` runs the first stage of `Engine.moderate` (detection; the decision when
the policy makes it) for each input on up to `max_workers` threads, and yields one `BatchItem` per
input, with the decision or the exception. An input whose first stage hands back a future (an
escalation, on the engine's judge stage: `moderation.stages`) is followed until that future is
done, without a detection thread. What makes it safe for a backlog of millions:

- Memory stays bounded: inputs are pulled from the iterable only as detection threads free up (at
  most `2 * max_workers` are in detection or waiting to be yielded; with `ordered`, `held` more
  decisions may wait behind an escalation), and the judge stage holds at most its own bound, so a
  generator of a million paths never becomes a list.
- Nothing is dropped: every index comes back exactly once, a failing input becomes an item with
  `error` set (never an exception that ends the batch), and every decision is in the audit log
  before its item is yielded (that is `moderate`'s contract).
- Throughput is the account's quota, not the thread count: the engine's rate limiters are shared
  by every thread (see `moderation.limits`).

Pure: threads and the standard library only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moderation.decision import ContextValue, Decision

__all__ = ["BatchInput", "BatchItem", "run_batch"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchInput:
    """One input of a batch with its own tenant or context (else the batch's are used)."""

    image: Any
    tenant: str | None = None
    context: Mapping[str, ContextValue] | None = None


@dataclass(frozen=True, slots=True)
class BatchItem:
    """What became of one input: `decision`, or the `error` that stopped it (never both).

    `index` is the input's position in the iterable (0-based); `source` is the input as given.
    """

    index: int
    source: Any
    decision: Decision | None
    error: Exception | None

    @property
    def ok(self) -> bool:
        """True when the input has a decision."""
        return self.error is None


#: (image, tenant, context) -> the decision, or the future of one a later stage makes.
Moderate = Callable[[Any, str, "Mapping[str, ContextValue] | None"], "Decision | Future[Decision]"]


def run_batch(
    moderate: Moderate,
    images: Iterable[Any],
    *,
    tenant: str,
    context: Mapping[str, ContextValue] | None,
    max_workers: int,
    ordered: bool,
    held: int = 0,
) -> Iterator[BatchItem]:
    """Check the arguments now and return the generator of items (see `Engine.moderate_many`);
    `held`: how many more decisions `ordered` may keep behind one a later stage still makes."""
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ValueError(f"max_workers must be a whole number of at least 1, got {max_workers!r}")
    if isinstance(images, str | bytes | bytearray | memoryview):
        raise TypeError(
            "images is an iterable of images; for one image call moderate(), or wrap it in a list"
        )
    size = 2 * max_workers + (held if ordered else 0)
    return _run(moderate, iter(images), tenant, context, max_workers, size, ordered)


def _run(
    moderate: Moderate,
    inputs: Iterator[Any],
    tenant: str,
    context: Mapping[str, ContextValue] | None,
    max_workers: int,
    size: int,
    ordered: bool,
) -> Iterator[BatchItem]:
    executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="moderate")
    window = _Window(moderate, inputs, tenant, context, executor, size, ordered)
    try:
        while True:
            window.fill()
            if not window.pending:
                break
            yield from window.finished()
        # Unordered mode yields as it goes; ordered mode has yielded everything by now.
        assert not window.done, "ordered batch left items behind"
    finally:
        # The consumer stopped early (or something raised): inputs not started are cancelled;
        # those running finish, and their decisions are in the audit log as always.
        executor.shutdown(wait=True, cancel_futures=True)
        window.settle()
    if window.failure is not None:
        raise window.failure


class _Window:
    """The inputs of one batch in flight, and finished but not yet yielded: those in detection
    and those finished count against `size`; those with a later stage are bounded by it."""

    def __init__(
        self,
        moderate: Moderate,
        inputs: Iterator[Any],
        tenant: str,
        context: Mapping[str, ContextValue] | None,
        executor: ThreadPoolExecutor,
        size: int,
        ordered: bool,
    ) -> None:
        self.moderate = moderate
        self.inputs = inputs
        self.tenant = tenant
        self.context = context
        self.executor = executor
        self.size = size
        self.ordered = ordered
        # Every input in flight: its future in detection, or its later stage's.
        self.pending: dict[Future[Any], tuple[int, Any]] = {}
        self.detecting: set[Future[Any]] = set()  # of those, the ones in detection
        self.done: dict[int, BatchItem] = {}  # ordered: finished, waiting for the items before
        self.next_index = 0  # the index the next input pulled gets
        self.next_out = 0  # ordered: the index to yield next
        self.failure: BaseException | None = None  # the iterable raised: re-raised at the end
        self.exhausted = False

    def fill(self) -> None:
        """Keep the pool busy, within the window (in flight plus finished but not yielded)."""
        while (
            not self.exhausted
            and self.failure is None
            and len(self.detecting) + len(self.done) < self.size
        ):
            try:
                source = next(self.inputs)
            except StopIteration:
                self.exhausted = True
                break
            except Exception as exc:  # the caller's iterable broke: finish what runs, then raise
                self.failure = exc
                break
            future = self.executor.submit(self._one, source)
            self.pending[future] = (self.next_index, source)
            self.detecting.add(future)
            self.next_index += 1

    def finished(self) -> Iterator[BatchItem]:
        """Wait for at least one input to finish; the items that may be yielded now."""
        finished, _ = wait(self.pending, return_when=FIRST_COMPLETED)
        for future in finished:
            index, source = self.pending.pop(future)
            later = self._later_stage(future)
            if later is not None:  # detected; a later stage decides it, no thread of ours
                self.pending[later] = (index, source)
                continue
            item = _item(future, index, source)
            if not self.ordered:
                yield item
            else:
                self.done[index] = item
        while self.ordered and self.next_out in self.done:
            yield self.done.pop(self.next_out)
            self.next_out += 1

    def _later_stage(self, future: Future[Any]) -> Future[Decision] | None:
        """The future a finished detection handed on (an escalation), else None; counts the
        detection as over either way."""
        if future not in self.detecting:
            return None  # a later stage's own future
        self.detecting.discard(future)
        if future.cancelled() or future.exception() is not None:
            return None
        result = future.result()
        return result if isinstance(result, Future) else None

    def settle(self) -> None:
        """Once detection is over (stopped early): wait for the inputs a later stage is still
        deciding, so that their decisions are audited when the batch ends."""
        later = [future for future in self.pending if future not in self.detecting]
        for future in list(self.detecting):  # all done: the pool has shut down
            stage = self._later_stage(future)
            if stage is not None:
                later.append(stage)
        wait(later)

    def _one(self, source: Any) -> Decision | Future[Decision]:
        if isinstance(source, BatchInput):
            return self.moderate(
                source.image,
                source.tenant if source.tenant is not None else self.tenant,
                source.context if source.context is not None else self.context,
            )
        return self.moderate(source, self.tenant, self.context)


def _item(future: Future[Decision], index: int, source: Any) -> BatchItem:
    error = future.exception()
    if error is None:
        return BatchItem(index, source, future.result(), None)
    if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit in a worker
        raise error
    return BatchItem(index, source, None, error)
