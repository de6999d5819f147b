"""The form automaton token by token: the exact set of allowed next tokens at every position.

Each test writes a text into :class:`FormConstraint` and compares, after every token, the
allowed set with the one the form's rules give by hand (content = every character of the
vocabulary; the marks named one by one). Rhyme sets come from the readings in
``generation_fakes`` (山間天年 寒, 花家夏 麻, 水 the only 微 character; 夏水月雨日 are the
oblique-tone ones).
"""

import pytest
import torch
from generation_fakes import (
    POEM_TOKENS,
    WORD_TOKENS,
    acrostic_slots,
    modern_rhyme,
    poem_classes,
    verse_of,
)

from lm.errors import LMError
from lm.generation.verse.constraint import BREAK, CONTENT, DONE, START, FormConstraint
from lm.generation.verse.forms import FREE_WIDTHS, POEM_WIDTHS, Form, parse_form, with_acrostic
from lm.generation.verse.vocab import TokenClasses
from lm.tokenization import EOS_ID

CHARS = POEM_TOKENS[6:]
OBLIQUE = set("夏水月雨日")  # tones 3 and 4: every other character of the vocabulary is level
EOS, COMMA, PERIOD, NEWLINE = "<eos>", "，", "。", "\n"
C = "C"  # stands for: every content token


def _ids(classes, pieces):
    return [EOS_ID if p == EOS else classes.index[p] for p in pieces]


def _allowed(constraint, state, fold=True):
    """The allowed set as token strings; with ``fold``, all the content tokens become C."""
    mask = constraint.allowed(state)
    tokens = {constraint.classes.tokens[i] for i in torch.nonzero(mask).view(-1).tolist()}
    content = {constraint.classes.tokens[i]
               for i in torch.nonzero(constraint.classes.content).view(-1).tolist()}
    if fold and content <= tokens:
        tokens = (tokens - content) | {C}
    return tokens


def _walk(constraint, pieces, fold=True):
    """The allowed set before each piece and after the last; the states along the way."""
    state = constraint.start
    seen, states = [], [state]
    for token in _ids(constraint.classes, pieces):
        seen.append(_allowed(constraint, state, fold))
        assert bool(constraint.allowed(state)[token]), (pieces, len(seen))
        state = constraint.step(state, token)
        states.append(state)
    seen.append(_allowed(constraint, state, fold))
    return seen, states


def test_poem_layout_allows_exactly_the_next_mark():
    # four lines of two, ending after the second or the fourth line
    form = Form(frozenset({2, 4}), lengths=(2, 2, 2, 2), spec="2,2,2,2 or 2,2")
    constraint = FormConstraint(poem_classes(), form)
    text = [*"春夏，秋冬。", NEWLINE, *"山水，花月。", EOS]
    seen, states = _walk(constraint, text)
    assert seen == [
        {C}, {C}, {COMMA},            # line 1: two characters, then ， (it cannot end)
        {C}, {C}, {PERIOD},           # line 2: 。 (the poem may end here)
        {EOS, NEWLINE},               # after the first couplet: end or go on
        {C}, {C}, {COMMA}, {C}, {C}, {PERIOD},
        {EOS},                        # after the fourth line only the end
        {EOS},                        # done: nothing else, ever
    ]
    assert [s.phase for s in states] == [CONTENT] * 6 + [BREAK, CONTENT] + [CONTENT] * 5 \
        + [BREAK, DONE]
    assert [s.line for s in states] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4]
    assert [s.count for s in states] == [0, 1, 2, 0, 1, 2, 0, 0, 1, 2, 0, 1, 2, 0, 0]
    assert [constraint.done(s) for s in states] == [False] * 14 + [True]
    final = states[-1]
    assert constraint.step(final, POEM_TOKENS.index("春")) == final  # done is final
    assert constraint.initial(_ids(constraint.classes, text)) == final


def test_a_poem_that_ends_at_its_first_couplet():
    form = Form(frozenset({2, 4}), lengths=(2, 2, 2, 2), spec="2,2,2,2 or 2,2")
    constraint = FormConstraint(poem_classes(), form)
    seen, states = _walk(constraint, [*"春夏，秋冬。", EOS])
    assert seen[-2:] == [{EOS, NEWLINE}, {EOS}]
    assert constraint.done(states[-1]) and states[-1].line == 2


