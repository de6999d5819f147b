"""Regulated tones as a decoding rule: famous poems by hand, tiny models held to the metre.

The patterns of famous poems are written here by hand (平起/仄起, first line rhymed or not);
the rule must accept each poem under exactly that pattern, and pingshui-rhyme's own checker
must agree. Samples are judged by that checker, never by the code under test.
"""

import pytest
import torch
from generation_fakes import (
    BAD,
    POEM_TOKENS,
    LoudStepper,
    acrostic_slots,
    beam_plan,
    make_plan,
    poem_classes,
    random_table,
    text_of,
)
from generation_fakes import TableStepper as Table

from lm.errors import LMError
from lm.generation.decoding.beam import beam_search
from lm.generation.decoding.processors import FormMask
from lm.generation.decoding.sampling import generate
from lm.generation.verse.constraint import FormConstraint
from lm.generation.verse.draft import Draft
from lm.generation.verse.forms import Form, parse_form, with_acrostic
from lm.generation.verse.lexicon import Lexicon
from lm.generation.verse.metre import (
    LEVEL,
    EndRhymes,
    Entry,
    MeterPattern,
    Metre,
    PingshuiRhymes,
    TokenTones,
    ToneRule,
    check_poem_layout,
    meter_patterns,
    strict_positions,
    token_tones,
    tone_marks,
)
from lm.generation.verse.pingshui import checker
from lm.generation.verse.vocab import TokenClasses
from lm.tokenization import EOS_ID

FAMOUS = {  # poem, form, its pattern (by hand)
    "登鸛雀樓": ("白日依山盡，黃河入海流。\n欲窮千里目，更上一層樓。", "wujue", "仄起首句不入韵"),
    "送友人": ("青山橫北郭，白水遶東城。\n此地一為別，孤蓬萬里征。\n"
            "浮雲遊子意，落日故人情。\n揮手自茲去，蕭蕭班馬鳴。", "wulv", "平起首句不入韵"),
    "月夜憶舍弟": ("戍鼓斷人行，邊秋一雁聲。\n露從今夜白，月是故鄉明。\n"
              "有弟皆分散，無家問死生。\n寄書長不達，況乃未休兵。", "wulv", "仄起首句入韵"),
    "早發白帝城": ("朝辭白帝彩雲間，千里江陵一日還。\n兩岸猿聲啼不住，輕舟已過萬重山。", "qijue",
              "平起首句入韵"),
    "涼州詞": ("葡萄美酒夜光杯，欲飲琵琶馬上催。\n醉臥沙場君莫笑，古來征戰幾人回。", "qijue",
            "平起首句入韵"),
    "芙蓉樓送辛漸": ("寒雨連江夜入吳，平明送客楚山孤。\n洛陽親友如相問，一片冰心在玉壺。", "qijue",
                "仄起首句入韵"),
    "絕句": ("兩個黃鸝鳴翠柳，一行白鷺上青天。\n窗含西嶺千秋雪，門泊東吳萬里船。", "qijue",
           "仄起首句不入韵"),
}
JINGYESI = "床前明月光，疑是地上霜。\n舉頭望明月，低頭思故鄉。"


def _meter(classes, spec, strict=False, heads=None):
    form = parse_form(spec)
    if heads is not None:
        form = with_acrostic(form, len(heads), "poem")
    rule = ToneRule(TokenTones(classes), meter_patterns(form.lengths[0], len(form.lengths),
                                                        strict), [LEVEL])
    return FormConstraint(classes, form, acrostic_slots(heads), rules=[rule]), rule


def _walk(poem, spec, strict=False):
    """(patterns the poem fits, None) or (None, the first character the rule refuses)."""
    chars = sorted({c for c in poem if c not in "，。\n"})
    classes = TokenClasses.from_tokens(["<unk>", "<eos>", "，", "。", "\n", *chars], "char")
    constraint, rule = _meter(classes, spec, strict)
    state = constraint.start
    for piece in [*poem, EOS_ID]:
        token = piece if piece == EOS_ID else classes.index[piece]
        if not bool(constraint.allowed(state)[token]):
            return None, piece
        state = constraint.step(state, token)
    assert constraint.done(state)
    return sorted(rule.patterns[e.pattern].name for e in state.rules[0]), None


@pytest.mark.parametrize("title", FAMOUS)
def test_famous_poems_fit_their_pattern(title):
    poem, spec, pattern = FAMOUS[title]
    assert _walk(poem, spec) == ([pattern], None)
    assert checker().check_poem_pingze_meter(poem)[0]
    assert checker().check_poem_rhyming(poem)[0]


def test_the_four_patterns_are_all_covered():
    assert {p for _, _, p in FAMOUS.values()} == {
        "平起首句入韵", "平起首句不入韵", "仄起首句入韵", "仄起首句不入韵"}


def test_jingyesi_is_a_gujue_and_fails_the_metre():
    # 前 平 / 是 仄 agree, but 月 仄 / 上 仄 at the 4th character break 对 in the first couplet
    assert _walk(JINGYESI, "wujue") == (None, "上")
    assert not checker().check_poem_pingze_meter(JINGYESI)[0]


def test_tone_marks_of_a_famous_poem():
    poem = FAMOUS["登鸛雀樓"][0]
    assert tone_marks(poem) == "仄仄平平仄\u3000平平仄仄平\u3000\n仄平平仄仄\u3000中仄仄平平\u3000"


