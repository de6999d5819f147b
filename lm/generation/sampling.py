"""Generate text from any model that gives next-token log-probabilities.

Every sample starts the way training saw documents start, after an ``<eos>``, then reads the
optional style text (conditioning only, never printed) and the prime (printed and continued).
All samples advance together as one batch. The scores go through the shaping processors (form
mask, repetition rules) and, unless greedy (temperature 0: the argmax), the sampling ones
(temperature, top-k, top-p, min-p: :mod:`lm.generation.processors`); a token is then drawn
from their softmax with a seeded generator, so that the same seed gives the same text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol

import torch

from lm.generation.processors import (
    SAMPLING,
    SHAPING,
    Processor,
    build,
    form_of,
    is_greedy,
    process,
)
from lm.generation.request import SampleRequest
from lm.models.rnn import RNNLM
from lm.runtime import reuse_freed_memory
from lm.tokenization import EOS_ID


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


def choose(scores: torch.Tensor, greedy: bool, generator: torch.Generator) -> torch.Tensor:
    """One token per row: the argmax if greedy, else a draw from ``softmax(scores)``."""
    if greedy:
        return scores.argmax(dim=-1)
    return draw(torch.softmax(scores, dim=-1), generator)


def draw(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One index per row of ``probs`` [B, V], by inverting the cumulative distribution.

    One uniform number per row instead of ``torch.multinomial``'s one per vocabulary entry:
    at 33k words that was ~40% of a CPU sampling step. A row whose draw lands on a
    zero-probability entry through float rounding (at the very end of the cumulative sum)
    is drawn again with ``torch.multinomial``, so an excluded token is never chosen.
    """
    probs = probs.float()
    cdf = probs.cumsum(dim=-1)
    u = torch.rand(probs.shape[0], 1, generator=generator).to(probs.device) * cdf[:, -1:]
    tokens = torch.searchsorted(cdf, u, right=True).clamp_(max=probs.shape[1] - 1).view(-1)
    bad = probs.gather(1, tokens.view(-1, 1)).view(-1) <= 0
    if bool(bad.any()):
        redrawn = torch.multinomial(probs[bad].cpu(), 1, generator=generator).view(-1)
        tokens[bad] = redrawn.to(tokens.device)
    return tokens


def generate(stepper: Stepper, prime: list[int], request: SampleRequest | None = None, *,
             style: list[int] | None = None, processors: Sequence[Processor] | None = None,
             **settings: Any) -> list[list[int]]:
    """Token ids generated after ``<eos> + style + prime``, a list per sample, up to <eos>.

    ``settings`` are :class:`SampleRequest` fields that replace the request's (the defaults
    are ``lm sample``'s); sampling reads ``num``, ``max_tokens``, ``seed``, ``temperature``
    and the sampling processors' settings. ``processors`` are the shaping ones (default: those
    the settings ask for, with no form). With a form constraint a sample ends when its form is
    complete (an ``<eos>`` that only closes a line, in vocabularies without a newline, is kept
    in the output) and the form, not ``max_tokens``, bounds its length.
    """
    request = dataclasses.replace(request or SampleRequest(), **settings)
    request.check()
    if processors is None:
        processors = build(SHAPING, request)
    greedy = is_greedy(request)
    chain = [*processors, *(() if greedy else build(SAMPLING, request))]
    constraint = form_of(processors)
    num = request.num
    states = [constraint.initial(prime)] * num if constraint is not None else None
    limit = constraint.max_tokens if constraint is not None else request.max_tokens
    generator = torch.Generator().manual_seed(request.seed)
    logprobs = stepper.start([[EOS_ID, *(style or []), *prime]] * num)
    histories = [list(prime) for _ in range(num)]
    outputs: list[list[int]] = [[] for _ in range(num)]
    active = list(range(num))  # the sample each row of the batch belongs to
    for step in range(limit):
        scores = process(chain, logprobs, [histories[r] for r in active],
                         [states[r] for r in active] if states is not None else None)
        tokens = choose(scores, greedy, generator).cpu()
        keep = []
        for position, (row, token) in enumerate(zip(active, tokens.tolist(), strict=True)):
            if states is not None and constraint is not None:
                states[row] = constraint.step(states[row], token)
                finished = constraint.done(states[row])
            else:
                finished = token == EOS_ID
            if not finished:
                outputs[row].append(token)
                histories[row].append(token)
                keep.append(position)
        if not keep or step == limit - 1:
            break
        if len(keep) < len(active):  # finished samples leave the batch: no work is wasted
            rows = torch.tensor(keep)
            stepper.select(rows)
            tokens = tokens[rows]
            active = [active[p] for p in keep]
        logprobs = stepper.advance(tokens)
    return outputs