def test_any_form_lets_the_first_line_choose_five_or_seven_and_keeps_it():
    constraint = FormConstraint(poem_classes(), parse_form("any"))
    seen, states = _walk(constraint, [*"春夏秋冬山", COMMA, *"水花月風雨", PERIOD])
    # five and seven may close the first line; six may not; the second line must be five
    assert seen[:8] == [{C}] * 5 + [{C, COMMA}, {C}, {C}]
    assert seen[6:] == [{C}] * 5 + [{PERIOD}, {NEWLINE}]
    assert states[6].width == 5 and states[-1].width == 5
    seven = _walk(constraint, [*"春夏秋冬山水花"])[0]
    assert seven[-1] == {COMMA}  # seven is the longest: the line must end


def test_lines_end_with_period_on_every_even_line_and_on_a_possible_last():
    constraint = FormConstraint(poem_classes(), parse_form("1,1,1"))
    seen, _ = _walk(constraint, ["春", COMMA, "夏", PERIOD, NEWLINE, "秋", PERIOD, EOS])
    assert seen == [{C}, {COMMA}, {C}, {PERIOD}, {NEWLINE}, {C}, {PERIOD}, {EOS}, {EOS}]


def test_without_a_newline_token_the_next_line_follows_the_period_directly():
    tokens = [t for t in POEM_TOKENS if t != NEWLINE]
    classes = TokenClasses.from_tokens(tokens, "char")
    assert classes.layout == "poem" and classes.newline is None
    constraint = FormConstraint(classes, parse_form("2,2,2,2"))
    seen, states = _walk(constraint, [*"春夏，秋冬。山水，花月。", EOS])
    assert seen[6] == {C}  # after 。 a content token starts line 3
    assert (states[7].phase, states[7].count, states[7].line) == (CONTENT, 1, 2)
    assert seen[7:] == [{C}, {COMMA}, {C}, {C}, {PERIOD}, {EOS}, {EOS}]

    heads = [classes.index[h] for h in "春夏秋冬"]
    acrostic = FormConstraint(classes, parse_form("2,2,2,2"), acrostic_slots(heads))
    seen, _ = _walk(acrostic, [*"春夏，夏冬。秋月，冬雨。", EOS])
    assert seen[6] == {"秋"}  # the head of line 3, straight after the 。

    # lines of one length, whatever it is: after the last line only the end, no new line
    couplet = FormConstraint(classes, Form(frozenset({2}), frozenset({1}), spec="1,1"))
    seen, _ = _walk(couplet, ["春", COMMA, "夏", PERIOD, EOS])
    assert seen == [{C}, {COMMA}, {C}, {PERIOD}, {EOS}, {EOS}]


def test_word_level_without_newline_closes_each_line_with_eos():
    classes = TokenClasses.from_tokens(WORD_TOKENS, "word")
    assert classes.layout == "eos"
    constraint = FormConstraint(classes, parse_form("2,3"))
    seen, states = _walk(constraint, ["the", "cat", EOS, "a", "dog", "ran", EOS])
    assert seen == [{C}, {C}, {EOS}, {C}, {C}, {C}, {EOS}, {EOS}]
    assert [constraint.done(s) for s in states] == [False] * 7 + [True]
    assert states[3].phase == CONTENT and states[3].line == 1


def test_word_level_with_newline_ends_lines_with_it_and_the_poem_with_eos():
    tokens = [*WORD_TOKENS, NEWLINE]
    classes = TokenClasses.from_tokens(tokens, "word")
    assert classes.layout == "lines"
    constraint = FormConstraint(classes, Form(frozenset({1, 2}), lengths=(2, 2), spec="2[,2]"))
    seen, states = _walk(constraint, ["the", "cat", NEWLINE, "a", "dog", EOS])
    assert seen == [{C}, {C}, {NEWLINE, EOS}, {C}, {C}, {EOS}, {EOS}]
    assert constraint.done(states[-1])
    short, states = _walk(constraint, ["the", "cat", EOS])
    assert short[-1] == {EOS} and constraint.done(states[-1]) and states[-1].line == 1


def test_word_level_lines_of_free_length():
    tokens = [*WORD_TOKENS, NEWLINE]
    classes = TokenClasses.from_tokens(tokens, "word")
    form = with_acrostic(None, 2, "lines")
    assert form.widths == FREE_WIDTHS and not form.uniform
    heads = [classes.index["the"], classes.index["a"]]
    constraint = FormConstraint(classes, form, acrostic_slots(heads))
    seen, _ = _walk(constraint, ["the", "cat", "sat", NEWLINE, "a", EOS])
    # each line any length from 1; lines need not match the first one
    assert seen == [{"the"}, {C, NEWLINE}, {C, NEWLINE}, {C, NEWLINE}, {"a"}, {C, EOS}, {EOS}]


