"""What a recurrent model keeps in its state: every unit recorded over text, and the units
that track a feature of it.

A *unit* is one number of a layer's state, named ``LAYER:PART:INDEX``: ``1:c:123`` is entry
123 of the LSTM memory cell ``c`` of layer 1 (layers count from 0, the bottom one), ``0:h:7``
entry 7 of layer 0's hidden state ``h`` (the ``a`` of :mod:`lm.models.cells`). Every cell has
``h``; the LSTM has ``c`` too.

:func:`record` runs the model over a token stream and keeps every unit's value after each
token. The layers run one step at a time with the model's own weights and its cell's step
function (as :mod:`lm.evaluation.gradient_flow` does), since torch's fused layers return the
memory cell of the last step only. The stream is cut into ``batch_size`` rows read side by
side; each row first reads the ``warmup`` tokens before it (unrecorded), so its state is that
of running text rather than zeros.

:func:`best_units` ranks the units by the absolute Pearson correlation of their values with a
feature (:mod:`lm.evaluation.text_features`) and tells, for each, how well the unit alone
predicts the feature on other text: the R² of a linear fit (scikit-learn) made on the
recorded text and scored on held-out text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from lm.errors import LMError
from lm.evaluation.gradient_flow import layer_state, layer_weights
from lm.models.rnn import RNNLM
from lm.tokenization import EOS_ID

if TYPE_CHECKING:
    from tokenizers import Tokenizer

PARTS = ("h", "c")  # a cell's state parts in order: the hidden state, the LSTM's memory cell
UNIT = re.compile(r"(\d+):([hc]):(\d+)")


@dataclass
class Recording:
    """Every unit's value after each token: ``values[t, u]`` is unit ``units[u]`` after
    reading ``ids[t]``."""

    units: list[str]
    values: np.ndarray  # float32 [tokens, units]
    ids: np.ndarray     # int64 [tokens]

    def column(self, unit: str) -> np.ndarray:
        return self.values[:, unit_index(self.units, unit)]


def unit_names(model: RNNLM) -> list[str]:
    """``LAYER:PART:INDEX`` of every unit, in the order of :func:`record`'s columns."""
    names = []
    for layer, weights in enumerate(layer_weights(model)):
        size = weights[1].shape[-1]  # weight_hh: [gates × hidden, hidden] (IndRNN: [hidden])
        for part in PARTS[:model.spec.state_parts]:
            names += [f"{layer}:{part}:{i}" for i in range(size)]
    return names


def unit_index(units: list[str], unit: str) -> int:
    """The column of a unit given as ``LAYER:PART:INDEX``; a clear error if there is none."""
    if not UNIT.fullmatch(unit):
        raise LMError(f"--unit {unit!r} is not LAYER:PART:INDEX (e.g. 1:c:123 or 0:h:7; PART "
                      "is h, or c for an LSTM)")
    try:
        return units.index(unit)
    except ValueError:
        sizes: dict[str, int] = {}
        for name in units:
            layer, part, _ = name.split(":")
            sizes[layer] = sizes.get(layer, 0) + (part == "h")
        parts = sorted({name.split(":")[1] for name in units}, key=PARTS.index)
        shape = ", ".join(f"layer {layer}: 0–{size - 1}" for layer, size in sizes.items())
        raise LMError(f"the model has no unit {unit}: its units are numbered per layer "
                      f"({shape}), parts {' and '.join(parts)}") from None


