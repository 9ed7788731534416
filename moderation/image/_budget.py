"""A process-wide bound on the memory that concurrent pixel decodes may hold.

Each decode acquires the size its decoded pixels will take (estimated from the header, after any
reduced-scale decode is arranged) and releases it when it is done with them. Decodes that together
fit run together; the others wait their turn, first come first served, so a large decode is not
starved by a stream of small ones. A single image larger than the whole budget takes all of it:
it waits until nothing else is held, then runs alone, so it can never wait for bytes that do not
exist.

The estimate is the decoded frame itself. Conversion makes short-lived copies on top (a mode
conversion, a rotation), so real peaks run somewhat above the budget; what the budget guarantees
is that N uploads of huge images no longer decode N huge frames at once.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["DecodeBudget", "decoded_bytes", "shared_budget"]


class DecodeBudget:
    """A byte semaphore over `capacity` bytes; safe to share between threads.

    `on_wait(n)` is called (outside the lock) when a request for n bytes has to wait, and
    `on_acquire(n)` once it holds them; both are for metrics and tests and default to None.
    """

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(
                f"a decode budget must be a positive number of bytes, not {capacity!r}"
            )
        self._capacity = capacity
        self._cond = threading.Condition()
        self._held = 0
        self._peak = 0
        self._queue: deque[object] = deque()
        self.on_wait: Callable[[int], None] | None = None
        self.on_acquire: Callable[[int], None] | None = None

    @property
    def capacity(self) -> int:
        """The bytes this budget hands out in total."""
        return self._capacity

    @property
    def held(self) -> int:
        """The bytes held right now."""
        with self._cond:
            return self._held

    @property
    def peak(self) -> int:
        """The most bytes ever held at once."""
        with self._cond:
            return self._peak

    def acquire(self, nbytes: int) -> int:
        """Block until `nbytes` (at most the whole capacity) are free; returns what was granted,
        which is what `release` must be given back."""
        grant = max(0, min(nbytes, self._capacity))
        if grant == 0:
            return 0
        token = object()
        with self._cond:
            self._queue.append(token)
            must_wait = not self._fits(token, grant)
        if must_wait and self.on_wait is not None:
            self.on_wait(grant)
        with self._cond:
            try:
                self._cond.wait_for(lambda: self._fits(token, grant))
            except BaseException:
                # Interrupted while waiting: leave the queue, or everyone behind waits forever.
                self._queue.remove(token)
                self._cond.notify_all()
                raise
            self._queue.popleft()
            self._held += grant
            self._peak = max(self._peak, self._held)
            self._cond.notify_all()  # the next in line may fit too
        if self.on_acquire is not None:
            try:
                self.on_acquire(grant)
            except BaseException:
                self.release(grant)
                raise
        return grant

    def release(self, granted: int) -> None:
        """Give back what `acquire` granted."""
        if granted <= 0:
            return
        with self._cond:
            self._held -= granted
            self._cond.notify_all()

    @contextmanager
    def hold(self, nbytes: int) -> Iterator[int]:
        """`acquire(nbytes)` for the duration of a `with` block; yields the bytes granted."""
        granted = self.acquire(nbytes)
        try:
            yield granted
        finally:
            self.release(granted)

    def _fits(self, token: object, grant: int) -> bool:
        return self._queue[0] is token and self._held + grant <= self._capacity


_SHARED: dict[int, DecodeBudget] = {}
_SHARED_LOCK = threading.Lock()


def shared_budget(capacity: int) -> DecodeBudget:
    """The process-wide budget of `capacity` bytes: every intake configured with the same
    `Limits.decode_budget_bytes` shares one."""
    with _SHARED_LOCK:
        budget = _SHARED.get(capacity)
        if budget is None:
            budget = _SHARED[capacity] = DecodeBudget(capacity)
        return budget


def decoded_bytes(size: tuple[int, int], mode: str) -> int:
    """The bytes Pillow allocates for an image of `size` in `mode`."""
    width, height = size
    if mode in ("1", "L", "P"):
        per_pixel = 1  # Pillow keeps even 1-bit images at a byte per pixel
    elif mode.startswith("I;16"):
        per_pixel = 2
    else:
        per_pixel = 4  # 32-bit single-band modes, and every multi-band mode (RGB is padded to 4)
    return width * height * per_pixel
