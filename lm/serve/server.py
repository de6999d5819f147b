"""uvicorn, in the foreground for ``lm serve`` or in a thread for tests and benchmarks."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from lm.errors import LMError


def serve_forever(app: Any, host: str, port: int) -> None:
    """One worker process: the model is loaded once and the gate queues its work."""
    uvicorn.run(app, host=host, port=port, log_level="info", workers=1)


@contextlib.contextmanager
def running(app: Any, host: str = "127.0.0.1", port: int = 0,
            timeout: float = 30.0) -> Iterator[str]:
    """A real uvicorn server on ``host`` (port 0: a free one) in a thread; yields its URL."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="lm-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise LMError(f"the server did not start on {host}:{port}: is the port taken?")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{bound[0]}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout)
