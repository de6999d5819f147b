"""Truncated-BPTT batches over a token stream, as in PyTorch's word_language_model.

``batchify`` cuts the stream into rows, ``Schedule`` says where each step reads, ``Feeder``
puts each window on the device.

The split is never loaded into host memory: ``batchify`` gives a view of the memory-mapped
array, and the feeder copies one window (``batch_size × (bptt + 1)`` tokens) at a time out of
it, or, on a GPU where the stream fits, uploads it once in bounded column blocks.

The stream is cut into ``batch_size`` contiguous rows; step ``i`` of an epoch reads the
window ``[i*bptt, (i+1)*bptt)`` of every row and predicts it shifted by one. Because a batch
is a pure function of the step number, a resumed run sees exactly the batches it would have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from lm.errors import LMError

# Token streams up to this size live on the GPU whole; larger ones are fed window by window.
DEVICE_RESIDENT_BYTES = 2 << 30


def batchify(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """[batch_size, N] rows of consecutive tokens; the tail that does not fill a row is dropped.

    A view, not a copy: a memory-mapped split stays on disk, in its own dtype, until a window
    of it is read.
    """
    columns = len(ids) // batch_size
    if columns < 2:
        raise LMError(
            f"{len(ids)} tokens are too few for --batch-size {batch_size}: "
            "lower --batch-size or use more data"
        )
    return ids[: columns * batch_size].reshape(batch_size, columns)


def window_tensor(rows: np.ndarray | torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Columns ``[start, stop)`` of every row as a new int64 tensor on the host (a copy)."""
    if isinstance(rows, torch.Tensor):
        return rows[:, start:stop].to(torch.int64, copy=True)
    return torch.from_numpy(np.array(rows[:, start:stop], dtype=np.int64))


