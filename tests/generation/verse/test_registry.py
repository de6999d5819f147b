"""``lm sample`` with the Pingshui book on a tiny model of a (hand-made) chinese-poetry corpus.

Every judgement of metre and rhyme is pingshui-rhyme's own checker's, called directly.
"""

import json
import random
import re

import pytest
import torch
from generation_fakes import verse_of
from tests_support import assert_clean_error

from lm.generation.verse.lexicon import Corpus, Lexicon, simplified_vocabulary
from lm.generation.verse.pingshui import book, checker
from lm.generation.verse.registry import rhyme_book
from lm.generation.verse.vocab import TokenClasses

CHARS = "春秋山花風雲天人江年家流樓東中夏水月雨日白雪葉酒夜上看"
POEMS = ["白日依山盡，黃河入海流。\n欲窮千里目，更上一層樓。",
         "青山橫北郭，白水遶東城。\n此地一為別，孤蓬萬里征。"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A char model of a tiny chinese-poetry:tang/regular corpus (random quatrains)."""
    from lm.cli import app

    folder = tmp_path_factory.mktemp("verse")
    dist = folder / "cache" / "chinese-poetry-2.0.1" / "dist" / "quantangshi"
    dist.mkdir(parents=True)
    rng = random.Random(1)

    def line():
        return "".join(rng.choice(CHARS) for _ in range(5))

    records = [{"paragraphs": [f"{line()}，{line()}。", f"{line()}，{line()}。"]}
               for _ in range(150)] + [{"paragraphs": p.split("\n")} for p in POEMS * 20]
    (dist / "poet.tang.0.json").write_text(json.dumps(records, ensure_ascii=False), "utf-8")
    torch.manual_seed(0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LM_CACHE", str(folder / "cache"))
        patch.setenv("WANDB_MODE", "disabled")
        patch.setenv("HF_DATASETS_CACHE", str(folder / "hf"))
        patch.chdir(folder)
        root = ["--artifacts", str(folder / "art")]
        for argv in (["prepare", "chinese-poetry:tang/regular", "--name", "t"],
                     ["train", "t", "--max-steps", "2", "--no-wandb", "--no-progress",
                      "--emb-size", "8", "--hidden-size", "8", "--batch-size", "4",
                      "--bptt", "8", "--eval-tokens", "50"]):
            app([*root, *argv], standalone_mode=False)
    return folder / "art"


@pytest.fixture
def lm(cli, store):
    return lambda *args: cli("--artifacts", store, "sample", "t", *args)


def _payload(result):
    assert result.code == 0, result.err
    return json.loads(result.out)


@pytest.mark.parametrize("form", ["wujue", "wulv"])
def test_meter_passes_the_library_checker(lm, form):
    payload = _payload(lm("--form", form, "--meter", "--num", "40", "--temperature", "2",
                          "--json", "--report"))
    judge = checker()
    for poem in payload["samples"]:
        assert judge.check_poem_pingze_meter(poem)[0], poem
        assert judge.check_poem_rhyming(poem)[0], poem
    report = payload["report"]
    assert report["metre_rate"] == 1.0 and report["pingshui_rhyme_rate"] == 1.0
    assert 0 <= report["unknown_to_book"] < 1 and report["reference"]["poems"] >= 0


def test_pingshui_is_the_default_book_for_the_corpus_and_rhymes_are_level(lm):
    samples = _payload(lm("--form", "wulv", "--rhyme", "--num", "30", "--temperature", "2",
                          "--json"))["samples"]
    judge = checker()
    for poem in samples:
        ends = [line[-1] for line in poem.replace("\n", "").split("。") if line]
        assert all(judge.classifier.classify(c)[0] in ("ping", "polyphonic") for c in ends)
        assert all(judge.rhyme_checker.do_rhyme(ends[0], c) for c in ends[1:]), poem


def test_report_shows_the_book_rows_with_the_test_poems(lm):
    result = lm("--form", "wujue", "--meter", "--num", "5", "--report")
    assert result.code == 0, result.err
    assert "metre (pingshui-rhyme checker)" in result.out and "test poems (" in result.out
    assert "characters unknown to the book" in result.out


def test_acrostic_with_meter(lm):
    samples = _payload(lm("--form", "wujue", "--meter", "--acrostic", "春夏秋水", "--num", "10",
                          "--json"))["samples"]
    assert all(checker().check_poem_pingze_meter(p)[0] for p in samples)
    assert all([line[0] for line in p.replace("。", "，").replace("\n", "").split("，")[:4]]
               == list("春夏秋水") for p in samples)


@pytest.mark.parametrize("args, message", [
    (["--meter"], "--meter needs --form wujue, qijue, wulv or qilv"),
    (["--form", "5,5,7,7", "--meter"], "--meter needs --form wujue"),
    (["--form", "wujue", "--strict-meter"], "--strict-meter tightens --meter: add --meter"),
    (["--form", "wujue", "--meter", "--rhyme-book", "modern"], "--meter follows the Pingshui"),
    (["--rhyme-book", "tang"], "--rhyme-book must be one of pingshui, modern, not 'tang'"),
])
def test_clean_errors(lm, args, message):
    assert_clean_error(lm(*args), message)


def test_list_forms_without_tunes(lm):
    result = lm("--list-forms")
    assert result.code == 0 and "wujue" in result.out and "tunes" not in result.out


def test_rhyme_book_default_by_corpus():
    classes = TokenClasses.from_tokens(["<unk>", "<eos>", *"風雲"], "char")

    def book(request, source):
        return rhyme_book(request, Lexicon(classes, Corpus(source)))

    assert book(None, "chinese-poetry:tang/regular") == "pingshui"
    assert book(None, "poems.txt") == "modern"
    assert book("modern", "chinese-poetry:tang") == "modern"


def test_script_of_a_vocabulary():
    simplified = TokenClasses.from_tokens(["<unk>", "<eos>", *"风云东门马"], "char")
    traditional = TokenClasses.from_tokens(["<unk>", "<eos>", *"風雲東門馬"], "char")
    assert simplified_vocabulary(simplified) and not simplified_vocabulary(traditional)


TIANYUANLE = "桃紅復含宿雨，柳綠更帶朝煙。\n花落家童未掃，鶯啼山客猶眠。"  # 王维《田园乐》其六


def test_liujue_is_four_lines_of_six():
    from lm.generation.verse.forms import matches, parse_form

    liujue = parse_form("liujue")
    assert liujue.lengths == (6,) * 4 and not liujue.regulated
    assert matches(TIANYUANLE, liujue, "poem")
    assert not matches(TIANYUANLE.replace("猶眠", "眠"), liujue, "poem")


def test_liujue_with_rhyme_acrostic_and_report(lm):
    payload = _payload(lm("--form", "liujue", "--rhyme", "--acrostic", "春秋夜上", "--num", "20",
                          "--temperature", "2", "--json", "--report"))
    judge = checker()
    for poem in payload["samples"]:
        lines = poem.replace("。", "，").replace("\n", "").split("，")[:4]
        assert [len(line) for line in lines] == [6] * 4
        assert [line[0] for line in lines] == list("春秋夜上")
        ends = [line[-1] for line in lines[1::2]]  # the lines closed by 。
        assert all(judge.classifier.classify(c)[0] in ("ping", "polyphonic") for c in ends)
        assert judge.rhyme_checker.do_rhyme(ends[0], ends[1]), poem
    report = payload["report"]
    assert report["well_formed_rate"] == 1.0 and report["form"] == "liujue"
    assert report["pingshui_rhyme_rate"] == 1.0 and report["metre_rate"] is None


def test_the_report_judges_a_liujue_by_its_rhymes():
    from lm.generation.report import book_figures

    verse = verse_of(TokenClasses.from_tokens(["<unk>", "<eos>", "，", "。", "\n",
                                               *set(TIANYUANLE) - set("，。\n")], "char"),
                     form="liujue")
    texts = [TIANYUANLE, TIANYUANLE.replace("猶眠", "猶去")]
    figures = book_figures(texts, verse)
    chars = [c for t in texts for c in t if c.isalnum()]
    unknown = sum(not book().knows(c) for c in chars) / len(chars)
    assert unknown < 0.1  # the book lacks a character or two of it
    assert figures == {"metre_rate": None, "pingshui_rhyme_rate": 0.5,
                       "unknown_to_book": unknown}


def test_liujue_has_no_metre(lm):
    assert_clean_error(lm("--form", "liujue", "--meter"), "--meter needs --form wujue, qijue")


def _repeats(poem):
    ends = [line[-1] for line in poem.replace("\n", "").split("。") if line]
    return len(set(ends)) < len(ends)


def test_meter_and_rhyme_never_rhyme_a_character_with_itself(lm):
    for flags in (["--meter"], ["--rhyme"]):
        payload = _payload(lm("--form", "wulv", *flags, "--num", "40", "--temperature", "2",
                              "--json", "--report"))
        assert not any(map(_repeats, payload["samples"]))
        assert payload["report"]["repeated_rhymes"] == 0
        allowed = _payload(lm("--form", "wulv", *flags, "--num", "40", "--temperature", "2",
                              "--json", "--report", "--allow-repeat-rhyme"))
        repeats = sum(map(_repeats, allowed["samples"]))
        assert repeats > 0 and allowed["report"]["repeated_rhymes"] == repeats


# 春 夜 上 流 山 kept (夜 and 山 in the middle of their lines)
WUJUE = "春□夜□上，□□□□流。\n□□山□□，□□□□□。"


def test_a_template_keeps_its_characters_anywhere_and_the_metre_holds(lm):
    payload = _payload(lm("--template", WUJUE, "--meter", "--num", "30", "--temperature", "2",
                          "--json", "--report"))
    judge = checker()
    for poem in payload["samples"]:
        assert len(poem) == len(WUJUE)
        assert all(kept == "□" or kept == got for kept, got in zip(WUJUE, poem, strict=True))
        assert judge.check_poem_pingze_meter(poem)[0] and judge.check_poem_rhyming(poem)[0]
    assert payload["report"]["metre_rate"] == 1.0 and payload["report"]["repeated_rhymes"] == 0


@pytest.mark.parametrize("template, args, message", [
    ("春夏秋雪山，水花月。\n雨日白雪葉，酒夜上看，", [], "--template: line 4 ends with ，, "
     "where a poem has 。"),
    ("春□□□□，□□□□□。", ["--form", "wulv"], "--template has lines of 5,5 characters, "
     "which --form wulv does not"),
    ("春□□□□，□□□□□。", ["--acrostic", "秋夏"], "--acrostic puts '秋' at line 1, position 1, "
     "where --template puts '春'"),
    ("□□□□□，□□□□流。\n□□□□□，□□□□流。", ["--meter"], "--template fits no pattern of"),
    ("□□□□□，□□□□□。\n□□□□□，□□□□□。", ["--meter", "--strict-meter", "--template",
     "□□□□□，□□□□上。\n□□□□□，□□□□□。"], "fits no pattern"),
    ("春夏", [], "--template '春夏' is not lines closed by ， or 。"),
])
def test_a_template_that_cannot_hold_is_one_line_naming_the_place(lm, template, args,
                                                                    message):
    assert_clean_error(lm("--template", template, *args), message)


def _lines(poem):
    return [line for line in re.split(r"[，。\n]", poem) if line]


def test_keywords_appear_unbroken_where_the_metre_allows(lm):
    payload = _payload(lm("--form", "wulv", "--meter", "--keywords", "春風,江月", "--num", "30",
                          "--temperature", "2", "--json", "--report"))
    judge, places = checker(), set()
    for poem in payload["samples"]:
        lines = _lines(poem)
        for word in ("春風", "江月"):
            holding = [i for i, line in enumerate(lines) if word in line]
            assert holding, (word, poem)
            places.add((word, holding[0], lines[holding[0]].index(word)))
        assert judge.check_poem_pingze_meter(poem)[0] and judge.check_poem_rhyming(poem)[0]
        assert not _repeats(poem)
    assert len(places) > 6  # each sample draws its own places
    cost = payload["report"]["keywords"]
    assert cost["keywords"] == "春風,江月"
    assert cost["cost"] == pytest.approx(cost["without_keywords"] - cost["logprob_per_char"])
    beams = _payload(lm("--form", "wujue", "--keywords", "春風", "--beam", "4", "--num", "2",
                        "--json"))["samples"]
    assert all("春風" in "".join(_lines(poem)) for poem in beams)


@pytest.mark.parametrize("args, message", [
    (["--form", "wujue", "--keywords", "春秋山花風雲"], "--keywords: '春秋山花風雲' fits nowhere "
     "that --form wujue and its rules allow"),
    (["--form", "wujue", "--acrostic", "春春春春", "--keywords", "秋山花風雲"],
     "--keywords: '秋山花風雲' fits nowhere"),
    (["--form", "5,5", "--acrostic", "春秋", "--keywords", "春山花風雲,春天人江年"],
     "--keywords: '春天人江年' fits nowhere beside '春山花風雲' that --form 5,5"),
    (["--form", "wujue", "--keywords", "春,魑"], "--keywords '魑': '魑' is not in the model's "
     "vocabulary"),
    (["--form", "wujue", "--keywords", " , "], "--keywords is empty"),
    (["--form", "wujue", "--keywords", "春,秋,山,花,風"], "--keywords gives 5 keywords: a "
     "poem holds 4 at most"),
])
def test_keywords_that_cannot_be_written_are_one_line(lm, args, message):
    assert_clean_error(lm(*args), message)
