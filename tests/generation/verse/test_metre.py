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
from lm.generation.verse.forms import parse_form, with_acrostic
from lm.generation.verse.metre import (
    LEVEL,
    TokenTones,
    ToneRule,
    meter_patterns,
    strict_positions,
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