class Schedule:
    """Where every step of a run reads: (epoch, index in epoch, start column, length).

    With a fixed ``bptt`` an epoch is ``ceil((N − 1) / bptt)`` windows. With ``variable``
    (AWD-LSTM's variable BPTT) each window's length is drawn: ``bptt`` with probability 0.95,
    else ``bptt / 2``, then Normal(that, 5), at least 5 and at most ``bptt + 20``; the draws
    come from a generator seeded by (seed, epoch), so a step's window is still a pure function
    of the step number and a resumed run reads exactly what it would have.
    """

    def __init__(self, columns: int, bptt: int, epochs: int, variable: bool = False,
                 seed: int = 0) -> None:
        self.columns, self.bptt, self.epochs = columns, bptt, epochs
        self.variable, self.seed = variable, seed
        self._windows: dict[int, list[tuple[int, int]]] = {}
        self.fixed_per_epoch = -(-(columns - 1) // bptt)

    def windows(self, epoch: int) -> list[tuple[int, int]]:
        """The (start, length) windows of one epoch."""
        if epoch not in self._windows:
            if not self.variable:
                self._windows[epoch] = [
                    (s, min(self.bptt, self.columns - 1 - s))
                    for s in range(0, self.columns - 1, self.bptt)]
            else:
                rng = np.random.default_rng([self.seed, epoch])
                out, start = [], 0
                while start < self.columns - 1:
                    base = self.bptt if rng.random() < 0.95 else self.bptt / 2
                    length = int(min(max(5, int(rng.normal(base, 5))), self.bptt + 20))
                    length = min(length, self.columns - 1 - start)
                    out.append((start, length))
                    start += length
                self._windows[epoch] = out
        windows = self._windows[epoch]
        if len(self._windows) > 4:  # keep memory flat on long runs
            self._windows.pop(min(e for e in self._windows if e != epoch))
        return windows

    def per_epoch(self, epoch: int) -> int:
        return self.fixed_per_epoch if not self.variable else len(self.windows(epoch))

    def total(self) -> int:
        if not self.variable:
            return self.epochs * self.fixed_per_epoch
        return sum(self.per_epoch(e) for e in range(self.epochs))

    def steps_for_tokens(self, tokens: int, rows: int | Callable[[int], int]) -> int:
        """Steps until ``rows`` rows have read at least ``tokens`` targets (``--max-tokens``),
        at most the whole schedule. Every epoch reads ``columns - 1`` targets per row. ``rows``
        may be a function of the tokens read so far (a growing batch, ``BatchRamp.rows``)."""
        if callable(rows):
            return self._steps_for_growing(tokens, rows)
        per_epoch_tokens, steps = rows * (self.columns - 1), 0
        for epoch in range(self.epochs):
            if tokens > per_epoch_tokens:
                tokens -= per_epoch_tokens
                steps += self.per_epoch(epoch)
                continue
            for index, (_, length) in enumerate(self.windows(epoch)):
                tokens -= rows * length
                if tokens <= 0:
                    return steps + index + 1
        return steps

    def _steps_for_growing(self, tokens: int, rows: Callable[[int], int]) -> int:
        read = steps = 0
        for epoch in range(self.epochs):
            for _, length in self.windows(epoch):
                read += rows(read) * length
                steps += 1
                if read >= tokens:
                    return steps
        return steps

    def following(self, epoch: int, index: int) -> tuple[int, int] | None:
        """The window after ``index`` of ``epoch`` (to fetch ahead), None after the last."""
        if index + 1 < len(self.windows(epoch)):
            return self.windows(epoch)[index + 1]
        return self.windows(epoch + 1)[0] if epoch + 1 < self.epochs else None

    def locate(self, step: int) -> tuple[int, int]:
        """(epoch, index within the epoch) of a global step."""
        if not self.variable:
            return divmod(step, self.fixed_per_epoch)
        epoch = 0
        while step >= self.per_epoch(epoch):
            step -= self.per_epoch(epoch)
            epoch += 1
        return epoch, step


@dataclass(frozen=True)
class BatchRamp:
    """A batch that grows during the run (``--batch-start``, ``--batch-ramp``).

    The stream is still cut into ``full`` rows; a step reads the first ``rows(tokens read)`` of
    them, which grow linearly from ``start`` to ``full`` over the first ``tokens`` training
    tokens: many small updates while the loss falls fast, larger, quieter ones later. A row
    joins at the current column from a zero state, as every row starts an epoch. The rows are
    a pure function of the tokens read, so a resumed run grows exactly as it would have. Under
    DDP they stay a multiple of ``world`` (each rank reads its share of its own rows).
    """

    start: int
    full: int
    tokens: int
    world: int = 1

    def rows(self, tokens_read: int) -> int:
        """Rows (all ranks together) of the step after ``tokens_read`` training tokens."""
        share = min(1.0, tokens_read / self.tokens)
        rows = int(self.start + (self.full - self.start) * share)
        return max(self.world, rows // self.world * self.world)


class Feeder:
    """Training windows on the device, read from the (memory-mapped) rows.

    On a GPU a stream that fits (every usual corpus) is uploaded once, in blocks of columns,
    and a window is a view: no copy per step. Otherwise (a CPU, or a larger stream) each
    window is copied out of the rows, the next one ahead (on a GPU from pinned memory,
    asynchronously, while this one computes). Either way the host never holds more of the
    split than one block or two windows.
    """

    def __init__(self, rows: np.ndarray | torch.Tensor, device: torch.device,
                 resident_bytes: int = DEVICE_RESIDENT_BYTES) -> None:
        self.device, self.rows = device, rows
        tokens = rows.shape[0] * rows.shape[1]
        self.resident = device.type != "cpu" and tokens * 8 <= resident_bytes
        if self.resident:
            self.rows = _upload(rows, device)
        self._ahead: tuple[tuple[int, int], torch.Tensor] | None = None

    def _copy(self, start: int, length: int) -> torch.Tensor:
        window = window_tensor(self.rows, start, start + length + 1)
        if self.device.type == "cuda":
            window = window.pin_memory()
        return window.to(self.device, non_blocking=True)

    def get(self, start: int, length: int, following: tuple[int, int] | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets [B, length] of a window; ``following`` is fetched ahead."""
        if self.resident:
            return (self.rows[:, start:start + length],
                    self.rows[:, start + 1:start + 1 + length])
        if self._ahead is not None and self._ahead[0] == (start, length):
            window = self._ahead[1]
        else:
            window = self._copy(start, length)
        self._ahead = (following, self._copy(*following)) if following else None
        return window[:, :-1], window[:, 1:]


def _upload(rows: np.ndarray | torch.Tensor, device: torch.device,
            block_tokens: int = 1 << 24) -> torch.Tensor:
    """The rows as one int64 tensor on ``device``, copied a block of columns at a time."""
    out = torch.empty(tuple(rows.shape), dtype=torch.int64, device=device)
    step = max(1, block_tokens // max(1, rows.shape[0]))
    for start in range(0, rows.shape[1], step):
        out[:, start:start + step].copy_(window_tensor(rows, start, start + step))
    return out
