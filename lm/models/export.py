"""One decoding step of a trained model as an ONNX graph, so the model can leave Python.

The graph is what a sampler calls once per token: token ids [B] and the recurrent state in,
next-token log-probabilities [B, V] and the new state out, with a dynamic batch axis. Its state
inputs are the model's :class:`~lm.models.state.RecurrentState` parts, as many as the cell's
:class:`~lm.models.cells.CellSpec` says (``h``, then ``c`` for a two-part cell such as the
LSTM), stacked ``[layers, B, hidden]`` or, for the AWD per-layer layout, one per layer
(``h_l0``, ``c_l0``, ``h_l1``, ...). Every output ``X_out`` is fed back as input ``X``.

Beside the ``.onnx`` file go the model's ``tokenizer.json`` and a JSON sidecar
(``NAME.onnx.json``) that names the inputs and outputs, the special token ids and how a sample
starts (after ``<eos>``, from a zero state, as ``lm sample`` starts). The export is checked
against PyTorch before anything is written, and every file is renamed into place only once
all of them are complete.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lm.artifacts import Artifact, Store, write_json
from lm.errors import LMError
from lm.models import rnn
from lm.models.state import RecurrentState
from lm.tokenization import EOS, EOS_ID, UNK, UNK_ID

OPSET = 17
SIDECAR_FORMAT = "lm-onnx-step/1"
PART_NAMES = ("h", "c")  # what state part i is called; a cell with more parts gets s2, s3, ...
PARITY_TOLERANCE = 1e-4


class DecodeStep(nn.Module):
    """``(tokens [B], *state parts) → (log_probs [B, V], *new state parts)`` in eval mode."""

    def __init__(self, model: rnn.RNNLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, *parts: torch.Tensor) -> tuple[torch.Tensor, ...]:
        scores, hidden = self.model(tokens[:, None], RecurrentState(parts))
        # log_softmax of either the logits (full) or the log-probabilities (adaptive) is the
        # distribution, as in lm.generation.decoding.sampling.RNNStepper.
        return (torch.log_softmax(scores[:, 0].float(), dim=-1), *hidden.parts)


def state_names(model: rnn.RNNLM) -> list[str]:
    """Input names of the state parts, in ``RecurrentState`` order."""
    per = model.spec.state_parts
    parts = [PART_NAMES[i] if i < len(PART_NAMES) else f"s{i}" for i in range(per)]
    if not model.config.per_layer:
        return parts
    return [f"{part}_l{layer}" for layer in range(model.config.layers) for part in parts]


def state_shapes(model: rnn.RNNLM) -> list[list[int | str]]:
    """Each state part's shape, with ``"batch"`` for the batch axis."""
    return [[part.shape[0], "batch", part.shape[2]] for part in model.init_hidden(1).parts]


def _io_spec(model: rnn.RNNLM) -> dict[str, Any]:
    names, shapes = state_names(model), state_shapes(model)
    tensor = [{"name": n, "dtype": "float32", "shape": s} for n, s in zip(names, shapes,
                                                                          strict=True)]
    return {
        "inputs": [{"name": "tokens", "dtype": "int64", "shape": ["batch"]}, *tensor],
        "outputs": [{"name": "log_probs", "dtype": "float32",
                     "shape": ["batch", model.config.vocab_size]},
                    *[{**t, "name": f"{t['name']}_out"} for t in tensor]],
        "state": [{"input": n, "output": f"{n}_out", "shape": s, "initial": "zeros"}
                  for n, s in zip(names, shapes, strict=True)],
    }