def test_acrostic_fixes_each_head_and_only_the_head():
    classes = poem_classes()
    heads = [classes.index[h] for h in "春夏秋冬"]
    constraint = FormConstraint(classes, parse_form("2,2,2,2"), acrostic_slots(heads))
    seen, _ = _walk(constraint, [*"春水，夏水。", NEWLINE, *"秋水，冬水。", EOS])
    assert seen == [{"春"}, {C}, {COMMA}, {"夏"}, {C}, {PERIOD}, {NEWLINE},
                    {"秋"}, {C}, {COMMA}, {"冬"}, {C}, {PERIOD}, {EOS}, {EOS}]


def test_acrostic_without_a_form_picks_five_or_seven_from_the_first_line():
    classes = poem_classes()
    heads = [classes.index[h] for h in "春夏"]
    constraint = FormConstraint(classes, with_acrostic(None, 2, "poem"), acrostic_slots(heads))
    assert constraint.form.widths == POEM_WIDTHS
    seen, _ = _walk(constraint, [*"春水花月風雨江", COMMA, *"夏水花月風雨"])
    assert seen[5:8] == [{C, COMMA}, {C}, {COMMA}]
    assert seen[8] == {"夏"} and seen[-1] == {C}  # line 2 must reach seven


def test_the_rhyme_group_of_the_first_period_line_binds_the_others():
    classes = poem_classes()
    form = parse_form("2,2,2,2")
    constraint = FormConstraint(classes, form, rules=modern_rhyme(classes, form, rhyme=True))
    text = [*"春夏，秋山。", NEWLINE, *"水花，月"]
    seen, states = _walk(constraint, text)
    assert seen[1] == {C}  # line 1 ends with ，: no rhyme there
    assert seen[4] == {C}  # the first rhyme: any character with a reading (all of these)
    assert states[6].rules == (("寒", frozenset()),)  # set by 山 before the 。
    assert states[3].rules == ((None, frozenset()),)
    assert seen[-1] == set("山間天年")  # line 4 ends in 寒
    assert seen[8] == {C}  # line 3 ends with ，: free


def test_rhyme_is_set_once_by_the_first_period_line():
    form = parse_form("1,1,1,1,1")
    constraint = FormConstraint(poem_classes(), form,
                                rules=modern_rhyme(poem_classes(), form, rhyme=True))
    seen, states = _walk(constraint, ["春", COMMA, "花", PERIOD, NEWLINE, "家", COMMA, "夏",
                                      PERIOD, NEWLINE])
    # the group is set as soon as the first rhyme character is written (花, state 3)
    assert [s.rules[0][0] for s in states] == [None] * 3 + ["麻"] * 8
    assert seen[2] == {C}  # first rhyme position: no group yet
    assert seen[7] == set("花家夏")  # second one: 麻 (夏 oblique is fine without level tone)
    assert seen[10] == set("花家夏")  # the last line ends with 。 too


def test_level_tone_alone_keeps_level_characters_with_known_readings():
    form = parse_form("1,1")
    constraint = FormConstraint(poem_classes(), form,
                                rules=modern_rhyme(poem_classes(), form, level_tone=True))
    seen, states = _walk(constraint, ["春", COMMA, "花", PERIOD], fold=False)
    assert seen[0] == set(CHARS) and seen[2] == set(CHARS) - OBLIQUE
    assert states[-1].rules == ((None, frozenset()),)  # no rhyme asked: no group bound


def test_rhyme_and_level_tone_together_and_loosened_when_nothing_is_left():
    classes = poem_classes()
    form = parse_form("1,1,1,1")
    constraint = FormConstraint(classes, form,
                                rules=modern_rhyme(classes, form, rhyme=True, level_tone=True))
    seen, _ = _walk(constraint, ["春", COMMA, "花", PERIOD, NEWLINE, "秋", COMMA], fold=False)
    assert seen[2] == set(CHARS) - OBLIQUE
    assert seen[-1] == set("花家")  # 麻 and level: 夏 is oblique
    # 水 is the only 微 character and it is oblique: the tone gives way, the rhyme holds.
    # (水 itself cannot open the rhyme under level tone, so this state is built by hand.)
    state = constraint.start._replace(line=3, count=0, rules=(("微", frozenset()),), width=1)
    assert _allowed(constraint, state, fold=False) == {"水"}


def test_rhyme_gives_way_when_the_vocabulary_has_no_reading_at_all():
    tokens = ["<unk>", "<eos>", COMMA, PERIOD, NEWLINE, "a", "b"]
    classes = TokenClasses.from_tokens(tokens, "char")
    form = parse_form("1,1")
    constraint = FormConstraint(classes, form,
                                rules=modern_rhyme(classes, form, rhyme=True, level_tone=True))
    seen, states = _walk(constraint, ["a", COMMA, "b", PERIOD, EOS])
    assert states[4].rules == ((None, frozenset()),)
    assert seen == [{C}, {COMMA}, {C}, {PERIOD}, {EOS}, {EOS}]


