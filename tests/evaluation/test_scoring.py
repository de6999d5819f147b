"""Mixtures of an RNN and an n-gram: the tuned weight is the best one, found by brute force."""

import math

import numpy as np
import pytest

from lm.evaluation.scoring import mix_logprobs, tune_weight


def _mixture_loss(lam: float, rnn_lp: np.ndarray, ngram_lp: np.ndarray) -> float:
    return -float(np.mean(np.log(lam * np.exp(rnn_lp) + (1 - lam) * np.exp(ngram_lp))))


def _brute_force(rnn_lp: np.ndarray, ngram_lp: np.ndarray) -> float:
    grid = np.linspace(0.0, 1.0, 20001)
    losses = [_mixture_loss(lam, rnn_lp, ngram_lp) for lam in grid]
    return float(grid[int(np.argmin(losses))])


@pytest.mark.parametrize("seed, share", [(0, 0.85), (1, 0.3), (2, 0.62), (3, 0.05)])
def test_auto_weight_is_the_brute_force_optimum(seed, share):
    """Two 'models' that are each right on a different share of tokens: the optimum is inside."""
    rng = np.random.default_rng(seed)
    n = 4000
    rnn_right = rng.random(n) < share
    rnn_lp = np.where(rnn_right, np.log(0.6), np.log(0.01)) + rng.normal(0, 0.05, n)
    ngram_lp = np.where(rnn_right, np.log(0.02), np.log(0.5)) + rng.normal(0, 0.05, n)
    best = _brute_force(rnn_lp, ngram_lp)
    tuned = tune_weight(rnn_lp, ngram_lp)
    assert abs(tuned - best) <= 5e-5  # the brute-force grid's step
    assert _mixture_loss(tuned, rnn_lp, ngram_lp) <= _mixture_loss(best, rnn_lp, ngram_lp) + 1e-12


def test_auto_weight_survives_probabilities_that_underflow():
    rnn_lp = np.array([-800.0, -2.0, -900.0, -1.0])
    ngram_lp = np.array([-801.0, -3.0, -899.0, -1.5])
    tuned = tune_weight(rnn_lp, ngram_lp)
    assert 0.0 <= tuned <= 1.0 and math.isfinite(tuned)
    best = _brute_force(rnn_lp - np.maximum(rnn_lp, ngram_lp),
                        ngram_lp - np.maximum(rnn_lp, ngram_lp))
    assert abs(tuned - best) <= 5e-5


def test_auto_weight_reaches_the_ends_when_one_model_is_better_everywhere():
    rnn_lp = np.log(np.full(100, 0.5))
    ngram_lp = np.log(np.full(100, 0.1))
    assert tune_weight(rnn_lp, ngram_lp) == pytest.approx(1.0)
    assert tune_weight(ngram_lp, rnn_lp) == pytest.approx(0.0)


def test_mixture_is_the_tokenwise_linear_interpolation():
    rnn_lp = np.log(np.array([0.5, 0.1, 0.25]))
    ngram_lp = np.log(np.array([0.2, 0.4, 0.25]))
    got = mix_logprobs(rnn_lp, ngram_lp, 0.3)
    np.testing.assert_allclose(got, np.log([0.3 * 0.5 + 0.7 * 0.2, 0.3 * 0.1 + 0.7 * 0.4,
                                            0.25]))
    assert mix_logprobs(rnn_lp, ngram_lp, 1.0) == pytest.approx(rnn_lp)
    assert mix_logprobs(rnn_lp, ngram_lp, 0.0) == pytest.approx(ngram_lp)


def test_lm_perplexity_mix_auto_reports_the_valid_optimum(cli, word_corpus):
    """End to end: the weight `lm perplexity --mix --weight auto` prints is the best on valid."""
    import json

    from lm.artifacts import Store
    from lm.data.prepare import load_split
    from lm.evaluation.scoring import model_logprobs

    cli("prepare", word_corpus, "--level", "word", "--name", "x")
    cli("train", "x", "--max-steps", "20", "--no-wandb", "--no-progress", "--emb-size", "8",
        "--hidden-size", "8")
    cli("ngram", "x", "--order", "2", "--no-arpa")
    mixed = json.loads(cli("perplexity", "x", "--mix", "x-2gram", "--weight", "auto",
                           "--json").out)
    store = Store()
    model, ngram = store.resolve("x", "model"), store.resolve("x-2gram", "ngram")
    valid = np.asarray(load_split(store.resolve("x", "dataset"), "valid"), dtype=np.int64)
    best = _brute_force(model_logprobs(store, model, valid, batch_size=64),
                        model_logprobs(store, ngram, valid))
    assert mixed["weight"] == pytest.approx(best, abs=5e-5)
    assert 0.0 < mixed["weight"] < 1.0 and not math.isclose(mixed["weight"], 0.5, abs_tol=0.01)


def test_titled_documents_put_the_bodies_in_the_headline_and_the_titles_beside():
    from types import SimpleNamespace

    import numpy as np

    from lm.evaluation.scoring import headline
    from lm.tokenization import EOS_ID, SEP_ID

    ids = np.array([5, SEP_ID, 6, 7, EOS_ID, 8, 9, SEP_ID, 6, EOS_ID])
    logprobs = np.log(np.array([0.1, 0.9, 0.5, 0.25, 0.8, 0.2, 0.4, 0.7, 0.5, 0.9]))
    tokenizer = SimpleNamespace(token_to_id=lambda t: SEP_ID)
    dataset = SimpleNamespace(metrics={"splits": {"test": {"title_characters": 5}}})
    figures = headline(ids, logprobs, 6, tokenizer, dataset, "test")
    body = -np.log([0.5, 0.25, 0.8, 0.5, 0.9])
    title = -np.log([0.1, 0.9, 0.2, 0.4, 0.7])
    assert figures["tokens"] == 5 and figures["nats_per_token"] == pytest.approx(body.mean())
    assert figures["bits_per_char"] == pytest.approx(body.sum() / np.log(2) / 6)
    assert figures["title"]["tokens"] == 5
    assert figures["title"]["perplexity"] == pytest.approx(np.exp(title.mean()))
    assert figures["title"]["bits_per_char"] == pytest.approx(title.sum() / np.log(2) / 5)
    untitled = SimpleNamespace(token_to_id=lambda t: None)
    assert headline(ids, logprobs, 12, untitled, None, "test")["tokens"] == 10
