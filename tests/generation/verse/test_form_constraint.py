"""Form-constrained decoding: a model that wants to break the form still writes the form."""

import re

import pytest
from generation_fakes import (
    BAD,
    POEM_TOKENS,
    WORD_TOKENS,
    LoudStepper,
    acrostic_slots,
    make_plan,
    modern_rhyme,
    poem_classes,
    text_of,
    verse_of,
)

from lm.errors import LMError
from lm.generation.decoding.processors import FormMask
from lm.generation.decoding.sampling import generate
from lm.generation.report import rhyme_chars
from lm.generation.verse.constraint import FormConstraint
from lm.generation.verse.forms import matches, parse_form, with_acrostic
from lm.generation.verse.rhyme import is_level, rhyme_group
from lm.generation.verse.vocab import TokenClasses

CONTENT = "[^，。、\n<>a-z]"


def _layout_regex(lengths):
    """The poem layout written out by hand, independently of the code under test."""
    parts = []
    for i, n in enumerate(lengths):
        last = i == len(lengths) - 1
        mark = "。" if i % 2 == 1 or last else "，"
        parts.append(f"{CONTENT}{{{n}}}{mark}" + ("\n" if mark == "。" and not last else ""))
    return re.compile("".join(parts))


def _sample(constraint, num=100, prime=(), temperature=1.0, seed=0, tokens=POEM_TOKENS,
            joiner=""):
    stepper = LoudStepper(len(tokens), BAD[:5] if tokens is POEM_TOKENS else [0, 1, 2],
                          seed=seed)
    outputs = generate(stepper, make_plan(list(prime), num=num, temperature=temperature, seed=seed,
                       processors=[FormMask(constraint)] if constraint is not None else []))
    return [text_of(list(prime) + ids, tokens, joiner) for ids in outputs]


def test_the_loud_model_never_writes_a_poem_unconstrained():
    texts = _sample(None, num=100)
    assert not any(matches(t, parse_form("any"), "poem") for t in texts)


@pytest.mark.parametrize("spec, lengths", [
    ("wujue", [5] * 4), ("qijue", [7] * 4), ("wulv", [5] * 8), ("qilv", [7] * 8),
    ("5,5,7,7", [5, 5, 7, 7]), ("3,4,5", [3, 4, 5]),
])
@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_every_sample_has_the_form(spec, lengths, temperature):
    form = parse_form(spec)
    texts = _sample(FormConstraint(poem_classes(), form), temperature=temperature)
    pattern = _layout_regex(lengths)
    assert all(pattern.fullmatch(t) for t in texts), [t for t in texts if not pattern.fullmatch(t)]
    assert all(matches(t, form, "poem") for t in texts)
    assert len(set(texts)) > 90  # still sampled, not a fixed template


def test_any_form_is_one_of_the_four_with_lines_of_one_length():
    texts = _sample(FormConstraint(poem_classes(), parse_form("any")), temperature=2.0)
    kinds = set()
    for text in texts:
        kind = next(k for k, n in (("wujue", 5), ("qijue", 7)) for rows in (4, 8)
                    if _layout_regex([n] * rows).fullmatch(text))
        kinds.add((kind, text.count("\n")))
    assert len(kinds) > 1


def test_greedy_is_well_formed_too():
    texts = _sample(FormConstraint(poem_classes(), parse_form("wujue")), num=3, temperature=0)
    assert all(_layout_regex([5] * 4).fullmatch(t) for t in texts)


def test_a_prime_is_continued_within_the_form_or_refused():
    classes = poem_classes()
    prime = [classes.index[c] for c in "白日依"] if "依" in classes.index else \
        [classes.index[c] for c in "白日青"]
    texts = _sample(FormConstraint(classes, parse_form("wujue")), num=20, prime=prime)
    assert all(t.startswith("白日") and _layout_regex([5] * 4).fullmatch(t) for t in texts)
    too_long = [classes.index[c] for c in "白日青山水花"]
    with pytest.raises(LMError, match="does not fit the form.*'花'.*position 6"):
        FormConstraint(classes, parse_form("wujue")).initial(too_long)


