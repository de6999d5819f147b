"""One model computation at a time per worker, the others waiting their turn in order.

The model and its scorer are not meant for concurrent use, and on a small CPU box two
generations side by side only slow each other down. A thread pool with one slot runs the
work off the event loop, so the server keeps accepting and answering cheap requests.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class Busy(Exception):
    """The queue is full: the client should retry later (HTTP 429)."""


class Gate:
    """A one-slot thread pool with a bounded queue in front of it."""

    def __init__(self, queue: int) -> None:
        self.queue = queue
        self.waiting = 0  # running plus queued; only the event loop thread changes it
        self._pool: ThreadPoolExecutor | None = None  # made on first use, again after close

    async def run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``func(*args, **kwargs)`` in the slot, after the requests already waiting."""
        if self.waiting > self.queue:
            raise Busy(f"the server is busy ({self.waiting} requests waiting for the model): "
                       "retry in a moment")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lm-model")
        self.waiting += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool,
                                              functools.partial(func, *args, **kwargs))
        finally:
            self.waiting -= 1

    def close(self) -> None:
        """Stop the worker thread (the app's shutdown); a later run starts a new one."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
