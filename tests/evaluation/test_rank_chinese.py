"""Ranking modern Chinese sentences against their scrambled copies, on models trained here
on a small corpus the test makes: char and word level, an n-gram and a tiny RNN.

At word level the ranked lines are cut into words as the training text was (jieba), and each
token's span still points at the line's own characters.
"""

from __future__ import annotations

import json
import random

import pytest

from lm.segmentation import segment

SUBJECTS = ["我", "你", "他", "我们", "老师", "朋友"]
DAYS = ["今天", "明天", "昨天"]
WEEKDAYS = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"]
FEELINGS = ["很高兴", "很忙", "不错", "很累"]


def make_modern_corpus(path, lines: int = 400, seed: int = 3):
    """Sentences in a few fixed word orders: 今天是周六, 我们明天很忙, 周二他去公园."""
    rng = random.Random(seed)
    patterns = [
        lambda: rng.choice(DAYS) + "是" + rng.choice(WEEKDAYS),
        lambda: rng.choice(SUBJECTS) + rng.choice(DAYS) + rng.choice(FEELINGS),
        lambda: rng.choice(WEEKDAYS) + rng.choice(SUBJECTS) + "去公园",
    ]
    text = "\n".join(rng.choice(patterns)() for _ in range(lines))
    path.write_text(text + "\n", encoding="utf-8")
    return path


PAIRS = ["今天是周六", "是今天周六", "我们明天很忙", "很忙明天我们"]


@pytest.fixture
def modern(tmp_path):
    corpus = make_modern_corpus(tmp_path / "modern.txt")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(PAIRS) + "\n", encoding="utf-8")
    return corpus, pairs


def _ranked(cli, model, pairs) -> list[dict]:
    result = cli("perplexity", model, "--file", pairs, "--rank", "--per-token", "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)["ranked"]


def _wins(rows: list[dict]) -> list[bool]:
    """For each pair of lines (sentence, scrambled), whether the sentence ranks higher."""
    place = {row["line"]: row["rank"] for row in rows}
    return [place[n] < place[n + 1] for n in range(1, len(PAIRS), 2)]


@pytest.mark.parametrize("level", ["char", "word"])
def test_a_5gram_ranks_each_sentence_above_its_scramble(cli, modern, level):
    corpus, pairs = modern
    assert cli("prepare", corpus, "--name", "m", "--level", level).code == 0
    assert cli("ngram", "m", "--order", "5").code == 0
    rows = _ranked(cli, "m-5gram", pairs)
    assert _wins(rows) == [True, True]
    first = next(row for row in rows if row["line"] == 1)
    tokens = [t["token"] for t in first["per_token"]]
    if level == "word":  # cut by jieba, as the training text was; spans in the line itself
        assert tokens == ["今天", "是", "周六", "<eos>"] == segment("今天是周六").split() + [
            "<eos>"]
    else:
        assert tokens == [*"今天是周六", "<eos>"]
    assert [(t["start"], t["end"]) for t in first["per_token"]] == (
        [(0, 2), (2, 3), (3, 5), (5, 5)] if level == "word"
        else [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 5)])
    for row in rows:  # every line's characters, whatever the tokens
        assert row["characters"] == len(PAIRS[row["line"] - 1]) + 1
        worst = row["worst"]
        assert PAIRS[row["line"] - 1][worst["start"]:worst["end"]] == worst["token"]


@pytest.mark.parametrize("level", ["char", "word"])
def test_a_tiny_rnn_ranks_the_sentence_above_its_scramble(cli, modern, level):
    corpus, pairs = modern
    assert cli("prepare", corpus, "--name", "m", "--level", level).code == 0
    train = cli("train", "m", "--max-steps", "150", "--no-wandb", "--no-progress",
                "--emb-size", "16", "--hidden-size", "32", "--batch-size", "8", "--bptt", "12",
                "--eval-tokens", "100", "--lr", "0.01", "--optimizer", "adam", "--seed", "0")
    assert train.code == 0, train.err
    rows = _ranked(cli, "m", pairs)
    assert _wins(rows) == [True, True]
    by_line = {row["line"]: row for row in rows}
    text = cli("perplexity", "m", "--text", "是今天周六", "--context", "document", "--json")
    assert json.loads(text.out)["perplexity"] == pytest.approx(by_line[2]["perplexity"],
                                                               rel=1e-6)
