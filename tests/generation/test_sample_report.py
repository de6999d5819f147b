"""The quality report, checked against numbers worked out by hand."""

import math

import numpy as np
import pytest
import torch
from generation_fakes import TableStepper

from lm.generation.report import (
    build_report,
    copy_rate,
    distinct_n,
    rescore,
    rhyme_rate,
    segments,
    training_segments,
    well_formed_rate,
)
from lm.generation.verse.forms import matches, parse_form

DENGGUAN = "白日依山盡，黃河入海流。\n欲窮千里目，更上一層樓。"


def test_distinct_n_within_verse_lines():
    texts = ["春花秋月，春花冬雪。"]  # lines 春花秋月 / 春花冬雪
    assert distinct_n(texts, 1) == pytest.approx(6 / 8)
    assert distinct_n(texts, 2) == pytest.approx(5 / 6)  # 春花 twice; nothing across ，
    assert distinct_n(["a b a", "b a"], 1, "word") == pytest.approx(2 / 5)
    assert distinct_n(["a b a", "b a"], 2, "word") == pytest.approx(2 / 3)
    assert distinct_n([""], 1) is None


def test_well_formed_rate_against_a_form_and_against_any_of_the_four():
    texts = [
        DENGGUAN,
        "白日依山盡，黃河入海流。",  # two lines: no regular form
        DENGGUAN + "\n",  # trailing newline: not the layout
        "白日依山盡。黃河入海流，\n欲窮千里目，更上一層樓。",  # marks swapped
        "白日依山，黃河入海流。\n欲窮千里目，更上一層樓。",  # a short line
        "白日<unk>山盡，黃河入海流。\n欲窮千里目，更上一層樓。",
    ]
    assert well_formed_rate(texts, parse_form("wujue"), "poem") == pytest.approx(1 / 6)
    assert well_formed_rate(texts, None, "poem") == pytest.approx(1 / 6)
    assert well_formed_rate(texts[:2], parse_form("5,5"), "poem") == pytest.approx(1 / 2)
    assert not matches(DENGGUAN, parse_form("qijue"), "poem")
    assert matches("a b c\nd e f", parse_form("3,3"), "eos", "word")
    assert not matches("a b c\nd e", parse_form("3,3"), "eos", "word")


def test_rhyme_rate():
    texts = [
        DENGGUAN,  # 流 liú / 樓 lóu: 尤
        "白日依山盡，黃河入海流。\n欲窮千里目，更上一層山。",  # 流 / 山: no
        "白日依山盡，黃河入海流。",  # one rhyme position is no rhyme
    ]
    assert rhyme_rate(texts) == pytest.approx(1 / 3)


def test_copy_rate_counts_verse_lines_found_in_training():
    training = {"白日依山盡", "黃河入海流"}
    assert segments(DENGGUAN, "char") == ["白日依山盡", "黃河入海流", "欲窮千里目", "更上一層樓"]
    assert copy_rate([DENGGUAN], training) == pytest.approx(0.5)
    assert copy_rate([DENGGUAN, "春眠不覺曉，處處聞啼鳥。"], training) == pytest.approx(2 / 6)


def test_training_segments_from_ids():
    tokens = ["<unk>", "<eos>", "，", "。", "\n", "白", "日", "山", "水"]
    ids = np.array([5, 6, 2, 7, 8, 3, 1, 8, 0, 7, 3, 1])  # 白日，山水。<eos> 水<unk>山。<eos>
    assert training_segments(ids, tokens, "char") == {"白日", "山水", "水", "山"}
    words = ["<unk>", "<eos>", "the", "cat"]
    assert training_segments(np.array([2, 3, 1, 3, 1]), words, "word") == {"the cat", "cat"}


def test_rescore_sums_the_unconstrained_log_probabilities():
    table = torch.tensor([[0.1, 0.3, 0.3, 0.3], [0.1, 0.1, 0.5, 0.3], [0.2, 0.4, 0.2, 0.2],
                          [0.25, 0.25, 0.25, 0.25]])
    got = rescore(TableStepper(table), [[2, 3], [3]])
    assert got[0] == pytest.approx(math.log(0.5 * 0.2 * 0.25))  # <eos>→2→3→<eos>
    assert got[1] == pytest.approx(math.log(0.3 * 0.25))


def test_build_report_puts_it_together():
    report = build_report([DENGGUAN], form=parse_form("wujue"), layout="poem", level="char",
                          logprobs=[-26.0], token_counts=[25],
                          training={"白日依山盡"})
    assert report["samples"] == 1 and report["form"] == "wujue"
    assert report["well_formed_rate"] == 1.0 and report["rhyme_rate"] == 1.0
    assert report["distinct_1"] == pytest.approx(20 / 20)
    assert report["copy_rate"] == pytest.approx(0.25)
    assert report["logprob_per_char"] == pytest.approx(-26.0 / 26)  # 25 characters + <eos>
    assert report["logprob_per_token"] == pytest.approx(-26.0 / 26)
    assert report["verse_lines"] == 4


def test_book_figures_judge_by_the_library_checker():
    from types import SimpleNamespace

    from lm.generation.report import book_figures, documents

    poems = ["白日依山盡，黃河入海流。\n欲窮千里目，更上一層樓。",  # passes both
             "床前明月光，疑是地上霜。\n舉頭望明月，低頭思故鄉。",  # 古绝: rhymes, fails the metre
             "白日依山盡，黃河入海流。"]  # not regulated: counts as neither
    verse = SimpleNamespace(template=None, simplified=False, form=None)
    figures = book_figures(poems, verse)
    assert figures["metre_rate"] == pytest.approx(1 / 3)
    assert figures["pingshui_rhyme_rate"] == pytest.approx(2 / 3)
    assert figures["unknown_to_book"] == 0.0
    assert book_figures(["白日依山龘，黃河入海流。"], verse)["unknown_to_book"] == 0.1
    tokens = ["<unk>", "<eos>", "白", "日"]
    assert documents([2, 3, 1, 3, 0, 1], tokens) == ["白日", "日\ufffd"]
