"""Gradient flow through time, checked against autograd by brute force and against theory.

The brute force never uses the measurement's step-by-step code: it runs the model's own
forward (torch's fused layers) up to step t−k, makes the top layer's state there a leaf,
runs the model's forward on from it and differentiates the loss at t with respect to the leaf.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lm.errors import LMError
from lm.evaluation.gradient_flow import GradientFlow, lag_norms, measure, plot_flows
from lm.models import rnn
from lm.models.state import RecurrentState


def _model(cell="lstm", layers=1, seed=0, **extra) -> rnn.RNNLM:
    torch.manual_seed(seed)
    config = rnn.ModelConfig(vocab_size=13, cell=cell, layers=layers, emb_size=6, hidden_size=7,
                             dropout=0.0, **extra)
    model = rnn.RNNLM(config).eval()
    with torch.no_grad():  # weights large enough that the gradient does not vanish at once
        for name, param in model.named_parameters():
            if "weight_hh" in name or "weight_ih" in name:
                param.mul_(3.0)
    return model


def _leaf_state(model, state: RecurrentState, part: int):
    """The state with the top layer's ``part`` replaced by a leaf; (state, leaf)."""
    per, top, parts = model.spec.state_parts, model.config.layers - 1, list(state.parts)
    if model.config.per_layer:
        leaf = parts[top * per + part][0].clone().requires_grad_()
        parts[top * per + part] = leaf[None]
    else:
        leaf = parts[part][top].clone().requires_grad_()
        parts[part] = torch.cat([parts[part][:top], leaf[None]])
    return RecurrentState(tuple(parts)), leaf


def _loss_at_last(model, output, targets):
    return -model.target_logprobs(output[:, None], targets[:, -1:]).sum()


def brute_force_hidden(model, inputs, targets, hidden, lag):
    """‖∂L_t/∂h_{t−lag}‖ per row, t the last step, by the model's own forward from a leaf."""
    step = inputs.shape[1] - 1 - lag
    with torch.no_grad():
        _, state = model.features(inputs[:, :step + 1], hidden)
    state, leaf = _leaf_state(model, state, 0)
    if lag:
        output = model.features(inputs[:, step + 1:], state)[0][:, -1]
    else:
        output = leaf if model.projection is None else model.projection(leaf)
    (grad,) = torch.autograd.grad(_loss_at_last(model, output, targets), leaf)
    return grad.norm(dim=-1)


def brute_force_cell(model, inputs, targets, hidden, lag):
    """‖∂L_t/∂c_{t−lag}‖ per row for a one-layer LSTM: c at t−lag a leaf, a recomputed from
    it with torch's gate layout (input, forget, cell, output), the model's forward after."""
    step = inputs.shape[1] - 1 - lag
    with torch.no_grad():
        _, before = model.features(inputs[:, :step], hidden) if step else (None, hidden)
        _, after = model.features(inputs[:, step:step + 1], before)
    leaf = after.parts[1][0].clone().requires_grad_()
    lstm = model.rnn
    gates = (F.linear(model.embedding(inputs[:, step]), lstm.weight_ih_l0, lstm.bias_ih_l0)
             + F.linear(before.parts[0][0], lstm.weight_hh_l0, lstm.bias_hh_l0))
    a = torch.sigmoid(gates.chunk(4, dim=-1)[3]) * torch.tanh(leaf)
    if lag:
        output = model.features(inputs[:, step + 1:], RecurrentState((a[None], leaf[None])))[0]
        output = output[:, -1]
    else:
        output = a
    (grad,) = torch.autograd.grad(_loss_at_last(model, output, targets), leaf)
    return grad.norm(dim=-1)


def _batch(model, rows=3, length=9, warmup=4, seed=1):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.config.vocab_size, (rows, warmup + length + 1),
                        generator=generator)
    with torch.no_grad():
        _, hidden = model.features(ids[:, :warmup], model.init_hidden(rows))
    return ids[:, warmup:-1], ids[:, warmup + 1:], hidden


@pytest.mark.parametrize("cell, layers, extra", [
    ("rnn-tanh", 1, {}), ("gru", 1, {}), ("lstm", 1, {}), ("indrnn", 1, {}),
    ("lstm", 2, {}), ("gru", 2, {"tied": True}),           # tied: a projection to the softmax
    ("lstm", 2, {"locked_dropout": True}),                  # AWD's one module per layer
    ("rnn-tanh", 2, {"impl": "explicit"}),
])
def test_lag_norms_equal_brute_force_autograd_on_each_earlier_state(cell, layers, extra):
    model = _model(cell, layers, **extra)
    inputs, targets, hidden = _batch(model)
    norms = lag_norms(model, inputs, targets, hidden)["hidden"]
    assert norms.shape == (3, inputs.shape[1])
    for lag in range(inputs.shape[1]):
        expected = brute_force_hidden(model, inputs, targets, hidden, lag)
        torch.testing.assert_close(norms[:, lag], expected, rtol=1e-4, atol=1e-9)
    assert norms[:, -1].min() > 0  # the oldest state still matters: the test compares numbers


def test_lstm_memory_cell_norms_equal_brute_force_autograd():
    model = _model("lstm", 1)
    inputs, targets, hidden = _batch(model, length=8)
    norms = lag_norms(model, inputs, targets, hidden)
    assert set(norms) == {"hidden", "cell"}
    for lag in range(inputs.shape[1]):
        expected = brute_force_cell(model, inputs, targets, hidden, lag)
        torch.testing.assert_close(norms["cell"][:, lag], expected, rtol=1e-4, atol=1e-9)


