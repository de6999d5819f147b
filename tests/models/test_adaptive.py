"""Tied adaptive input/softmax: a real tie, a proper distribution, a faithful round trip."""

import json
from collections import Counter

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lm.models import rnn
from lm.models.adaptive import AdaptiveInput, frequency_cutoffs

TEXT = ("the cat sat on the mat and the dog sat on the log while the cat saw the dog "
        "and a bird sang in the tree by the river where the old man fished all day ") * 6


def _corpus(level: str) -> tuple[torch.Tensor, int]:
    """Token ids numbered by descending frequency, as the tokenizers number them."""
    tokens = list(TEXT) if level == "char" else TEXT.split()
    order = [t for t, _ in Counter(tokens).most_common()]
    index = {t: i for i, t in enumerate(order)}
    return torch.tensor([index[t] for t in tokens]), len(order)


def _model(vocab: int, cutoffs: list[int], **options) -> rnn.RNNLM:
    torch.manual_seed(0)
    settings = dict(vocab_size=vocab, layers=2, emb_size=16, hidden_size=16, dropout=0.0,
                    tied=True, softmax="adaptive", cutoffs=cutoffs)
    return rnn.RNNLM(rnn.ModelConfig(**{**settings, **options}))


LAYOUTS = {"stacked": {}, "projected": dict(hidden_size=24), "per-layer": dict(locked_dropout=True)}


def test_input_vectors_are_the_softmax_rows_and_projections():
    model = _model(30, [5, 12])
    asm = model.decoder
    assert isinstance(model.embedding, AdaptiveInput) and model.embedding.softmax is asm
    ids = torch.arange(30)
    got = model.embedding(ids)
    (a1, b1), (a2, b2) = asm.tail
    expected = torch.cat([asm.head.weight[:5], b1.weight[:7] @ a1.weight,
                          b2.weight[:18] @ a2.weight])
    torch.testing.assert_close(got, expected)
    assert b1.weight.shape == (7, 4) and b2.weight.shape == (18, 1)  # narrower per cluster


def test_the_tie_shares_storage_and_one_step_moves_both_uses():
    model = _model(30, [5, 12])
    untied = rnn.RNNLM(rnn.ModelConfig(**{**vars(model.config), "tied": False}))
    count = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in untied.parameters()) - count == 30 * 16  # no second matrix
    names = {name for name, _ in model.named_parameters()}
    assert not any(name.startswith("embedding") for name in names)
    # only the input side carries a gradient: it still lands on the softmax's Parameters
    model.embedding(torch.tensor([2, 7, 20])).sum().backward()
    head, (a1, b1), (a2, b2) = model.decoder.head, *model.decoder.tail
    assert head.weight.grad[2].abs().sum() > 0 and head.weight.grad[3].abs().sum() == 0
    assert b1.weight.grad[2].abs().sum() > 0 and a1.weight.grad.abs().sum() > 0
    assert b2.weight.grad[8].abs().sum() > 0 and b2.weight.grad[7].abs().sum() == 0
    assert a2.weight.grad.abs().sum() > 0
    before_in = model.embedding(torch.tensor([2, 7])).detach().clone()
    before_out = model.decoder.log_prob(torch.ones(1, 16)).detach().clone()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 0.5 * p.grad
    assert not torch.allclose(model.embedding(torch.tensor([2, 7])), before_in)
    assert not torch.allclose(model.decoder.log_prob(torch.ones(1, 16)), before_out)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("level", ["char", "word"])
