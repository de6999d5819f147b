"""Exactness on the benchmark corpora (slow; needs ../shared/data and kenlm, see conftest).

Reference figures are KenLM ``lmplz -o N`` run on the files one sentence per line,
with the literal ``<unk>`` renamed so that lmplz counts it as an ordinary word;
perplexity = exp(-mean natural-log prob) over words + one eos per line.
``REFERENCE`` holds lmplz's figures (KenLM 0.3.0 built from source, scored with
``kenlm.Model``); the task targets are the same numbers rounded to 3 decimals.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from lm.ngram import NgramModel, estimate

REFERENCE = {
    ("ptb", 5): 141.1862071,
    ("ptb", 3): 148.2814995,
    ("wikitext2", 5): 220.1385670,
}
TOLERANCE = 5e-4  # 0.05%

pytestmark = pytest.mark.slow


def _perplexity(model: NgramModel, ids: np.ndarray) -> float:
    return math.exp(-float(model.logprobs(ids).mean()))


@pytest.mark.parametrize(("corpus", "order"), list(REFERENCE))
def test_perplexity_matches_kenlm(corpus: str, order: int, request: pytest.FixtureRequest) -> None:
    train, test, vocab = request.getfixturevalue(corpus)
    reference = REFERENCE[(corpus, order)]
    model = estimate(train, len(vocab), order)
    assert abs(_perplexity(model, test) / reference - 1) < TOLERANCE
    # lmplz's own uniform base also counts its never-seen <unk>: vocab_pad=V+1 reproduces it.
    exact = estimate(train, len(vocab), order, vocab_pad=len(vocab) + 1)
    assert abs(_perplexity(exact, test) / reference - 1) < 1e-6


def test_ptb_discounts_match_lmplz(ptb: tuple, ptb_train_types: set[str]) -> None:
    """The D1, D2, D3+ lmplz prints for PTB order 5 (its unigram D3+ includes a quirk)."""
    train, _, vocab = ptb
    model = estimate(train, len(vocab), 5)
    lmplz = [
        (0.25656, 0.82888, 1.26492),
        (0.727802, 1.09876, 1.4713),
        (0.868879, 1.25462, 1.44822),
        (0.942828, 1.38314, 1.43173),
        (0.959671, 1.3879, 1.24171),
    ]
    np.testing.assert_allclose(model.discounts, lmplz, rtol=1e-5)
    # Unigrams: the train word types (9,999 by the data README, the literal <unk> among
    # them, here id 0) + </s> + <s> = 10,001. lmplz's header would say 10,002 for this text:
    # the literal <unk> is renamed for it, and it adds its own <unk> (never seen) on top.
    assert len(ptb_train_types) == 9999 and "<unk>" in ptb_train_types
    assert model.num_ngrams[0] == len(ptb_train_types) + 2
    assert model.num_ngrams[1:] == [264990, 586558, 717733, 737952]


@pytest.mark.parametrize("order", [7, 10])
def test_character_level_high_order(order: int, shakespeare_chars: tuple) -> None:
    train, test, vocab = shakespeare_chars
    model = estimate(train, len(vocab), order)
    assert 1 in model.fallback_orders  # unigram discounts are undefined for characters
    bits_per_char = -float(model.logprobs(test).mean()) / math.log(2)
    assert 2.0 < bits_per_char < 2.5
    dist = np.exp(model.next_logprobs([[], [vocab["t"], vocab["h"]], [0] * 20]))
    np.testing.assert_allclose(dist.sum(axis=1), 1.0, atol=1e-5)


def _kenlm_sentence_scores(
    kenlm: ModuleType, arpa: Path, ids: np.ndarray, id_to_token: list[str]
) -> np.ndarray:
    lm = kenlm.Model(str(arpa))
    words = [id_to_token[i] for i in ids.tolist()]
    scores, current = [], []
    for word, tok in zip(words, ids.tolist(), strict=True):
        if tok == 1:
            scores.append(lm.score(" ".join(current), bos=True, eos=True))
            current = []
        else:
            current.append(word)
    return np.array(scores)


def _our_sentence_scores(model: NgramModel, ids: np.ndarray) -> np.ndarray:
    lp = model.logprobs(ids) / math.log(10)
    sentence = np.cumsum(ids == 1) - (ids == 1)
    return np.bincount(sentence, weights=lp)


@pytest.mark.parametrize(("corpus", "order"), [("ptb", 5), ("shakespeare_chars", 6)])
def test_arpa_scores_like_kenlm(
    corpus: str, order: int, tmp_path: Path, request: pytest.FixtureRequest, kenlm: ModuleType
) -> None:
    """Our ARPA loaded into kenlm.Model gives our per-sentence scores (log10)."""
    train, test, vocab = request.getfixturevalue(corpus)
    id_to_token = [""] * len(vocab)
    for token, i in vocab.items():
        id_to_token[i] = "<sp>" if token == " " else token
    model = estimate(train, len(vocab), order)
    arpa = tmp_path / "model.arpa"
    model.write_arpa(arpa, id_to_token)
    test = test[: np.flatnonzero(test == 1)[999] + 1]  # first 1000 sentences
    id_to_token[0], id_to_token[1] = "<unk>", "</s>"
    ours = _our_sentence_scores(model, test)
    theirs = _kenlm_sentence_scores(kenlm, arpa, test, id_to_token)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-4)
