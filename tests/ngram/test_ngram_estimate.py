"""Estimation: hand-computed probabilities, adjusted counts, discounts, input errors."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable

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


# ---------------------------------------------------------------------------------------------
# Modified Kneser-Ney by hand where adjusted counts reach 3 and 4, so that D1, D2 and D3+ all
# differ and every order has its own discounts (the tests above only meet the fallback).
# Vocabulary: <unk>=0, eos=1, a=2, b=3, c=4, d=5 (V = 6, the uniform base is 1/6).
A, B, C, D, EOS = 2, 3, 4, 5, 1


def _stream(sentences: list[list[int]]) -> np.ndarray:
    return np.array([w for sentence in sentences for w in [*sentence, EOS]], dtype=np.int64)


def _discounts(n1: int, n2: int, n3: int, n4: int) -> tuple[float, float, float]:
    """Chen & Goodman eq. 26 as written: Y = n1/(n1+2 n2), D_k = k - (k+1) Y n_{k+1}/n_k."""
    y = n1 / (n1 + 2 * n2)
    return 1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3


def _interpolate(
    counts: dict[int, int], discounts: tuple[float, float, float], lower: dict[int, float]
) -> dict[int, float]:
    """p(w | h) = (a(hw) - D(a(hw))) / sum a(h.) + gamma(h) p(w | h') for every w of ``lower``.

    ``counts`` are the adjusted counts of the extensions of h; gamma(h) = sum D(a(h.)) / sum a(h.).
    """
    total = sum(counts.values())

    def disc(a: int) -> float:
        return discounts[min(a, 3) - 1] if a else 0.0

    gamma = sum(disc(a) for a in counts.values()) / total
    return {w: (counts.get(w, 0) - disc(counts.get(w, 0))) / total + gamma * p
            for w, p in lower.items()}


UNIFORM = {w: 1 / 6 for w in range(6)}

# "b a a a" / "a b" / "c a b" / "b" / "a b b" (18 tokens with the eos)
BIGRAM_CORPUS = _stream([[B, A, A, A], [A, B], [C, A, B], [B], [A, B, B]])
# Unigrams, adjusted = distinct left words: a {b, a, <s>, c} = 4, b {<s>, a, b} = 3,
# </s> {a, b} = 2, c {<s>} = 1; n1..n4 = 1, 1, 1, 1.
BIGRAM_CORPUS_UNIGRAMS = {A: 4, B: 3, EOS: 2, C: 1}
# Bigrams (highest order: raw counts) by context; n1..n4 = 5, 3, 1, 1.
BIGRAM_CORPUS_BIGRAMS = {
    "<s>": {B: 2, A: 2, C: 1},
    A: {A: 2, EOS: 1, B: 3},
    B: {A: 1, EOS: 4, B: 1},
    C: {A: 1},
}

# "a a a" / "c b b" / "c a a a" / "a a a a" / "a b b" / "a c d b" (27 tokens with the eos)
TRIGRAM_CORPUS = _stream([[A, A, A], [C, B, B], [C, A, A, A], [A, A, A, A], [A, B, B],
                          [A, C, D, B]])
# Unigrams: </s> {a, b} = 2, a {<s>, a, c} = 3, b {c, b, a, d} = 4, c {<s>, a} = 2,
# d {c} = 1; n1..n4 = 1, 2, 1, 1.
TRIGRAM_CORPUS_UNIGRAMS = {EOS: 2, A: 3, B: 4, C: 2, D: 1}
# Bigrams used below (adjusted = distinct left words, raw count after <s>); of all 12
# bigrams n1..n4 = 7, 3, 1, 1.
TRIGRAM_CORPUS_BIGRAMS = {
    "<s>": {A: 4, C: 2},  # raw counts: "<s> a" starts 4 sentences
    A: {EOS: 1, A: 3, B: 1, C: 1},  # "a a" follows <s>, a and c
}
# Trigrams (raw counts) used below; of all 14 trigrams n1..n4 = 10, 2, 1, 1.
TRIGRAM_CORPUS_TRIGRAMS = {
    ("<s>", A): {A: 2, B: 1, C: 1},
    (A, A): {EOS: 3, A: 4},
}


def test_discounts_by_hand_with_counts_up_to_four() -> None:
    """Counts-of-counts of the adjusted counts per order, then eq. 26, checked in fractions."""
    bigram = count_ngrams(BIGRAM_CORPUS, vocab_size=6, order=2, eos_id=1)
    assert [s[1:].tolist() for s in bigram.count_stats] == [[1, 1, 1, 1], [5, 3, 1, 1]]
    trigram = count_ngrams(TRIGRAM_CORPUS, vocab_size=6, order=3, eos_id=1)
    assert [s[1:].tolist() for s in trigram.count_stats] == [
        [1, 2, 1, 1], [7, 3, 1, 1], [10, 2, 1, 1]]
    by_hand = {
        (1, 1, 1, 1): (1 / 3, 1.0, 5 / 3),  # Y = 1/3
        (5, 3, 1, 1): (5 / 11, 17 / 11, 13 / 11),  # Y = 5/11
        (1, 2, 1, 1): (0.2, 1.7, 2.2),  # Y = 1/5
        (7, 3, 1, 1): (7 / 13, 19 / 13, 11 / 13),  # Y = 7/13
        (10, 2, 1, 1): (5 / 7, 13 / 14, 1 / 7),  # Y = 5/7
    }
    for n, d in by_hand.items():
        np.testing.assert_allclose(_discounts(*n), d, rtol=1e-12)
    model = estimate(BIGRAM_CORPUS, vocab_size=6, order=2)
    assert model.fallback_orders == ()
    np.testing.assert_allclose(
        model.discounts, [by_hand[(1, 1, 1, 1)], by_hand[(5, 3, 1, 1)]], rtol=1e-6)
    model = estimate(TRIGRAM_CORPUS, vocab_size=6, order=3)
    assert model.fallback_orders == ()
    np.testing.assert_allclose(
        model.discounts,
        [by_hand[(1, 2, 1, 1)], by_hand[(7, 3, 1, 1)], by_hand[(10, 2, 1, 1)]], rtol=1e-6)


def test_unigrams_by_hand_with_d3() -> None:
    """Unigram level of BIGRAM_CORPUS: total 10, gamma = (5/3 + 5/3 + 1/3 + 1) / 10 = 7/15.

    p(a) = (4 - 5/3)/10 + 7/90 = 28/90, p(b) = (3 - 5/3)/10 + 7/90 = 19/90,
    p(</s>) = (2 - 1)/10 + 7/90 = 16/90, p(c) = (1 - 1/3)/10 + 7/90 = 13/90,
    p(<unk>) = p(d) = 7/90 (never seen).
    """
    model = estimate(BIGRAM_CORPUS, vocab_size=6, order=2)
    expected = np.array([7, 16, 28, 19, 13, 7]) / 90
    np.testing.assert_allclose(10.0 ** model.log10_probs[0][:6], expected, rtol=1e-6)
    after_unseen_word = np.exp(model.next_logprobs([[D]]))[0]  # d has no bigrams: backs off
    np.testing.assert_allclose(after_unseen_word, expected, rtol=1e-6)
    unigrams = _interpolate(BIGRAM_CORPUS_UNIGRAMS, (1 / 3, 1.0, 5 / 3), UNIFORM)
    np.testing.assert_allclose([unigrams[w] for w in range(6)], expected, rtol=1e-12)


def test_bigrams_by_hand_with_d3() -> None:
    """Bigram level of BIGRAM_CORPUS, D = 5/11, 17/11, 13/11.

    Context a: a a = 2, a </s> = 1, a b = 3; gamma(a) = (17 + 5 + 13)/11 / 6 = 35/66:
      p(b|a) = (3 - 13/11)/6 + 35/66 * 19/90 = 493/1188,
      p(a|a) = (2 - 17/11)/6 + 35/66 * 28/90 = 13/54,
      p(</s>|a) = (1 - 5/11)/6 + 35/66 * 16/90 = 5/27.
    Context <s>: <s> b = 2, <s> a = 2, <s> c = 1; gamma = 39/55:
      p(a|<s>) = (2 - 17/11)/5 + 39/55 * 28/90 = 771/2475.
    Context c: c a = 1; p(a|c) = (1 - 5/11) + 5/11 * 28/90 = 68/99.
    """
    model = estimate(BIGRAM_CORPUS, vocab_size=6, order=2)
    dist = np.exp(model.next_logprobs([[A], [], [C], [B]]))
    np.testing.assert_allclose(dist[0, [B, A, EOS]], [493 / 1188, 13 / 54, 5 / 27], rtol=1e-6)
    np.testing.assert_allclose(dist[1, A], 771 / 2475, rtol=1e-6)
    np.testing.assert_allclose(dist[2, A], 68 / 99, rtol=1e-6)
    unigrams = _interpolate(BIGRAM_CORPUS_UNIGRAMS, (1 / 3, 1.0, 5 / 3), UNIFORM)
    for row, context in enumerate([A, "<s>", C, B]):
        expected = _interpolate(BIGRAM_CORPUS_BIGRAMS[context], (5 / 11, 17 / 11, 13 / 11),
                                unigrams)
        np.testing.assert_allclose(dist[row], [expected[w] for w in range(6)], rtol=1e-6)
    # "a b </s>" scored as a sentence: p(a|<s>) p(b|a) p(</s>|b), p(</s>|b) = (4 - 13/11)/6 + ...
    p_eos_b = (4 - 13 / 11) / 6 + (5 / 11 + 13 / 11 + 5 / 11) / 6 * 16 / 90
    np.testing.assert_allclose(
        model.logprobs(np.array([A, B, EOS])),
        np.log([771 / 2475, 493 / 1188, p_eos_b]), rtol=1e-6)


def test_trigrams_by_hand_with_d3_at_every_order() -> None:
    """TRIGRAM_CORPUS, D = (0.2, 1.7, 2.2), (7/13, 19/13, 11/13), (5/7, 13/14, 1/7).

    p(a | a a) = (4 - 1/7)/7 + gamma(a a) p(a|a), gamma(a a) = (1/7 + 1/7)/7 = 2/49;
    p(a|a) = (3 - 11/13)/6 + gamma(a) p(a), gamma(a) = (7 + 11 + 7 + 7)/13 / 6 = 16/39;
    p(a) = (3 - 2.2)/12 + gamma/6, gamma = (1.7 + 2.2 + 2.2 + 1.7 + 0.2)/12 = 2/3.
    p(a | <s> a) = (2 - 13/14)/4 + gamma(<s> a) p(a|a), gamma(<s> a) = (13/14 + 5/7 + 5/7)/4.
    """
    model = estimate(TRIGRAM_CORPUS, vocab_size=6, order=3)
    p_a = (3 - 2.2) / 12 + (2 / 3) / 6
    p_a_a = (3 - 11 / 13) / 6 + 16 / 39 * p_a
    p_a_aa = (4 - 1 / 7) / 7 + 2 / 49 * p_a_a
    p_a_sa = (2 - 13 / 14) / 4 + (13 / 14 + 5 / 7 + 5 / 7) / 4 * p_a_a
    p_b_aa = 2 / 49 * ((1 - 7 / 13) / 6 + 16 / 39 * ((4 - 2.2) / 12 + (2 / 3) / 6))
    dist = np.exp(model.next_logprobs([[A, A], [A]]))
    np.testing.assert_allclose(dist[:, A], [p_a_aa, p_a_sa], rtol=1e-6)
    np.testing.assert_allclose(dist[0, B], p_b_aa, rtol=1e-6)
    # The same through the tables written above: every word after "a a" and after "<s> a".
    unigrams = _interpolate(TRIGRAM_CORPUS_UNIGRAMS, (0.2, 1.7, 2.2), UNIFORM)
    bigrams = _interpolate(TRIGRAM_CORPUS_BIGRAMS[A], (7 / 13, 19 / 13, 11 / 13), unigrams)
    for row, context in enumerate([(A, A), ("<s>", A)]):
        expected = _interpolate(TRIGRAM_CORPUS_TRIGRAMS[context], (5 / 7, 13 / 14, 1 / 7), bigrams)
        np.testing.assert_allclose(dist[row], [expected[w] for w in range(6)], rtol=1e-6)
    np.testing.assert_allclose(
        model.logprobs(np.array([A, A, A])), np.log([
            _interpolate(TRIGRAM_CORPUS_BIGRAMS["<s>"], (7 / 13, 19 / 13, 11 / 13), unigrams)[A],
            p_a_sa, p_a_aa]), rtol=1e-6)


def _formula_model(ids: np.ndarray, vocab_size: int, order: int) -> Callable:
    """Interpolated modified Kneser-Ney straight from the definitions, with dicts and tuples.

    Adjusted counts: raw count at the highest order and for n-grams starting with <s>,
    otherwise the number of distinct words seen to the left. Discounts per order from
    the counts-of-counts of those adjusted counts. Returns p(w | context since <s>).
    """
    raw: Counter[tuple] = Counter()
    sentence: list = ["<s>"]
    for w in ids.tolist():
        sentence.append(w)
        for n in range(1, min(order, len(sentence)) + 1):
            raw[tuple(sentence[-n:])] += 1
        if w == EOS:
            sentence = ["<s>"]
    left: defaultdict[tuple, set] = defaultdict(set)
    for gram in raw:
        left[gram[1:]].add(gram[0])
    adjusted = {g: c if len(g) == order or g[0] == "<s>" else len(left[g]) for g, c in raw.items()}
    discounts = {}
    for n in range(1, order + 1):
        tally = Counter(a for g, a in adjusted.items() if len(g) == n)
        discounts[n] = _discounts(*(tally[j] for j in (1, 2, 3, 4)))

    def prob(context: tuple) -> dict[int, float]:
        if not context:
            counts = {g[0]: a for g, a in adjusted.items() if len(g) == 1}
            uniform = {w: 1 / vocab_size for w in range(vocab_size)}
            return _interpolate(counts, discounts[1], uniform)
        lower = prob(context[1:])
        counts = {g[-1]: a for g, a in adjusted.items() if g[:-1] == context}
        return _interpolate(counts, discounts[len(context) + 1], lower) if counts else lower

    return lambda history: prob(tuple(["<s>", *history][max(0, len(history) + 2 - order):]))


@pytest.mark.parametrize(("corpus", "order"), [("bigram", 2), ("trigram", 2), ("trigram", 3)])
def test_every_context_matches_the_formulas(corpus: str, order: int) -> None:
    """All next-word distributions, after every prefix of every training sentence."""
    ids = BIGRAM_CORPUS if corpus == "bigram" else TRIGRAM_CORPUS
    model = estimate(ids, vocab_size=6, order=order)
    assert model.fallback_orders == ()
    reference = _formula_model(ids, 6, order)
    histories: list[list[int]] = [[]]
    for w in ids.tolist():
        histories.append([] if w == EOS else [*histories[-1], w])
    histories.append([D, A])  # an unseen context word
    dist = np.exp(model.next_logprobs(histories))
    expected = [[reference(h)[w] for w in range(6)] for h in histories]
    np.testing.assert_allclose(dist, expected, rtol=1e-6)
