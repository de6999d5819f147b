"""Perplexity: every token of a stream, ``<eos>`` included, scored in batches.

Conventions (those behind published PTB and WikiText-2 figures): each document is closed by
one ``<eos>`` that is predicted and counted, and the first token is predicted from an
``<eos>`` context, the way every document after the first is seen in training.

``stream`` context carries the hidden state across documents, as training does; the stream
is cut into ``batch_size`` contiguous segments scored in parallel. ``document`` context
scores each document from a fresh state, which makes the result independent of batching.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from lm.models.rnn import RNNLM
from lm.runtime import checkpoint, reuse_freed_memory
from lm.tokenization import EOS_ID, UNK_ID

LN2 = math.log(2.0)


@dataclass
class Evaluation:
    """Totals of a scored stream and the figures people quote."""

    tokens: int
    oov: int
    nats: float
    characters: int | None = None
    logprobs: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_logprobs(cls, ids: np.ndarray, logprobs: np.ndarray,
                      characters: int | None = None) -> Evaluation:
        return cls(
            tokens=int(len(ids)),
            oov=int(np.count_nonzero(np.asarray(ids) == UNK_ID)),
            nats=float(-np.sum(logprobs, dtype=np.float64)),
            characters=characters,
            logprobs=logprobs,
        )

    @property
    def nats_per_token(self) -> float:
        return self.nats / max(self.tokens, 1)

    @property
    def bits_per_token(self) -> float:
        return self.nats_per_token / LN2

    @property
    def perplexity(self) -> float:
        return math.exp(self.nats_per_token) if self.nats_per_token < 700 else math.inf

    @property
    def bits_per_char(self) -> float | None:
        return self.nats / LN2 / self.characters if self.characters else None

    @property
    def nats_per_char(self) -> float | None:
        return self.nats / self.characters if self.characters else None

    def summary(self) -> dict[str, float | int | None]:
        return {
            "tokens": self.tokens,
            "oov": self.oov,
            "nats_per_token": self.nats_per_token,
            "bits_per_token": self.bits_per_token,
            "perplexity": self.perplexity,
            "characters": self.characters,
            "bits_per_char": self.bits_per_char,
            "nats_per_char": self.nats_per_char,
        }


def _target_logprobs(model: RNNLM, x: torch.Tensor, hidden, targets: torch.Tensor):
    """log p(target) [B, T] and the next state; only the targets' scores when the model can
    (the adaptive softmax then skips the rare-word clusters no target falls in)."""
    if hasattr(model, "target_logprobs"):
        output, hidden = model.features(x, hidden)
        return model.target_logprobs(output, targets), hidden
    logits, hidden = model(x, hidden)
    loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
    return -loss.view(targets.shape), hidden


def stream_logprobs(model: RNNLM, ids: np.ndarray, batch_size: int = 10, bptt: int = 128,
                    device: torch.device | str = "cpu") -> np.ndarray:
    """Natural-log probability of every token of ``ids``, hidden state carried along.

    The stream is cut into at most ``batch_size`` segments scored side by side, each from a
    fresh state, but never into segments shorter than ``bptt``: a short text (a sentence, a
    verse) is scored as one stream, every token with all the context before it.
    """
    with torch.no_grad():
        return _stream_logprobs(model, ids, batch_size, bptt, device)


def _stream_logprobs(model: RNNLM, ids: np.ndarray, batch_size: int, bptt: int,
                     device: torch.device | str) -> np.ndarray:
    n = len(ids)
    if n == 0:
        return np.zeros(0)
    if torch.device(device).type == "cpu":
        reuse_freed_memory()
    was_training = model.training
    model.eval()
    batch_size = max(1, min(batch_size, n // max(1, bptt)))
    length = -(-n // batch_size)
    stream = np.concatenate([[EOS_ID], np.asarray(ids, dtype=np.int64)])
    padded = np.full(batch_size * length + 1, EOS_ID, dtype=np.int64)
    padded[: n + 1] = stream
    inputs = torch.from_numpy(
        np.stack([padded[b * length:(b + 1) * length] for b in range(batch_size)])
    ).to(device)
    targets = torch.from_numpy(
        np.stack([padded[b * length + 1:(b + 1) * length + 1] for b in range(batch_size)])
    ).to(device)
    hidden = model.init_hidden(batch_size, device)
    out = torch.empty(batch_size, length, dtype=torch.float64, device=device)
    for start in range(0, length, bptt):
        checkpoint()
        x = inputs[:, start:start + bptt]
        logprobs, hidden = _target_logprobs(model, x, hidden, targets[:, start:start + bptt])
        hidden = hidden.detach()
        out[:, start:start + x.shape[1]] = logprobs.double()
    model.train(was_training)
    return out.flatten()[:n].cpu().numpy()


def document_logprobs(model: RNNLM, ids: np.ndarray, batch_size: int = 32,
                      device: torch.device | str = "cpu") -> np.ndarray:
    """Natural-log probability of every token, each document from a fresh state."""
    with torch.no_grad():
        return _document_logprobs(model, ids, batch_size, device)


def _document_logprobs(model: RNNLM, ids: np.ndarray, batch_size: int,
                       device: torch.device | str) -> np.ndarray:
    # Not decorated, so that mutation testing (which skips decorated functions) reaches it.
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) == 0:
        return np.zeros(0)
    if torch.device(device).type == "cpu":
        reuse_freed_memory()
    was_training = model.training
    model.eval()
    ends = np.flatnonzero(ids == EOS_ID) + 1
    if len(ends) == 0 or ends[-1] != len(ids):
        ends = np.append(ends, len(ids))
    starts = np.concatenate([[0], ends[:-1]])
    out = np.empty(len(ids), dtype=np.float64)
    order = np.argsort(ends - starts, kind="stable")
    for first in range(0, len(order), batch_size):
        checkpoint()
        docs = order[first:first + batch_size]
        longest = int(max(ends[d] - starts[d] for d in docs))
        x = np.full((len(docs), longest), EOS_ID, dtype=np.int64)
        y = np.full((len(docs), longest), -100, dtype=np.int64)
        for row, d in enumerate(docs):
            doc = ids[starts[d]:ends[d]]
            x[row, 1:len(doc)] = doc[:-1]
            y[row, :len(doc)] = doc
        target = torch.from_numpy(y).to(device)
        logprobs, _ = _target_logprobs(model, torch.from_numpy(x).to(device),
                                       model.init_hidden(len(docs), device),
                                       target.clamp(min=0))
        loss = (-logprobs).masked_fill(target < 0, 0.0).double().cpu().numpy()
        for row, d in enumerate(docs):
            out[starts[d]:ends[d]] = -loss[row, : ends[d] - starts[d]]
    model.train(was_training)
    return out


def evaluate(model: RNNLM, ids: np.ndarray, context: str = "stream", batch_size: int = 10,
             device: torch.device | str = "cpu", characters: int | None = None) -> Evaluation:
    if context == "stream":
        logprobs = stream_logprobs(model, ids, batch_size=batch_size, device=device)
    else:
        logprobs = document_logprobs(model, ids, batch_size=batch_size, device=device)
    return Evaluation.from_logprobs(ids, logprobs, characters)
