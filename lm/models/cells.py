"""Recurrent cells written out from their equations, interchangeable with torch's fused layers.

The notation is that of Andrew Ng's sequence-models course: ``x_t`` is the input, ``a_t`` the
hidden state ("activation"), ``c_t`` the LSTM's memory cell, ``Γ`` a gate (a sigmoid, so each
entry lies in (0, 1)) and ``⊙`` the elementwise product.

Vanilla RNN::

    a_t = tanh(W_aa a_{t-1} + W_ax x_t + b_a)

GRU, with the relevance gate Γ_r and the update gate Γ_u::

    Γ_r = σ(W_rx x_t + W_ra a_{t-1} + b_r)
    Γ_u = σ(W_ux x_t + W_ua a_{t-1} + b_u)
    c̃_t = tanh(W_cx x_t + Γ_r ⊙ (W_ca a_{t-1} + b_ca) + b_cx)
    a_t = Γ_u ⊙ a_{t-1} + (1 − Γ_u) ⊙ c̃_t

(torch's convention, followed here so the weights are interchangeable: the relevance gate
multiplies ``W_ca a_{t-1}`` after the product rather than ``a_{t-1}`` before it, and the
update gate keeps the old state, so the course's Γ_u is torch's ``1 − z``.)

LSTM, with the forget gate Γ_f, the update (input) gate Γ_u and the output gate Γ_o::

    Γ_f = σ(W_fx x_t + W_fa a_{t-1} + b_f)
    Γ_u = σ(W_ux x_t + W_ua a_{t-1} + b_u)
    Γ_o = σ(W_ox x_t + W_oa a_{t-1} + b_o)
    c̃_t = tanh(W_cx x_t + W_ca a_{t-1} + b_c)
    c_t = Γ_f ⊙ c_{t-1} + Γ_u ⊙ c̃_t
    a_t = Γ_o ⊙ tanh(c_t)

The weights are stored as torch stores them, the gates' rows stacked in one matrix (LSTM:
update, forget, candidate, output; GRU: relevance, update, candidate) with ``W_·x`` in
``weight_ih``, ``W_·a`` in ``weight_hh`` and the bias split in two (``bias_ih`` + ``bias_hh``,
whose sum is the ``b`` above; the GRU needs the split for ``b_ca``). So a state dict moves
between these modules and ``nn.RNN``/``nn.GRU``/``nn.LSTM`` unchanged, and the tests check
that outputs and gradients agree. The input-side products of a whole sequence are done in one
matrix product before the time loop; only ``W_·a a_{t-1}`` is left inside it. Slower than
cuDNN or oneDNN when run eagerly; ``torch.compile`` fuses each step's gate arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("rnn-tanh", "rnn-relu", "gru", "lstm")
GATES = {"rnn-tanh": 1, "rnn-relu": 1, "gru": 3, "lstm": 4}


def rnn_tanh_step(xw: torch.Tensor, a: torch.Tensor, w_aa: torch.Tensor, b_aa: torch.Tensor
                  ) -> torch.Tensor:
    """a_t = tanh(W_ax x_t + b_ax + W_aa a_{t-1} + b_aa); ``xw`` is ``W_ax x_t + b_ax``."""
    return torch.tanh(xw + F.linear(a, w_aa, b_aa))


def rnn_relu_step(xw: torch.Tensor, a: torch.Tensor, w_aa: torch.Tensor, b_aa: torch.Tensor
                  ) -> torch.Tensor:
    """The same with a ReLU instead of tanh."""
    return torch.relu(xw + F.linear(a, w_aa, b_aa))


def gru_step(xw: torch.Tensor, a: torch.Tensor, w_aa: torch.Tensor, b_aa: torch.Tensor
             ) -> torch.Tensor:
    """One GRU step; ``xw`` holds the three input-side products [relevance, update, cand]."""
    aw = F.linear(a, w_aa, b_aa)
    x_r, x_u, x_c = xw.chunk(3, dim=-1)
    a_r, a_u, a_c = aw.chunk(3, dim=-1)
    relevance = torch.sigmoid(x_r + a_r)                 # Γ_r
    keep = torch.sigmoid(x_u + a_u)                      # torch's z: 1 − the course's Γ_u
    candidate = torch.tanh(x_c + relevance * a_c)        # c̃_t
    return keep * a + (1.0 - keep) * candidate           # a_t


def lstm_step(xw: torch.Tensor, a: torch.Tensor, c: torch.Tensor, w_aa: torch.Tensor,
              b_aa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step; ``xw`` holds the four input-side products [update, forget, cand, out]."""
    gates = xw + F.linear(a, w_aa, b_aa)
    x_u, x_f, x_c, x_o = gates.chunk(4, dim=-1)
    update = torch.sigmoid(x_u)                          # Γ_u
    forget = torch.sigmoid(x_f)                          # Γ_f
    output = torch.sigmoid(x_o)                          # Γ_o
    candidate = torch.tanh(x_c)                          # c̃_t
    c = forget * c + update * candidate                  # c_t
    return output * torch.tanh(c), c                     # a_t, c_t


