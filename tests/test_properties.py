"""Property tests over arbitrary input (hypothesis)."""

from __future__ import annotations

import torch

# tests/generation's fakes (a namespace package: tests/ is on the path, as for tests_support)
from generation.generation_fakes import Tracing, make_plan, sampling_allows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lm.generation.decoding.plan import GREEDY_BELOW
from lm.generation.decoding.sampling import generate
from lm.generation.decoding.steppers import RNNStepper
from lm.models import rnn
from lm.tokenization import UNK_ID, decode, encode_documents, train_tokenizer

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(train=st.lists(TEXT, min_size=1, max_size=5), probe=TEXT)
def test_char_tokenizer_round_trip_on_any_unicode(train, probe):
    tok = train_tokenizer(train, "char")
    seen = set("".join(train))
    (ids,) = encode_documents(tok, [probe])
    assert ids[-1] == 1
    expected = "".join(ch if ch in seen else "<unk>" for ch in probe)
    assert decode(tok, ids[:-1], "char") == expected
    assert (UNK_ID in ids) == any(ch not in seen for ch in probe)


@settings(max_examples=30, deadline=None)
@given(words=st.lists(st.text(alphabet="abcdefgh", min_size=1, max_size=4), min_size=1,
                      max_size=12))
def test_word_tokenizer_round_trip(words):
    tok = train_tokenizer([" ".join(words)], "word")
    (ids,) = encode_documents(tok, [" ".join(words)])
    assert UNK_ID not in ids and decode(tok, ids[:-1], "word") == " ".join(words)


MODEL = None


def _model() -> rnn.RNNLM:
    global MODEL
    if MODEL is None:
        torch.manual_seed(0)
        MODEL = rnn.RNNLM(rnn.ModelConfig(vocab_size=13, emb_size=8, hidden_size=8, layers=1))
    return MODEL


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(temperature=st.floats(0, 5), top_k=st.none() | st.integers(1, 20),
       top_p=st.none() | st.floats(0.01, 1.0), min_p=st.none() | st.floats(0.01, 1.0),
       seed=st.integers(0, 2**31), prime=st.lists(st.integers(0, 12), max_size=5))
def test_sampling_never_leaves_the_vocabulary(temperature, top_k, top_p, min_p, seed, prime):
    stepper = Tracing(RNNStepper(_model()))
    settings = dict(num=3, max_tokens=15, temperature=temperature, top_k=top_k, top_p=top_p,
                    min_p=min_p, seed=seed)
    out = generate(stepper, make_plan(prime, **settings))
    assert all(0 <= t < 13 and t not in (1, UNK_ID) for sample in out for t in sample)
    assert all(len(sample) <= 15 for sample in out)
    # each token is one the settings allow, from the very scores it was chosen from
    for logprobs, token in (step for steps in stepper.steps(out) for step in steps):
        if temperature < GREEDY_BELOW:  # greedy: the argmax but <unk>, truncation or not
            assert logprobs[token] == logprobs.index_fill(0, torch.tensor([UNK_ID]), -1e9).max()
        else:
            assert sampling_allows(logprobs / temperature, token, top_k, top_p, min_p)
    again = generate(RNNStepper(_model()), make_plan(prime, **settings))
    assert again == out  # the seed decides all
