"""Song ci tunes: templates learnt from a hand-made corpus, and ``--form ci:TUNE`` end to end.

The corpus is written here by hand: two tunes, whose clause ends rhyme where the tests say
(日一實失 all 入聲四質, 山間還閒 all 上平聲十五刪, 東中風紅 all 上平聲一東; 水雪月 are oblique
and rhyme with none of them).
"""

import json
import random
import re

import pytest
import torch
from tests_support import assert_clean_error

from lm.errors import LMError
from lm.generation.verse.draft import Draft
from lm.generation.verse.lexicon import Corpus, Lexicon
from lm.generation.verse.metre import EndRhymes, TokenTones
from lm.generation.verse.tunes import (
    Template,
    TuneForms,
    TuneRhymes,
    build_template,
    corpus_tunes,
    find_template,
    layout,
    rhymes_hold,
    template_form,
    tune_rule,
)
from lm.generation.verse.vocab import TokenClasses

# 換韻 like 菩萨蛮: clauses 1–2 rhyme oblique (A), 3–4 level (B)
CHANGING = ["春花秋月日，江山雪水一。\n白雲青松山，明月清風間。",
            "清風吹落實，白雪滿城失。\n青松照水還，江月照人閒。",
            "秋水長天一，孤雲落照日。\n花前人未還，山下月空山。"]
# one level rhyme at the even clauses; the odd ones end oblique
PLAIN = ["青山橫北水，白水遶東風。\n此地一為雪，孤蓬萬里中。",
         "浮雲遊子月，落日故人東。\n揮手自茲雪，蕭蕭班馬紅。",
         "春風吹落水，秋月滿江中。\n明日歸何月，長天一雁風。",
         "春風吹落葉花開，江上行人去不回。"]  # another layout, outvoted


def test_layout_reads_clauses_marks_and_line_breaks():
    assert layout("春花秋月日，江山雪水一。\n白雲山，明月間。") == (
        (5, "，", False), (5, "。", True), (3, "，", False), (3, "。", False))
    assert layout("春花秋月日，江山雪水一") is None  # text after the last mark
    assert layout("春花 秋月，") is None


def test_template_of_a_changing_rhyme():
    template = build_template("換韻", CHANGING, simplified=False)
    assert template.clauses == ((5, "，", False), (5, "。", True), (5, "，", False),
                                (5, "。", False))
    assert template.letters == (0, 0, 1, 1) and template.tones == ("仄", "平")
    assert (template.poems, template.support) == (3, 3)
    assert template.describe() == "5A，5A。/5B，5B。"


def test_template_takes_the_commonest_layout_and_its_rhymes():
    template = build_template("平韻", PLAIN, simplified=False)
    assert template.clauses == ((5, "，", False), (5, "。", True), (5, "，", False),
                                (5, "。", False))
    assert template.letters == (None, 0, None, 0) and template.tones == ("平",)
    assert (template.poems, template.support) == (4, 3)
    assert template.describe() == "5，5A。/5，5A。"
    form = template_form(template)
    assert form.lengths == (5, 5, 5, 5) and form.spec == "ci:平韻"
    assert [form.mark(i) for i in range(4)] == ["，", "。", "，", "。"]
    assert [form.breaks(i) for i in range(4)] == [False, True, False, True]


def test_rhymes_hold_checks_each_rhyme_of_the_template():
    template = build_template("換韻", CHANGING, simplified=False)
    assert all(rhymes_hold(text, template, False) for text in CHANGING)
    assert not rhymes_hold("春花秋月日，江山雪水山。\n白雲青松山，明月清風間。", template, False)
    assert not rhymes_hold("春花秋月日。江山雪水一。\n白雲青松山，明月清風間。", template, False)


@pytest.fixture
def fake_songci(tmp_path, monkeypatch):
    """A chinese-poetry cache holding only a hand-made songci corpus."""
    folder = tmp_path / "cache" / "chinese-poetry-2.0.1" / "dist" / "songci"
    folder.mkdir(parents=True)
    rng = random.Random(0)
    records = []
    for i in range(60):
        tune, texts = ("換韻", CHANGING) if i % 3 else ("平韻", PLAIN[:3])
        records.append({"rhythmic": tune, "author": "x",
                        "paragraphs": rng.choice(texts).split("\n")})
    (folder / "ci.song.0.json").write_text(json.dumps(records, ensure_ascii=False), "utf-8")
    monkeypatch.setenv("LM_CACHE", str(tmp_path / "cache"))
    corpus_tunes.cache_clear()
    yield tmp_path
    corpus_tunes.cache_clear()


def test_corpus_tunes_counts_each_tune(fake_songci):
    tunes = corpus_tunes("songci", False)
    assert list(tunes) == ["換韻", "平韻"] and [len(v) for v in tunes.values()] == [40, 20]
    assert corpus_tunes("tang", False) == {}


