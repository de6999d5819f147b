"""An n-gram model seen as a :class:`~lm.generation.sampling.Stepper`.

The n-gram model has no hidden state: each row keeps its own context, trimmed to the last
``order - 1`` ids (``NgramModel.next_logprobs`` itself starts a context after its last
``<eos>``, and an ``<eos>`` within the kept ids is kept, so trimming changes nothing).
"""

from __future__ import annotations

import torch

from lm.ngram import NgramModel


class NgramStepper:
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