def test_log_probabilities_sum_to_one_over_the_vocabulary(level, layout):
    ids, vocab = _corpus(level)
    cutoffs = frequency_cutoffs(np.bincount(ids.numpy(), minlength=vocab), min_cluster=2)
    model = _model(vocab, cutoffs, **LAYOUTS[layout]).eval()
    batch = ids[:40].view(2, 20)
    scores, _ = model(batch, model.init_hidden(2))
    assert scores.shape == (2, 20, vocab)
    torch.testing.assert_close(scores.exp().sum(-1), torch.ones(2, 20))
    output, _ = model.features(batch, model.init_hidden(2))
    targets = ids[1:41].view(2, 20)
    picked = scores.gather(-1, targets[..., None]).squeeze(-1)
    torch.testing.assert_close(model.target_logprobs(output, targets), picked)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_save_load_keeps_one_copy_and_the_tie(tmp_path, layout):
    model = _model(30, [5, 12], **LAYOUTS[layout]).eval()
    rnn.save(model, tmp_path)
    stored = load_file(str(tmp_path / "model.safetensors"))
    assert not any(key.startswith("embedding") for key in stored)
    assert {"decoder.head.weight", "decoder.tail.0.0.weight", "decoder.tail.0.1.weight"} <= set(
        stored)
    again = rnn.load(tmp_path)
    assert again.embedding.softmax is again.decoder
    assert again.embedding.softmax.head.weight.data_ptr() == again.decoder.head.weight.data_ptr()
    ids = torch.tensor([[0, 4, 5, 11, 12, 29]])
    expected, _ = model(ids, model.init_hidden(1))
    got, _ = again(ids, again.init_hidden(1))
    assert torch.equal(expected, got)


@pytest.mark.parametrize("level", ["char", "word"])
def test_a_few_training_steps_lower_the_loss(level):
    ids, vocab = _corpus(level)
    cutoffs = frequency_cutoffs(np.bincount(ids.numpy(), minlength=vocab), min_cluster=2)
    assert len(cutoffs) >= 1 and cutoffs[-1] < vocab
    model = _model(vocab, cutoffs)
    step = rnn.TrainingStep(model)
    span = (len(ids) - 1) // 4 * 4
    inputs, targets = ids[:span].view(4, -1)[:, :48], ids[1:span + 1].view(4, -1)[:, :48]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(60):
        _, nll, _ = step(inputs, targets, model.init_hidden(4))
        optimizer.zero_grad()
        nll.backward()
        optimizer.step()
        losses.append(nll.item())
    assert losses[0] > np.log(vocab) - 0.5  # starts near uniform
    assert losses[-1] < 0.5 * losses[0]


def test_dropped_words_drop_every_occurrence():
    torch.manual_seed(3)
    model = _model(30, [5, 12], dropout_embed=0.5).train()
    ids = torch.tensor([[1, 8, 1, 20, 8, 20, 1]])
    vectors = model._embed(ids)
    zero = vectors.abs().sum(-1) == 0
    for token in (1, 8, 20):
        same = zero[ids == token]
        assert same.all() or not same.any()  # a word is dropped everywhere or nowhere
    kept = ~zero
    torch.testing.assert_close(vectors[kept], 2.0 * model.embedding(ids)[kept])


def test_frequency_cutoffs_follow_the_share_of_tokens():
    counts = [40, 20, 10, 10, 5, 5, 3, 3, 2, 2] + [1] * 10  # 110 tokens, ids by frequency
    # cumulative shares: 0.36 0.55 0.64 0.73 0.77 0.82 ... 0.95 at id 14 (105/110)
    assert frequency_cutoffs(counts, shares=(0.8, 0.95), min_cluster=1) == [6, 15]
    assert frequency_cutoffs(counts, shares=(0.8, 0.95), min_cluster=6) == [6]
    assert frequency_cutoffs(counts, shares=(0.5,), min_cluster=1) == [2]
    assert frequency_cutoffs([5, 5, 5], min_cluster=8) == [1]
    assert frequency_cutoffs([0, 0, 0, 0]) == [2]
    with pytest.raises(ValueError):
        frequency_cutoffs([3])