def test_polyphonic_characters_serve_under_either_reading():
    # 看 is both 平 (十四寒) and 仄 (十五翰): it may stand where either tone is due
    classes = TokenClasses.from_tokens(["<unk>", "<eos>", "，", "。", "\n", *"看山水"], "char")
    tones = TokenTones(classes)
    look, hill, water = (classes.index[c] for c in "看山水")
    assert tones.has(look, "平") and tones.has(look, "仄")
    assert tones.has(hill, "平") and not tones.has(hill, "仄")
    assert tones.has(water, "仄") and not tones.has(water, "平")
    assert not bool(tones.pure_oblique[look])  # never closes an unrhymed line
    assert tones.groups[look] == {"平": frozenset({"十四寒"}), "仄": frozenset({"十五翰"})}


def test_traditional_forms_of_a_simplified_vocabulary_must_all_agree():
    # 梁 may be converted to 樑 (not in the book): it is unknown; 将 is always 將 (level)
    classes = TokenClasses.from_tokens(["<unk>", "<eos>", "，", "。", *"梁将"], "char")
    tones = TokenTones(classes, simplified=True)
    assert not bool(tones.known[classes.index["梁"]])
    assert bool(tones.level[classes.index["将"]])


def _judged(texts):
    judge = checker()
    return [judge.check_poem_pingze_meter(t)[0] and judge.check_poem_rhyming(t)[0]
            for t in texts]


@pytest.mark.parametrize("spec", ["wujue", "qijue", "wulv", "qilv"])
def test_meter_holds_on_a_model_that_breaks_it_unconstrained(spec):
    classes = poem_classes()
    stepper = LoudStepper(len(POEM_TOKENS), BAD[:5], seed=2)
    free = generate(stepper, make_plan([], num=60, temperature=1.5, seed=2,
                    processors=[FormMask(FormConstraint(classes, parse_form(spec)))]))
    assert sum(_judged([text_of(ids) for ids in free])) < 10
    constraint, _ = _meter(classes, spec)
    held = generate(LoudStepper(len(POEM_TOKENS), BAD[:5], seed=2), make_plan([], num=60,
                    temperature=1.5, seed=2, processors=[FormMask(constraint)]))
    texts = [text_of(ids) for ids in held]
    assert all(_judged(texts)), [t for t, ok in zip(texts, _judged(texts), strict=True)
                                 if not ok]
    assert len(set(texts)) > 50


def test_meter_in_beam_search():
    classes = poem_classes()
    constraint, _ = _meter(classes, "qijue")
    found = beam_search(Table(random_table(len(POEM_TOKENS), 4)), beam_plan([], beam=4, num=3,
                        processors=[FormMask(constraint)]))
    assert len(found) == 3 and all(_judged([text_of(h.tokens) for h in found]))


def test_first_choices_pick_the_pattern():
    classes = poem_classes()
    constraint, rule = _meter(classes, "wujue")
    state = constraint.start
    assert len(state.rules[0]) == 4
    for char in "春水":  # 水 (仄) second: 仄起
        state = constraint.step(state, classes.index[char])
    kept = {rule.patterns[e.pattern].name for e in state.rules[0]}
    assert kept == {"仄起首句入韵", "仄起首句不入韵"}


def test_strict_rules_fix_the_right_positions():
    assert strict_positions("平平仄仄平") == {0}  # 孤平: the first must be level
    assert strict_positions("仄仄平平仄仄平") == {2}
    assert strict_positions("仄仄仄平平") == {2}  # 三平尾: the third must be oblique
    assert strict_positions("平平仄仄仄平平") == {4}
    assert strict_positions("仄仄平平仄") == set()
    assert _walk("白日依山盡，黃河入海流。\n欲窮千里目，更上一層樓。", "wujue", strict=True)[0]


def test_strict_meter_avoids_gu_ping_and_san_ping_wei():
    classes = poem_classes()
    constraint, _ = _meter(classes, "wulv", strict=True)
    held = generate(LoudStepper(len(POEM_TOKENS), BAD[:5], seed=5), make_plan([], num=60,
                    temperature=2.0, seed=5, processors=[FormMask(constraint)]))
    tones = TokenTones(classes)
    for ids in held:
        for line in text_of(ids).replace("。", "，").replace("\n", "").split("，")[:-1]:
            level = [tones.has(classes.index[c], "平") for c in line]
            oblique = [tones.has(classes.index[c], "仄") for c in line]
            if level[-1] and not oblique[-1]:
                assert not all(level[-3:]) or any(oblique[-3:])  # no certain 三平尾
            assert not (not level[0] and level[1] and not level[2] and level[4] and oblique[2]
                        and oblique[3] and not level[3])  # no 仄平仄仄平