def _rows(ids: np.ndarray, batch_size: int, warmup: int) -> tuple[torch.Tensor, int]:
    """The stream as ``batch_size`` rows, each with the ``warmup`` tokens before it in front
    (``<eos>`` before the first, the state a document starts from); the row length."""
    n = len(ids)
    rows = max(1, min(batch_size, n))
    length = -(-n // rows)
    padded = np.full(warmup + rows * length, EOS_ID, dtype=np.int64)
    padded[warmup:warmup + n] = ids
    starts = np.arange(rows) * length
    index = starts[:, None] + np.arange(warmup + length)[None, :]
    return torch.as_tensor(padded[index]), length


@torch.no_grad()
def record(model: RNNLM, ids: np.ndarray, batch_size: int = 32, warmup: int = 64,
           device: torch.device | str = "cpu") -> Recording:
    """Every unit after each token of ``ids``, read as one stream (see the module's doc)."""
    if len(ids) == 0:
        raise LMError("no tokens to record: the text or split is empty")
    model = model.to(device).eval()
    ids = np.asarray(ids, dtype=np.int64)
    tokens, length = _rows(ids, batch_size, warmup)
    tokens = tokens.to(device)
    hidden = model.init_hidden(tokens.shape[0], device)
    x, columns = model.embedding(tokens).float(), []
    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(layer_weights(model)):
        xw = F.linear(x, w_ih, b_ih)
        state, steps = layer_state(model, hidden, layer), []
        for t in range(tokens.shape[1]):
            state = model.spec.step(xw[:, t], state, w_hh, b_hh)
            steps.append(state)
        parts = [torch.stack([s[p] for s in steps], dim=1) for p in range(len(state))]
        x = parts[0]
        columns += [part[:, warmup:].reshape(-1, part.shape[-1]) for part in parts]
    values = torch.cat(columns, dim=1)[:len(ids)].float().cpu().numpy()
    return Recording(unit_names(model), values, ids)


def correlations(values: np.ndarray, feature: np.ndarray, block: int = 256) -> np.ndarray:
    """Pearson's r of each column of ``values`` with ``feature``, in float64 a block of columns
    at a time; NaN for a constant column (and everywhere for a constant feature)."""
    y = feature.astype(np.float64) - feature.mean()
    r = np.full(values.shape[1], np.nan)
    for first in range(0, values.shape[1], block):
        x = values[:, first:first + block].astype(np.float64)
        x -= x.mean(axis=0)
        spread = np.sqrt(np.einsum("ij,ij->j", x, x)) * np.sqrt(y @ y)
        with np.errstate(invalid="ignore", divide="ignore"):
            r[first:first + block] = np.where(spread > 0, (y @ x) / spread, np.nan)
    return r


def one_unit_r2(fit: np.ndarray, target: np.ndarray, held: np.ndarray,
                held_target: np.ndarray) -> float:
    """R² on held-out text of a linear fit of the feature on one unit, made on the recording."""
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    line = LinearRegression().fit(fit[:, None], target)
    return float(r2_score(held_target, line.predict(held[:, None])))


def best_units(recording: Recording, feature: np.ndarray, top: int = 5,
               held: Recording | None = None, held_feature: np.ndarray | None = None
               ) -> list[dict[str, float | str]]:
    """The ``top`` units by |r| with the feature, each with r and its one-unit R² (on the
    held-out recording when given, else on the recording itself)."""
    r = correlations(recording.values, feature)
    ranked = [int(u) for u in np.argsort(-np.nan_to_num(np.abs(r), nan=-1.0))[:top]
              if not np.isnan(r[u])]
    best = []
    for u in ranked:
        if held is None or held_feature is None:
            r2 = float(r[u] ** 2)
        else:
            r2 = one_unit_r2(recording.values[:, u], feature, held.values[:, u], held_feature)
        best.append({"unit": recording.units[u], "r": float(r[u]), "r2": r2})
    return best


@dataclass
class Tinted:
    """One unit's value after each token of a text, with the token's characters."""

    text: str
    unit: str
    spans: list[tuple[int, int]]  # each token's characters: text[start:end]
    values: list[float]

    @property
    def scale(self) -> float:
        """The largest |value|: the tint of full strength (1 for an all-zero unit)."""
        return max((abs(v) for v in self.values), default=0.0) or 1.0

    def to_json(self) -> dict[str, Any]:
        return {"unit": self.unit, "text": self.text, "scale": self.scale,
                "tokens": [{"start": s, "end": e, "value": v}
                           for (s, e), v in zip(self.spans, self.values, strict=True)]}


def tint(model: RNNLM, tokenizer: Tokenizer, text: str, unit: str) -> Tinted:
    """``unit`` after each token of ``text``, read as a document: after an ``<eos>``, as a
    document starts in the training stream."""
    index = unit_index(unit_names(model), unit)
    encoding = tokenizer.encode(text, add_special_tokens=False)
    if not encoding.ids:
        raise LMError("the text is empty: give some text to tint")
    recording = record(model, np.asarray(encoding.ids), batch_size=1, warmup=1,
                       device=next(model.parameters()).device)
    values = [float(v) for v in recording.values[:, index]]
    return Tinted(text, unit, [tuple(span) for span in encoding.offsets], values)