def test_ci_form_end_to_end(fake_songci, cli, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(fake_songci / "hf"))
    monkeypatch.chdir(fake_songci)
    store = ["--artifacts", str(fake_songci / "art")]
    torch.manual_seed(0)
    for argv in (["prepare", "chinese-poetry:songci", "--name", "ci"],
                 ["train", "ci", "--max-steps", "2", "--no-wandb", "--no-progress",
                  "--emb-size", "8", "--hidden-size", "8", "--batch-size", "4", "--bptt", "8",
                  "--eval-tokens", "50"]):
        assert cli(*store, *argv).code == 0
    listing = cli(*store, "sample", "ci", "--list-forms")
    assert listing.code == 0 and re.search(r"換韻\s*│\s*40", listing.out), listing.out
    result = cli(*store, "sample", "ci", "--form", "ci:換韻", "--num", "30", "--temperature",
                 "3", "--json", "--report")
    assert result.code == 0, result.err
    payload = json.loads(result.out)
    template = build_template("換韻", CHANGING, simplified=False)
    assert all(layout(t) == template.clauses for t in payload["samples"])
    assert all(rhymes_hold(t, template, False) for t in payload["samples"])
    assert payload["report"]["pingshui_rhyme_rate"] == 1.0
    assert payload["report"]["well_formed_rate"] == 1.0
    shown = cli(*store, "sample", "ci", "--form", "ci:平韻", "--num", "1")
    assert shown.code == 0 and re.search("[平仄中？]{5}", shown.out)  # tone marks under lines
    assert_clean_error(cli(*store, "sample", "ci", "--form", "ci:無此調"), "no such tune")
    assert_clean_error(cli(*store, "sample", "ci", "--form", "ci:換韻", "--rhyme-book",
                           "modern"), "drop --rhyme-book modern")


def _two_clauses(pairs):
    """Ci of two 2-character clauses ending on the given characters: ``春X，秋Y。``."""
    return [f"春{a}，秋{b}。" for a, b in pairs]


def test_two_ends_rhyme_when_a_quarter_of_the_ci_rhyme_them():
    # 山/間 share 十五刪; 山/水, 山/月, 天/水 share nothing: 1 ci in 4 is 25%, enough
    quarter = build_template("t", _two_clauses(["山間", "山水", "山月", "天水"]), False)
    assert quarter.letters == (0, 0) and quarter.tones == ("平",)  # 山山山天 平, 水月水 仄
    # 1 in 5 is 20%: too few
    fifth = build_template("t", _two_clauses(["山間", "山水", "山月", "天水", "天月"]), False)
    assert fifth.letters == (None, None) and fifth.tones == ()


def test_a_rhyme_takes_the_tone_most_of_its_single_reading_ends_have():
    # 看 reads either way and has no vote: 岸 and 寒 vote once each, a tie goes to 平
    assert build_template("t", _two_clauses(["看岸", "看寒"]), False).tones == ("平",)
    assert build_template("t", _two_clauses(["岸看", "岸看"]), False).tones == ("仄",)


def test_a_ci_with_no_clauses_has_no_template():
    with pytest.raises(LMError) as refused:
        build_template("無標點", ["春花秋月", "江山雪水一\n白雲"], False)
    assert str(refused.value) == ("--form ci:無標點: none of its 2 ci is laid out in clauses "
                                  "closed by punctuation: choose another tune")


def test_template_form_keeps_the_tune_s_own_marks_and_line_breaks():
    template = Template("t", ((3, "，", True), (3, "、", False), (3, "，", False),
                              (3, "。", False)), (None, 0, None, 0), ("平",), 2, 2)
    form = template_form(template)
    assert form.counts == {4} and form.lengths == (3, 3, 3, 3) and form.template is template
    assert [form.mark(i) for i in range(4)] == ["，", "、", "，", "。"]
    assert [form.breaks(i) for i in range(4)] == [True, False, False, True]
    assert template.describe() == "3，/3A、3，3A。"


def test_tune_rule_rhymes_each_letter_in_its_own_tone():
    template = build_template("換韻", CHANGING, simplified=False)
    tones = TokenTones(TokenClasses.from_tokens(["<unk>", "<eos>", "，", "。", *"日一山間"],
                                                "char"))
    rule = tune_rule(template, tones)
    assert rule.patterns == [EndRhymes(letters=(0, 0, 1, 1), name="ci:換韻")]
    assert rule.letter_tones == ("仄", "平") and rule.what == "--form ci:換韻"
    assert rule.tones is tones