def test_acrostic_picks_a_pattern_that_fits_or_names_the_clash():
    classes = poem_classes()
    # strict 5-character: a 平平仄仄平 line needs a level head. 水 (仄) heading line 2 rules
    # out the 仄起 patterns (their line 2 is one), so a 平起 pattern is chosen.
    heads = [classes.index[c] for c in "春水花山"]
    constraint, rule = _meter(classes, "wujue", strict=True, heads=heads)
    assert {rule.patterns[e.pattern].name[:2] for e in constraint.start.rules[0]} == {"平起"}
    texts = [text_of(ids) for ids in generate(
        LoudStepper(len(POEM_TOKENS), BAD[:5], seed=1),
        make_plan([], num=30, temperature=1.5, seed=1, processors=[FormMask(constraint)]))]
    assert all(_judged(texts)) and all(t[6] == "水" for t in texts)
    # 水 heading lines 2 and 4 leaves no pattern: the error names the characters
    clash = [classes.index[c] for c in "春水花水"]
    with pytest.raises(LMError, match="--acrostic fits no pattern.*'水' at line"):
        _meter(classes, "wujue", strict=True, heads=clash)


def test_meter_needs_a_regulated_shape():
    with pytest.raises(LMError, match="--meter needs 4 or 8 lines of 5 or 7"):
        meter_patterns(6, 4)


def test_a_rule_mask_is_never_empty_silently():
    tokens = ["<unk>", "<eos>", "，", "。", "\n", "a", "b"]
    classes = TokenClasses.from_tokens(tokens, "char")
    constraint, _ = _meter(classes, "wujue")
    state = constraint.step(constraint.start, classes.index["a"])
    with pytest.raises(LMError, match="no character the Pingshui book allows"):
        constraint.allowed(state)
    assert torch.equal(constraint.allowed(constraint.start)[5:], torch.tensor([True, True]))


def _distinct_rule(chars: str, lines: int = 4) -> tuple[TokenClasses, ToneRule]:
    from lm.generation.verse.metre import EndRhymes

    classes = TokenClasses.from_tokens(["<unk>", "<eos>", "，", "。", "\n", *chars], "char")
    ends = tuple(line % 2 == 1 for line in range(lines))
    rule = ToneRule(TokenTones(classes), [EndRhymes(ends_with_period=ends)], [LEVEL],
                    distinct=True)
    return classes, rule


def test_no_character_rhymes_with_itself_and_groups_too_small_are_left_out():
    # 東 group: 東 風 中 (three level characters); 麻 group: 花 家 (two); 山 a 刪 level one
    classes, rule = _distinct_rule("東風中花家山日月")
    ids = {c: classes.index[c] for c in "東風中花家山"}

    def allowed(state, line):
        key = rule.key(state, line, 4, 5)
        return {classes.tokens[i] for i in torch.nonzero(rule.mask(key)).view(-1).tolist()}

    assert allowed(rule.start, 1) == set("東風中花家")  # two rhymes: 山 alone cannot
    # eight lines rhyme four times: 東 can hold three, and after 東, 風 and 中 none is left,
    # so a vocabulary this small repeats rather than stop
    _, wide = _distinct_rule("東風中花家山日月", lines=8)
    assert {classes.tokens[i] for i in torch.nonzero(wide.mask(wide.key(
        wide.start, 1, 4, 5))).view(-1).tolist()} == set("東風中花家山")
    state = rule.advance(rule.start, 1, 4, 5, ids["東"])
    assert allowed(state, 3) == {"風", "中"}  # 東 used, its group kept
    again = rule.advance(rule.start, 1, 4, 5, ids["花"])
    assert allowed(again, 3) == {"家"}
    assert not rule._fits(rule._resolve(next(iter(again)), 3, 4, 5), ids["花"])
    repeat = ToneRule(rule.tones, rule.patterns, [LEVEL])  # --allow-repeat-rhyme
    assert {classes.tokens[i] for i in torch.nonzero(repeat.mask(repeat.key(
        repeat.advance(repeat.start, 1, 4, 5, ids["花"]), 3, 4, 5))).view(-1).tolist()} \
        == {"花", "家"}


def test_fixed_characters_narrow_the_patterns_and_keep_later_rhymes_apart():
    classes = TokenClasses.from_tokens(["<unk>", "<eos>", "，", "。", "\n", *"岸看安寒殘月"],
                                       "char")
    rule = ToneRule(TokenTones(classes), meter_patterns(5, 4), [LEVEL])
    ids = classes.index
    # 岸 (翰, oblique) closes line 1: only the patterns whose first line is unrhymed stay, and
    # their rhymes may not share its 翰: 看 (寒 and 翰) is out, 安, 寒 and 殘 stay
    start = rule.fix([(0, 4, 5, ids["岸"], "--template")])
    assert {rule.patterns[e.pattern].name for e in start} == {"平起首句不入韵", "仄起首句不入韵"}
    key = rule.key(start, 1, 4, 5)
    assert {classes.tokens[i] for i in torch.nonzero(rule.mask(key)).view(-1).tolist()} \
        == set("安寒殘")
    # a rhyme fixed later sets the group from the start
    seeded = rule.fix([(3, 4, 5, ids["殘"], "--template")])
    assert {e.groups for e in seeded} == {(frozenset({"十四寒"}),)}
    # an unrhymed end that rhymes with a rhyme fixed after it is refused, naming the place
    with pytest.raises(LMError, match=r"^--template fits no pattern of --meter: .*'岸' at "
                                      r"line 1, position 5"):
        rule.fix([(0, 4, 5, ids["岸"], "--template"), (1, 4, 5, ids["看"], "--template")])


