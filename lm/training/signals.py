"""Ctrl-C and SIGTERM end a training run cleanly: checkpoint first, then stop."""

from __future__ import annotations

import signal
from typing import Any


class StopSignals:
    """Turns SIGINT/SIGTERM into a flag the loop checks, so it can checkpoint and exit."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Interrupted(Exception):
    """Training stopped by a signal after writing a resumable checkpoint."""
