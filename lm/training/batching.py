"""Truncated-BPTT batches over a token stream, as in PyTorch's word_language_model.

The stream is cut into ``batch_size`` contiguous rows; step ``i`` of an epoch reads the
window ``[i*bptt, (i+1)*bptt)`` of every row and predicts it shifted by one. Because a batch
is a pure function of the step number, a resumed run sees exactly the batches it would have.
"""

from __future__ import annotations

import numpy as np
import torch

from lm.errors import LMError


def batchify(ids: np.ndarray, batch_size: int) -> torch.Tensor:
    """[batch_size, N] rows of consecutive tokens; the tail that does not fill a row is dropped."""
    columns = len(ids) // batch_size
    if columns < 2:
        raise LMError(
            f"{len(ids)} tokens are too few for --batch-size {batch_size}: "
            "lower --batch-size or use more data"
        )
    data = np.asarray(ids[: columns * batch_size], dtype=np.int64)
    return torch.from_numpy(data.reshape(batch_size, columns))


def steps_per_epoch(rows: torch.Tensor, bptt: int) -> int:
    return -(-(rows.shape[1] - 1) // bptt)


def get_batch(
    rows: torch.Tensor, step_in_epoch: int, bptt: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets [B, T] for one step; the last window of an epoch may be shorter."""
    start = step_in_epoch * bptt
    length = min(bptt, rows.shape[1] - 1 - start)
    return rows[:, start:start + length], rows[:, start + 1:start + 1 + length]
