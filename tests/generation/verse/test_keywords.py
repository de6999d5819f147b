"""Keywords: their tokens, the places every rule takes, one draw of places per row."""

import random

import pytest
from generation_fakes import WORD_TOKENS, LoudStepper, make_plan, poem_classes, text_of, verse_of

from lm.errors import LMError
from lm.generation.decoding.processors import FormMask
from lm.generation.decoding.sampling import generate
from lm.generation.verse.draft import Draft
from lm.generation.verse.keywords import Placer, keyword_tokens
from lm.generation.verse.lexicon import Lexicon
from lm.generation.verse.vocab import TokenClasses


def test_keyword_tokens_by_level():
    draft = Draft(Lexicon(poem_classes()), "modern")
    assert keyword_tokens("春風、 山水", draft) == [
        ("春風", tuple(poem_classes().index[c] for c in "春風")),
        ("山水", tuple(poem_classes().index[c] for c in "山水"))]
    words = Draft(Lexicon(TokenClasses.from_tokens(WORD_TOKENS, "word")), "modern")
    index = words.classes.index
    assert keyword_tokens("cat,dog", words) == [("cat", (index["cat"],)),
                                                ("dog", (index["dog"],))]
    with pytest.raises(LMError, match="^--keywords 'the cat': 'the cat' is not in the model"):
        keyword_tokens("the cat", words)  # at word level a keyword is one word


def test_places_stay_inside_a_line_and_every_row_draws_its_own():
    verse = verse_of(poem_classes(), form="5,5,5,5", keywords="春風雲", num=40, seed=3)
    variants = verse.constraint.variants
    assert len(variants) == 40 and len(verse.constraint.starts) == 40
    places = {min(v) for v in variants}
    assert places <= {(line, pos) for line in range(4) for pos in range(3)}
    assert len(places) > 6  # drawn, not always the same
    assert verse_of(poem_classes(), form="5,5,5,5", keywords="春風雲", num=40,
                    seed=3).constraint.variants == variants  # the seed decides
    texts = [text_of(ids) for ids in generate(
        LoudStepper(len(poem_classes().tokens), [0, 1, 2, 3, 4, 5]),
        make_plan([], num=40, seed=3, processors=[FormMask(verse.constraint)]))]
    assert all("春風雲" in t.replace("，", "|").replace("。", "|") for t in texts)


def test_a_placer_asks_every_rule_and_remembers_its_answer():
    verse_of(poem_classes(), form="wujue", keywords="春風")  # builds and works
    draft = Draft(Lexicon(poem_classes()), "modern")
    draft.form = verse_of(poem_classes(), form="wujue").form
    placer = Placer(draft, keyword_tokens("春風", draft))
    assert placer.places([1, 2]) == [(line, pos) for line in range(4) for pos in range(4)]
    assert placer.takes({}) and len(placer._verdicts) == 1
    with pytest.raises(AssertionError):
        Placer(draft, keyword_tokens("春風雲天人江", draft)).draw(random.Random(0))
    with pytest.raises(LMError, match="fits nowhere"):
        Placer(draft, keyword_tokens("春風雲天人江", draft)).check_each()