def test_mask_stacks_the_rows_in_order_and_repeats_itself():
    classes = poem_classes()
    constraint = FormConstraint(classes, parse_form("2,2"))
    after_two = constraint.initial([classes.index["春"], classes.index["夏"]])
    mask = constraint.mask([START, after_two, START])
    assert mask.shape == (3, len(POEM_TOKENS)) and mask.dtype == torch.bool
    assert torch.equal(mask[0], classes.content) and torch.equal(mask[2], classes.content)
    assert torch.nonzero(mask[1]).view(-1).tolist() == [classes.comma]
    again = constraint.mask([after_two, START])
    assert torch.equal(again, mask[1:]) and not bool(mask[0][EOS_ID])


def test_initial_checks_every_token_of_the_prefix():
    classes = poem_classes()
    constraint = FormConstraint(classes, parse_form("2,2"))
    with pytest.raises(LMError, match=r"^--prime does not fit the form \(2,2\): '，' cannot "
                                      r"stand at position 1"):
        constraint.initial([classes.comma])
    with pytest.raises(LMError, match=r"^--acrostic does not fit .*'。' cannot stand at "
                                      r"position 3"):
        constraint.initial(_ids(classes, ["春", "夏", PERIOD]), what="--acrostic")
    assert constraint.initial([]) == START
    state = constraint.initial(_ids(classes, ["春", "夏", COMMA]))
    assert (state.line, state.count, state.width, state.phase) == (1, 0, 2, CONTENT)


def test_constructor_refusals():
    words = TokenClasses.from_tokens(WORD_TOKENS, "word")
    with pytest.raises(LMError) as refused:
        verse_of(words, form="3,3", level_tone=True)
    assert str(refused.value) == ("--rhyme and --level-tone need a char-level Chinese model "
                                  "whose vocabulary has ， and 。: sample this one without them")
    open_count = Form(frozenset({1, 2}), lengths=(2, 2), spec="2[,2]")
    with pytest.raises(LMError) as refused:
        FormConstraint(words, open_count)
    assert str(refused.value) == ("--form 2[,2] leaves the number of lines open, which a "
                                  "vocabulary without a newline cannot mark: give each line's "
                                  "length")
    FormConstraint(words, parse_form("2,2"))  # one count is fine
    lined = TokenClasses.from_tokens([*WORD_TOKENS, NEWLINE], "word")
    FormConstraint(lined, open_count)  # a newline can mark it
    with pytest.raises(LMError, match="^--form needs a char- or word-level model"):
        FormConstraint(TokenClasses.from_tokens(WORD_TOKENS, "bpe"), parse_form("3,3"))
    classes = poem_classes()
    heads = [classes.index[h] for h in "春夏秋冬"]
    with pytest.raises(LMError, match="^--acrostic has 3 characters but --form wujue has 4 "
                                      "lines: give one acrostic character per line$"):
        verse_of(classes, form="wujue", acrostic="春夏秋")
    assert verse_of(classes, form="wujue", acrostic="春夏秋冬").constraint.fixed == \
        acrostic_slots(heads)
    # with any, the acrostic decides how many lines there are
    assert verse_of(classes, form="any", acrostic="春夏秋冬").constraint.form.counts == {4}


def test_modern_rhymes_do_not_repeat_a_character_unless_nothing_else_rhymes():
    from lm.generation.verse.rhyme import ModernRhyme

    classes = poem_classes()
    form = parse_form("1,1,1,1,1,1,1,1")
    constraint = FormConstraint(classes, form, rules=[ModernRhyme(classes, form, True, False,
                                                                  distinct=True)])
    seen, states = _walk(constraint, ["春", COMMA, "花", PERIOD, NEWLINE, "秋", COMMA, "家",
                                      PERIOD, NEWLINE, "月", COMMA], fold=False)
    assert seen[7] == set("家夏")  # 麻, but not 花 again
    assert seen[-1] == {"夏"}  # 花 and 家 used: 夏 is left
    # with 夏 used too, nothing of 麻 is fresh: a repeat beats a line that does not rhyme
    index = classes.index
    used = frozenset({(1, index["花"]), (3, index["家"]), (5, index["夏"])})
    state = constraint.start._replace(line=7, count=0, width=1, rules=(("麻", used),))
    assert _allowed(constraint, state, fold=False) == set("花家夏")
