import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tests_support import logprobs_one_by_one

from lm.evaluation.perplexity import Evaluation, document_logprobs, evaluate, stream_logprobs
from lm.models import rnn

V = 4


def echo_model(a: float = 1.0, b: float = 2.0) -> rnn.RNNLM:
    """A tiny RNN whose next-token distribution favours repeating the current token.

    Embedding a·I, input weights I, no recurrence, decoder b·I: after reading x the logits are
    c·onehot(x) with c = b·tanh(a), so p(y | x) = e^c / Z if y == x else 1 / Z, Z = e^c + V - 1.
    """
    model = rnn.RNNLM(rnn.ModelConfig(vocab_size=V, cell="rnn-tanh", layers=1, emb_size=V,
                                      hidden_size=V, dropout=0.0))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.embedding.weight.copy_(a * torch.eye(V))
        model.rnn.weight_ih_l0.copy_(torch.eye(V))
        model.decoder.weight.copy_(b * torch.eye(V))
    return model.eval()


def test_perplexity_matches_hand_computation():
    ids = np.array([2, 2, 3, 1, 3, 3, 1])  # two documents, each closed by <eos> (id 1)
    c = 2.0 * math.tanh(1.0)
    log_z = math.log(math.exp(c) + V - 1)
    # predicted pairs: (eos→2) (2→2) (2→3) (3→eos) (eos→3) (3→3) (3→eos): two repeats
    total = 2 * (c - log_z) + 5 * (-log_z)
    expected_ppl = math.exp(-total / 7)
    for context in ("stream", "document"):
        result = evaluate(echo_model(), ids, context=context, batch_size=2, characters=7)
        assert result.tokens == 7
        assert result.perplexity == pytest.approx(expected_ppl, rel=1e-6)
        assert result.bits_per_token == pytest.approx(-total / 7 / math.log(2), rel=1e-6)
        assert result.bits_per_char == pytest.approx(-total / 7 / math.log(2), rel=1e-6)


def test_evaluation_summary_counts_oov():
    result = Evaluation.from_logprobs(np.array([0, 2, 0, 1]), np.log(np.full(4, 0.25)))
    assert result.oov == 2 and result.perplexity == pytest.approx(4.0)


def _random_model(seed: int) -> rnn.RNNLM:
    torch.manual_seed(seed)
    return rnn.RNNLM(rnn.ModelConfig(vocab_size=7, cell="lstm", layers=2, emb_size=5,
                                     hidden_size=6, dropout=0.3)).eval()


@settings(max_examples=25, deadline=None)
@given(docs=st.lists(st.lists(st.integers(0, 6).filter(lambda t: t != 1), max_size=9),
                     min_size=1, max_size=8),
       batch_a=st.integers(1, 8), batch_b=st.integers(1, 8))
def test_document_perplexity_is_invariant_to_batch_size(docs, batch_a, batch_b):
    ids = np.array([t for doc in docs for t in [*doc, 1]])
    model = _random_model(0)
    a = document_logprobs(model, ids, batch_size=batch_a)
    b = document_logprobs(model, ids, batch_size=batch_b)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_stream_with_one_segment_equalslogprobs_one_by_one():
    model = _random_model(1)
    ids = np.array([2, 3, 4, 1, 5, 6, 2, 1, 3, 1])
    fast = stream_logprobs(model, ids, batch_size=1, bptt=3)
    hidden = model.init_hidden(1)
    slow, previous = [], 1
    with torch.no_grad():
        for token in ids:
            logits, hidden = model(torch.tensor([[previous]]), hidden)
            slow.append(torch.log_softmax(logits[0, -1], -1)[token].item())
            previous = token
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-6)


def test_document_context_starts_every_document_from_a_fresh_state():
    """With a recurrent model, leaking state from one document into the next shows."""
    model = _random_model(2)
    docs = [[2, 3, 4, 1], [5, 5, 6, 2, 1], [3, 1], [6, 4, 4, 4, 2, 3, 1]]
    ids = np.array([t for doc in docs for t in doc])
    starts = np.cumsum([0] + [len(d) for d in docs[:-1]])
    expected = logprobs_one_by_one(model, ids, reset_at=set(starts.tolist()))
    for batch_size in (1, 2, 4):
        got = document_logprobs(model, ids, batch_size=batch_size)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    carried = logprobs_one_by_one(model, ids)  # the stream's answer differs: the state matters
    assert np.abs(carried[starts[1]:] - expected[starts[1]:]).max() > 1e-3


@pytest.mark.parametrize(("batch_size", "segments"), [(1, 1), (2, 2), (3, 3), (5, 3)])
def test_stream_cuts_the_text_into_batch_size_segments(batch_size, segments):
    """Segment b starts from a zero state at position b·ceil(n/B); nothing else is reset.
    No segment is shorter than bptt (13 tokens, bptt 4: at most 3 segments)."""
    model = _random_model(3)
    ids = np.array([2, 3, 4, 1, 5, 6, 2, 1, 3, 1, 4, 4, 5])
    length = -(-len(ids) // segments)
    expected = logprobs_one_by_one(model, ids, reset_at=set(range(0, len(ids), length)))
    got = stream_logprobs(model, ids, batch_size=batch_size, bptt=4)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_text_shorter_than_bptt_is_one_stream():
    """A sentence is scored with all its context, however large the batch size."""
    model = _random_model(3)
    ids = np.array([2, 3, 4, 1, 5, 6, 2, 1, 3, 1, 4, 4, 5])
    got = stream_logprobs(model, ids, batch_size=64, bptt=35)
    np.testing.assert_allclose(got, logprobs_one_by_one(model, ids), rtol=1e-5, atol=1e-6)


def test_document_scoring_batches_at_most_batch_size_documents(monkeypatch):
    """The batch size is really used: each forward pass holds at most that many documents."""
    from lm.evaluation import perplexity

    rows = []
    real = perplexity._target_logprobs

    def spy(model, x, hidden, targets):
        rows.append(x.shape[0])
        return real(model, x, hidden, targets)

    monkeypatch.setattr(perplexity, "_target_logprobs", spy)
    ids = np.array([2, 1, 3, 3, 1, 4, 1, 5, 5, 5, 1, 6, 1])  # five documents
    document_logprobs(_random_model(0), ids, batch_size=2)
    assert rows == [2, 2, 1]
