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

IndRNN (Li et al. 2018, "Independently Recurrent Neural Network"), where each unit sees only
its own previous value, through a vector ``u`` instead of a matrix::

    a_t = relu(W_ax x_t + b_ax + u ⊙ a_{t-1} + b_aa)

Without the matrix product the step is cheap, and with ``u`` kept in [0, 1] at the start the
gradient through time neither explodes nor vanishes as fast as a tanh RNN's.

Every cell is one :class:`CellSpec` in ``CELLS``: its step function, the shapes and
initialisation of its parameters, how many tensors its state has, and torch's fused layer
when there is one. Adding a cell is one step function, one spec and one ``register`` line.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lm.errors import LMError

State = tuple[torch.Tensor, ...]
Step = Callable[[torch.Tensor, State, torch.Tensor, torch.Tensor], State]


def rnn_tanh_step(xw: torch.Tensor, state: State, w_aa: torch.Tensor, b_aa: torch.Tensor
                  ) -> State:
    """a_t = tanh(W_ax x_t + b_ax + W_aa a_{t-1} + b_aa); ``xw`` is ``W_ax x_t + b_ax``."""
    return (torch.tanh(xw + F.linear(state[0], w_aa, b_aa)),)


def rnn_relu_step(xw: torch.Tensor, state: State, w_aa: torch.Tensor, b_aa: torch.Tensor
                  ) -> State:
    """The same with a ReLU instead of tanh."""
    return (torch.relu(xw + F.linear(state[0], w_aa, b_aa)),)


def gru_step(xw: torch.Tensor, state: State, w_aa: torch.Tensor, b_aa: torch.Tensor) -> State:
    """One GRU step; ``xw`` holds the three input-side products [relevance, update, cand]."""
    a = state[0]
    aw = F.linear(a, w_aa, b_aa)
    x_r, x_u, x_c = xw.chunk(3, dim=-1)
    a_r, a_u, a_c = aw.chunk(3, dim=-1)
    relevance = torch.sigmoid(x_r + a_r)                 # Γ_r
    keep = torch.sigmoid(x_u + a_u)                      # torch's z: 1 − the course's Γ_u
    candidate = torch.tanh(x_c + relevance * a_c)        # c̃_t
    return (keep * a + (1.0 - keep) * candidate,)        # a_t


def lstm_step(xw: torch.Tensor, state: State, w_aa: torch.Tensor, b_aa: torch.Tensor) -> State:
    """One LSTM step; ``xw`` holds the four input-side products [update, forget, cand, out]."""
    a, c = state
    gates = xw + F.linear(a, w_aa, b_aa)
    x_u, x_f, x_c, x_o = gates.chunk(4, dim=-1)
    update = torch.sigmoid(x_u)                          # Γ_u
    forget = torch.sigmoid(x_f)                          # Γ_f
    output = torch.sigmoid(x_o)                          # Γ_o
    candidate = torch.tanh(x_c)                          # c̃_t
    c = forget * c + update * candidate                  # c_t
    return output * torch.tanh(c), c                     # a_t, c_t


def indrnn_step(xw: torch.Tensor, state: State, u: torch.Tensor, b_aa: torch.Tensor) -> State:
    """a_t = relu(W_ax x_t + b_ax + u ⊙ a_{t-1} + b_aa): each unit recurs on itself alone."""
    return (torch.relu(xw + u * state[0] + b_aa),)


def _uniform(param: nn.Parameter, name: str, hidden_size: int) -> None:
    """torch's initialisation of its recurrent layers: U(−1/√H, 1/√H) for every parameter."""
    bound = 1.0 / math.sqrt(hidden_size)
    nn.init.uniform_(param, -bound, bound)


def _indrnn_init(param: nn.Parameter, name: str, hidden_size: int) -> None:
    """The recurrent weights u in [0, 1] (IndRNN's stable range for ReLU); the rest as torch."""
    if name == "weight_hh":
        nn.init.uniform_(param, 0.0, 1.0)
    else:
        _uniform(param, name, hidden_size)


def _matrix_shapes(gates: int) -> Callable[[int, int], dict[str, tuple[int, ...]]]:
    def shapes(hidden: int, width: int) -> dict[str, tuple[int, ...]]:
        return {"weight_ih": (gates * hidden, width), "weight_hh": (gates * hidden, hidden),
                "bias_ih": (gates * hidden,), "bias_hh": (gates * hidden,)}
    return shapes


def _indrnn_shapes(hidden: int, width: int) -> dict[str, tuple[int, ...]]:
    return {"weight_ih": (hidden, width), "weight_hh": (hidden,), "bias_ih": (hidden,),
            "bias_hh": (hidden,)}


Fused = Callable[[int, int, int, float], nn.Module]


