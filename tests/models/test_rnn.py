import pytest
import torch

from lm.errors import LMError
from lm.models import rnn


@pytest.mark.parametrize("cell", rnn.CELLS)
@pytest.mark.parametrize("tied", [False, True])
def test_shapes_and_safetensors_round_trip(tmp_path, cell, tied):
    config = rnn.ModelConfig(vocab_size=11, cell=cell, layers=2, emb_size=6, hidden_size=8,
                             dropout=0.1, tied=tied)
    model = rnn.RNNLM(config).eval()
    ids = torch.randint(0, 11, (3, 5))
    logits, hidden = model(ids, model.init_hidden(3))
    assert logits.shape == (3, 5, 11)
    if tied:
        assert model.decoder.weight is model.embedding.weight
    rnn.save(model, tmp_path)
    loaded = rnn.load(tmp_path)
    again, _ = loaded(ids, loaded.init_hidden(3))
    assert torch.equal(logits, again)


def test_bad_config():
    with pytest.raises(LMError, match="--cell"):
        rnn.RNNLM(rnn.ModelConfig(vocab_size=5, cell="transformer"))
    with pytest.raises(LMError, match="--hidden-size must be at least 1"):
        rnn.RNNLM(rnn.ModelConfig(vocab_size=5, hidden_size=0))


def test_adaptive_softmax_gives_normalised_log_probabilities(tmp_path):
    torch.manual_seed(0)
    model = rnn.RNNLM(rnn.ModelConfig(vocab_size=40, layers=1, emb_size=8, hidden_size=16,
                                      softmax="adaptive", cutoffs=[10, 25])).eval()
    ids = torch.randint(0, 40, (3, 6))
    scores, _ = model(ids, model.init_hidden(3))
    assert scores.shape == (3, 6, 40)
    torch.testing.assert_close(scores.exp().sum(-1), torch.ones(3, 6))
    # log_softmax of the scores is the distribution itself: samplers need no change
    torch.testing.assert_close(torch.log_softmax(scores, -1), scores, atol=1e-5, rtol=0)
    output, _ = model.features(ids, model.init_hidden(3))
    targets = torch.randint(0, 40, (3, 6))
    picked = scores.gather(-1, targets[..., None])[..., 0]
    torch.testing.assert_close(model.target_logprobs(output, targets), picked)
    torch.testing.assert_close(model.loss(output, targets), -picked.mean())
    rnn.save(model, tmp_path)
    again, _ = rnn.load(tmp_path)(ids, model.init_hidden(3))
    assert torch.equal(scores, again)


def test_default_cutoffs_follow_the_vocabulary():
    assert rnn.default_cutoffs(33278) == [2000, 10000]
    assert rnn.default_cutoffs(10000) == [2000]
    with pytest.raises(LMError, match="--cutoffs"):
        rnn.RNNLM(rnn.ModelConfig(vocab_size=50, softmax="adaptive", cutoffs=[30, 20]))


def test_in_place_cross_entropy_matches_the_plain_one():
    torch.manual_seed(0)
    for _ in range(2):  # the second call reuses the first one's buffer
        x = torch.randn(12, 5, requires_grad=True)
        w = torch.randn(30, 5, requires_grad=True)
        b = torch.randn(30, requires_grad=True)
        t = torch.randint(0, 30, (12,))
        ours = rnn.linear_cross_entropy(x, w, b, t)
        ours.backward()
        mine = [x.grad, w.grad, b.grad]
        x.grad = w.grad = b.grad = None
        ref = torch.nn.functional.cross_entropy(torch.nn.functional.linear(x, w, b), t)
        ref.backward()
        torch.testing.assert_close(ours, ref)
        for a, r in zip(mine, [x.grad, w.grad, b.grad], strict=True):
            torch.testing.assert_close(a, r)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_awd_options(tmp_path, cell):
    torch.manual_seed(0)
    config = rnn.ModelConfig(vocab_size=30, cell=cell, layers=3, emb_size=6, hidden_size=12,
                             dropout=0.4, tied=True, locked_dropout=True, dropout_input=0.3,
                             dropout_hidden=0.2, dropout_embed=0.1, weight_drop=0.5)
    model = rnn.RNNLM(config)
    assert model.projection is None and model.sizes == [12, 12, 6]  # AWD: last layer = emb
    ids = torch.randint(0, 30, (4, 7))
    hidden = model.init_hidden(4)
    assert len(hidden.parts) == (6 if cell == "lstm" else 3)  # state tensors: (h, c) or h per layer
    objective, nll, new = rnn.TrainingStep(model, ar=2.0, tar=1.0)(ids, ids, hidden)
    assert objective > nll > 0 and [h.shape for h in new.parts] == [h.shape for h in hidden.parts]
    objective.backward()
    assert model.rnns[0].weight_hh_l0.grad is not None  # through the dropped weights
    raw = model.rnns[0].weight_hh_l0.detach().clone()
    model(ids, hidden)
    assert torch.equal(raw, model.rnns[0].weight_hh_l0)  # weight drop leaves the weights be
    model.eval()
    a, _ = model(ids, model.init_hidden(4))
    b, _ = model(ids, model.init_hidden(4))
    assert torch.equal(a, b)  # no dropout of any kind when evaluating
    rnn.save(model, tmp_path)
    c, _ = rnn.load(tmp_path)(ids, model.init_hidden(4))
    assert torch.equal(a, c)


def test_locked_dropout_uses_one_mask_per_sequence():
    model = rnn.RNNLM(rnn.ModelConfig(vocab_size=5, locked_dropout=True, dropout=0.5))
    x = torch.ones(3, 20, 8)
    dropped = model._drop(x, 0.5)
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))  # the same at every step
    assert 0 < int((dropped == 0).sum()) < dropped.numel()


@pytest.mark.parametrize("tied", [False, True])
def test_saving_weights_that_share_one_buffer(tmp_path, tied):
    """cuDNN keeps an RNN's weights as views of one flat buffer; saving must cope."""
    torch.manual_seed(0)
    model = rnn.RNNLM(rnn.ModelConfig(vocab_size=11, layers=2, emb_size=8, hidden_size=8,
                                      tied=tied)).eval()
    params = list(model.rnn.parameters())
    flat = torch.cat([p.detach().flatten() for p in params])
    offset = 0
    for name, p in list(model.rnn.named_parameters()):
        view = flat[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
        setattr(model.rnn, name, torch.nn.Parameter(view))
    ids = torch.randint(0, 11, (2, 4))
    before, _ = model(ids, model.init_hidden(2))
    rnn.save(model, tmp_path)
    loaded = rnn.load(tmp_path)
    after, _ = loaded(ids, loaded.init_hidden(2))
    torch.testing.assert_close(before, after)
    if tied:
        assert loaded.decoder.weight is loaded.embedding.weight