@pytest.mark.parametrize("form", [None, "wujue", "qilv"])
def test_acrostic_heads_every_line(form):
    classes = poem_classes()
    heads = "春夏秋冬" if form != "qilv" else "春夏秋冬山水花月"
    shape = with_acrostic(parse_form(form) if form else None, len(heads), "poem")
    constraint = FormConstraint(classes, shape, acrostic_slots([classes.index[h] for h in heads]))
    texts = _sample(constraint, temperature=2.0)
    for text in texts:
        lines = re.split("[，。\n]+", text.strip("。"))
        assert [line[0] for line in lines] == list(heads)
        assert len({len(line) for line in lines}) == 1 and len(lines[0]) in (5, 7)
        assert matches(text, shape, "poem")
    if form is None:  # the model chooses 5 or 7 with the first line
        assert {len(re.split("[，。]", t)[0]) for t in texts} == {5, 7}


def test_acrostic_and_form_must_agree():
    with pytest.raises(LMError, match="--acrostic has 3 characters but --form wujue has 4"):
        with_acrostic(parse_form("wujue"), 3, "poem")


def test_unknown_acrostic_character_is_named():
    with pytest.raises(LMError, match="'龍' is not in the model's vocabulary"):
        poem_classes().id_of("龍", "--acrostic")


@pytest.mark.parametrize("spec", ["", "wuyan", "5,x", "0,5"])
def test_bad_form_specs(spec):
    with pytest.raises(LMError, match="is not a form"):
        parse_form(spec)


def test_rhyme_constraint_makes_the_even_lines_rhyme():
    classes = poem_classes()
    free = _sample(FormConstraint(classes, parse_form("wulv")), temperature=2.0)
    wulv = parse_form("wulv")
    rhymed = _sample(FormConstraint(classes, wulv, rules=modern_rhyme(classes, wulv, rhyme=True)),
                     temperature=2.0)

    def rhyming(text):
        groups = {rhyme_group(c) for c in rhyme_chars(text)}
        return len(groups) == 1 and None not in groups

    assert sum(map(rhyming, free)) < 10
    assert all(map(rhyming, rhymed))
    assert all(len(rhyme_chars(t)) == 4 for t in rhymed)


def test_level_tone_at_rhyme_positions():
    classes, qijue = poem_classes(), parse_form("qijue")
    rules = modern_rhyme(classes, qijue, rhyme=True, level_tone=True)
    texts = _sample(FormConstraint(classes, qijue, rules=rules), temperature=2.0)
    assert all(is_level(c) for t in texts for c in rhyme_chars(t))


def test_rhyme_groups_follow_the_table():
    groups = {c: rhyme_group(c) for c in "山間天年花家流樓秋風東中人春雲知詩"}
    assert len({groups[c] for c in "山間天年"}) == 1
    assert len({groups[c] for c in "流樓秋"}) == 1 and groups["流"] != groups["山"]
    assert len({groups[c] for c in "風東中"}) == 1
    assert len({groups[c] for c in "人春雲"}) == 1
    assert groups["知"] == groups["詩"] == "支"
    assert rhyme_group("a") is None and rhyme_group("，") is None
    assert is_level("天") and is_level("年") and not is_level("水")


def test_word_level_lines_are_documents_without_a_newline_token():
    classes = TokenClasses.from_tokens(WORD_TOKENS, "word")
    assert classes.layout == "eos"
    form = parse_form("3,4")
    texts = _sample(FormConstraint(classes, form), tokens=WORD_TOKENS, joiner=" ")
    for text in texts:
        lines = text.split("\n")
        assert [len(line.split()) for line in lines] == [3, 4]
        assert "," not in text and "<unk>" not in text
        assert matches(text, form, "eos", "word")


def test_word_level_with_a_newline_token_uses_it():
    tokens = [*WORD_TOKENS, "\n"]
    classes = TokenClasses.from_tokens(tokens, "word")
    assert classes.layout == "lines"
    constraint = FormConstraint(classes, parse_form("2,2,2"))
    outputs = generate(LoudStepper(len(tokens), [0, 1, 2, 11]), make_plan([], num=50,
                       processors=[FormMask(constraint)]))
    for ids in outputs:
        assert ids.count(11) == 2 and 1 not in ids
        first, second = ids.index(11), len(ids) - 1 - ids[::-1].index(11)
        assert (first, second, len(ids)) == (2, 5, 8)


def test_rhyme_needs_a_chinese_char_model():
    with pytest.raises(LMError, match="--rhyme"):
        verse_of(TokenClasses.from_tokens(WORD_TOKENS, "word"), form="3,3", rhyme=True)
    with pytest.raises(LMError, match="char- or word-level"):
        FormConstraint(TokenClasses.from_tokens(WORD_TOKENS, "bpe"), parse_form("3,3"))
