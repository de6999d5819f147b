"""Sampling: generate text from any stepper, one batch of samples, as a plan says.

Every sample starts the way training saw documents start, after an ``<eos>``, then reads the
optional style text (conditioning only, never printed) and the prime (printed and continued):
the plan's ``context``. All samples advance together as one batch. The scores go through the
plan's shaping processors (form mask, repetition rules) and, unless greedy (the argmax), its
sampling ones (temperature, top-k, top-p, min-p: :mod:`lm.generation.decoding.processors`); a
token is then drawn from their softmax with a seeded generator, so that the same seed gives
the same text.

A banned token (``<unk>``, unless the request allows it) is never drawn: a row whose draw
lands on one draws again from the same distribution without the banned tokens, from a second
generator. That is exactly sampling from the renormalised distribution, and every sample that
never landed on one is the very sample it was before the ban.
"""

from __future__ import annotations

import torch

from lm.generation.decoding.plan import Plan
from lm.generation.decoding.processors import process
from lm.generation.decoding.steppers import Stepper
from lm.runtime import checkpoint
from lm.tokenization import EOS_ID

REDRAW_SEED = 0x9E3779B97F4A7C15  # the redraw generator's seed is the plan's plus this


def choose(scores: torch.Tensor, plan: Plan, generator: torch.Generator,
           redraws: torch.Generator) -> torch.Tensor:
    """One token per row: the argmax if greedy, else a draw from ``softmax(scores)``; never a
    banned token (see the module's docstring)."""
    banned = torch.tensor(plan.banned, dtype=torch.long, device=scores.device)
    if plan.greedy:
        return scores.index_fill(1, banned, -torch.inf).argmax(dim=-1) if plan.banned \
            else scores.argmax(dim=-1)
    tokens = draw(torch.softmax(scores, dim=-1), generator)
    if not plan.banned:
        return tokens
    hit = torch.isin(tokens, banned)
    if bool(hit.any()):
        kept = scores[hit].index_fill(1, banned, -torch.inf)
        possible = torch.isfinite(kept).any(dim=-1)  # a row with nothing else keeps its draw
        if bool(possible.any()):
            rows = hit.nonzero().view(-1)[possible]
            tokens[rows] = draw(torch.softmax(kept[possible], dim=-1), redraws)
    return tokens


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


def generate(stepper: Stepper, plan: Plan) -> list[list[int]]:
    """Token ids generated after the plan's context, a list per sample, up to <eos>.

    With a form constraint a sample ends when its form is complete (an ``<eos>`` that only
    closes a line, in vocabularies without a newline, is kept in the output); the plan's
    ``max_tokens`` bounds every sample.
    """
    constraint, num = plan.constraint, plan.num
    chain = [*plan.shaping, *plan.sampling]
    states = None
    if constraint is not None:
        states = list(plan.starts) if plan.starts else [plan.start] * num
    generator = torch.Generator().manual_seed(plan.seed)
    redraws = torch.Generator().manual_seed((plan.seed + REDRAW_SEED) % 2**64)
    logprobs = stepper.start([list(plan.context)] * num)
    histories = [list(plan.prime) for _ in range(num)]
    outputs: list[list[int]] = [[] for _ in range(num)]
    active = list(range(num))  # the sample each row of the batch belongs to
    for step in range(plan.max_tokens):
        checkpoint()
        scores = process(chain, logprobs, [histories[r] for r in active],
                         [states[r] for r in active] if states is not None else None)
        tokens = choose(scores, plan, generator, redraws).cpu()
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
        if not keep or step == plan.max_tokens - 1:
            break
        if len(keep) < len(active):  # finished samples leave the batch: no work is wasted
            rows = torch.tensor(keep)
            stepper.select(rows)
            tokens = tokens[rows]
            active = [active[p] for p in keep]
        logprobs = stepper.advance(tokens)
    return outputs