# ---------------------------------------------------------------- the rule, slot by slot
# Every character's readings in the Pingshui book, written out by hand:
#   山 平 十五刪 · 間 平 十五刪 / 仄 十六諫 · 看 平 十四寒 / 仄 十五翰 · 寒 平 十四寒
#   岸 仄 十五翰 · 水 仄 四紙 · 月 仄 六月 · 涯 平 九佳 四支 六麻 · 家 平 六麻
#   蛇 平 四支 六麻 · 思 平 四支 / 仄 四寘
# "a" is no character of the book and 春風 no single character: both unknown.
RULE_TOKENS = ["<unk>", "<eos>", "，", "。", "\n", "a", "春風", *"山間看寒岸水月涯家蛇思"]
# 仄起首句不入韵 of a wujue, as any textbook prints it
OBLIQUE_START = MeterPattern("仄起首句不入韵", ("仄仄平平仄", "平平仄仄平", "平平平仄仄",
                                         "仄仄仄平平"))


def _classes(tokens=RULE_TOKENS):
    return TokenClasses.from_tokens(tokens, "char")


def _chars(classes, mask):
    return "".join(classes.tokens[i] for i in torch.nonzero(mask).view(-1).tolist())


def _rule(patterns=(OBLIQUE_START,), letter_tones=(LEVEL,), distinct=False):
    classes = _classes()
    return classes, ToneRule(TokenTones(classes), patterns, letter_tones, distinct=distinct)


def _rhyme(tone, groups=None, used=(), after=0, avoid=()):
    """A rhyme slot as the rule resolves it: its tone, the groups still shared (None: any),
    the rhyme characters used, the rhymes still to come and the categories to avoid."""
    groups = frozenset(groups) if groups is not None else None
    return ("rhyme", tone, groups, frozenset(used), after, frozenset(avoid))


def test_token_tones_read_every_character_as_the_book_lists_it():
    classes = _classes()
    tones = TokenTones(classes)
    ids = classes.index
    assert _chars(classes, tones.level) == "山間看寒涯家蛇思"
    assert _chars(classes, tones.oblique) == "間看岸水月思"
    assert _chars(classes, tones.known) == "山間看寒岸水月涯家蛇思"  # not a, not 春風
    assert _chars(classes, tones.pure_oblique) == "岸水月"
    assert _chars(classes, tones.rhymable["平"]) == "山間看寒涯家蛇思"
    assert _chars(classes, tones.rhymable["仄"]) == "間看岸水月思"
    assert tones.groups[ids["涯"]] == {"平": {"九佳", "四支", "六麻"}}
    assert tones.groups[ids["看"]] == {"平": {"十四寒"}, "仄": {"十五翰"}}
    assert ids["a"] not in tones.groups and ids["春風"] not in tones.groups
    assert tones.categories[ids["間"]] == {"十五刪", "十六諫"}
    assert _chars(classes, tones.group_masks[("平", "六麻")]) == "涯家蛇"
    assert _chars(classes, tones.group_masks[("仄", "十五翰")]) == "看岸"
    assert _chars(classes, tones.category_masks["四支"]) == "涯蛇思"
    assert _chars(classes, tones.category_masks["四紙"]) == "水"
    assert set(tones.category_masks) == {"十五刪", "十六諫", "十四寒", "十五翰", "四紙", "六月",
                                         "九佳", "四支", "六麻", "四寘"}
    assert tones.tokens is classes.tokens


def test_a_simplified_character_keeps_what_all_its_traditional_forms_share():
    # 干 may stand for 干 (平 十四寒), 幹 and 榦 (平 十四寒 / 仄 十五翰) or 乾 (平 一先 十四寒):
    # every form is level, not every one oblique, and only 十四寒 is shared
    classes = _classes(["<unk>", "<eos>", "，", "。", *"干发"])
    tones = TokenTones(classes, simplified=True)
    dry, hair = classes.index["干"], classes.index["发"]
    assert bool(tones.level[dry]) and not bool(tones.oblique[dry])
    assert tones.groups[dry] == {"平": {"十四寒"}}
    assert tones.categories[dry] == {"十四寒", "一先", "十五翰"}
    assert tones.groups[hair] == {"仄": {"六月"}}  # 發 and 髮 are both 六月
    # read as traditional text (the default), 发 is no character of the book
    assert not bool(TokenTones(classes).known[hair])


def test_a_pattern_asks_each_slot_for_its_tone_or_its_rhyme():
    tone, rhymed, unrhymed = ("tone", "仄"), ("rhyme", 0), ("unrhymed",)
    level = ("tone", "平")
    assert [OBLIQUE_START.requirement(0, i, 5) for i in range(5)] == [
        None, tone, None, level, unrhymed]
    assert [OBLIQUE_START.requirement(1, i, 5) for i in range(5)] == [
        None, level, None, tone, rhymed]
    assert OBLIQUE_START.requirement(4, 1, 5) is None  # past the pattern's lines
    assert OBLIQUE_START.requirement(0, 1, 7) is None  # a line of another length
    assert OBLIQUE_START.requirement(0, 1, None) is None
    strict = MeterPattern("s", ("平平仄仄平", "仄仄仄平平"), strict=True)
    assert [strict.requirement(0, i, 5) for i in range(5)] == [
        level, level, None, tone, rhymed]  # no 孤平: the first is level
    assert [strict.requirement(1, i, 5) for i in range(5)] == [
        None, tone, tone, level, rhymed]  # no 三平尾: the third is oblique


