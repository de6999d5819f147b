"""Logits processors shared by sampling and beam search: form mask, repetition rules.

They run in this order on the model's next-token log-probabilities, one row per sequence:

1. the form constraint sets every disallowed token to −∞ (:mod:`lm.generation.constraints`);
2. the CTRL repetition penalty divides a positive score and multiplies a negative one by the
   penalty for each token already in the row (prime and generated text). The steppers give
   log-probabilities, which are ≤ 0, so a repeated token's log-probability is multiplied;
3. ``no_repeat_ngram`` N bans any token that would complete an N-gram the row already holds.

Punctuation, newlines, ``<eos>`` and ``<unk>`` (every non-content token) are exempt from 2 and
3, and so is any N-gram that contains one: a poem must repeat ，and 。. A ban that would leave
a row nothing allowed is lifted for that row, so the form always wins over the repetition
rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lm.errors import LMError
from lm.generation.constraints import FormConstraint, State


def check_repetition_args(repetition_penalty: float, no_repeat_ngram: int) -> None:
    if math.isnan(repetition_penalty) or repetition_penalty <= 0:
        raise LMError(f"--repetition-penalty must be > 0 (1 is off, 1.2 is typical), "
                      f"not {repetition_penalty}")
    if no_repeat_ngram < 0:
        raise LMError(f"--no-repeat-ngram must be ≥ 0 (0 is off), not {no_repeat_ngram}")


@dataclass
class Processors:
    """Everything that reshapes the next-token scores before a token is chosen."""

    constraint: FormConstraint | None = None
    repetition_penalty: float = 1.0
    no_repeat_ngram: int = 0
    exempt: torch.Tensor | None = None  # bool [V]: tokens the repetition rules ignore

    def __post_init__(self) -> None:
        check_repetition_args(self.repetition_penalty, self.no_repeat_ngram)

    def __call__(self, logprobs: torch.Tensor, histories: list[list[int]],
                 states: list[State] | None = None) -> torch.Tensor:
        if self.constraint is None and self.repetition_penalty == 1.0 and not self.no_repeat_ngram:
            return logprobs  # nothing to do: no copy of a [B, V] tensor
        scores = logprobs.float().clone()
        if self.constraint is not None:
            assert states is not None
            allowed = self.constraint.mask(states).to(scores.device)
            scores = scores.masked_fill(~allowed, -math.inf)
        if self.repetition_penalty != 1.0:
            scores = self._penalise(scores, histories)
        if self.no_repeat_ngram > 0:
            scores = self._ban_ngrams(scores, histories)
        return scores

    def _repeatable(self, token: int) -> bool:
        return self.exempt is None or not bool(self.exempt[token])

    def _penalise(self, scores: torch.Tensor, histories: list[list[int]]) -> torch.Tensor:
        penalty = self.repetition_penalty
        for row, history in enumerate(histories):
            seen = [t for t in set(history) if self._repeatable(t)]
            if seen:
                index = torch.tensor(seen, device=scores.device)
                values = scores[row, index]
                scores[row, index] = torch.where(values > 0, values / penalty, values * penalty)
        return scores

    def _ban_ngrams(self, scores: torch.Tensor, histories: list[list[int]]) -> torch.Tensor:
        n = self.no_repeat_ngram
        for row, history in enumerate(histories):
            if not all(self._repeatable(t) for t in history[len(history) - n + 1:]):
                continue  # only n-grams made of content tokens count
            banned = [t for t in banned_tokens(history, n) if self._repeatable(t)]
            if not banned:
                continue
            candidate = scores[row].clone()
            candidate[banned] = -math.inf
            if bool(torch.isfinite(candidate).any()):
                scores[row] = candidate
        return scores


def banned_tokens(history: list[int], n: int) -> set[int]:
    """Tokens that would repeat an n-gram of ``history`` (n = 1 bans every token seen)."""
    if n == 1:
        return set(history)
    if len(history) < n:
        return set()
    prefix = tuple(history[len(history) - n + 1:])
    return {history[i + n - 1] for i in range(len(history) - n + 1)
            if tuple(history[i:i + n - 1]) == prefix}
