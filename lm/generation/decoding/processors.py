"""Logits processors: small steps that reshape next-token scores, applied as a list in order.

A processor is called as ``processor(scores, histories, states)``: ``scores`` is a float
``[B, V]`` copy of the model's log-probabilities (one row per sequence) that it may change in
place, ``histories`` each row's tokens so far (prime and generated text), ``states`` each
row's form state (:mod:`lm.generation.verse.constraint`) or None; it returns the new scores.
:func:`process` runs a list of them and copies nothing when the list is empty.

Each processor class says, in its ``of``, which settings of a request ask for it (most name
the one setting that switches them on: ``class MinP(Warper, setting="min_p")``), and is named
once in one of two lists, in the order they run; :func:`build` makes a list from a request's
settings by name.

* :data:`SHAPING`, for sampling and beam search alike:

  1. :class:`FormMask` sets every token the form does not allow to −∞;
  2. :class:`RepetitionPenalty` (CTRL) divides a positive score and multiplies a negative one
     by the penalty for each token already in the row. The steppers give log-probabilities,
     which are ≤ 0, so a repeated token's log-probability is multiplied;
  3. :class:`NoRepeatNgram` N bans any token that would complete an N-gram the row holds.

  Punctuation, newlines, ``<eos>`` and ``<unk>`` (every non-content token) are exempt from 2
  and 3, and so is any N-gram that contains one: a poem must repeat ，and 。. A ban that would
  leave a row nothing allowed is lifted for that row, so the form always wins over the
  repetition rules.

* :data:`SAMPLING`, after those and only when sampling (not greedy, not beam search): the
  scores become the logits of the distribution tokens are drawn from. :class:`Temperature`
  divides them by T; :class:`TopK`, :class:`TopP` (nucleus) and :class:`MinP` then drop tokens
  (−∞), each from what the previous ones left.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch

from lm.generation.verse.constraint import FormConstraint, State


class Processor(Protocol):
    def __call__(self, scores: torch.Tensor, histories: list[list[int]],
                 states: list[State] | None) -> torch.Tensor:
        """The new scores [B, V]; ``scores`` is this list's own copy, to change in place."""


def process(processors: Sequence[Processor], logprobs: torch.Tensor,
            histories: list[list[int]], states: list[State] | None = None) -> torch.Tensor:
    """``logprobs`` [B, V] through each processor in order."""
    if not processors:
        return logprobs  # nothing to do: no copy of a [B, V] tensor
    scores = logprobs.float().clone()
    for processor in processors:
        scores = processor(scores, histories, states)
    return scores


def build(kinds: Sequence[type], settings: Mapping[str, Any],
          form: FormConstraint | None = None,
          exempt: torch.Tensor | None = None) -> list[Processor]:
    """The processors of ``kinds`` that the settings (a request's, by name) ask for, in order.

    ``form``: the form constraint, if any; ``exempt``: bool [V], the tokens the repetition
    rules ignore (None: none).
    """
    made = (kind.of(settings, form, exempt) for kind in kinds)  # type: ignore[attr-defined]
    return [processor for processor in made if processor is not None]


def form_of(processors: Sequence[Processor]) -> FormConstraint | None:
    """The form constraint among the processors: decoding keeps its states and stops with it."""
    return next((p.constraint for p in processors if isinstance(p, FormMask)), None)