def test_the_four_patterns_come_whole_from_the_library():
    wujue = {p.name: p for p in meter_patterns(5, 4)}
    assert list(wujue) == ["平起首句入韵", "平起首句不入韵", "仄起首句入韵", "仄起首句不入韵"]
    assert wujue["仄起首句不入韵"] == OBLIQUE_START and not any(p.strict for p in wujue.values())
    assert wujue["平起首句入韵"].lines == ("平平仄仄平", "仄仄仄平平", "仄仄平平仄", "平平仄仄平")
    qilv = meter_patterns(7, 8, strict=True)
    assert all(p.strict and len(p.lines) == 8 for p in qilv)
    assert qilv[3].lines[:2] == ("仄仄平平平仄仄", "平平仄仄仄平平")
    for width, lines in [(6, 4), (5, 6), (7, 3)]:
        with pytest.raises(LMError) as refused:
            meter_patterns(width, lines)
        assert str(refused.value) == (f"--meter needs 4 or 8 lines of 5 or 7 characters, not "
                                      f"{lines} lines of {width}: use --form wujue, qijue, "
                                      "wulv or qilv")


def test_end_rhymes_ask_only_the_line_ends():
    by_period = EndRhymes(ends_with_period=(False, True, False, True))
    assert [by_period.requirement(i, 4, 5) for i in range(5)] == [
        None, ("rhyme", 0), None, ("rhyme", 0), None]
    assert by_period.requirement(1, 3, 5) is None and by_period.requirement(1, 4, None) is None
    level = EndRhymes(ends_with_period=(False, True), grouped=False)
    assert [level.requirement(i, 6, 7) for i in range(3)] == [None, ("tone", "平"), None]
    lettered = EndRhymes(letters=(0, 0, None, 1))
    assert [lettered.requirement(i, 2, 3) for i in range(5)] == [
        ("rhyme", 0), ("rhyme", 0), None, ("rhyme", 1), None]
    assert lettered.requirement(0, 1, 3) is None


def test_keys_name_what_every_kept_pattern_asks():
    _, rule = _rule()
    assert rule.key(rule.start, 0, 0, 5) is None
    assert rule.key(rule.start, 0, 1, 5) == {("tone", "仄")}
    assert rule.key(rule.start, 1, 4, 5) == {_rhyme("平")}
    assert rule.key(rule.start, 0, 4, 5) == {("unrhymed", frozenset())}
    strict_even = MeterPattern("s", ("平平仄仄平",), strict=True)
    _, both = _rule((OBLIQUE_START, strict_even))
    assert both.key(both.start, 0, 0, 5) is None  # one pattern leaves the slot free
    assert both.key(both.start, 0, 1, 5) == {("tone", "仄"), ("tone", "平")}


def test_masks_are_the_union_of_what_the_kept_patterns_allow():
    classes, rule = _rule()

    def allowed(*resolved):
        return _chars(classes, rule.mask(frozenset(resolved)))

    assert allowed(("tone", "平")) == "山間看寒涯家蛇思"
    assert allowed(("tone", "仄")) == "間看岸水月思"
    assert allowed(("tone", "平"), ("tone", "仄")) == "山間看寒岸水月涯家蛇思"
    assert allowed(_rhyme("平")) == "山間看寒涯家蛇思"
    assert allowed(_rhyme("平"), _rhyme("仄")) == "山間看寒岸水月涯家蛇思"
    assert allowed(_rhyme("平", {"六麻", "十五刪"})) == "山間涯家蛇"
    assert allowed(("unrhymed", frozenset())) == "岸水月"
    assert allowed(("unrhymed", frozenset({"四紙", "六月"}))) == "岸"
    assert allowed(("unrhymed", frozenset({"四紙"})), ("unrhymed", frozenset({"六月"}))) == "岸水月"
    with pytest.raises(LMError) as empty:
        rule.mask(frozenset({_rhyme("仄", {"一東"})}))
    assert str(empty.value) == ("--meter: the model's vocabulary has no character the Pingshui "
                                "book allows here: use a model of classical poems")


def test_rhymes_after_counts_the_rhyme_positions_still_to_come():
    # 仄起首句不入韵 ends its lines 仄, 平, 仄, 平
    assert [OBLIQUE_START.rhymes_after(line, 0) for line in range(4)] == [2, 1, 1, 0]
    by_period = EndRhymes(ends_with_period=(False, True, False, True))
    assert [by_period.rhymes_after(line, 0) for line in range(4)] == [2, 1, 1, 0]
    level = EndRhymes(ends_with_period=(False, True, False, True), grouped=False)
    assert level.rhymes_after(0, 0) == 0  # level tone alone rhymes nothing
    lettered = EndRhymes(letters=(0, 0, None, 0, 1))
    assert [lettered.rhymes_after(0, letter) for letter in (0, 1)] == [2, 1]
    assert [lettered.rhymes_after(3, letter) for letter in (0, 1)] == [0, 1]