def test_rhymes_hold_checks_the_second_rhyme_too():
    template = build_template("換韻", CHANGING, simplified=False)
    # B broken: 水 is oblique; 山 (十五刪) and 寒 (十四寒) are level but share no group
    assert not rhymes_hold("春花秋月日，江山雪水一。\n白雲青松山，明月清風水。", template, False)
    assert not rhymes_hold("春花秋月日，江山雪水一。\n白雲青松山，明月清風寒。", template, False)
    assert rhymes_hold("春花秋月日，江山雪水一。\n白雲青松山，明月清風間。", template, False)


def test_find_template_reads_the_tune_in_either_script(fake_songci):
    template = find_template("songci", False, "換韻", False)
    assert template == build_template("換韻", corpus_tunes("songci", False)["換韻"], False)
    assert template.poems == 40
    assert find_template("songci", False, "换韵", False) == template  # asked in simplified
    simplified = find_template("songci", True, "換韻", True)  # a simplified corpus
    assert simplified.tune == "换韵" and simplified.letters == template.letters


def test_find_template_refuses_in_one_line(fake_songci):
    with pytest.raises(LMError) as none:
        find_template("tang", False, "換韻", False)
    assert str(none.value) == ("--form ci:換韻: the model's corpus chinese-poetry:tang has no "
                               "tunes: use a model of chinese-poetry:songci")
    with pytest.raises(LMError) as unknown:
        find_template("songci", False, "無此調", False)
    assert str(unknown.value) == ("--form ci:無此調: no such tune in chinese-poetry:songci (the "
                                  "commonest: 換韻、平韻; `lm sample MODEL --list-forms` lists "
                                  "them all)")


def test_an_unknown_tune_names_the_five_commonest(tmp_path, monkeypatch):
    folder = tmp_path / "chinese-poetry-2.0.1" / "dist" / "songci"
    folder.mkdir(parents=True)
    records = [{"rhythmic": f"調{n}", "author": "x", "paragraphs": [PLAIN[0]]}
               for n in range(1, 7) for _ in range(10 - n)]
    (folder / "ci.song.0.json").write_text(json.dumps(records, ensure_ascii=False), "utf-8")
    monkeypatch.setenv("LM_CACHE", str(tmp_path))
    corpus_tunes.cache_clear()
    try:
        with pytest.raises(LMError, match=r"\(the commonest: 調1、調2、調3、調4、調5; `lm"):
            find_template("songci", False, "無此調", False)
    finally:
        corpus_tunes.cache_clear()


def _lexicon(tokens="，。\n春花秋月日江山雪水一白雲青松明清風間", **corpus):
    classes = TokenClasses.from_tokens(["<unk>", "<eos>", *tokens], "char")
    return Lexicon(classes, Corpus(**corpus))


def test_the_tune_family_offers_the_corpus_tunes(fake_songci):
    songci = _lexicon(source="chinese-poetry:songci")
    family = TuneForms()
    assert family.pattern(None) == "ci:.+"  # any tune, until a model says which
    assert family.pattern(songci) == "ci:(?:換韻|平韻)"
    assert family.pattern(_lexicon(source="chinese-poetry:tang")) is None
    assert family.pattern(_lexicon()) is None
    assert family.listing(songci) == [("ci:TUNE", "the tune's commonest layout in the corpus")]
    assert family.listing(_lexicon()) == []
    assert family.parse("wujue", songci) is None
    form = family.parse("ci:換韻", songci)
    assert form == template_form(find_template("songci", False, "換韻", False))
    assert family.parse("ci:換韻", songci).template is form.template  # built once per model
    for lexicon in (None, _lexicon()):
        with pytest.raises(LMError) as refused:
            family.parse("ci:換韻", lexicon)
        assert str(refused.value) == ("--form ci:換韻 needs a model prepared from "
                                      "chinese-poetry:songci (its tunes come from that corpus)")


def test_tune_rhymes_add_the_template_s_rule(fake_songci):
    songci = _lexicon(source="chinese-poetry:songci")
    draft = Draft(songci, "pingshui", [])
    TuneRhymes().apply(draft)
    assert draft.rules == []  # no tune asked
    draft.template = TuneForms().parse("ci:換韻", songci).template
    TuneRhymes().apply(draft)
    (rule,) = draft.rules
    assert rule.what == "--form ci:換韻" and rule.letter_tones == ("仄", "平")
    assert rule.patterns == [EndRhymes(letters=(0, 0, 1, 1), name="ci:換韻")]
    plain = _lexicon("\n春花秋月日", source="chinese-poetry:songci")
    draft = Draft(plain, "pingshui", [])
    draft.template = TuneForms().parse("ci:換韻", songci).template
    with pytest.raises(LMError) as refused:
        TuneRhymes().apply(draft)
    assert str(refused.value) == ("--form ci:換韻 needs a char-level Chinese model whose "
                                  "vocabulary has ， and 。: sample this one without it")
