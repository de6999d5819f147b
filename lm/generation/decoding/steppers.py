"""Models seen one token at a time, for a batch of sequences: the RNN, an n-gram, and the
mixture of the two that ``lm perplexity --mix`` measures (λ·p_model + (1−λ)·p_ngram).

Every stepper answers next-token log-probabilities ``[B, V]``; the decoding loops, the forms
and the report's rescoring see a mixture exactly as they see one model.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

import torch

from lm.runtime import reuse_freed_memory

if TYPE_CHECKING:
    from lm.models.rnn import RNNLM
    from lm.ngram import NgramModel


class Stepper(Protocol):
    """A model seen one token at a time, for a batch of sequences."""

    vocab_size: int

    def start(self, contexts: list[list[int]]) -> torch.Tensor:
        """Read each context; return next-token log-probabilities [B, V]."""

    def advance(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append one token per sequence; return the next log-probabilities [B, V]."""

    def select(self, rows: torch.Tensor) -> None:
        """Keep (and repeat) these rows of the batch, in this order: beam search reorders."""


class RNNStepper:
    def __init__(self, model: RNNLM, device: torch.device | str = "cpu") -> None:
        reuse_freed_memory()  # every step frees and re-allocates [B, V] buffers
        self.model = model.eval()
        self.device = device
        self.vocab_size = model.config.vocab_size
        self.hidden = None

    @torch.no_grad()
    def start(self, contexts: list[list[int]]) -> torch.Tensor:
        length = len(contexts[0])
        if any(len(c) != length for c in contexts):
            raise ValueError("RNNStepper.start needs contexts of one length")
        ids = torch.tensor(contexts, dtype=torch.long, device=self.device)
        self.hidden = self.model.init_hidden(len(contexts), self.device)
        logits, self.hidden = self.model(ids, self.hidden)
        return torch.log_softmax(logits[:, -1].float(), dim=-1)

    @torch.no_grad()
    def advance(self, tokens: torch.Tensor) -> torch.Tensor:
        logits, self.hidden = self.model(tokens.view(-1, 1).to(self.device), self.hidden)
        return torch.log_softmax(logits[:, -1].float(), dim=-1)

    def select(self, rows: torch.Tensor) -> None:
        self.hidden = self.hidden.select(rows.to(self.device))


class NgramStepper:
    """An n-gram has no hidden state: each row keeps its own context, trimmed to the last
    ``order - 1`` ids (``NgramModel.next_logprobs`` starts a context after its last ``<eos>``,
    and an ``<eos>`` within the kept ids is kept, so trimming changes nothing)."""

    def __init__(self, model: NgramModel) -> None:
        self.model = model
        self.vocab_size = model.vocab_size
        self.keep = max(model.order - 1, 1)
        self.contexts: list[list[int]] = []

    def _next(self) -> torch.Tensor:
        return torch.from_numpy(self.model.next_logprobs(self.contexts)).float()

    def start(self, contexts: list[list[int]]) -> torch.Tensor:
        self.contexts = [list(c[-self.keep:]) for c in contexts]
        return self._next()

    def advance(self, tokens: torch.Tensor) -> torch.Tensor:
        for context, token in zip(self.contexts, tokens.view(-1).tolist(), strict=True):
            context.append(int(token))
            del context[:-self.keep]
        return self._next()

    def select(self, rows: torch.Tensor) -> None:
        self.contexts = [list(self.contexts[r]) for r in rows.view(-1).tolist()]


class MixtureStepper:
    """Two steppers of one vocabulary, interpolated: ``weight`` on the first."""

    def __init__(self, first: Stepper, second: Stepper, weight: float) -> None:
        self.first, self.second = first, second
        self.vocab_size = first.vocab_size
        self.log_first = math.log(max(weight, 1e-300))
        self.log_second = math.log(max(1.0 - weight, 1e-300))

    def _mix(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.logaddexp(a.float() + self.log_first,
                               b.to(a.device).float() + self.log_second)

    def start(self, contexts: list[list[int]]) -> torch.Tensor:
        return self._mix(self.first.start(contexts), self.second.start(contexts))

    def advance(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._mix(self.first.advance(tokens), self.second.advance(tokens))

    def select(self, rows: torch.Tensor) -> None:
        self.first.select(rows)
        self.second.select(rows)
