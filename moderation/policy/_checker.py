"""The one thread that checks policy stores for new versions, so that no reader waits for one.

A store whose ttl has passed hands itself to `CHECKER` (a put on a queue: microseconds) and goes
on with the version in force; the thread runs each store's check in turn. It is started when the
first store with a ttl is built, not on the request path, and again in a forked child (threads do
not survive a fork) by the first check the child hands it.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Protocol

__all__ = ["CHECKER", "Checkable", "Checker"]

logger = logging.getLogger("moderation.policy")


class Checkable(Protocol):
    def _check_in_background(self) -> None:
        """Check for a new version (logs its own failures)."""
        ...


class Checker:
    """A daemon thread and its queue of stores to check."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Checkable] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def ensure_started(self) -> None:
        """Start the thread unless it runs. RuntimeError if no thread can be started."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            thread = threading.Thread(target=self._run, name="moderation-policy-check", daemon=True)
            thread.start()
            self._thread = thread

    def submit(self, store: Checkable) -> None:
        """Have `store` checked on the thread; returns at once."""
        self.ensure_started()
        self._queue.put(store)

    def _run(self) -> None:
        while True:
            store = self._queue.get()
            try:
                store._check_in_background()
            except Exception:  # a check logs its own failures: this would be a bug in it
                logger.exception("policies: a check failed")
            del store  # not kept alive while the queue is empty

    def after_fork(self) -> None:
        """In a forked child: the parent's thread, and what it had queued, do not exist here."""
        self._queue = queue.SimpleQueue()
        self._thread = None
        self._lock = threading.Lock()


#: The process's checker.
CHECKER = Checker()

os.register_at_fork(after_in_child=CHECKER.after_fork)
