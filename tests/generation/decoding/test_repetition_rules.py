"""Repetition penalty and n-gram bans: what they change, and what they must leave alone."""

import math

import pytest
import torch
from generation_fakes import BAD, POEM_TOKENS, LoudStepper, make_plan, poem_classes, text_of

from lm.errors import LMError
from lm.generation.decoding.processors import (
    SHAPING,
    FormMask,
    NoRepeatNgram,
    RepetitionPenalty,
    banned_tokens,
    build,
    process,
)
from lm.generation.decoding.sampling import generate
from lm.generation.request import SampleRequest
from lm.generation.verse.constraint import FormConstraint
from lm.generation.verse.forms import matches, parse_form


def test_ctrl_penalty_divides_positive_and_multiplies_negative_scores():
    scores = torch.tensor([[2.0, -1.0, 3.0, -2.0]])
    out = process([RepetitionPenalty(2.0)], scores, [[0, 1]])
    assert out.tolist() == [[1.0, -2.0, 3.0, -2.0]]


def test_a_masked_token_stays_masked_under_any_penalty():
    scores = torch.tensor([[-math.inf, -1.0, -math.inf, 2.0]])
    for penalty in (1e-46, 1e-3, 1e3, 1e40):  # float32 makes 1e-46 zero, 1e40 infinite
        out = process([RepetitionPenalty(penalty)], scores, [[0, 1, 2, 3]])
        assert out[0, 0] == out[0, 2] == -math.inf and not torch.isnan(out).any()


def test_extreme_settings_still_keep_the_form():
    constraint = FormConstraint(poem_classes(), parse_form("wujue"))
    for settings in ({"repetition_penalty": 0.001, "no_repeat_ngram": 5},
                     {"repetition_penalty": 1000, "temperature": 1000},
                     {"temperature": 0.00001}):
        outputs = generate(LoudStepper(len(POEM_TOKENS), BAD), make_plan(
            [], num=20, seed=1, processors=[FormMask(constraint), *build(
                SHAPING[1:], {**vars(SampleRequest()), **settings})], **settings))
        assert all(matches(text_of(ids), parse_form("wujue"), "poem") for ids in outputs)


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
    outputs = generate(stepper, make_plan([], num=30, max_tokens=40, processors=[
        NoRepeatNgram(2)]))
    for ids in outputs:
        pairs = list(zip(ids, ids[1:], strict=False))
        assert len(pairs) == len(set(pairs))


def test_the_form_wins_over_ngram_bans():
    classes = poem_classes()
    constraint = FormConstraint(classes, parse_form("wulv"))
    processors = build(SHAPING, vars(SampleRequest(repetition_penalty=3.0, no_repeat_ngram=1)),
                       constraint, classes.structural())
    outputs = generate(LoudStepper(len(POEM_TOKENS), BAD[:5]), make_plan([], num=20,
                       processors=processors))
    for ids in outputs:
        assert ids.count(classes.period) == 4 and ids.count(classes.comma) == 4
        content = [t for t in ids if bool(classes.content[t])]
        # 40 characters from 25: unigram bans must be lifted once the vocabulary runs out
        kinds = int(classes.content.sum())
        assert len(content) == 40 and len(set(content[:kinds])) == kinds == 25


def test_penalty_lowers_repeats():
    stepper = LoudStepper(len(POEM_TOKENS), [], bonus=0.0)
    plain = generate(stepper, make_plan([], num=50, max_tokens=30, seed=3))
    stepper = LoudStepper(len(POEM_TOKENS), [], bonus=0.0)
    penalised = generate(stepper, make_plan([], num=50, max_tokens=30, seed=3,
                         repetition_penalty=5.0))

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
