"""Estimation: hand-computed probabilities, adjusted counts, discounts, input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lm.ngram import NgramError, compute_discounts, estimate
from lm.ngram.counting import count_ngrams

# Vocabulary: <unk>=0, eos=1, a=2, b=3 (V=4, <s> is the pseudo-id 4).
# Corpus: "a b" / "a"  ->  ids 2 3 1 2 1
TINY = np.array([2, 3, 1, 2, 1])


def test_tiny_bigram_probabilities_by_hand() -> None:
    """Order 2 by hand (every order needs the 0.5/1/1.5 fallback: no n3).

    Unigram adjusted counts (distinct left words): a=1 {<s>}, b=1 {a}, </s>=2 {a, b}.
    Total 4, gamma = (0.5 + 0.5 + 1) / 4 = 0.5, uniform 1/4:
      p(a) = p(b) = 0.5/4 + 0.5/4 = 0.25, p(</s>) = 1/4 + 0.125 = 0.375, p(<unk>) = 0.125.
    Bigrams (raw counts): <s> a = 2, a b = 1, a </s> = 1, b </s> = 1.
      p(a|<s>) = (2-1)/2 + gamma(<s>)=1/2 * 0.25 = 0.625
      p(b|a) = 0.5/2 + gamma(a)=(0.5+0.5)/2 * 0.25 = 0.375
      p(</s>|b) = 0.5/1 + gamma(b)=0.5 * 0.375 = 0.6875
      p(</s>|a) = 0.5/2 + 0.5 * 0.375 = 0.4375
    """
    model = estimate(TINY, vocab_size=4, order=2)
    assert model.discounts == ((0.5, 1.0, 1.5), (0.5, 1.0, 1.5))
    assert model.fallback_orders == (1, 2)
    expected = np.log([0.625, 0.375, 0.6875, 0.625, 0.4375])
    np.testing.assert_allclose(model.logprobs(TINY), expected, rtol=1e-6)
    dist = np.exp(model.next_logprobs([[], [2], [2, 3]]))
    np.testing.assert_allclose(dist[0], [0.0625, 0.1875, 0.625, 0.125], rtol=1e-6)
    np.testing.assert_allclose(dist[1], [0.0625, 0.4375, 0.125, 0.375], rtol=1e-6)
    np.testing.assert_allclose(dist[2, 1], 0.6875, rtol=1e-6)


def test_unigram_model_by_hand() -> None:
    """Order 1 uses raw counts: a=2, b=1, </s>=2; D(1)=0.5, D(2)=1 (fallback)."""
    model = estimate(TINY, vocab_size=4, order=1)
    gamma = (1.0 + 0.5 + 1.0) / 5
    p = {2: (2 - 1) / 5 + gamma / 4, 3: 0.5 / 5 + gamma / 4, 1: 1 / 5 + gamma / 4, 0: gamma / 4}
    np.testing.assert_allclose(
        model.logprobs(TINY), np.log([p[i] for i in TINY.tolist()]), rtol=1e-6
    )
    assert math.isclose(sum(p.values()), 1.0)


def test_adjusted_counts_follow_lmplz() -> None:
    counts = count_ngrams(TINY, vocab_size=4, order=3, eos_id=1)
    unigram = dict(enumerate(counts.adjusted[0].tolist()))
    assert unigram == {0: 0, 1: 2, 2: 1, 3: 1, 4: 0}  # <s> (4) gets 0
    base = 5

    def bigram(key: int) -> tuple[int, int]:
        return key // base, key % base

    bigrams = {
        bigram(int(k)): int(c) for k, c in zip(counts.keys[1], counts.adjusted[1], strict=True)
    }
    # "<s> a" starts with <s>: raw count 2; the others count distinct left words.
    assert bigrams == {(2, 1): 1, (2, 3): 1, (3, 1): 1, (4, 2): 2}
    assert counts.adjusted[2].tolist() == [1, 1, 1]  # "a b </s>", "<s> a b", "<s> a </s>"


def test_discount_formula() -> None:
    # n1..n4 = 10, 5, 3, 2: Y = 0.5, D1 = 0.5, D2 = 1.1, D3+ = 3 - 4*0.5*2/3.
    d, used = compute_discounts(np.array([0, 10, 5, 3, 2]), None, 2)
    np.testing.assert_allclose(d, (0.5, 1.1, 3 - 4 / 3), rtol=1e-6)
    assert not used


def test_discount_fallback_and_error() -> None:
    d, used = compute_discounts(np.array([0, 10, 0, 3, 2]), (0.4, 0.9, 1.3), 1)
    assert used and d == (0.4, 0.9, 1.3)
    with pytest.raises(NgramError, match="discount_fallback"):
        compute_discounts(np.array([0, 10, 0, 3, 2]), None, 1)
    with pytest.raises(NgramError, match="outside"):
        compute_discounts(np.array([0, 10, 1, 30, 2]), None, 3)  # D2 < 0
    with pytest.raises(NgramError):
        estimate(TINY, vocab_size=4, order=2, discount_fallback=None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"order": 0}, "order"),
        ({"order": 2, "train_ids": np.array([], dtype=np.int64)}, "empty"),
        ({"order": 2, "train_ids": np.array([2, 7, 1])}, "outside"),
        ({"order": 2, "train_ids": np.array([2, -1, 1])}, "outside"),
        ({"order": 2, "train_ids": np.array([[2, 1]])}, "1-D"),
        ({"order": 2, "train_ids": np.array([2.0, 1.0])}, "integers"),
        ({"order": 2, "vocab_size": 1}, "vocab_size"),
    ],
)
def test_bad_input_raises_ngram_error(kwargs: dict, message: str) -> None:
    args = {"train_ids": TINY, "vocab_size": 4, **kwargs}
    with pytest.raises(NgramError, match=message):
        estimate(**args)
    assert issubclass(NgramError, ValueError)


def test_unclosed_final_sentence_is_closed() -> None:
    closed = estimate(TINY, vocab_size=4, order=3)
    open_ended = estimate(TINY[:-1], vocab_size=4, order=3)
    np.testing.assert_array_equal(closed.logprobs(TINY), open_ended.logprobs(TINY))


def test_empty_sentences_are_sentences() -> None:
    """A lone eos is "<s> </s>", as lmplz counts a blank line."""
    with_blank = np.array([2, 3, 1, 1, 2, 1])
    model = estimate(with_blank, vocab_size=4, order=2)
    assert model.num_ngrams[1] == 5  # <s> a, a b, b </s>, <s> </s>, a </s>
    lp = model.logprobs(np.array([1]))
    assert lp.shape == (1,) and lp[0] > math.log(0.1)


def test_high_orders_and_short_sentences() -> None:
    """Orders longer than any sentence leave the top orders empty but still work."""
    model = estimate(TINY, vocab_size=4, order=10)
    assert model.num_ngrams[4:] == [0] * 6
    short = estimate(TINY, vocab_size=4, order=4)  # longest n-gram: <s> a b </s>
    np.testing.assert_allclose(model.logprobs(TINY), short.logprobs(TINY), rtol=1e-6)


def test_unseen_vocabulary_words_share_uniform_mass() -> None:
    model = estimate(TINY, vocab_size=6, order=2)  # ids 4, 5 never occur
    dist = np.exp(model.next_logprobs([[2]]))[0]
    assert math.isclose(dist.sum(), 1.0, rel_tol=1e-6)
    assert dist[4] == dist[5] == dist[0]


def test_vocab_pad_moves_mass_to_phantom_outcomes() -> None:
    model = estimate(TINY, vocab_size=4, order=2, vocab_pad=5)
    total = np.exp(model.next_logprobs([[]]))[0].sum()
    assert total < 1.0


def test_bad_discount_fallback() -> None:
    with pytest.raises(NgramError, match="discount_fallback"):
        estimate(TINY, vocab_size=4, order=2, discount_fallback=(1.5, 1.0, 1.5))
    with pytest.raises(NgramError, match="discount_fallback"):
        estimate(TINY, vocab_size=4, order=2, discount_fallback=(0.5, 1.0))


def test_lmplz_last_ngram_quirk_in_counts_of_counts() -> None:
    """lmplz tallies its last n-gram (in its sort order) with the raw count.

    Corpus "a z" / "a z": z is the last new word, so "z" is lmplz's last
    unigram; its adjusted count is 1 (only "a" precedes it) but lmplz's
    statistics see its raw count 2.
    """
    counts = count_ngrams(np.array([2, 3, 1, 2, 3, 1]), vocab_size=4, order=2, eos_id=1)
    assert counts.adjusted[0][3] == 1
    assert counts.count_stats[0][1:3].tolist() == [2, 1]  # a, </s> at 1; z at 2