def test_a_rhyme_leaves_out_used_characters_small_groups_and_fixed_echoes():
    classes, rule = _rule()
    ids = classes.index

    def allowed(resolved):
        return _chars(classes, rule.mask(frozenset({resolved})))

    assert allowed(_rhyme("平", used={ids["山"]})) == "間看寒涯家蛇思"
    assert allowed(_rhyme("平", {"六麻"}, used={ids["涯"]})) == "家蛇"
    # 六麻 (涯家蛇) keeps two characters to spare after one, 十五刪 (山間) one
    assert allowed(_rhyme("平", {"六麻", "十五刪"}, after=2)) == "涯家蛇"
    assert allowed(_rhyme("平", {"六麻", "十五刪"}, after=1)) == "山間涯家蛇"
    assert allowed(_rhyme("平", {"六麻", "十五刪"}, used={ids["涯"]}, after=1)) == "山間家蛇"
    # no group keeps enough: the poem repeats rather than stop
    assert allowed(_rhyme("平", {"六麻", "十五刪"}, used={ids["涯"]}, after=2)) == "山間涯家蛇"
    # a fixed unrhymed end's categories stay out of the rhymes
    assert allowed(_rhyme("平", {"六麻"}, avoid={"四支"})) == "家"
    assert allowed(_rhyme("平", avoid={"十四寒"})) == "山間涯家蛇思"
    same = _rhyme("平", {"六麻"}, used={ids["涯"]})
    assert rule._rhyme_mask(same) is rule._rhyme_mask(same)  # each rhyme state once


def test_a_distinct_rule_counts_the_rhymes_used_and_to_come():
    classes, rule = _rule(distinct=True)
    kan = classes.index["看"]
    assert rule.key(rule.start, 1, 4, 5) == {_rhyme("平", after=1)}
    state = _fill(rule, rule.start, 0, "水月山間水")
    state = _fill(rule, state, 1, "山寒水月看")
    assert rule.key(state, 3, 4, 5) == {_rhyme("平", {"十四寒"}, used={kan})}
    assert rule.key(state, 1, 4, 5) == {_rhyme("平", {"十四寒"}, after=1)}  # not its own
    assert _chars(classes, rule.mask(rule.key(state, 3, 4, 5))) == "寒"  # 看 is used


def test_a_distinct_rule_over_lettered_rhymes_counts_only_its_own_letter():
    classes, rule = _rule([EndRhymes(letters=(0, 1, 0, 1))], letter_tones=("仄", "平"),
                          distinct=True)
    assert rule.key(rule.start, 0, 0, 1) == {_rhyme("仄", after=1)}
    assert rule.key(rule.start, 1, 0, 1) == {_rhyme("平", after=1)}


def test_fixed_ends_that_share_a_reading_are_refused_in_simplified_text_too():
    """卷 (捲 仄 十六銑; 卷 also 平 一先) fixed to close unrhymed line 1, 干 (乾 平 一先 十四寒)
    to close rhymed line 2: they rhyme by 一先, which neither keeps in every form."""
    classes = TokenClasses.from_tokens(["<unk>", "<eos>", "，", "。", "\n", *"卷干"], "char")
    rule = ToneRule(TokenTones(classes, simplified=True), [OBLIQUE_START], [LEVEL])
    roll, dry = classes.index["卷"], classes.index["干"]
    assert rule.fix([(1, 4, 5, dry, "--template")])  # either alone fits
    assert rule.fix([(0, 4, 5, roll, "--template")])
    with pytest.raises(LMError) as both:
        rule.fix([(0, 4, 5, roll, "--template"), (1, 4, 5, dry, "--template")])
    assert str(both.value) == ("--template fits no pattern of --meter: 仄起首句不入韵 needs "
                               "another tone than '卷' at line 1, position 5: change that "
                               "character or drop the stricter rules")


def test_the_tone_table_reads_a_simplified_vocabulary_through_its_traditional_forms():
    draft = _draft(["<unk>", "<eos>", "，", "。", *"发风云东"])
    tones = token_tones(draft)
    assert draft.lexicon.simplified and bool(tones.known[draft.classes.index["发"]])
    assert token_tones(draft) is tones  # built once per model


def _fill(rule, state, line, text):
    for pos, char in enumerate(text):
        state = rule.advance(state, line, pos, len(text), rule.tones.tokens.index(char))
    return state


def test_an_unrhymed_line_never_ends_on_a_character_that_rhymes_with_the_rhymes():
    """看 closes line 2 (平 十四寒), and it is also read 仄 十五翰: 岸 (仄 十五翰) would rhyme
    with it, so line 3 may end on 水 or 月 but not on 岸, in the mask and in the check."""
    classes, rule = _rule()
    state = _fill(rule, rule.start, 0, "水月山間水")
    state = _fill(rule, state, 1, "山寒水月看")
    assert [*state] == [Entry(0, ({"十四寒"},), {"十四寒", "十五翰"},
                              {(1, classes.index["看"])})]
    state = _fill(rule, state, 2, "山寒山水")
    key = rule.key(state, 2, 4, 5)
    assert key == {("unrhymed", frozenset({"十四寒", "十五翰"}))}
    assert _chars(classes, rule.mask(key)) == "水月"
    with pytest.raises(ValueError, match=r"outside every pattern's slot \(2, 4\)"):
        rule.advance(state, 2, 4, 5, classes.index["岸"])
    state = rule.advance(state, 2, 4, 5, classes.index["水"])
    # the last line rhymes in the group of the first rhyme: 寒 or 看, not 山 (十五刪)
    state = _fill(rule, state, 3, "水月山水")
    assert _chars(classes, rule.mask(rule.key(state, 3, 4, 5))) == "看寒"
    with pytest.raises(ValueError):
        rule.advance(state, 3, 4, 5, classes.index["山"])


