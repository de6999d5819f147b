"""Scoring: normalisation for any context, logprobs/next_logprobs agreement, storage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lm.ngram import NgramError, NgramModel, estimate


def _stream(sentences: list[list[int]]) -> np.ndarray:
    out: list[int] = []
    for sentence in sentences:
        out.extend(sentence)
        out.append(1)
    return np.array(out, dtype=np.int64)


def _random_corpus(seed: int, vocab_size: int, n_sentences: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    words = [w for w in range(vocab_size) if w != 1]
    sentences = [
        list(rng.choice(words, size=int(rng.integers(0, 9)), p=None)) for _ in range(n_sentences)
    ]
    return _stream(sentences)


@settings(max_examples=60, deadline=None)
@given(
    sentences=st.lists(
        st.lists(st.sampled_from([0, 2, 3, 4, 5]), min_size=0, max_size=8), min_size=1, max_size=12
    ),
    extra_vocab=st.integers(min_value=0, max_value=3),
    order=st.integers(min_value=1, max_value=6),
    contexts=st.lists(
        st.lists(st.integers(min_value=0, max_value=8), max_size=7), min_size=1, max_size=6
    ),
)
def test_distributions_sum_to_one_for_any_context(
    sentences: list[list[int]], extra_vocab: int, order: int, contexts: list[list[int]]
) -> None:
    """Random small corpora; contexts may hold unseen words, <unk>, eos, any length."""
    vocab_size = 6 + extra_vocab  # ids >= 6 never occur in training
    model = estimate(_stream(sentences), vocab_size, order)
    contexts = [[w % vocab_size for w in c] for c in contexts]
    logp = model.next_logprobs(contexts)
    assert logp.shape == (len(contexts), vocab_size)
    assert np.all(np.isfinite(logp))
    totals = np.exp(logp).sum(axis=1)
    np.testing.assert_allclose(totals, 1.0, rtol=0, atol=1e-5)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_logprobs_match_next_logprobs(order: int) -> None:
    train = _random_corpus(0, 9, 60)
    test = _random_corpus(1, 9, 15)
    model = estimate(train, 9, order)
    lp = model.logprobs(test)
    contexts: list[list[int]] = []
    current: list[int] = []
    for tok in test.tolist():
        contexts.append(list(current))
        current = [] if tok == 1 else current + [tok]
    dist = model.next_logprobs(contexts)
    np.testing.assert_allclose(dist[np.arange(test.size), test], lp, rtol=1e-9, atol=1e-9)


def test_context_truncation_and_eos_restart() -> None:
    model = estimate(_random_corpus(2, 7, 80), 7, 3)
    long = model.next_logprobs([[2, 3, 4, 5, 6, 2, 3]])
    short = model.next_logprobs([[6, 2, 3]])  # only the last order-1 = 2 ids matter
    np.testing.assert_array_equal(long, short)
    restarted = model.next_logprobs([[4, 5, 1, 2]])  # starts over after eos
    fresh = model.next_logprobs([[2]])
    np.testing.assert_array_equal(restarted, fresh)


def test_stream_without_final_eos_and_empty_stream() -> None:
    model = estimate(_random_corpus(3, 6, 40), 6, 3)
    ids = np.array([2, 3, 1, 4, 5])
    lp = model.logprobs(ids)
    np.testing.assert_allclose(lp[:3], model.logprobs(ids[:3]))
    assert model.logprobs(np.array([], dtype=np.int64)).shape == (0,)
    with pytest.raises(NgramError, match="outside"):
        model.logprobs(np.array([2, 6]))
    with pytest.raises(NgramError, match="outside"):
        model.next_logprobs([[9]])


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = estimate(_random_corpus(4, 8, 50), 8, 4)
    names = model.save(tmp_path / "m")
    assert sorted(names) == ["ngram.json", "ngram.npz"]
    assert json.loads((tmp_path / "m" / "ngram.json").read_text())["order"] == 4
    with np.load(tmp_path / "m" / "ngram.npz", allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)
    loaded = NgramModel.load(tmp_path / "m")
    test = _random_corpus(5, 8, 10)
    np.testing.assert_array_equal(loaded.logprobs(test), model.logprobs(test))
    assert loaded.discounts == model.discounts
    assert loaded.fallback_orders == model.fallback_orders
    with pytest.raises(NgramError, match="not found"):
        NgramModel.load(tmp_path / "missing")
