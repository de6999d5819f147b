"""Sampling speed of an exported model: onnxruntime against PyTorch, side by side.

Exports MODEL with ``lm export`` (into a temporary folder), then decodes the same number of
steps with each runtime, at each batch size, from ``<eos>`` and a zero state, drawing every
token at temperature 1. PyTorch runs lm's own sampler pieces (``RNNStepper.advance`` and
``draw``); onnxruntime runs the exported graph and the numpy draw of ``bench/onnx_sample.py``.
Both use the same number of threads. Each measurement is repeated, the runtimes interleaved,
and the fastest repeat kept (the machine may be shared). Prints a table with the ratios.

    python bench/onnx_bench.py tang --artifacts /work/store --steps 200 --batches 1,64
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from onnx_sample import choose
from rich.console import Console
from rich.table import Table

from lm.artifacts import Store
from lm.generation.decoding.sampling import draw
from lm.generation.decoding.steppers import RNNStepper
from lm.models import rnn
from lm.models.export import export_model, state_names, state_shapes
from lm.tokenization import EOS_ID


def torch_decoder(model: rnn.RNNLM, batch: int, steps: int) -> Callable[[], None]:
    def run() -> None:
        stepper = RNNStepper(model, "cpu")
        generator = torch.Generator().manual_seed(0)
        log_probs = stepper.start([[EOS_ID]] * batch)
        for _ in range(steps):
            tokens = draw(torch.softmax(log_probs, dim=-1), generator)
            log_probs = stepper.advance(tokens)
    return run


def onnx_decoder(session: ort.InferenceSession, state_shapes: dict[str, list],
                 batch: int, steps: int) -> Callable[[], None]:
    names = list(state_shapes)
    fetch = ["log_probs", *(f"{n}_out" for n in names)]

    def run() -> None:
        rng = np.random.default_rng(0)
        state = {n: np.zeros([batch if d == "batch" else d for d in shape], np.float32)
                 for n, shape in state_shapes.items()}
        tokens = np.full(batch, EOS_ID, dtype=np.int64)
        log_probs, *parts = session.run(fetch, {"tokens": tokens, **state})
        for _ in range(steps):
            tokens = choose(log_probs, 1.0, rng)
            log_probs, *parts = session.run(fetch, {"tokens": tokens,
                                                    **dict(zip(names, parts, strict=True))})
    return run


def fastest(runs: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Best wall time of each run over ``repeats`` rounds, the runs interleaved in each."""
    best = {name: float("inf") for name in runs}
    for run in runs.values():  # warm-up: allocations, oneDNN/ORT kernel selection
        run()
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="Model artifact reference.")
    parser.add_argument("--artifacts", type=Path, default=None, help="Store (default: LM_HOME).")
    parser.add_argument("--steps", type=int, default=200, help="Tokens drawn per sample.")
    parser.add_argument("--batches", default="1,64", help="Batch sizes, comma-separated.")
    parser.add_argument("--threads", type=int, default=1, help="Threads for both runtimes.")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    store = Store(args.artifacts)
    with tempfile.TemporaryDirectory() as folder:
        result = export_model(store, args.model, Path(folder) / "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = args.threads
        session = ort.InferenceSession(str(result.onnx), options,
                                       providers=["CPUExecutionProvider"])
    model = rnn.load(store.resolve(args.model, "model").path, device="cpu")
    shapes = dict(zip(state_names(model), state_shapes(model), strict=True))
    table = Table("batch", "steps", "PyTorch tok/s", "onnxruntime tok/s", "onnxruntime ÷ PyTorch",
                  title=f"sampling {args.model} on {args.threads} thread(s), best of "
                        f"{args.repeats}; export parity {result.max_difference:.1e}")
    for batch in map(int, args.batches.split(",")):
        best = fastest({"torch": torch_decoder(model, batch, args.steps),
                        "onnx": onnx_decoder(session, shapes, batch, args.steps)}, args.repeats)
        speed = {k: batch * args.steps / v for k, v in best.items()}
        table.add_row(str(batch), str(args.steps), f"{speed['torch']:,.0f}",
                      f"{speed['onnx']:,.0f}", f"{speed['onnx'] / speed['torch']:.2f}×")
    Console(soft_wrap=True).print(table)


if __name__ == "__main__":
    main()