def test_a_fixed_unrhymed_end_keeps_later_rhymes_apart_after_rhymes_are_written():
    """岸 (仄 十五翰) fixed to close line 3: a rhyme written on line 2 keeps the rule's memory
    of it, so 看 (平 十四寒, also 仄 十五翰) stays out of line 4's rhymes and 岸 still
    fits line 3 (found by the theme bench: a keyword at an unrhymed end after a rhyme)."""
    classes, rule = _rule()
    ids = classes.index
    state = rule.fix([(2, 4, 5, ids["岸"], "--keywords")])
    assert {e.avoid for e in state} == {frozenset({"十五翰"})}
    state = _fill(rule, state, 0, "水月山間水")
    state = _fill(rule, state, 1, "山寒水月寒")
    assert {e.avoid for e in state} == {frozenset({"十五翰"})}
    assert _chars(classes, rule.mask(rule.key(state, 3, 4, 5))) == "寒"  # not 看
    state = _fill(rule, state, 2, "山寒山水岸")
    assert {e.rhymed for e in state} == {frozenset({(1, ids["寒"])})}

def test_rhymes_narrow_to_the_groups_every_rhyme_so_far_shares():
    classes, rule = _rule([EndRhymes(letters=(0, 0, 0))])
    state = rule.advance(rule.start, 0, 0, 1, classes.index["蛇"])
    assert [*state] == [Entry(0, ({"四支", "六麻"},), {"四支", "六麻"},
                              {(0, classes.index["蛇"])})]
    state = rule.advance(state, 1, 0, 1, classes.index["涯"])  # 九佳 is not shared
    assert [*state] == [Entry(0, ({"四支", "六麻"},), {"九佳", "四支", "六麻"},
                              {(0, classes.index["蛇"]), (1, classes.index["涯"])})]
    assert _chars(classes, rule.mask(rule.key(state, 2, 0, 1))) == "涯家蛇思"


def test_each_rhyme_letter_keeps_its_own_tone_and_group():
    classes, rule = _rule([EndRhymes(letters=(0, 1, 0, 1))], letter_tones=("仄", "平"))
    assert rule.key(rule.start, 0, 0, 1) == {_rhyme("仄")}
    state = rule.advance(rule.start, 0, 0, 1, classes.index["水"])
    state = rule.advance(state, 1, 0, 1, classes.index["山"])
    assert [*state] == [Entry(0, ({"四紙"}, {"十五刪"}), {"四紙", "十五刪"},
                              {(0, classes.index["水"]), (1, classes.index["山"])})]
    assert _chars(classes, rule.mask(rule.key(state, 2, 0, 1))) == "水"
    assert _chars(classes, rule.mask(rule.key(state, 3, 0, 1))) == "山間"


def test_fixed_characters_keep_the_patterns_they_fit_with_their_rhymes():
    classes, rule = _rule(meter_patterns(5, 4))
    names = [p.name for p in rule.patterns]
    # 看 fixed at the end of line 2, 月 second in line 1: only the 仄起 patterns take 月 there
    state = rule.fix([(0, 1, 5, classes.index["月"], "--acrostic"),
                      (1, 4, 5, classes.index["看"], "--acrostic")])
    assert sorted(names[e.pattern] for e in state) == ["仄起首句不入韵", "仄起首句入韵"]
    assert {e.groups for e in state} == {(frozenset({"十四寒"}),)}


def test_a_fixed_character_no_pattern_takes_is_named_with_its_place():
    classes, rule = _rule()
    with pytest.raises(LMError) as one:
        rule.fix([(0, 1, 5, classes.index["山"], "--acrostic")])
    assert str(one.value) == ("--acrostic fits no pattern of --meter: 仄起首句不入韵 needs "
                              "another tone than '山' at line 1, position 2: change that "
                              "character or drop the stricter rules")
    rule = ToneRule(TokenTones(classes), [MeterPattern("p", ("平平仄仄平",), strict=True),
                                          MeterPattern("q", ("平平仄仄平",), strict=True)],
                    [LEVEL], what="--form wujue --meter")
    with pytest.raises(LMError) as two:
        rule.fix([(0, 0, 5, classes.index["月"], "--acrostic")])
    assert str(two.value) == ("--acrostic fits no pattern of --form wujue --meter: p needs "
                              "another tone than '月' at line 1; q needs another tone than '月' "
                              "at line 1: change that character or drop the stricter rules")


def test_tone_marks_mark_every_character_and_blank_the_rest():
    assert tone_marks("山 水，看？a\n梁") == "平\u3000仄\u3000中\u3000？\n平"
    assert tone_marks("发") == "？"  # not in the traditional book as written
    assert tone_marks("发", simplified=True) == "仄"  # 發 (and 髮): 入聲六月


