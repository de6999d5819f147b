"""Beam search finds what brute-force enumeration finds, and keeps forms."""

import itertools
import math

import pytest
import torch
from generation_fakes import (
    BAD,
    POEM_TOKENS,
    LoudStepper,
    TableStepper,
    acrostic_slots,
    beam_plan,
    modern_rhyme,
    poem_classes,
    random_table,
    text_of,
)

from lm.errors import LMError
from lm.generation.decoding.beam import beam_search
from lm.generation.decoding.processors import FormMask
from lm.generation.verse.constraint import FormConstraint
from lm.generation.verse.forms import matches, parse_form
from lm.tokenization import EOS_ID


def _brute_force(table: torch.Tensor, max_tokens: int, alpha: float):
    """Every text of at most max_tokens tokens (closed by <eos> or cut off), best first."""
    logp = table.log().double()
    scored = []
    others = [t for t in range(table.shape[0]) if t != EOS_ID]
    for length in range(1, max_tokens + 1):
        for body in itertools.product(others, repeat=length - 1):
            for last in (EOS_ID, *(others if length == max_tokens else ())):
                seq = [*body, last]
                total, previous = 0.0, EOS_ID
                for token in seq:
                    total += float(logp[previous, token])
                    previous = token
                tokens = list(body) if last == EOS_ID else seq
                scored.append((total / length ** alpha, tokens))
    return sorted(scored, key=lambda item: -item[0])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.0, -0.5])
def test_a_wide_beam_returns_the_brute_force_best(seed, alpha):
    table = random_table(4, seed)
    best = _brute_force(table, 4, alpha)
    found = beam_search(TableStepper(table), beam_plan([], beam=64, num=3, max_tokens=4,
                        length_penalty=alpha, allow_unk=True))  # <unk> counts too
    assert [h.tokens for h in found] == [tokens for _, tokens in best[:3]]
    for h, (score, _) in zip(found, best, strict=False):
        assert h.score == pytest.approx(score, rel=1e-9)


def test_beam_beats_greedy_where_greedy_is_short_sighted():
    # eos → a (0.6) → a dead end; eos → b (0.4) → a sure ending.
    table = torch.tensor([
        [0.01, 0.97, 0.01, 0.01],
        [0.02, 0.02, 0.56, 0.40],
        [0.02, 0.34, 0.32, 0.32],
        [0.01, 0.97, 0.01, 0.01],
    ])
    greedy = beam_search(TableStepper(table), beam_plan([], beam=1, num=1, max_tokens=6,
                         length_penalty=0.0))
    wide = beam_search(TableStepper(table), beam_plan([], beam=2, num=1, max_tokens=6,
                       length_penalty=0.0))
    assert greedy[0].tokens[0] == 2 and wide[0].tokens == [3]
    assert wide[0].logprob == pytest.approx(math.log(0.40) + math.log(0.97))


def test_beam_search_keeps_the_form_and_the_acrostic():
    classes = poem_classes()
    heads = [classes.index[c] for c in "春夏秋冬"]
    form = parse_form("wujue")
    constraint = FormConstraint(classes, form, acrostic_slots(heads),
                                rules=modern_rhyme(classes, form, rhyme=True))
    found = beam_search(LoudStepper(len(POEM_TOKENS), BAD[:5]), beam_plan([], beam=6, num=4,
                        processors=[FormMask(constraint)]))
    assert len(found) == 4
    scores = [h.score for h in found]
    assert scores == sorted(scores, reverse=True)
    for h in found:
        text = text_of(h.tokens)
        assert matches(text, parse_form("wujue"), "poem")
        assert [text[0], text[6], text[13], text[19]] == list("春夏秋冬")


@pytest.mark.parametrize("kwargs, message", [
    ({"beam": 0}, "--beam"), ({"length_penalty": float("nan")}, "--length-penalty"),
    ({"length_penalty": float("inf")}, "--length-penalty must be a finite number, not inf"),
])
def test_bad_beam_arguments(kwargs, message):
    with pytest.raises(LMError, match=message):
        beam_search(TableStepper(random_table(4, 0)), beam_plan([], **kwargs))


def test_a_beam_narrower_than_num_is_widened_to_it():
    plan = beam_plan([], beam=2, num=3, max_tokens=4)
    assert plan.beam == 3
    found = beam_search(TableStepper(random_table(4, 0)), plan)
    assert len(found) == 3
    assert beam_plan([], beam=5, num=3).beam == 5