def export_graph(model: rnn.RNNLM, path: Path, opset: int = OPSET) -> None:
    """Write the decoding step of ``model`` (on the CPU, fp32) as ONNX to ``path``."""
    model = model.float().cpu().eval()
    step = DecodeStep(model).eval()
    example_state = model.init_hidden(2).parts  # batch 2: the batch axis must stay symbolic
    names = state_names(model)
    outputs = ["log_probs", *(f"{n}_out" for n in names)]
    axes = {"tokens": {0: "batch"}, "log_probs": {0: "batch"},
            **{n: {1: "batch"} for n in [*names, *outputs[1:]]}}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter (torch's dynamo one needs onnxscript) warns that it is
        # legacy, and about RNN batch sizes (the state is an input here, so they are free).
        warnings.simplefilter("ignore")
        torch.onnx.export(step, (torch.tensor([EOS_ID, EOS_ID]), *example_state), str(path),
                          dynamo=False, input_names=["tokens", *names], output_names=outputs,
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True)
    model.eval()  # the exporter restores the wrapper's mode on every submodule


def max_difference(model: rnn.RNNLM, onnx_path: Path, tokens: list[list[int]]) -> float:
    """Largest |log-prob difference| between onnxruntime and PyTorch over steps of ``tokens``.

    ``tokens[t]`` is the batch fed at step ``t``, starting from a zero state; each step's new
    state is fed back on both sides, so errors that build up in the state are seen.
    """
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = state_names(model)
    hidden = model.init_hidden(len(tokens[0]))
    feeds = dict(zip(names, (p.numpy() for p in hidden.parts), strict=True))
    worst = 0.0
    step = DecodeStep(model.eval())
    with torch.no_grad():
        for batch in tokens:
            ids = np.asarray(batch, dtype=np.int64)
            got = session.run(None, {"tokens": ids, **feeds})
            want = step(torch.from_numpy(ids), *hidden.parts)
            worst = max(worst, float(np.abs(got[0] - want[0].numpy()).max()))
            hidden = RecurrentState(tuple(want[1:]))
            feeds = dict(zip(names, got[1:], strict=True))
    return worst


@dataclass
class ExportResult:
    onnx: Path
    tokenizer: Path
    sidecar: Path
    max_difference: float


def sidecar_path(onnx_path: Path) -> Path:
    return onnx_path.with_name(onnx_path.name + ".json")


def _check_target(path: Path) -> None:
    if path.suffix != ".onnx":
        raise LMError(f"--onnx {path} must end in .onnx (the sidecar and tokenizer.json are "
                      "written beside it)")
    if path.is_dir():
        raise LMError(f"--onnx {path} is a folder: give a file name such as {path}/model.onnx")
    if not path.parent.is_dir():
        raise LMError(f"--onnx {path}: the folder {path.parent} does not exist; create it "
                      "first")


@contextlib.contextmanager
def _staged(targets: list[Path]) -> Iterator[list[Path]]:
    """Temporary files beside ``targets``, renamed onto them only if the block succeeds."""
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temps = [t.with_name(f".{t.name}.{tag}.tmp") for t in targets]
    try:
        yield temps
        for temp, target in zip(temps, targets, strict=True):
            os.replace(temp, target)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)


def sidecar(artifact: Artifact, model: rnn.RNNLM, onnx_path: Path, difference: float
            ) -> dict[str, Any]:
    """What a runtime needs beyond the graph: names, token ids, how to start and stop."""
    return {
        "format": SIDECAR_FORMAT,
        "model": artifact.ref,
        "content_hash": artifact.content_hash,
        "onnx": onnx_path.name,
        "tokenizer": "tokenizer.json",
        "level": artifact.manifest.get("level", "char"),
        "vocab_size": model.config.vocab_size,
        "cell": model.config.cell,
        "softmax": model.config.softmax,
        "opset": OPSET,
        **_io_spec(model),
        "special_tokens": {UNK: UNK_ID, EOS: EOS_ID},
        "start": {"token": EOS_ID, "state": "zeros",
                  "how": f"feed {EOS} ({EOS_ID}) with zero state, as `lm sample` does: every "
                         "training document follows an <eos>"},
        "stop": {"token": EOS_ID, "how": f"a sample ends when it draws {EOS}"},
        "parity_max_abs_difference": difference,
    }


def export_model(store: Store, ref: str, onnx_path: Path) -> ExportResult:
    """Export a model artifact's decoding step, tokenizer and sidecar; all or nothing."""
    _check_target(onnx_path)
    artifact = store.resolve(ref, "model")
    model = rnn.load(artifact.path, device="cpu")
    targets = [onnx_path, onnx_path.with_name("tokenizer.json"), sidecar_path(onnx_path)]
    with _staged(targets) as (graph, tokenizer, meta):
        try:
            export_graph(model, graph)
        except Exception as exc:  # the exporter's many failure types: one line for the user
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise LMError(f"cannot export {artifact.ref} to ONNX ({type(exc).__name__}: "
                          f"{first}); export a model with a supported layer") from exc
        probe = [[EOS_ID, EOS_ID]] + [[(7 * t) % model.config.vocab_size,
                                       (3 * t + 1) % model.config.vocab_size] for t in range(4)]
        difference = max_difference(model, graph, probe)
        if not difference <= PARITY_TOLERANCE:
            raise LMError(f"the ONNX export of {artifact.ref} disagrees with PyTorch (max "
                          f"log-prob difference {difference:.2e}); nothing was written")
        tokenizer.write_bytes(artifact.file("tokenizer.json").read_bytes())
        write_json(meta, sidecar(artifact, model, onnx_path, difference))
    return ExportResult(*targets, difference)