STEPS: dict[str, Callable] = {"rnn-tanh": rnn_tanh_step, "rnn-relu": rnn_relu_step,
                              "gru": gru_step, "lstm": lstm_step}


class _Cell(nn.Module):
    """One step for a batch, with the parameters of ``nn.RNNCell``/``GRUCell``/``LSTMCell``."""

    mode = "rnn-tanh"

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        gates = GATES[self.mode]
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gates * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(gates * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(gates * hidden_size))
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _xw(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)


class RNNCell(_Cell):
    mode = "rnn-tanh"

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh") -> None:
        self.mode = f"rnn-{nonlinearity}"
        super().__init__(input_size, hidden_size)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return STEPS[self.mode](self._xw(x), a, self.weight_hh, self.bias_hh)


class GRUCell(_Cell):
    mode = "gru"

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return gru_step(self._xw(x), a, self.weight_hh, self.bias_hh)


class LSTMCell(_Cell):
    mode = "lstm"

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        a, c = state
        return lstm_step(self._xw(x), a, c, self.weight_hh, self.bias_hh)


class ExplicitRNN(nn.Module):
    """A stack of explicit cells with ``nn.LSTM``'s interface (``batch_first=True``).

    ``forward(x [B, T, in], hidden)`` returns ``(output [B, T, H], hidden)``, the hidden state
    being ``a [L, B, H]`` or, for the LSTM, ``(a, c)``. The parameters carry nn.LSTM's names
    (``weight_ih_l0``, ...), so the two load each other's state dicts. ``compile_step`` swaps
    the per-step function for a ``torch.compile``d one (one fused kernel per step).
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.mode, self.hidden_size, self.num_layers = mode, hidden_size, num_layers
        self.input_size, self.dropout = input_size, dropout
        gates = GATES[mode]
        bound = 1.0 / math.sqrt(hidden_size)
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size
            for name, shape in (("weight_ih", (gates * hidden_size, width)),
                                ("weight_hh", (gates * hidden_size, hidden_size)),
                                ("bias_ih", (gates * hidden_size,)),
                                ("bias_hh", (gates * hidden_size,))):
                param = nn.Parameter(torch.empty(shape))
                nn.init.uniform_(param, -bound, bound)
                self.register_parameter(f"{name}_l{layer}", param)
        self.step = STEPS[mode]

    def compile_step(self) -> None:
        self.step = torch.compile(STEPS[self.mode], dynamic=False)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor | tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        lstm = self.mode == "lstm"
        a0, c0 = hidden if lstm else (hidden, None)
        layer_input, finals_a, finals_c = x, [], []
        for layer in range(self.num_layers):
            w_ih = getattr(self, f"weight_ih_l{layer}")
            w_hh = getattr(self, f"weight_hh_l{layer}")
            b_ih = getattr(self, f"bias_ih_l{layer}")
            b_hh = getattr(self, f"bias_hh_l{layer}")
            xw = F.linear(layer_input, w_ih, b_ih)       # every step's W_·x x_t + b at once
            a, c = a0[layer], (c0[layer] if lstm else None)
            outputs = []
            for t in range(x.shape[1]):
                if lstm:
                    a, c = self.step(xw[:, t], a, c, w_hh, b_hh)
                else:
                    a = self.step(xw[:, t], a, w_hh, b_hh)
                outputs.append(a)
            layer_input = torch.stack(outputs, dim=1)
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, True)
            finals_a.append(a)
            finals_c.append(c)
        a_n = torch.stack(finals_a)
        return layer_input, ((a_n, torch.stack(finals_c)) if lstm else a_n)
