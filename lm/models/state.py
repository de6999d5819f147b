"""The recurrent state a model carries from one window (or one generated token) to the next.

One type for every cell and layout: a tuple of tensors whose second dimension is the batch
(``[layers, batch, hidden]`` for a stacked layer, ``[1, batch, hidden]`` per layer for the
AWD-LSTM layout). What each part means is the model's business; everyone else (the training
loop, checkpoints, DDP, scoring, sampling) only detaches, converts, selects or gathers rows,
which are the same operation on every part.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch


class RecurrentState(NamedTuple):
    parts: tuple[torch.Tensor, ...]

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> RecurrentState:
        return RecurrentState(tuple(fn(part) for part in self.parts))

    def detach(self) -> RecurrentState:
        """Cut the graph at a BPTT boundary while keeping the state's values."""
        return self.map(torch.Tensor.detach)

    def float(self) -> RecurrentState:
        return self.map(torch.Tensor.float)

    def select(self, rows: torch.Tensor) -> RecurrentState:
        """Only these batch rows, in this order (finished samples leave; beams reorder)."""
        return self.map(lambda part: part.index_select(1, rows))

    @property
    def batch_size(self) -> int:
        return self.parts[0].shape[1]