class Switched:
    """A processor that one setting of the request switches on, holding that setting's value.

    A subclass names the setting, and the value that changes nothing if there is one, as
    ``class TopK(Warper, setting="top_k")``. ``exempt`` (bool [V]): the tokens the repetition
    rules leave alone (None: none).
    """

    setting: ClassVar[str]  # the SampleRequest field
    neutral: ClassVar[float | None]  # the value that leaves the scores as they are

    def __init_subclass__(cls, setting: str = "", neutral: float | None = None,
                          **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if setting:
            cls.setting, cls.neutral = setting, neutral

    def __init__(self, value: float, exempt: torch.Tensor | None = None) -> None:
        self.value = value
        self.exempt = exempt

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"

    @classmethod
    def of(cls, settings: Mapping[str, Any], form: FormConstraint | None = None,
           exempt: torch.Tensor | None = None) -> Switched | None:
        value = settings.get(cls.setting)
        return None if value is None or value == cls.neutral else cls(value, exempt)

    def repeatable(self, token: int) -> bool:
        return self.exempt is None or not bool(self.exempt[token])


# ----------------------------------------------------------------------------- shaping
@dataclass
class FormMask:
    constraint: FormConstraint

    @classmethod
    def of(cls, settings: Mapping[str, Any], form: FormConstraint | None,
           exempt: torch.Tensor | None) -> FormMask | None:
        return cls(form) if form is not None else None

    def __call__(self, scores: torch.Tensor, histories: list[list[int]],
                 states: list[State] | None) -> torch.Tensor:
        assert states is not None, "a form needs each row's state"
        allowed = self.constraint.mask(states).to(scores.device)
        return scores.masked_fill_(~allowed, -math.inf)


class RepetitionPenalty(Switched, setting="repetition_penalty", neutral=1.0):
    def __call__(self, scores: torch.Tensor, histories: list[list[int]],
                 states: list[State] | None) -> torch.Tensor:
        penalty = self.value
        for row, history in enumerate(histories):
            seen = [t for t in set(history) if self.repeatable(t)]
            if seen:
                index = torch.tensor(seen, device=scores.device)
                values = scores[row, index]
                changed = torch.where(values > 0, values / penalty, values * penalty)
                # a token already masked (−∞) stays so, whatever float rounding makes of it
                scores[row, index] = torch.where(torch.isinf(values), values, changed)
        return scores


class NoRepeatNgram(Switched, setting="no_repeat_ngram", neutral=0):
    def __call__(self, scores: torch.Tensor, histories: list[list[int]],
                 states: list[State] | None) -> torch.Tensor:
        n = int(self.value)
        for row, history in enumerate(histories):
            if not all(self.repeatable(t) for t in history[len(history) - n + 1:]):
                continue  # only n-grams made of content tokens count
            banned = [t for t in banned_tokens(history, n) if self.repeatable(t)]
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


@dataclass
class TitleFirst:
    """Free text from a model of titled documents: the sample writes its own title, then
    ``<sep>``, then the body. ``<eos>`` waits for the ``<sep>``, a second ``<sep>`` never comes,
    and a title of ``longest`` tokens is closed by force. (Under a form the constraint does
    the same: :mod:`lm.generation.verse.constraint`.)"""

    sep: int
    eos: int
    longest: int

    def __call__(self, scores: torch.Tensor, histories: list[list[int]],
                 states: list[State] | None) -> torch.Tensor:
        for row, history in enumerate(histories):
            if self.sep in history:
                scores[row, self.sep] = -math.inf
            elif len(history) >= self.longest:
                keep = scores[row, self.sep].clone()
                scores[row] = -math.inf
                scores[row, self.sep] = keep if torch.isfinite(keep) else 0.0
            else:
                scores[row, self.eos] = -math.inf
        return scores


# ---------------------------------------------------------------------------- sampling
class Warper(Switched):
    """A sampling processor: what it does to the scores alone, in ``warp``."""

    def __call__(self, scores: torch.Tensor, histories: list[list[int]],
                 states: list[State] | None) -> torch.Tensor:
        return self.warp(scores)

    def warp(self, scores: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Temperature(Warper, setting="temperature", neutral=1.0):
    """Divide the scores by T (never used when greedy, so every finite score stays finite)."""

    def warp(self, scores: torch.Tensor) -> torch.Tensor:
        return scores.div_(self.value)


class TopK(Warper, setting="top_k"):
    """Keep the k likeliest tokens (and any tied with the k-th)."""

    def warp(self, scores: torch.Tensor) -> torch.Tensor:
        if self.value >= scores.shape[-1]:
            return scores
        kth = torch.topk(scores, int(self.value), dim=-1).values[:, -1:]
        return scores.masked_fill_(scores < kth, -math.inf)


class TopP(Warper, setting="top_p", neutral=1.0):
    """Nucleus: the likeliest tokens until their mass reaches p (the one that crosses p too)."""

    def warp(self, scores: torch.Tensor) -> torch.Tensor:
        sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
        probs = torch.softmax(sorted_scores, dim=-1)
        drop = probs.cumsum(dim=-1) - probs >= self.value  # keep the first token past p
        drop[..., 0] = False  # and the likeliest always: a p that float32 rounds to 0 too
        sorted_scores = sorted_scores.masked_fill(drop, -math.inf)
        return torch.full_like(scores, -math.inf).scatter(-1, order, sorted_scores)


class MinP(Warper, setting="min_p"):
    """Keep the tokens whose probability is at least min_p times the likeliest token's."""

    def warp(self, scores: torch.Tensor) -> torch.Tensor:
        # p_i ≥ min_p · p_max  ⇔  s_i − s_max ≥ log min_p, whatever softmax's normaliser
        floor = scores.max(dim=-1, keepdim=True).values + math.log(self.value)
        return scores.masked_fill_(scores < floor, -math.inf)


SHAPING: tuple[type, ...] = (FormMask, RepetitionPenalty, NoRepeatNgram)
SAMPLING: tuple[type, ...] = (Temperature, TopK, TopP, MinP)
