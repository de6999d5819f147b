"""Adaptive input embeddings tied to an adaptive softmax (Baevski & Auli 2018).

``nn.AdaptiveLogSoftmaxWithLoss`` has a head ``Linear(d, shortlist + clusters)`` and, per tail
cluster i, ``Sequential(Linear(d, d_i), Linear(d_i, n_i))`` with ``d_i = d / div^(i+1)``. The
tied input embedding reuses those very Parameters: a head token's vector is its row of the head
weight; a token of tail cluster i has its row of the second Linear (a d_i vector) projected
back to d through the first Linear's weight (``e W_i``, its transpose use). So the rare words
get cheap, narrow vectors on the way in as well as on the way out, and nothing is stored twice.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class AdaptiveInput(nn.Module):
    """``ids [..] → vectors [.., d]`` from an adaptive softmax's own weights (no Parameters).

    The softmax is held outside the module tree, so the state dict lists each tied tensor once,
    under ``decoder.*``. Every token is looked up in every cluster with its id clamped into
    range and the wrong clusters masked to zero: no data-dependent shapes, so it traces and
    exports like a plain embedding; a tail costs a [N, d_i] × [d_i, d] product, small beside
    the recurrence.
    """

    def __init__(self, softmax: nn.AdaptiveLogSoftmaxWithLoss) -> None:
        super().__init__()
        self._softmax = (softmax,)  # a tuple: not registered, so not a second state-dict entry

    @property
    def softmax(self) -> nn.AdaptiveLogSoftmaxWithLoss:
        return self._softmax[0]

    @property
    def num_embeddings(self) -> int:
        return self.softmax.n_classes

    @property
    def embedding_dim(self) -> int:
        return self.softmax.in_features

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        asm = self.softmax
        bounds = [0, *asm.cutoffs]  # cutoffs end with n_classes
        head = asm.head.weight
        in_head = (ids < bounds[1]).unsqueeze(-1)
        out = F.embedding(ids.clamp(max=bounds[1] - 1), head) * in_head
        for i, (i2h, h2o) in enumerate(asm.tail):
            lo, hi = bounds[i + 1], bounds[i + 2]
            inside = ((ids >= lo) & (ids < hi)).unsqueeze(-1)
            narrow = F.embedding((ids - lo).clamp(0, hi - lo - 1), h2o.weight)
            out = out + torch.matmul(narrow, i2h.weight) * inside
        return out


def frequency_cutoffs(counts, shares: tuple[float, ...] = (0.8, 0.95),
                      min_cluster: int = 8) -> list[int]:
    """Adaptive-softmax cutoffs from token counts in id order (the tokenizers number tokens by
    descending frequency): the head ends where it covers ``shares[0]`` of the training tokens,
    each tail where the running share reaches the next value; the last tail takes the rest.

    Bounds that would leave a cluster under ``min_cluster`` tokens are dropped, so the result
    always increases and lies in [1, vocab − 1]; a vocabulary too small for any tail gets
    ``[vocab // 2]`` (or ``[1]``).
    """
    counts = np.asarray(counts, dtype=np.float64)
    vocab = len(counts)
    total = counts.sum()
    if vocab < 2:
        raise ValueError("frequency_cutoffs needs a vocabulary of at least 2 tokens")
    share = np.cumsum(counts) / total if total > 0 else np.arange(1, vocab + 1) / vocab
    cutoffs: list[int] = []
    for target in shares:
        bound = int(np.searchsorted(share, target - 1e-12) + 1)  # tokens [0, bound) cover it
        last = cutoffs[-1] if cutoffs else 0
        if bound - last >= min_cluster and vocab - bound >= min_cluster:
            cutoffs.append(bound)
    return cutoffs or [max(1, vocab // 2)]
