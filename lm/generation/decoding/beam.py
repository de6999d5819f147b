"""Beam search with length normalisation: the likeliest whole texts rather than a draw.

A hypothesis scores ``logp / len**α`` where ``logp`` sums the (processed: form-masked,
repetition-penalised) log-probabilities of its generated tokens, the closing ``<eos>``
included, and ``len`` counts those tokens; α = ``length_penalty`` (0: raw log-probability,
which favours short texts; 1: mean per token). The beam's rows run as one batch. The search
stops when no live hypothesis can still beat the ``num``-th best finished one (with
log-probabilities ≤ 0 that bound is exact), so with a beam as wide as the tree it returns the
best sequences a brute-force enumeration would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lm.generation.decoding.plan import Plan
from lm.generation.decoding.processors import process
from lm.generation.decoding.steppers import Stepper
from lm.generation.verse.constraint import State
from lm.runtime import checkpoint
from lm.tokenization import EOS_ID


@dataclass
class Hypothesis:
    tokens: list[int]
    logprob: float
    score: float = -math.inf
    state: State | None = None


def normalised(logprob: float, length: int, alpha: float) -> float:
    return logprob / max(length, 1) ** alpha


def beam_search(stepper: Stepper, plan: Plan) -> list[Hypothesis]:
    """The ``plan.num`` best texts after the plan's context, best first, from a
    ``plan.beam``-wide beam; the plan's banned tokens are never chosen."""
    if plan.beam is None:
        raise ValueError("beam_search needs a plan with a beam width")
    beam, num, length_penalty, limit = plan.beam, plan.num, plan.length_penalty, plan.max_tokens
    constraint = plan.constraint
    banned = torch.tensor(plan.banned, dtype=torch.long)
    logprobs = stepper.start([list(plan.context)])
    live = [Hypothesis([], 0.0, state=plan.start)]
    finished: list[Hypothesis] = []
    cut_off: list[Hypothesis] = []
    for step in range(1, limit + 1):
        checkpoint()
        states = [h.state for h in live] if constraint is not None else None
        scores = process(plan.shaping, logprobs, [list(plan.prime) + h.tokens for h in live],
                         states).double().cpu().index_fill(1, banned, -math.inf)
        total = torch.tensor([h.logprob for h in live], dtype=torch.float64)[:, None] + scores
        vocab = total.shape[1]
        values, flat = total.view(-1).topk(min(2 * beam, total.numel()))
        survivors: list[Hypothesis] = []
        rows: list[int] = []
        for value, index in zip(values.tolist(), flat.tolist(), strict=True):
            if not math.isfinite(value) or len(survivors) == beam:
                break
            row, token = divmod(index, vocab)
            parent = live[row]
            state = constraint.step(parent.state, token) if constraint is not None else None
            done = constraint.done(state) if constraint is not None else token == EOS_ID
            if done:
                finished.append(Hypothesis(parent.tokens, value,
                                           normalised(value, step, length_penalty)))
            else:
                survivors.append(Hypothesis(parent.tokens + [token], value, state=state))
                rows.append(row)
        if not survivors or _settled(finished, survivors, num, step, limit, length_penalty):
            break
        if step == limit:
            cut_off = survivors
            break
        live = survivors
        stepper.select(torch.tensor(rows))
        logprobs = stepper.advance(torch.tensor([h.tokens[-1] for h in live]))
    if constraint is None:  # texts cut off by max_tokens compete as they stand
        finished += [Hypothesis(h.tokens, h.logprob, normalised(h.logprob, step, length_penalty))
                     for h in cut_off]
    return sorted(finished, key=lambda h: h.score, reverse=True)[:num]


def _settled(finished: list[Hypothesis], live: list[Hypothesis], num: int, step: int,
             limit: int, alpha: float) -> bool:
    """True when no live hypothesis can end above the num-th best finished one."""
    if len(finished) < num:
        return False
    kth = sorted((h.score for h in finished), reverse=True)[num - 1]
    best = max(h.logprob for h in live)
    # log-probabilities only fall; the length that flatters them most is the longest (α ≥ 0)
    # or the shortest still possible (α < 0).
    length = limit if alpha >= 0 else step + 1
    return kth >= normalised(best, length, alpha)
