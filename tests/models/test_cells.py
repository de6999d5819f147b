"""The explicit cells agree with torch's fused layers: outputs and gradients, same weights."""

import pytest
import torch
from torch import nn

from lm.models import rnn
from lm.models.cells import ExplicitRNN, GRUCell, LSTMCell, RNNCell


@pytest.fixture(autouse=True)
def _float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def _grads(module: nn.Module, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    grads.update({f"input{i}": x.grad.clone() for i, x in enumerate(inputs)})
    return grads


@pytest.mark.parametrize("ours, theirs, lstm", [
    (lambda: RNNCell(5, 7), lambda: nn.RNNCell(5, 7), False),
    (lambda: RNNCell(5, 7, "relu"), lambda: nn.RNNCell(5, 7, nonlinearity="relu"), False),
    (lambda: GRUCell(5, 7), lambda: nn.GRUCell(5, 7), False),
    (lambda: LSTMCell(5, 7), lambda: nn.LSTMCell(5, 7), True),
])
def test_cells_match_torch_cells(ours, theirs, lstm):
    torch.manual_seed(0)
    mine, ref = ours(), theirs()
    mine.load_state_dict(ref.state_dict())
    results = []
    for module in (mine, ref):
        torch.manual_seed(1)
        x = torch.randn(4, 5, requires_grad=True)
        a = torch.randn(4, 7, requires_grad=True)
        c = torch.randn(4, 7, requires_grad=True)
        out = module(x, (a, c)) if lstm else module(x, a)
        outs = out if lstm else (out,)
        sum((o * torch.randn(o.shape)).sum() for o in outs).backward()
        results.append((outs, _grads(module, x, a, *((c,) if lstm else ()))))
    for o1, o2 in zip(results[0][0], results[1][0], strict=True):
        torch.testing.assert_close(o1, o2)
    assert results[0][1].keys() == results[1][1].keys()
    for key in results[0][1]:
        torch.testing.assert_close(results[0][1][key], results[1][1][key], msg=key)


@pytest.mark.parametrize("mode", ["rnn-tanh", "rnn-relu", "gru", "lstm"])
def test_explicit_stack_matches_fused_layers(mode):
    torch.manual_seed(0)
    kinds = {"lstm": nn.LSTM, "gru": nn.GRU}
    if mode in kinds:
        ref = kinds[mode](6, 8, 3, batch_first=True)
    else:
        ref = nn.RNN(6, 8, 3, nonlinearity=mode.split("-")[1], batch_first=True)
    mine = ExplicitRNN(mode, 6, 8, 3)
    mine.load_state_dict(ref.state_dict())  # the same parameter names and shapes
    results = []
    for module in (mine, ref):
        torch.manual_seed(1)
        x = torch.randn(2, 9, 6, requires_grad=True)
        h = torch.randn(3, 2, 8, requires_grad=True)
        c = torch.randn(3, 2, 8, requires_grad=True)
        out, final = module(x, (h, c) if mode == "lstm" else h)
        finals = final if mode == "lstm" else (final,)
        loss = (out * torch.randn(out.shape)).sum()
        loss = loss + sum((f * torch.randn(f.shape)).sum() for f in finals)
        loss.backward()
        results.append(((out, *finals), _grads(module, x, h, *((c,) if mode == "lstm" else ()))))
    for o1, o2 in zip(results[0][0], results[1][0], strict=True):
        torch.testing.assert_close(o1, o2)
    for key in results[1][1]:
        torch.testing.assert_close(results[0][1][key], results[1][1][key], msg=key)


@pytest.mark.parametrize("cell", rnn.CELLS)
def test_models_with_either_implementation_load_each_other(cell):
    torch.manual_seed(0)
    base = dict(vocab_size=13, cell=cell, layers=2, emb_size=6, hidden_size=8, dropout=0.0)
    fused = rnn.RNNLM(rnn.ModelConfig(**base)).eval()
    explicit = rnn.RNNLM(rnn.ModelConfig(**base, impl="explicit")).eval()
    explicit.load_state_dict(fused.state_dict(), strict=True)
    ids = torch.randint(0, 13, (3, 5))
    a, _ = fused(ids, fused.init_hidden(3))
    b, _ = explicit(ids, explicit.init_hidden(3))
    torch.testing.assert_close(a, b)


def test_indrnn_follows_its_equation_step_by_step():
    """a_t = relu(W_ax x_t + b_ax + u ⊙ a_{t-1} + b_aa), each unit on its own previous value."""
    torch.manual_seed(0)
    layer = ExplicitRNN("indrnn", 3, 4, 1)
    assert layer.weight_hh_l0.shape == (4,)  # a vector, not a matrix
    assert bool(((layer.weight_hh_l0 >= 0) & (layer.weight_hh_l0 <= 1)).all())
    x = torch.randn(2, 5, 3)
    a = torch.randn(1, 2, 4).abs()
    out, final = layer(x, a)
    w, u = layer.weight_ih_l0, layer.weight_hh_l0
    b_x, b_a = layer.bias_ih_l0, layer.bias_hh_l0
    expected = a[0]
    for t in range(5):
        expected = torch.clamp(x[:, t] @ w.T + b_x + u * expected + b_a, min=0.0)
        torch.testing.assert_close(out[:, t], expected)
    torch.testing.assert_close(final[0], expected)


def test_indrnn_units_do_not_see_each_other():
    """Changing unit 0's previous value changes unit 0's next value and no other unit's."""
    torch.manual_seed(0)
    layer = ExplicitRNN("indrnn", 3, 4, 1)
    x = torch.randn(1, 1, 3)
    a = torch.rand(1, 1, 4)
    nudged = a.clone()
    nudged[..., 0] += 1.0
    first, _ = layer(x, a)
    second, _ = layer(x, nudged)
    assert torch.equal(first[..., 1:], second[..., 1:])


def test_an_indrnn_model_runs_with_either_implementation_flag():
    """No fused IndRNN exists, so --impl fused builds the explicit layers (the same weights)."""
    base = dict(vocab_size=13, cell="indrnn", layers=2, emb_size=6, hidden_size=8)
    fused = rnn.RNNLM(rnn.ModelConfig(**base))
    assert isinstance(fused.rnn, ExplicitRNN)
    assert len(fused.init_hidden(3).parts) == 1


def test_unknown_cell_is_a_clear_error():
    from lm.errors import LMError

    with pytest.raises(LMError, match=r"--cell must be one of rnn-tanh, .*indrnn, not 'sru'"):
        rnn.RNNLM(rnn.ModelConfig(vocab_size=5, cell="sru"))
