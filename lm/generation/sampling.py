"""Generate text from any model that gives next-token log-probabilities.

Every sample starts the way training saw documents start, after an ``<eos>``, then reads the
optional style text (conditioning only, never printed) and the prime (printed and continued).
All samples advance together as one batch. The scores first go through the processors (form
mask, repetition rules: :mod:`lm.generation.processors`); decoding is then greedy at
temperature 0, otherwise sampled with optional top-k / top-p truncation, from a seeded
generator so that the same seed gives the same text.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch

from lm.errors import LMError
from lm.generation.processors import Processors
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


def check_sampling_args(temperature: float, top_k: int | None, top_p: float | None,
                        num: int, max_tokens: int) -> None:
    if math.isnan(temperature) or temperature < 0:
        raise LMError(f"--temperature must be ≥ 0 (0 is greedy), not {temperature}")
    if top_k is not None and top_k < 1:
        raise LMError(f"--top-k must be at least 1, not {top_k}")
    if top_p is not None and (math.isnan(top_p) or not 0 < top_p <= 1):
        raise LMError(f"--top-p must be in (0, 1], not {top_p}")
    if num < 1:
        raise LMError(f"--num must be at least 1, not {num}")
    if max_tokens < 1:
        raise LMError(f"--max-tokens must be at least 1, not {max_tokens}")


def choose(logprobs: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
           generator: torch.Generator) -> torch.Tensor:
    """One token per row: argmax at temperature 0, else a draw from the truncated distribution."""
    if temperature < 1e-6:  # the T → 0 limit; smaller T underflows float32 anyway
        return logprobs.argmax(dim=-1)
    # Dividing by T ≥ 1e-6 keeps every finite score finite (softmax then shifts the best to 0
    # itself); at T = 1 the scores are used as they are.
    scores = logprobs.float() if temperature == 1.0 else logprobs.float() / temperature
    if top_k is not None and top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, -math.inf)
    if top_p is not None and top_p < 1:
        sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_scores, dim=-1).cumsum(dim=-1)
        drop = cumulative - torch.softmax(sorted_scores, dim=-1) >= top_p  # keep the first past p
        sorted_scores = sorted_scores.masked_fill(drop, -math.inf)
        scores = torch.full_like(scores, -math.inf).scatter(-1, order, sorted_scores)
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


def generate(stepper: Stepper, prime: list[int], num: int = 1, max_tokens: int = 200,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             seed: int = 0, style: list[int] | None = None,
             processors: Processors | None = None) -> list[list[int]]:
    """Token ids generated after ``<eos> + style + prime`` for ``num`` samples, up to <eos>.

    With a form constraint a sample ends when its form is complete (an ``<eos>`` that only
    closes a line, in vocabularies without a newline, is kept in the output) and the form,
    not ``max_tokens``, bounds its length.
    """
    check_sampling_args(temperature, top_k, top_p, num, max_tokens)
    processors = processors or Processors()
    constraint = processors.constraint
    states = [constraint.initial(prime)] * num if constraint is not None else None
    limit = constraint.max_tokens if constraint is not None else max_tokens
    generator = torch.Generator().manual_seed(seed)
    logprobs = stepper.start([[EOS_ID, *(style or []), *prime]] * num)
    histories = [list(prime) for _ in range(num)]
    outputs: list[list[int]] = [[] for _ in range(num)]
    active = list(range(num))  # the sample each row of the batch belongs to
    for step in range(limit):
        scores = processors(logprobs, [histories[r] for r in active],
                            [states[r] for r in active] if states is not None else None)
        tokens = choose(scores, temperature, top_k, top_p, generator).cpu()
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