def test_fit_cutoffs_reads_the_train_ids_only_for_an_adaptive_softmax_without_cutoffs(tmp_path):
    ids = np.array([0] * 50 + [1] * 30 + [2] * 10 + [3] * 5 + [4] * 3 + [5] * 2, np.uint32)
    full = rnn.ModelConfig(vocab_size=6)
    assert rnn.fit_cutoffs(full, ids) is full
    given = rnn.ModelConfig(vocab_size=6, softmax="adaptive", cutoffs=[3])
    assert rnn.fit_cutoffs(given, ids) is given
    fitted = rnn.fit_cutoffs(rnn.ModelConfig(vocab_size=8, softmax="adaptive", tied=True), ids)
    counts = [50, 30, 10, 5, 3, 2, 0, 0]  # ids 6, 7 never occur in train
    # 0.8 is reached at id 2, 0.95 at id 4: both leave clusters under 8 tokens → half of 8
    assert fitted.cutoffs == frequency_cutoffs(counts) == [4]
    model = rnn.RNNLM(fitted)
    rnn.save(model, tmp_path)
    assert rnn.load(tmp_path).config.cutoffs == [4]


def test_auto_picks_the_adaptive_softmax_from_the_threshold_on():
    below = rnn.pick_output_layer(rnn.ModelConfig(vocab_size=rnn.AUTO_ADAPTIVE_FROM - 1))
    at = rnn.pick_output_layer(rnn.ModelConfig(vocab_size=rnn.AUTO_ADAPTIVE_FROM))
    assert (below.softmax, at.softmax) == ("full", "adaptive")
    # a choice made on the command line is kept whatever the vocabulary
    assert rnn.pick_output_layer(rnn.ModelConfig(vocab_size=50, softmax="adaptive")).softmax \
        == "adaptive"
    assert rnn.pick_output_layer(rnn.ModelConfig(vocab_size=10**5, softmax="full")).softmax \
        == "full"
    # a model built straight from an auto config has the layer auto stands for
    assert rnn.RNNLM(rnn.ModelConfig(vocab_size=12, emb_size=4, hidden_size=4)).config.softmax \
        == "full"


def test_auto_fits_the_cutoffs_to_the_train_split_and_says_what_it_chose():
    vocab = rnn.AUTO_ADAPTIVE_FROM
    counts = np.arange(vocab, 0, -1)  # id order is frequency order, as the tokenizers number
    ids = np.repeat(np.arange(vocab), counts).astype(np.uint16)
    picked = rnn.pick_output_layer(rnn.ModelConfig(vocab_size=vocab), ids)
    assert picked.cutoffs == frequency_cutoffs(counts)
    line = rnn.describe_output_layer(picked, "auto")
    assert line == (f"output layer: adaptive softmax, cutoffs "
                    f"{','.join(map(str, picked.cutoffs))} (--softmax auto: a {vocab:,}-token "
                    f"vocabulary ≥ {vocab:,})")
    small = rnn.pick_output_layer(rnn.ModelConfig(vocab_size=100), ids[ids < 100])
    assert small.cutoffs is None
    assert rnn.describe_output_layer(small, "auto").startswith("output layer: full softmax (")
    assert rnn.describe_output_layer(small, "full") == "output layer: full softmax"


def test_cutoffs_are_counted_block_by_block_over_a_long_split():
    ids = np.random.default_rng(0).zipf(1.3, size=(1 << 24) + 1000) % 300
    config = rnn.ModelConfig(vocab_size=300, softmax="adaptive")
    fitted = rnn.fit_cutoffs(config, ids.astype(np.uint16))
    assert fitted.cutoffs == frequency_cutoffs(np.bincount(ids, minlength=300))


def test_a_model_saved_before_auto_without_a_softmax_key_loads_as_full(tmp_path):
    model = rnn.RNNLM(rnn.ModelConfig(vocab_size=10**4, emb_size=4, hidden_size=4,
                                      softmax="full"))
    rnn.save(model, tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["softmax"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert rnn.load(tmp_path).config.softmax == "full"  # not auto's adaptive for 10,000
