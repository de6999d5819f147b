"""Gradient flow through time: how far back the training signal of a recurrent model reaches.

For a window of text, the loss at its last step t, ``L_t = −log p(x_{t+1} | x_≤t)``, is
differentiated with respect to the state the top layer carried k steps earlier, for
k = 0 … lags: ``‖∂L_t/∂h_{t−k}‖`` (the hidden state ``a`` of the cell equations in
:mod:`lm.models.cells`) and, for an LSTM, ``‖∂L_t/∂c_{t−k}‖`` (its memory cell). Each is a
total derivative: every path from that state to the loss counts. The norms are taken per
batch row (rows do not interact, so one backward pass gives every row's own gradient) and
averaged over rows and windows spread evenly over the split.

Only the *top* layer's state is measured (layer ``layers − 1``): it is the one the softmax
reads, and lower layers' states reach the loss only through it. The layers are run one step
at a time with the model's own weights and the cell's step function, so every intermediate
state is a node of the graph that ``torch.autograd.grad`` can differentiate with respect to;
before each window the model reads ``warmup`` tokens (no gradient) so the state is the state
it has in the middle of real text, not zeros.

A tanh RNN multiplies the gradient at each step back by the transposed Jacobian
``Wᵀ diag(1 − a²)``, so it shrinks geometrically (vanishes) or grows (explodes); the LSTM's
memory cell is passed on through the forget gate alone (``∂c_t/∂c_{t−1} = diag(Γ_f)``), which
keeps a path open. The *gradient horizon* is the first lag at which the mean norm falls below
1% of its lag-0 value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lm.errors import LMError
from lm.models.cells import State
from lm.models.rnn import RNNLM
from lm.models.state import RecurrentState

HORIZON = 0.01  # the horizon: the first lag whose norm is below this share of lag 0's
PARTS = ("hidden", "cell")  # the names of a cell's state parts: a, and the LSTM's c


@dataclass
class GradientFlow:
    """Mean ``‖∂L_t/∂s_{t−k}‖`` for k = 0 … lags, per part s of the top layer's state."""

    norms: dict[str, list[float]]  # "hidden", and "cell" for an LSTM
    positions: int                 # the (row, window) pairs averaged
    layer: int                     # the layer measured (the top one, 0-based)

    @property
    def lags(self) -> int:
        return len(self.norms["hidden"]) - 1

    def horizon(self, part: str = "hidden", fraction: float = HORIZON) -> int | None:
        """The first lag whose norm is below ``fraction`` × lag 0's; None if none within lags."""
        norms = self.norms[part]
        for lag, norm in enumerate(norms[1:], start=1):
            if norm < fraction * norms[0]:
                return lag
        return None

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.layer, "positions": self.positions, "lags": self.lags,
                "horizon": {part: self.horizon(part) for part in self.norms},
                "norms": self.norms}


def layer_weights(model: RNNLM) -> list[tuple[torch.Tensor, ...]]:
    """(weight_ih, weight_hh, bias_ih, bias_hh) of each layer, bottom first.

    torch's fused layers and the explicit ones name their parameters alike; with AWD's
    per-layer modules each layer is a one-layer module of its own.
    """
    if model.config.per_layer:
        located = [(module, 0) for module in model.rnns]
    else:
        located = [(model.rnn, layer) for layer in range(model.config.layers)]
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    return [tuple(getattr(module, f"{name}_l{i}") for name in names) for module, i in located]


def layer_state(model: RNNLM, hidden: RecurrentState, layer: int) -> State:
    """One layer's state parts, each ``[batch, hidden]``, from the model's recurrent state."""
    per = model.spec.state_parts
    if model.config.per_layer:
        return tuple(part[0] for part in hidden.parts[layer * per:(layer + 1) * per])
    return tuple(part[layer] for part in hidden.parts)


def top_states(model: RNNLM, inputs: torch.Tensor, hidden: RecurrentState) -> list[State]:
    """The top layer's state after each step of ``inputs`` [B, T], one step at a time.

    Lower layers run without a graph: the top layer's states do not depend on them through
    anything ``∂L_t/∂h_{t−k}`` of the top layer needs.
    """
    weights = layer_weights(model)
    x = model.embedding(inputs)
    states: list[State] = []
    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
        with torch.set_grad_enabled(layer == len(weights) - 1):
            xw = F.linear(x, w_ih, b_ih)
            state, states = layer_state(model, hidden, layer), []
            for t in range(inputs.shape[1]):
                state = model.spec.step(xw[:, t], state, w_hh, b_hh)
                states.append(state)
            x = torch.stack([s[0] for s in states], dim=1)
    return states