def test_measure_averages_every_window_and_row():
    model = _model("gru", 2)
    ids = np.random.default_rng(3).integers(0, 13, 400)
    lags, windows, rows, warmup = 6, 2, 3, 5
    flow = measure(model, ids, lags, windows, rows, warmup)
    need = warmup + lags + 2
    starts = [round(x) for x in np.linspace(0, len(ids) - need, windows * rows)]
    total = torch.zeros(lags + 1, dtype=torch.float64)
    for first in range(0, len(starts), rows):
        chunk = torch.as_tensor(np.stack([ids[s:s + need] for s in starts[first:first + rows]]))
        with torch.no_grad():
            _, hidden = model.features(chunk[:, :warmup], model.init_hidden(rows))
        inputs, targets = chunk[:, warmup:-1], chunk[:, warmup + 1:]
        for lag in range(lags + 1):
            total[lag] += brute_force_hidden(model, inputs, targets, hidden, lag).double().sum()
    np.testing.assert_allclose(flow.norms["hidden"], (total / len(starts)).numpy(), rtol=1e-4)
    assert flow.positions == 6 and flow.layer == 1 and flow.lags == lags
    assert "cell" not in flow.norms


def _small_tanh_rnn(recurrent: torch.Tensor) -> rnn.RNNLM:
    """A one-layer tanh RNN whose states stay near 0, so its Jacobian diag(1 − a²) W ≈ W."""
    hidden = recurrent.shape[0]
    model = rnn.RNNLM(rnn.ModelConfig(vocab_size=11, cell="rnn-tanh", layers=1, emb_size=4,
                                      hidden_size=hidden, dropout=0.0)).eval()
    with torch.no_grad():
        model.rnn.weight_hh_l0.copy_(recurrent)
        model.rnn.weight_ih_l0.mul_(1e-3)
        model.rnn.bias_ih_l0.zero_()
        model.rnn.bias_hh_l0.zero_()
    return model


def _fitted_rate(norms: list[float], first: int, last: int) -> float:
    """exp of the least-squares slope of log norm against lag over [first, last]."""
    lags = np.arange(first, last + 1)
    slope = np.polyfit(lags, np.log(np.asarray(norms)[first:last + 1]), 1)[0]
    return float(np.exp(slope))


def _recurrent_matrices(hidden: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(5)
    q, _ = torch.linalg.qr(torch.randn(hidden, hidden))
    u, _ = torch.linalg.qr(torch.randn(hidden, hidden))
    spread = torch.linspace(-0.45, 0.75, hidden)  # eigenvalues: largest |λ| = σ_max = 0.75
    return {"orthogonal 0.5": 0.5 * q, "orthogonal 0.85": 0.85 * q,
            "symmetric": u @ torch.diag(spread) @ u.T}


@pytest.mark.parametrize("which", ["orthogonal 0.5", "orthogonal 0.85", "symmetric"])
def test_tanh_rnn_gradient_decays_at_the_largest_singular_value_of_its_jacobian(which):
    recurrent = _recurrent_matrices(16)[which]
    model = _small_tanh_rnn(recurrent)
    ids = np.random.default_rng(0).integers(0, 11, 2000)
    flow = measure(model, ids, lags=40, windows=2, batch_size=8, warmup=10)
    # The Jacobian at the actual states, diag(1 − a²) W, is W up to a² ~ 1e-6: its largest
    # singular value is W's.
    sigma = float(torch.linalg.matrix_norm(recurrent, ord=2))
    first = 1 if which.startswith("orthogonal") else 15  # let the largest mode dominate
    rate = _fitted_rate(flow.norms["hidden"], first, 40)
    assert abs(rate - sigma) <= 0.10 * sigma, (rate, sigma)
    assert flow.horizon() == math.ceil(math.log(0.01) / math.log(rate)) or which == "symmetric"


def test_an_lstm_whose_forget_gate_stays_open_keeps_the_memory_cell_path():
    """Γ_f ≈ 1 and Γ_u ≈ 0: ∂c_t/∂c_{t−1} = diag(Γ_f) ≈ I, so the norm hardly decays."""
    model = _model("lstm", 1)
    hidden = model.config.hidden_size
    with torch.no_grad():
        model.rnn.bias_ih_l0[hidden:2 * hidden] = 12.0   # forget gate open
        model.rnn.bias_ih_l0[:hidden] = -12.0            # update (input) gate shut
    ids = np.random.default_rng(1).integers(0, 13, 600)
    flow = measure(model, ids, lags=30, windows=2, batch_size=4, warmup=5)
    cell = flow.norms["cell"]
    assert cell[30] > 0.99 * cell[1] and flow.horizon("cell") is None


def test_horizon_is_the_first_lag_below_one_percent_of_lag_zero():
    flow = GradientFlow({"hidden": [2.0, 1.0, 0.03, 0.0199, 0.05],
                         "cell": [1.0, 0.5, 0.2, 0.1, 0.011]}, positions=1, layer=0)
    assert flow.horizon("hidden") == 3
    assert flow.horizon("cell") is None
    assert flow.to_json()["horizon"] == {"hidden": 3, "cell": None}


def test_a_text_shorter_than_a_window_is_a_one_line_error():
    with pytest.raises(LMError, match=r"fewer than --warmup \+ --lags \+ 2 = 62: lower --lags"):
        measure(_model(), np.zeros(40, dtype=np.int64), lags=10, warmup=50)


def test_the_plot_is_a_png(tmp_path):
    flows = {"lstm": GradientFlow({"hidden": [1.0, 0.1, 0.0], "cell": [1.0, 0.5, 0.2]}, 4, 0),
             "rnn-tanh": GradientFlow({"hidden": [1.0, 1e-3, 1e-6]}, 4, 0)}
    plot_flows(flows, tmp_path / "flow.png", "test")
    assert (tmp_path / "flow.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
