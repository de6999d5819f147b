"""What the decoding loops read, and nothing else: a request made ready once, then frozen.

:func:`plan_of` turns a :class:`~lm.generation.request.SampleRequest` (checked) and the ids the
decoder has read (prime, style, the form constraint) into a :class:`Plan`: the batch, the seed,
the token bound, what every sample reads first, the logits processors in order, and the tokens
never drawn. :func:`~lm.generation.decoding.sampling.generate` and
:func:`~lm.generation.decoding.beam.beam_search` take a plan, as ``transformers``' decoding
loops take a checked ``GenerationConfig`` and a processor list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from lm.errors import LMError
from lm.generation.decoding.processors import SAMPLING, SHAPING, Processor, build, form_of
from lm.generation.verse.constraint import FormConstraint, State
from lm.settings import named
from lm.tokenization import EOS_ID, UNK_ID

if TYPE_CHECKING:
    from lm.generation.request import SampleRequest

GREEDY_BELOW = 1e-6  # temperatures below this are greedy (the T → 0 limit; float32 underflows)


@dataclass(frozen=True)
class Plan:
    """One batch of decoding, fully decided."""

    num: int  # samples (sampling) or texts returned (beam)
    seed: int
    max_tokens: int  # the most tokens a sample may have (a form's own bound when it has one)
    context: tuple[int, ...]  # what every sample reads first: <eos>, the style text, the prime
    prime: tuple[int, ...] = ()  # printed and continued; the repetition rules see it
    shaping: tuple[Processor, ...] = ()  # form mask and repetition rules, in order
    sampling: tuple[Processor, ...] = ()  # temperature, top-k/p, min-p (not when greedy)
    greedy: bool = False
    beam: int | None = None  # beam width (at least num); None samples
    length_penalty: float = 1.0
    banned: tuple[int, ...] = (UNK_ID,)  # never drawn: <unk>, unless the request allows it
    start: State | None = None  # the form's state after the prime
    starts: tuple[State, ...] = ()  # each row's, when rows differ (their keywords' places)

    @property
    def constraint(self) -> FormConstraint | None:
        return form_of(self.shaping)


def plan_of(request: SampleRequest, prime: Sequence[int] = (), style: Sequence[int] = (),
            constraint: FormConstraint | None = None, exempt: torch.Tensor | None = None,
            head: Sequence[int] = (), title_first: Processor | None = None) -> Plan:
    """The plan of a checked request. ``exempt`` (bool [V]): the tokens the repetition rules
    leave alone; ``head``: what a poem's text follows (its title and ``<sep>``);
    ``title_first``: the processor that has free text write its own title first. A prime that
    breaks the form, or a form longer than ``max_tokens``, is a one-line error here, before
    any model work."""
    settings = vars(request)
    shaping = [*build(SHAPING, settings, constraint, exempt),
               *([title_first] if title_first is not None else [])]
    greedy = request.temperature < GREEDY_BELOW
    sampling = () if greedy or request.beam is not None else build(SAMPLING, settings)
    limit, start, starts = request.max_tokens, None, ()
    if constraint is not None:
        start = constraint.initial(list(prime))
        if len(constraint.variants) > 1:
            starts = tuple(constraint.initial(list(prime), variant=v)
                           for v in range(len(constraint.variants)))
        if constraint.max_tokens > request.max_tokens:
            raise LMError(f"{named('form')} {constraint.form.spec} needs up to "
                          f"{constraint.max_tokens} tokens, more than {named('max_tokens')} "
                          f"{request.max_tokens}: raise {named('max_tokens')} or ask for a "
                          "shorter form")
        limit = constraint.max_tokens
    drafts = request.num * getattr(request, "best_of", 1) if request.beam is None else request.num
    return Plan(num=drafts, seed=request.seed, max_tokens=limit,
                context=(EOS_ID, *head, *style, *prime), prime=tuple(prime),
                shaping=tuple(shaping),
                sampling=tuple(sampling), greedy=greedy,
                beam=None if request.beam is None else max(request.beam, request.num),
                length_penalty=request.length_penalty,
                banned=() if request.allow_unk else (UNK_ID,), start=start, starts=starts)
