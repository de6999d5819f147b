"""ARPA export/import: lossless round trip and the import conventions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lm.ngram import NgramError, NgramModel, arpa, estimate

TOKENS = ["<unk>", "<eos>", "the", "cat", "sat", "mat", "on", "never"]  # "never" unseen
TOKEN_TO_ID = {t: i for i, t in enumerate(TOKENS)}
TRAIN = np.array([2, 3, 4, 6, 2, 5, 1, 2, 3, 1, 2, 5, 4, 1, 0, 4, 1, 1, 2, 0, 6, 2, 3, 1])
TEST = np.array([2, 3, 4, 6, 2, 7, 1, 0, 5, 1, 1, 7, 7, 3, 1])


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_round_trip_gives_same_logprobs(tmp_path: Path, order: int) -> None:
    model = estimate(TRAIN, len(TOKENS), order)
    path = tmp_path / "m.arpa"
    model.write_arpa(path, TOKENS)
    back = NgramModel.from_arpa(path, TOKEN_TO_ID)
    assert back.num_ngrams == model.num_ngrams
    np.testing.assert_array_equal(back.logprobs(TEST), model.logprobs(TEST))
    np.testing.assert_array_equal(
        back.next_logprobs([[2], [], [0, 6]]), model.next_logprobs([[2], [], [0, 6]])
    )


def test_arpa_layout(tmp_path: Path) -> None:
    model = estimate(TRAIN, len(TOKENS), 2)
    path = tmp_path / "m.arpa"
    model.write_arpa(path, TOKENS)
    text = path.read_text()
    assert text.startswith("\\data\\\nngram 1=9\n")
    assert text.rstrip().endswith("\\end\\")
    unigrams = text.split("\\1-grams:\n")[1].split("\n\n")[0].splitlines()
    words = [line.split("\t")[1] for line in unigrams]
    assert words == ["<unk>", "</s>", "the", "cat", "sat", "mat", "on", "never", "<s>"]
    assert unigrams[-1].startswith("0\t<s>\t")
    bigram = text.split("\\2-grams:\n")[1].splitlines()[0]
    assert len(bigram.split("\t")) == 2  # no backoff column at the highest order


def test_vocab_words_missing_from_arpa_get_unk_probability(tmp_path: Path) -> None:
    model = estimate(TRAIN, len(TOKENS), 3)
    path = tmp_path / "m.arpa"
    model.write_arpa(path, TOKENS)
    bigger = dict(TOKEN_TO_ID, extra=len(TOKENS))
    back = NgramModel.from_arpa(path, bigger)
    assert back.vocab_size == len(TOKENS) + 1
    assert back.log10_probs[0][8] == back.log10_probs[0][0]  # <unk>'s unigram log10 prob
    assert back.log10_backoffs[0][8] == 0.0
    np.testing.assert_array_equal(back.logprobs(TEST), model.logprobs(TEST))


def test_arpa_words_outside_vocab(tmp_path: Path) -> None:
    model = estimate(TRAIN, len(TOKENS), 3)
    path = tmp_path / "m.arpa"
    model.write_arpa(path, TOKENS)
    smaller = {t: i for t, i in TOKEN_TO_ID.items() if t != "mat"}
    with pytest.raises(NgramError, match="'mat'"):
        NgramModel.from_arpa(path, smaller)
    dropped = NgramModel.from_arpa(path, smaller, drop_unknown=True)
    assert dropped.num_ngrams[0] == model.num_ngrams[0]  # the id stays, with the <unk> probability
    assert all(d < m for d, m in zip(dropped.num_ngrams[1:], model.num_ngrams[1:], strict=True))


def test_write_rejects_unusable_tokens(tmp_path: Path) -> None:
    model = estimate(TRAIN, len(TOKENS), 2)
    with pytest.raises(NgramError, match="whitespace"):
        model.write_arpa(tmp_path / "a", [*TOKENS[:3], "two words", *TOKENS[4:]])
    with pytest.raises(NgramError, match="reserved"):
        model.write_arpa(tmp_path / "a", [*TOKENS[:3], "<s>", *TOKENS[4:]])
    with pytest.raises(NgramError, match="entries"):
        model.write_arpa(tmp_path / "a", TOKENS[:3])


def test_reads_srilm_style_mixed_backoffs(tmp_path: Path) -> None:
    """Backoff column present on some lines only; -99 for <s>."""
    path = tmp_path / "s.arpa"
    path.write_text(
        "\\data\\\nngram 1=4\nngram 2=2\n\n\\1-grams:\n-1.0\t<unk>\n-99\t<s>\t-0.3\n"
        "-0.5\t</s>\n-0.4\tx\t-0.2\n\n\\2-grams:\n-0.1\t<s> x\n-0.2\tx </s>\n\n\\end\\\n"
    )
    model = NgramModel.from_arpa(path, {"<unk>": 0, "<eos>": 1, "x": 2})
    lp = model.logprobs(np.array([2, 1, 1])) / np.log(10)
    np.testing.assert_allclose(lp, [-0.1, -0.2, -0.3 - 0.5], rtol=1e-6)


def test_malformed_arpa(tmp_path: Path) -> None:
    path = tmp_path / "bad.arpa"
    path.write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-1\t<unk>\n-1\t</s>\n\n\\end\\\n")
    with pytest.raises(NgramError, match="header says 3"):
        NgramModel.from_arpa(path, {"<unk>": 0, "<eos>": 1})
    path.write_text("hello\n")
    with pytest.raises(NgramError, match="ARPA"):
        NgramModel.from_arpa(path, {"<unk>": 0, "<eos>": 1})


def test_arpa_written_in_chunks_is_the_same_file(tmp_path: Path) -> None:
    """The writer builds n-gram words a chunk at a time from their prefixes' chunk; any chunk
    size gives the file written in one piece, whose n-gram lines are checked word by word."""
    model = estimate(TRAIN, len(TOKENS), 4)
    model.write_arpa(tmp_path / "whole.arpa", TOKENS)
    whole = (tmp_path / "whole.arpa").read_text("utf-8")
    for chunk in (1, 2, 3, 5):
        arpa.write_arpa(model, tmp_path / "c.arpa", TOKENS, chunk=chunk)
        assert (tmp_path / "c.arpa").read_text("utf-8") == whole
    base = len(TOKENS) + 1
    names = ["<unk>", "</s>", *TOKENS[2:], "<s>"]
    words = [[(w,) for w in range(base)]]
    for keys in model.keys:
        words.append([words[-1][key // base] + (key % base,) for key in keys.tolist()])
    expected = [" ".join(names[w] for w in gram) for grams in words for gram in grams]
    written = [line.split("\t")[1] for line in whole.splitlines() if line.count("\t") >= 1]
    assert written == expected
