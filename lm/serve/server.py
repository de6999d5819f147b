"""uvicorn, in the foreground for ``lm serve`` or in a thread for tests and benchmarks.

On SIGTERM (or Ctrl-C) uvicorn stops accepting and waits for the requests in flight; the app's
``stopping`` event is set at once, so a generation in the model's slot stops at its next step
and is answered 503: the server is gone within a few seconds, whatever it was doing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from lm.errors import LMError

GRACE_SECONDS = 3  # then uvicorn cancels what is still open


class StoppingServer(uvicorn.Server):
    """A uvicorn server that tells the app's model work to stop as soon as it is asked to."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event) -> None:
        super().__init__(config)
        self.stopping = stopping

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.stopping.set()
        super().handle_exit(sig, frame)


def _server(app: Any, host: str, port: int, log_level: str) -> StoppingServer:
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, workers=1,
                            timeout_graceful_shutdown=GRACE_SECONDS)
    return StoppingServer(config, app.state.stopping)


def serve_forever(app: Any, host: str, port: int) -> None:
    """One worker process: the models are loaded once and the gate queues their work."""
    _server(app, host, port, "info").run()


@contextlib.contextmanager
def running(app: Any, host: str = "127.0.0.1", port: int = 0,
            timeout: float = 30.0) -> Iterator[str]:
    """A real uvicorn server on ``host`` (port 0: a free one) in a thread; yields its URL."""
    server = _server(app, host, port, "warning")
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
        server.stopping.set()
        server.should_exit = True
        thread.join(timeout)
