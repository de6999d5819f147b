"""Scoring behaviour that mutation testing (``make mutation``) found unpinned: the summary
figures, empty and one-token inputs, a last document without its <eos>, <unk> targets, the
default segmentation of the stream, the model's mode afterwards, and models that only have
``forward``. Every expectation is recomputed one token at a time."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tests_support import logprobs_one_by_one

from lm.evaluation.perplexity import Evaluation, document_logprobs, evaluate, stream_logprobs
from lm.models import rnn

EOS = 1


def _model(seed: int = 0) -> rnn.RNNLM:
    torch.manual_seed(seed)
    return rnn.RNNLM(rnn.ModelConfig(vocab_size=7, cell="lstm", layers=2, emb_size=5,
                                     hidden_size=6, dropout=0.3)).eval()


def _document_starts(ids) -> set[int]:
    return {0, *(i + 1 for i, t in enumerate(ids[:-1]) if t == EOS)}


def test_summary_reports_every_figure_by_name():
    """4 tokens (one <unk>) at 1/4 each over 8 characters: ln 4 nats and 2 bits per token,
    perplexity 4, 1 bit per character."""
    result = Evaluation.from_logprobs(np.array([0, 2, 3, 1]), np.log(np.full(4, 0.25)),
                                      characters=8)
    assert result.summary() == pytest.approx({
        "tokens": 4, "oov": 1, "nats_per_token": math.log(4), "bits_per_token": 2.0,
        "perplexity": 4.0, "characters": 8, "bits_per_char": 1.0,
        "nats_per_char": math.log(4) / 2,
    })
    plain = Evaluation.from_logprobs(np.array([2, 1]), np.log([0.5, 0.125])).summary()
    assert plain["characters"] is None and plain["bits_per_char"] is None
    assert plain["nats_per_char"] is None and plain["bits_per_token"] == pytest.approx(2.0)
    assert plain["oov"] == 0


def test_figures_of_no_tokens_and_of_hopeless_models():
    empty = Evaluation.from_logprobs(np.array([], dtype=np.int64), np.zeros(0))
    assert (empty.tokens, empty.nats_per_token, empty.perplexity) == (0, 0.0, 1.0)
    hopeless = Evaluation(tokens=2, oov=0, nats=2000.0)  # e^1000 overflows a float
    assert hopeless.perplexity == math.inf and hopeless.bits_per_token == 1000 / math.log(2)


@pytest.mark.parametrize("scorer", [stream_logprobs, document_logprobs])
def test_empty_and_one_token_streams(scorer):
    model = _model()
    assert scorer(model, np.array([], dtype=np.int64)).shape == (0,)
    for ids in ([EOS], [4]):  # one empty document; one unclosed word
        got = scorer(model, np.array(ids))
        np.testing.assert_allclose(got, logprobs_one_by_one(model, ids), rtol=1e-5, atol=1e-6)


def test_document_context_scores_a_last_document_without_eos():
    model = _model(1)
    ids = [2, 3, 1, 4, 4, 5, 1, 6, 2, 3]  # the third document is not closed
    expected = logprobs_one_by_one(model, ids, reset_at=_document_starts(ids))
    for batch_size in (1, 2, 32):
        got = document_logprobs(model, np.array(ids), batch_size=batch_size)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_unknown_tokens_are_scored_like_any_other():
    """<unk> is id 0: a real target, not padding; a document may start or end with it."""
    model = _model(2)
    ids = [0, 3, 0, 1, 4, 0, 1, 0, 1]
    expected = logprobs_one_by_one(model, ids, reset_at=_document_starts(ids))
    got = document_logprobs(model, np.array(ids), batch_size=2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.all(got < -0.1)  # no <unk> got probability 1
    stream = stream_logprobs(model, np.array(ids), batch_size=1)
    np.testing.assert_allclose(stream, logprobs_one_by_one(model, ids), rtol=1e-5, atol=1e-6)


def test_stream_is_cut_in_ten_segments_unless_told_otherwise():
    """Without a batch size, evaluate() and stream_logprobs() cut the stream in 10 segments of
    ceil(n/10) tokens (as the validation of training does); evaluate(batch_size=4) in 4.
    context="document" restarts at every document instead. 1,290 tokens: ten segments are
    each at least the default bptt of 128 long, so the short-text rule does not apply."""
    model = _model(3)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 7, size=1290)
    ids[-1] = EOS

    def segments(count: int) -> np.ndarray:
        starts = range(0, 1290, math.ceil(1290 / count))
        return logprobs_one_by_one(model, ids, reset_at=set(starts))

    result = evaluate(model, ids, characters=100)
    np.testing.assert_allclose(result.logprobs, segments(10), rtol=1e-5, atol=1e-6)
    assert result.nats == pytest.approx(-segments(10).sum(), rel=1e-6)
    assert result.bits_per_char == pytest.approx(-segments(10).sum() / math.log(2) / 100,
                                                 rel=1e-6)
    np.testing.assert_allclose(stream_logprobs(model, ids), segments(10), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(evaluate(model, ids, batch_size=4).logprobs, segments(4),
                               rtol=1e-5, atol=1e-6)
    documents = evaluate(model, ids, context="document", batch_size=3)
    np.testing.assert_allclose(documents.logprobs,
                               logprobs_one_by_one(model, ids, reset_at=_document_starts(ids)),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scorer", [stream_logprobs, document_logprobs])
def test_scoring_leaves_the_model_in_the_mode_it_found(scorer):
    """Validation in the middle of training must not leave dropout off (or turn it on)."""
    model = _model(4)
    ids = np.array([2, 3, 1, 4, 1])
    model.train()
    first = scorer(model, ids)
    assert model.training
    model.eval()
    second = scorer(model, ids)
    assert not model.training
    np.testing.assert_array_equal(first, second)  # scored without dropout both times


class ForwardOnly(torch.nn.Module):
    """A model with only ``forward`` and ``init_hidden`` (no ``target_logprobs``)."""

    def __init__(self, inner: rnn.RNNLM) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x, hidden):
        return self.inner(x, hidden)

    def init_hidden(self, batch_size, device="cpu"):
        return self.inner.init_hidden(batch_size, device)


@pytest.mark.parametrize("scorer", [stream_logprobs, document_logprobs])
def test_models_without_target_logprobs_score_the_same(scorer):
    model = _model(5)
    ids = np.array([2, 3, 0, 1, 4, 5, 6, 1, 3, 3])
    np.testing.assert_allclose(scorer(ForwardOnly(model), ids, batch_size=3),
                               scorer(model, ids, batch_size=3), rtol=1e-6, atol=1e-7)
