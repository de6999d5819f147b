"""One model computation at a time per worker, the others waiting their turn in order, each
bounded in time.

The model and its scorer are not meant for concurrent use, and on a small CPU box two
generations side by side only slow each other down. A thread pool with one slot runs the work
off the event loop, so the server keeps accepting and answering cheap requests. Each piece of
work runs under :func:`lm.runtime.work_limit`: it stops at its next step once it has run for
``seconds`` (:class:`Overrun`, answered 503 with ``Retry-After``) or once the server begins to
stop (on SIGTERM), and its errors name settings as the API spells them (JSON fields).
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from lm.runtime import WorkStopped, work_limit
from lm.settings import spelled_as_fields

T = TypeVar("T")


class Busy(Exception):
    """The queue is full: the client should retry later (HTTP 429)."""

    retry_after = 1


class Overrun(Exception):
    """The work ran past its time or the server is stopping (HTTP 503, with Retry-After)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Gate:
    """A one-slot thread pool with a bounded queue in front of it."""

    def __init__(self, queue: int, seconds: float, stopping: threading.Event) -> None:
        self.queue, self.seconds, self.stopping = queue, seconds, stopping
        self.waiting = 0  # running plus queued; only the event loop thread changes it
        self._pool: ThreadPoolExecutor | None = None  # made on first use, again after close

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in the slot, after the requests already waiting."""
        if self.waiting > self.queue:
            raise Busy(f"the server is busy ({self.waiting} requests waiting for the model): "
                       "retry in a moment")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lm-model")
        self.waiting += 1
        try:
            context = contextvars.copy_context()
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, context.run, self._bounded, func, *args)
        finally:
            self.waiting -= 1

    def _bounded(self, func: Callable[..., T], *args: Any) -> T:
        if self.stopping.is_set():
            raise Overrun("the server is shutting down: retry on its next start", 5)
        try:
            with spelled_as_fields(), work_limit(self.seconds, self.stopping):
                return func(*args)
        except WorkStopped as stop:
            retry = max(1, math.ceil(self.seconds))
            if self.stopping.is_set():
                raise Overrun("the server is shutting down: retry on its next start",
                              retry) from None
            raise Overrun(f"the request ran past the server's {self.seconds:g} s limit ({stop}):"
                          " ask for less (fewer samples, tokens or beams), or start lm serve "
                          "with a higher --limit-seconds", retry) from None

    def close(self) -> None:
        """Stop the worker thread (the app's shutdown); a later run starts a new one."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
