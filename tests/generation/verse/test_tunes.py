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

from lm.generation.verse.tunes import (
    build_template,
    corpus_tunes,
    layout,
    rhymes_hold,
    template_form,
)

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