@dataclass(frozen=True)
class CellSpec:
    """Everything the model needs to know about one kind of recurrent cell."""

    name: str
    step: Step                  # one time step: (xw, state, weight_hh, bias_hh) → state
    state_parts: int            # tensors in the state: 1 (a) or 2 (a, c)
    shapes: Callable[[int, int], dict[str, tuple[int, ...]]]  # (hidden, input) → shapes
    fused: Fused | None = None  # torch's layer (input, hidden, layers, dropout), if any
    init: Callable[[nn.Parameter, str, int], None] = _uniform


CELLS: dict[str, CellSpec] = {}


def register(spec: CellSpec) -> CellSpec:
    CELLS[spec.name] = spec
    return spec


def cell_spec(name: str) -> CellSpec:
    if name not in CELLS:
        raise LMError(f"--cell must be one of {', '.join(CELLS)}, not {name!r}")
    return CELLS[name]


def _torch_rnn(nonlinearity: str) -> Fused:
    return lambda i, h, n, d: nn.RNN(i, h, n, nonlinearity=nonlinearity, dropout=d,
                                     batch_first=True)


register(CellSpec("rnn-tanh", rnn_tanh_step, 1, _matrix_shapes(1), _torch_rnn("tanh")))
register(CellSpec("rnn-relu", rnn_relu_step, 1, _matrix_shapes(1), _torch_rnn("relu")))
register(CellSpec("gru", gru_step, 1, _matrix_shapes(3),
                  lambda i, h, n, d: nn.GRU(i, h, n, dropout=d, batch_first=True)))
register(CellSpec("lstm", lstm_step, 2, _matrix_shapes(4),
                  lambda i, h, n, d: nn.LSTM(i, h, n, dropout=d, batch_first=True)))
register(CellSpec("indrnn", indrnn_step, 1, _indrnn_shapes, init=_indrnn_init))


class _Cell(nn.Module):
    """One step for a batch, with the parameters of ``nn.RNNCell``/``GRUCell``/``LSTMCell``."""

    mode = "rnn-tanh"

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.spec = cell_spec(self.mode)
        self.input_size, self.hidden_size = input_size, hidden_size
        for name, shape in self.spec.shapes(hidden_size, input_size).items():
            param = nn.Parameter(torch.empty(shape))
            self.spec.init(param, name, hidden_size)
            self.register_parameter(name, param)

    def _step(self, x: torch.Tensor, state: State) -> State:
        xw = F.linear(x, self.weight_ih, self.bias_ih)
        return self.spec.step(xw, state, self.weight_hh, self.bias_hh)


class RNNCell(_Cell):
    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh") -> None:
        self.mode = f"rnn-{nonlinearity}"
        super().__init__(input_size, hidden_size)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self._step(x, (a,))[0]


class GRUCell(_Cell):
    mode = "gru"

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self._step(x, (a,))[0]


class LSTMCell(_Cell):
    mode = "lstm"

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        a, c = self._step(x, state)
        return a, c


class ExplicitRNN(nn.Module):
    """A stack of explicit cells with ``nn.LSTM``'s interface (``batch_first=True``).

    ``forward(x [B, T, in], hidden)`` returns ``(output [B, T, H], hidden)``, the hidden state
    being ``a [L, B, H]`` or, for a cell with two state parts (the LSTM), ``(a, c)``. The
    parameters carry nn.LSTM's names (``weight_ih_l0``, ...), so the two load each other's
    state dicts. ``compile_step`` swaps the per-step function for a ``torch.compile``d one
    (one fused kernel per step).
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.spec = cell_spec(mode)
        self.mode, self.hidden_size, self.num_layers = mode, hidden_size, num_layers
        self.input_size, self.dropout = input_size, dropout
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size
            for name, shape in self.spec.shapes(hidden_size, width).items():
                param = nn.Parameter(torch.empty(shape))
                self.spec.init(param, name, hidden_size)
                self.register_parameter(f"{name}_l{layer}", param)
        self.step = self.spec.step

    def compile_step(self) -> None:
        self.step = torch.compile(self.spec.step, dynamic=False)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor | State
                ) -> tuple[torch.Tensor, torch.Tensor | State]:
        parts = tuple(hidden) if self.spec.state_parts > 1 else (hidden,)
        layer_input, finals = x, []
        for layer in range(self.num_layers):
            w_ih = getattr(self, f"weight_ih_l{layer}")
            w_hh = getattr(self, f"weight_hh_l{layer}")
            b_ih = getattr(self, f"bias_ih_l{layer}")
            b_hh = getattr(self, f"bias_hh_l{layer}")
            xw = F.linear(layer_input, w_ih, b_ih)       # every step's W_·x x_t + b at once
            state = tuple(part[layer] for part in parts)
            outputs = []
            for t in range(x.shape[1]):
                state = self.step(xw[:, t], state, w_hh, b_hh)
                outputs.append(state[0])
            layer_input = torch.stack(outputs, dim=1)
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, True)
            finals.append(state)
        stacked = tuple(torch.stack(per_part) for per_part in zip(*finals, strict=True))
        return layer_input, (stacked if self.spec.state_parts > 1 else stacked[0])