def lag_norms(model: RNNLM, inputs: torch.Tensor, targets: torch.Tensor,
              hidden: RecurrentState) -> dict[str, torch.Tensor]:
    """``‖∂L_t/∂s_{t−k}‖`` per row, ``[B, T]`` with lag k in column k, for each state part s;
    t is the last step of ``inputs``, ``L_t`` the loss of its target ``targets[:, -1]``."""
    with torch.enable_grad():
        states = top_states(model, inputs, hidden)
        output = states[-1][0]
        if model.projection is not None:
            output = model.projection(output)
        loss = -model.target_logprobs(output[:, None], targets[:, -1:]).sum()
        by_lag = list(reversed(states))  # by_lag[k]: the state k steps before t
        nodes = [state[p] for p in range(len(by_lag[0])) for state in by_lag]
        grads = torch.autograd.grad(loss, nodes)
    lags = len(by_lag)
    return {PARTS[p]: torch.stack([g.norm(dim=-1) for g in grads[p * lags:(p + 1) * lags]], 1)
            for p in range(len(by_lag[0]))}


def window_starts(tokens: int, need: int, count: int) -> np.ndarray:
    """``count`` starting offsets spread evenly over a stream, each with ``need`` tokens."""
    return np.linspace(0, tokens - need, count).round().astype(np.int64)


def check_length(tokens: int, lags: int, warmup: int) -> None:
    """A window needs ``warmup`` tokens, ``lags + 1`` more and the last one's target."""
    if tokens < warmup + lags + 2:
        raise LMError(f"the text has {tokens:,} tokens, fewer than --warmup + --lags + 2 = "
                      f"{warmup + lags + 2}: lower --lags or --warmup")


def measure(model: RNNLM, ids: np.ndarray, lags: int = 100, windows: int = 8,
            batch_size: int = 16, warmup: int = 50,
            device: torch.device | str = "cpu") -> GradientFlow:
    """Mean lag norms over ``windows`` × ``batch_size`` positions spread over ``ids``."""
    check_length(len(ids), lags, warmup)
    length = warmup + lags + 1  # tokens read per row; one more is the last target
    model = model.to(device).eval()
    starts = window_starts(len(ids), length + 1, windows * batch_size)
    sums: dict[str, torch.Tensor] = {}
    for first in range(0, len(starts), batch_size):
        rows = np.stack([ids[s:s + length + 1] for s in starts[first:first + batch_size]])
        tokens = torch.as_tensor(rows.astype(np.int64), device=device)
        hidden = model.init_hidden(len(rows), device)
        if warmup:
            with torch.no_grad():
                _, hidden = model.features(tokens[:, :warmup], hidden)
        norms = lag_norms(model, tokens[:, warmup:length], tokens[:, warmup + 1:], hidden)
        for part, values in norms.items():
            sums[part] = sums.get(part, 0) + values.double().sum(0).cpu()
    mean = {part: (total / len(starts)).tolist() for part, total in sums.items()}
    return GradientFlow(mean, len(starts), len(layer_weights(model)) - 1)


def plot_flows(flows: dict[str, GradientFlow], path: Path, title: str) -> None:
    """The norms relative to lag 0 on a log scale, one colour per model (the LSTM's memory
    cell dashed), the 1% line and each horizon marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for colour, (label, flow) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"],
                                     flows.items(), strict=False):
        for part, style in zip(flow.norms, ("-", "--"), strict=False):
            norms = np.asarray(flow.norms[part])
            relative = np.where(norms > 0, norms / norms[0], np.nan) if norms[0] > 0 else norms
            horizon = flow.horizon(part)
            where = f"> {flow.lags}" if horizon is None else str(horizon)
            name = f"{label} ∂L/∂{'c' if part == 'cell' else 'h'} (horizon {where})"
            ax.plot(np.arange(len(norms)), relative, style, color=colour, label=name)
            if horizon is not None and math.isfinite(relative[horizon]):
                ax.plot([horizon], [relative[horizon]], "o", color=colour)
    ax.axhline(HORIZON, color="gray", ls=":", label="1% of lag 0")
    ax.set_yscale("log")
    ax.set_xlabel("lag k (steps back in time)")
    ax.set_ylabel(r"$\|\partial L_t/\partial s_{t-k}\|\ /\ \|\partial L_t/\partial s_t\|$"
                  " (s = h, or the LSTM's c)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
