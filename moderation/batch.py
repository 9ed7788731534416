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
    window = 2 * max_workers
    pending: dict[Future[Decision], tuple[int, Any]] = {}
    done: dict[int, BatchItem] = {}  # ordered: finished, waiting for the items before them
    next_index = 0  # the index the next input pulled gets
    next_out = 0  # ordered: the index to yield next
    failure: BaseException | None = None  # the iterable itself raised: re-raised at the end
    exhausted = False

    def one(source: Any) -> Decision:
        if isinstance(source, BatchInput):
            return moderate(
                source.image,
                source.tenant if source.tenant is not None else tenant,
                source.context if source.context is not None else context,
            )
        return moderate(source, tenant, context)

    executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="moderate")
    try:
        while True:
            # Keep the pool busy, within the window (in flight plus finished but not yielded).
            while not exhausted and failure is None and len(pending) + len(done) < window:
                try:
                    source = next(inputs)
                except StopIteration:
                    exhausted = True
                    break
                except (
                    Exception
                ) as exc:  # the caller's iterable broke: finish what runs, then raise
                    failure = exc
                    break
                pending[executor.submit(one, source)] = (next_index, source)
                next_index += 1
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                index, source = pending.pop(future)
                item = _item(future, index, source)
                if not ordered:
                    yield item
                else:
                    done[index] = item
            while ordered and next_out in done:
                yield done.pop(next_out)
                next_out += 1
        # Unordered mode yields as it goes; ordered mode has yielded everything by now.
        assert not done, "ordered batch left items behind"
    finally:
        # The consumer stopped early (or something raised): inputs not started are cancelled;
        # those running finish, and their decisions are in the audit log as always.
        executor.shutdown(wait=True, cancel_futures=True)
    if failure is not None:
        raise failure


def _item(future: Future[Decision], index: int, source: Any) -> BatchItem:
    error = future.exception()
    if error is None:
        return BatchItem(index, source, future.result(), None)
    if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit in a worker
        raise error
    return BatchItem(index, source, None, error)
