"""Repetition penalty and n-gram bans: what they change, and what they must leave alone."""

import math

import pytest
import torch
from generation_fakes import BAD, POEM_TOKENS, LoudStepper, poem_classes

from lm.errors import LMError
from lm.generation.constraints import FormConstraint
from lm.generation.forms import parse_form
from lm.generation.processors import (
    SHAPING,
    NoRepeatNgram,
    RepetitionPenalty,
    banned_tokens,
    build,
    process,
)
from lm.generation.request import SampleRequest
from lm.generation.sampling import generate


def test_ctrl_penalty_divides_positive_and_multiplies_negative_scores():
    scores = torch.tensor([[2.0, -1.0, 3.0, -2.0]])
    out = process([RepetitionPenalty(2.0)], scores, [[0, 1]])
    assert out.tolist() == [[1.0, -2.0, 3.0, -2.0]]


def test_exempt_tokens_are_not_penalised():
    scores = torch.log(torch.full((1, 4), 0.25))
    exempt = torch.tensor([False, True, False, False])
    out = process([RepetitionPenalty(1.5, exempt)], scores, [[0, 1]])
    assert out[0, 0] == pytest.approx(1.5 * math.log(0.25))
    assert out[0, 1] == pytest.approx(math.log(0.25))


def test_banned_tokens_complete_a_seen_ngram():
    assert banned_tokens([5, 6, 7, 5, 6], 3) == {7}
    assert banned_tokens([5, 6, 5], 2) == {6}
    assert banned_tokens([5, 6], 1) == {5, 6}
    assert banned_tokens([5], 3) == set()


def test_no_repeat_ngram_holds_in_samples():
    stepper = LoudStepper(len(POEM_TOKENS), [], bonus=0.0)
    outputs = generate(stepper, [], num=30, max_tokens=40, processors=[
        NoRepeatNgram(2)])
    for ids in outputs:
        pairs = list(zip(ids, ids[1:], strict=False))
        assert len(pairs) == len(set(pairs))


def test_the_form_wins_over_ngram_bans():
    classes = poem_classes()
    constraint = FormConstraint(classes, parse_form("wulv"))
    processors = build(SHAPING, SampleRequest(repetition_penalty=3.0, no_repeat_ngram=1),
                       constraint, classes.structural())
    outputs = generate(LoudStepper(len(POEM_TOKENS), BAD[:5]), [], num=20,
                       processors=processors)
    for ids in outputs:
        assert ids.count(classes.period) == 4 and ids.count(classes.comma) == 4
        content = [t for t in ids if bool(classes.content[t])]
        # 40 characters from 25: unigram bans must be lifted once the vocabulary runs out
        kinds = int(classes.content.sum())
        assert len(content) == 40 and len(set(content[:kinds])) == kinds == 25


def test_penalty_lowers_repeats():
    stepper = LoudStepper(len(POEM_TOKENS), [], bonus=0.0)
    plain = generate(stepper, [], num=50, max_tokens=30, seed=3)
    stepper = LoudStepper(len(POEM_TOKENS), [], bonus=0.0)
    penalised = generate(stepper, [], num=50, max_tokens=30, seed=3,
                         repetition_penalty=5.0)

    def repeats(outputs):
        return sum(len(ids) - len(set(ids)) for ids in outputs)

    assert repeats(penalised) < repeats(plain) / 2


@pytest.mark.parametrize("kwargs, message", [
    ({"repetition_penalty": 0.0}, "--repetition-penalty"),
    ({"repetition_penalty": float("nan")}, "--repetition-penalty"),
    ({"no_repeat_ngram": -1}, "--no-repeat-ngram"),
])
def test_bad_repetition_arguments(kwargs, message):
    with pytest.raises(LMError, match=message):
        SampleRequest(**kwargs).check()
