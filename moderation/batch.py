"""Many images at once: a bounded pool of threads, every input accounted for.

`Engine.moderate_many` runs `Engine.moderate` for each input on up to `max_workers` threads and
yields one `BatchItem` per input, with the decision or the exception. What makes it safe for a
backlog of millions:

- Memory stays bounded: inputs are pulled from the iterable only as workers free up (at most
  `2 * max_workers` are in flight or waiting to be yielded), so a generator of a million paths
  never becomes a list.
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


Moderate = Callable[[Any, str, "Mapping[str, ContextValue] | None"], "Decision"]


def run_batch(
    moderate: Moderate,
    images: Iterable[Any],
    *,
    tenant: str,
    context: Mapping[str, ContextValue] | None,
    max_workers: int,
    ordered: bool,
) -> Iterator[BatchItem]:
    """Check the arguments now and return the generator of items (see `Engine.moderate_many`)."""
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ValueError(f"max_workers must be a whole number of at least 1, got {max_workers!r}")
    if isinstance(images, str | bytes | bytearray | memoryview):
        raise TypeError(
            "images is an iterable of images; for one image call moderate(), or wrap it in a list"
        )
    return _run(moderate, iter(images), tenant, context, max_workers, ordered)


def _run(
    moderate: Moderate,
    inputs: Iterator[Any],
    tenant: str,
    context: Mapping[str, ContextValue] | None,
    max_workers: int,
    ordered: bool,
) -> Iterator[BatchItem]:
    executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="moderate")
    window = _Window(moderate, inputs, tenant, context, executor, 2 * max_workers, ordered)
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
    if window.failure is not None:
        raise window.failure


class _Window:
    """The inputs of one batch in flight, and finished but not yet yielded, within `size`."""

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
        self.pending: dict[Future[Decision], tuple[int, Any]] = {}
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
            and len(self.pending) + len(self.done) < self.size
        ):
            try:
                source = next(self.inputs)
            except StopIteration:
                self.exhausted = True
                break
            except Exception as exc:  # the caller's iterable broke: finish what runs, then raise
                self.failure = exc
                break
            self.pending[self.executor.submit(self._one, source)] = (self.next_index, source)
            self.next_index += 1

    def finished(self) -> Iterator[BatchItem]:
        """Wait for at least one input to finish; the items that may be yielded now."""
        finished, _ = wait(self.pending, return_when=FIRST_COMPLETED)
        for future in finished:
            index, source = self.pending.pop(future)
            item = _item(future, index, source)
            if not self.ordered:
                yield item
            else:
                self.done[index] = item
        while self.ordered and self.next_out in self.done:
            yield self.done.pop(self.next_out)
            self.next_out += 1

    def _one(self, source: Any) -> Decision:
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
