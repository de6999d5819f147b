"""Counting and estimation behaviour that mutation testing (``make mutation``) found unpinned.

The centre piece is a dict-based reference for lmplz's counting, written from the docstring of
``lm.ngram.counting`` (adjusted counts, and the counts-of-counts quirk of lmplz's last n-gram),
checked on a few hundred random corpora; then the edges of the discount formula and of the
argument checks, each with real numbers.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections import Counter, defaultdict

import numpy as np
import pytest

from lm.ngram import NgramError, compute_discounts, estimate
from lm.ngram.counting import _sort_group, count_ngrams

BOS = "<s>"
# ``lm.ngram.estimate`` is the function; the modules are needed for their internals
estimate_module = importlib.import_module("lm.ngram.estimate")
counting_module = importlib.import_module("lm.ngram.counting")


# --------------------------------------------------------------------------- reference counting
def _sentences(ids: list[int], eos: int) -> list[list]:
    """``<s> w1 .. wn </s>`` for each sentence of a stream that ends with eos."""
    out, current = [], [BOS]
    for w in ids:
        current.append(w)
        if w == eos:
            out.append(current)
            current = [BOS]
    return out


def reference_counts(ids: list[int], order: int, eos: int) -> tuple[list[dict], list[list[int]]]:
    """Adjusted counts per order ({n-gram tuple: count}) and counts-of-counts n1..n4 per order.

    Adjusted count: raw at the highest order and for n-grams starting with <s>, else the number
    of distinct words (<s> included) seen directly to the left. Counts-of-counts: of the
    adjusted counts, except that lmplz's last highest-order n-gram (sorting by last word, then
    the one before, ..., word ids in order of first appearance, </s> below every word and the
    <s> padding lowest) enters with its raw count at orders 1 .. min(position + 1, order - 1).
    """
    sentences = _sentences(ids, eos)
    raw: Counter[tuple] = Counter()
    for tokens in sentences:
        for j in range(1, len(tokens)):
            for n in range(1, min(order, j + 1) + 1):
                raw[tuple(tokens[j - n + 1:j + 1])] += 1
    left: defaultdict[tuple, set] = defaultdict(set)
    for gram in raw:
        if len(gram) > 1:
            left[gram[1:]].add(gram[0])
    adjusted = [dict() for _ in range(order)]
    for gram, count in raw.items():
        keep_raw = len(gram) == order or gram[0] == BOS
        adjusted[len(gram) - 1][gram] = count if keep_raw else len(left[gram])

    first_seen: dict = {}
    for position, w in enumerate(ids):
        first_seen.setdefault(w, position)

    def rank(w) -> int:
        return -2 if w == BOS else -1 if w == eos else first_seen[w]

    best_key, best = None, None
    for tokens in sentences:
        for j in range(1, len(tokens)):
            key = tuple(rank(tokens[j - d]) if j - d >= 1 else rank(BOS) for d in range(order))
            if best_key is None or key > best_key:
                best_key, best = key, (tokens, j)
    tallies = [dict(a) for a in adjusted]
    tokens, j = best
    for k in range(1, min(j + 1, order - 1) + 1):
        gram = tuple(tokens[j - k + 1:j + 1])
        tallies[k - 1][gram] = raw[gram]
    stats = [[sum(1 for c in t.values() if c == value) for value in (1, 2, 3, 4)]
             for t in tallies]
    return adjusted, stats


def decode(counts, vocab_size: int) -> list[dict]:
    """count_ngrams' keys and adjusted counts as {n-gram tuple: adjusted count} per order."""
    base = vocab_size + 1
    word = {vocab_size: BOS}
    grams: list[list[tuple]] = [[(word.get(w, w),) for w in range(base)]]
    for k in range(2, counts.order + 1):
        keys = counts.keys[k - 1]
        grams.append([grams[-1][key // base] + (word.get(key % base, key % base),)
                      for key in keys.tolist()])
    return [{g: int(a) for g, a in zip(grams[k], counts.adjusted[k].tolist(), strict=True)}
            for k in range(counts.order)], grams


def random_corpus(rng: np.random.Generator) -> tuple[list[int], int, int, int]:
    vocab_size = int(rng.integers(3, 8))
    eos = int(rng.integers(0, vocab_size))
    words = [w for w in range(vocab_size) if w != eos]
    ids: list[int] = []
    for _ in range(int(rng.integers(1, 9))):
        ids.extend(int(w) for w in rng.choice(words, size=int(rng.integers(0, 7))))
        ids.append(eos)
    return ids, vocab_size, eos, int(rng.integers(1, 6))


CORPORA = [random_corpus(np.random.default_rng(seed)) for seed in range(400)]


def test_counts_match_the_reference_on_random_corpora() -> None:
    """Keys, adjusted counts, suffix links and counts-of-counts, order 1 to 5, any eos id."""
    quirk_mattered = 0
    for ids, vocab_size, eos, order in CORPORA:
        counts = count_ngrams(np.array(ids), vocab_size, order, eos)
        adjusted, stats = reference_counts(ids, order, eos)
        got, grams = decode(counts, vocab_size)
        where = (ids, vocab_size, eos, order)
        # unigrams: every id and <s>; those never predicted have 0
        expected_unigrams = {(w,): adjusted[0].get((w,), 0) for w in [*range(vocab_size), BOS]}
        assert got[0] == expected_unigrams, where
        for k in range(2, order + 1):
            assert got[k - 1] == adjusted[k - 1], (where, k)
            suffixes = [grams[k - 2][i] for i in counts.suffix[k - 1].tolist()]
            assert suffixes == [g[1:] for g in grams[k - 1]], (where, k)
        assert counts.suffix[0].size == 0
        assert [s[1:].tolist() for s in counts.count_stats] == stats, where
        plain = [[sum(1 for c in a.values() if c == v) for v in (1, 2, 3, 4)] for a in adjusted]
        quirk_mattered += plain != stats
    assert quirk_mattered > 50  # the last-n-gram rule changed the statistics that often


def test_lmplz_last_ngram_is_found_by_its_suffix_not_its_position() -> None:
    """z is the last new word; of its occurrences "<s> y z", "a x z" (twice), "b x z", lmplz
    sorts "b x z" last (x ranks above y, then b above a), though "y z" comes first.

    Words: y=2, x=3, a=4, b=5, z=6. Unigram adjusted counts: y, a, b = 1, z = 2 ({y, x}),
    x = 3 ({<s>, a, b}), </s> = 5; z enters with its raw count 4: n1..n4 = 3, 0, 1, 1.
    Bigrams: eight of count 1, "<s> y", "<s> b", "z </s>", "x z" ({a, b}) of 2, "<s> a" of 3;
    "x z" enters with its raw count 3: n1..n4 = 8, 3, 2, 0 (it would be 8, 4, 1, 0 had "y z",
    raw and adjusted count 1, been taken as the last).
    """
    y, x, a, b, z = 2, 3, 4, 5, 6
    sentences = [[y], [x], [a], [b], [y, z], [a, x, z], [a, x, z], [b, x, z]]
    ids = [w for sentence in sentences for w in [*sentence, 1]]
    counts = count_ngrams(np.array(ids), vocab_size=8, order=3, eos_id=1)
    assert [s[1:].tolist() for s in counts.count_stats[:2]] == [[3, 0, 1, 1], [8, 3, 2, 0]]
    assert reference_counts(ids, 3, 1)[1][:2] == [[3, 0, 1, 1], [8, 3, 2, 0]]


# ------------------------------------------------------------------------------- sorting keys
@pytest.mark.parametrize("key_bits", [56, 57, 62])
def test_sort_group_is_exact_whether_or_not_key_and_position_fit_64_bits(key_bits: int) -> None:
    """Keys of 56 bits with 8-bit positions fill 64 bits exactly (packed sort); 57 and 62 bits
    do not fit and take the argsort path. Both must give the same grouping."""
    rng = np.random.default_rng(key_bits)
    distinct = rng.integers(2 ** (key_bits - 1), 2 ** key_bits - 1, size=40, dtype=np.int64)
    keys = rng.choice(distinct, size=200)
    keys[0] = 2 ** key_bits - 1  # the largest key of that width
    pos = rng.permutation(200).astype(np.int64) + 50  # positions < 256: 8 bits
    unique, counts, sorted_pos, group, starts = _sort_group(keys, pos, pos_bits=8)
    expected_unique, expected_counts = np.unique(keys, return_counts=True)
    np.testing.assert_array_equal(unique, expected_unique)
    np.testing.assert_array_equal(counts, expected_counts)
    np.testing.assert_array_equal(keys[np.argsort(pos)][sorted_pos - 50], unique[group])
    assert sorted(sorted_pos.tolist()) == sorted(pos.tolist())
    np.testing.assert_array_equal(starts, np.concatenate([[0], np.cumsum(counts)[:-1]]))


def test_counting_refuses_keys_that_would_overflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys of order k are below (number of (k-1)-grams) x (V + 1); when that product reaches the
    int64 limit counting stops with a message instead of wrapping around. The limit is lowered
    so that a tiny corpus reaches it: 5 unigrams x 5 = 25 (the trigram product is larger)."""
    ids = np.array([2, 3, 1, 2, 1])
    monkeypatch.setattr(counting_module, "_INT64_LIMIT", 26)
    assert count_ngrams(ids, 4, 2, 1).keys[1].size == 4  # 25 < 26: fine
    monkeypatch.setattr(counting_module, "_INT64_LIMIT", 25)
    with pytest.raises(OverflowError, match=r"2-gram keys overflow int64 \(5 contexts x 5\)"):
        count_ngrams(ids, 4, 2, 1)


# ------------------------------------------------------------------------------- discounts
@pytest.mark.parametrize(("n", "missing"), [
    ([0, 0, 5, 3, 2], 1),  # the formula would give D1 = 1 - 0/0
    ([0, 5, 0, 0, 0], 2),  # would give D2 = 2 - 0/0, D3+ = 3 - 0/0
    ([0, 5, 3, 0, 0], 3),  # would give D3+ = 3 - 0/0
])
def test_an_empty_count_of_count_falls_back(n: list[int], missing: int) -> None:
    d, used = compute_discounts(np.array(n), (0.4, 0.9, 1.3), 2)
    assert used and d == (0.4, 0.9, 1.3)
    with pytest.raises(NgramError) as error:
        compute_discounts(np.array(n), None, 2)
    assert str(error.value) == (
        f"no 2-grams with adjusted count {missing}, so modified Kneser-Ney discounts are "
        "undefined (tiny or artificial data); pass discount_fallback=(0.5, 1.0, 1.5) or use "
        "more training data")


def test_discounts_on_the_bounds_are_kept() -> None:
    """n = 4, 1, 1, 0: Y = 2/3, D2 = 2 - 3 Y = 0 and D3+ = 3 - 0 = 3, both inside [0, k]."""
    d, used = compute_discounts(np.array([0, 4, 1, 1, 0]), None, 1)
    assert not used
    np.testing.assert_allclose(d, (2 / 3, 0.0, 3.0), rtol=1e-6)


def test_the_error_names_the_order_whose_discounts_are_undefined() -> None:
    """"d d c d" / "": unigram adjusted counts c = 1, </s> = 2, d = 3 give discounts, but the six
    bigrams occur once each, so order 2 has no count of 2."""
    ids = np.array([5, 5, 4, 5, 1, 1])
    counts = count_ngrams(ids, 6, 2, 1)
    assert counts.count_stats[0][1:].tolist() == [1, 1, 1, 0]
    assert counts.count_stats[1][1:].tolist() == [6, 0, 0, 0]
    with pytest.raises(NgramError, match=r"^no 2-grams with adjusted count 2,"):
        estimate(ids, vocab_size=6, order=2, discount_fallback=None)
    model = estimate(ids, vocab_size=6, order=2)
    assert model.fallback_orders == (2,)
    np.testing.assert_allclose(model.discounts[0], (1 / 3, 1.0, 3.0), rtol=1e-6)


# ----------------------------------------------------------------------- estimation arguments
@pytest.mark.parametrize("order", [True, 2.0, "2"])
def test_order_must_be_a_true_integer(order) -> None:
    with pytest.raises(NgramError, match=r"^order must be an integer >= 1 \(got "):
        estimate(np.array([2, 3, 1]), vocab_size=4, order=order)


@pytest.mark.parametrize("vocab_pad", [-1, 2.5])
def test_vocab_pad_must_be_a_non_negative_integer(vocab_pad) -> None:
    with pytest.raises(NgramError) as error:
        estimate(np.array([2, 3, 1]), vocab_size=4, order=2, vocab_pad=vocab_pad)
    assert str(error.value) == (f"vocab_pad must be an integer >= 0, got {vocab_pad!r}; "
                                "pass 0 for none")


def test_argument_errors_say_what_to_pass() -> None:
    with pytest.raises(NgramError) as error:
        estimate(np.array([], dtype=np.int64), vocab_size=4, order=2)
    assert str(error.value) == "training data is empty; pass a non-empty array of token ids"
    with pytest.raises(NgramError) as error:
        estimate(np.array([2, 1]), vocab_size=4, order=2, discount_fallback=(0.5, 2.5, 1.5))
    assert str(error.value) == ("discount_fallback must be (D1, D2, D3+) with 0 <= Dj <= j, "
                                "got (0.5, 2.5, 1.5); pass e.g. (0.5, 1.0, 1.5)")


TINY = np.array([2, 3, 1, 2, 1])  # "a b" / "a" with <unk>=0, eos=1, a=2, b=3


def test_zero_discounts_give_relative_frequencies_without_warnings() -> None:
    """Fallback (0, 0, 0) is allowed (the bound 0 is inside) and turns Kneser-Ney into maximum
    likelihood on the adjusted counts: unigrams a=1, b=1, </s>=2 of 4; bigrams of TINY:
    p(a|<s>) = 1, p(b|a) = p(</s>|a) = 1/2, p(</s>|b) = 1. Unseen words get log 0, quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = estimate(TINY, vocab_size=4, order=2, discount_fallback=(0.0, 0.0, 0.0))
        dist = np.exp(model.next_logprobs([[], [2], [3]]))
    assert model.fallback_orders == (1, 2)
    np.testing.assert_allclose(dist[0], [0.0, 0.0, 1.0, 0.0], atol=1e-7)  # after <s>: a
    np.testing.assert_allclose(dist[1], [0.0, 0.5, 0.0, 0.5], atol=1e-7)
    np.testing.assert_allclose(dist[2], [0.0, 1.0, 0.0, 0.0], atol=1e-7)
    unigram = 10.0 ** model.log10_probs[0]
    np.testing.assert_allclose(unigram, [0.0, 0.5, 0.25, 0.25, 1.0], atol=1e-7)


def test_largest_fallback_discounts_are_allowed() -> None:
    """(1, 2, 3) is on the upper bounds. Unigrams of TINY (adjusted a=1, b=1, </s>=2, total 4):
    gamma = (1 + 1 + 2) / 4 = 1, so p = (a - D(a)) / 4 + 1/4: a, b = 1/4, </s> = 1/4, <unk> = 1/4.
    """
    model = estimate(TINY, vocab_size=4, order=2, discount_fallback=(1.0, 2.0, 3.0))
    np.testing.assert_allclose(10.0 ** model.log10_probs[0][:4], [0.25] * 4, rtol=1e-6)
    # after "a" (a b = 1, a </s> = 1, gamma = 1): the unigram distribution again
    np.testing.assert_allclose(np.exp(model.next_logprobs([[2]]))[0], [0.25] * 4, rtol=1e-6)


def test_estimate_tables_defaults_are_eos_1_and_no_padding() -> None:
    """Called with only the stream, the vocabulary and the order: eos is id 1 (the tokenizer's)
    and the uniform floor is 1/V, exactly as the hand computation of the tiny bigram model."""
    tables = estimate_module.estimate_tables(TINY, 4, 2)
    assert tables.eos_id == 1
    unigram = 10.0 ** tables.log10_probs[0]
    np.testing.assert_allclose(unigram[:4], [0.125, 0.375, 0.25, 0.25], rtol=1e-6)
    assert math.isclose(unigram[:4].sum(), 1.0, rel_tol=1e-6)