# ---------------------------------------------------------------- the rules, as registered
def _draft(tokens=POEM_TOKENS, form=None, book="pingshui", lexicon=None):
    lexicon = lexicon or Lexicon(TokenClasses.from_tokens(tokens, "char"))
    draft = Draft(lexicon, book, [])
    draft.form = parse_form(form) if form else None
    return draft


def test_metre_adds_the_four_patterns_of_its_form():
    draft = _draft(form="wujue")
    Metre().apply(draft, meter=False, strict_meter=True, allow_repeat_rhyme=False)
    assert draft.rules == [] and draft.asked is None
    Metre().apply(draft, meter=True, strict_meter=False, allow_repeat_rhyme=False)
    (rule,) = draft.rules
    assert draft.asked == "--meter" and rule.what == "--form wujue --meter"
    assert rule.patterns == meter_patterns(5, 4) and rule.letter_tones == (LEVEL,)
    assert rule.distinct  # no 重韵 unless --allow-repeat-rhyme
    strict = _draft(form="qilv", lexicon=draft.lexicon)
    Metre().apply(strict, meter=True, strict_meter=True, allow_repeat_rhyme=True)
    assert strict.rules[0].patterns == meter_patterns(7, 8, strict=True)
    assert not strict.rules[0].distinct
    assert strict.rules[0].tones is rule.tones  # the tone table is built once per model


@pytest.mark.parametrize("form, message", [
    (None, "--meter needs --form wujue, qijue, wulv or qilv (4 or 8 lines of 5 or 7 "
           "characters)"),
    ("5,7,5,7", "--meter needs --form wujue, qijue, wulv or qilv (4 or 8 lines of 5 or 7 "
                "characters)"),
    ("5,5,5", "--meter needs 4 or 8 lines of 5 or 7 characters, not 3 lines of 5: use --form "
              "wujue, qijue, wulv or qilv"),
])
def test_metre_refuses_a_form_without_patterns(form, message):
    with pytest.raises(LMError) as refused:
        Metre().apply(_draft(form=form), meter=True, strict_meter=False,
                      allow_repeat_rhyme=False)
    assert str(refused.value) == message


def test_pingshui_rules_need_the_poem_layout_and_its_marks():
    lines = ["<unk>", "<eos>", "\n", *"春山水"]
    with pytest.raises(LMError) as layout:
        Metre().apply(_draft(lines, form="wujue"), meter=True, strict_meter=False,
                      allow_repeat_rhyme=False)
    assert str(layout.value) == ("--form wujue --meter needs a char-level Chinese model whose "
                                 "vocabulary has ， and 。: sample this one without it")
    with pytest.raises(LMError) as rhyme:
        PingshuiRhymes().apply(_draft(lines), meter=False, rhyme=False, level_tone=True,
                               allow_repeat_rhyme=False)
    assert str(rhyme.value) == ("--level-tone needs a char-level Chinese model whose vocabulary "
                                "has ， and 。: sample this one without it")
    draft = _draft()
    draft.form = Form(frozenset({4}), lengths=(2, 2, 2, 2), spec="ci:x",
                      marks=("，", "；", "：", "。"))
    with pytest.raises(LMError) as marks:
        check_poem_layout(draft, "--x")
    assert str(marks.value) == ("--form ci:x: the model's vocabulary lacks '；：': use a model "
                                "of that corpus")
    check_poem_layout(_draft(form="wujue"), "--x")  # ， and 。 are there


def test_pingshui_rhymes_rhyme_the_lines_closed_by_a_period():
    draft = _draft(form="wujue")
    PingshuiRhymes().apply(draft, meter=False, rhyme=True, level_tone=True,
                           allow_repeat_rhyme=False)
    (rule,) = draft.rules
    assert draft.asked == "--rhyme" and rule.what == "--rhyme" and rule.letter_tones == (LEVEL,)
    assert rule.patterns == [EndRhymes(ends_with_period=(False, True, False, True))]
    assert rule.distinct
    level = _draft()  # no form: any, up to 8 lines, lines 4 and 8 may end the poem
    PingshuiRhymes().apply(level, meter=False, rhyme=False, level_tone=True,
                           allow_repeat_rhyme=False)
    assert level.asked == "--level-tone" and level.rules[0].what == "--level-tone"
    assert level.rules[0].patterns == [EndRhymes(ends_with_period=(False, True) * 4,
                                                 grouped=False)]
    assert not level.rules[0].distinct  # level tone alone: no rhyme to repeat
    repeating = _draft(form="wujue")
    PingshuiRhymes().apply(repeating, meter=False, rhyme=True, level_tone=False,
                           allow_repeat_rhyme=True)
    assert not repeating.rules[0].distinct


@pytest.mark.parametrize("book, meter, template, rhyme, level_tone", [
    ("modern", False, None, True, True),  # the modern book rhymes by its own rule
    ("pingshui", True, None, True, False),  # the metre rhymes by its patterns
    ("pingshui", False, "a tune", True, False),  # a ci tune rhymes by its template
    ("pingshui", False, None, False, False),  # nothing asked
])
def test_pingshui_rhymes_stay_out_of_the_way(book, meter, template, rhyme, level_tone):
    draft = _draft(form="wujue", book=book)
    draft.template = template
    PingshuiRhymes().apply(draft, meter=meter, rhyme=rhyme, level_tone=level_tone,
                           allow_repeat_rhyme=False)
    assert draft.rules == [] and draft.asked is None
