"""``lm diagnose``: gradient flow through time, measured on a model and a split of its text.

``lm diagnose MODEL`` prints ``‖∂L_t/∂h_{t−k}‖`` at chosen lags (and the LSTM's memory-cell
path), the gradient horizon, and draws the curve on a log scale
(:mod:`lm.evaluation.gradient_flow`). ``lm diagnose DATASET --compare-cells`` trains a tanh
RNN, a GRU and an LSTM of the same size on the same dataset for the same time with the
ordinary training stage (:func:`lm.training.loop.train`), then measures and draws the three:
the course notes' lesson on vanishing gradients, on the user's own text.

The PNG and the measured curves (JSON) go to ``STORE/diagnoses/NAME/`` unless ``--plot``
says where. It sits beside ``lm.pipelines`` rather than in ``lm.evaluation``: it measures and
also trains, and training already depends on evaluation.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from lm.artifacts import Artifact, Store, write_json
from lm.cli_common import err, out, print_table, store
from lm.errors import LMError
from lm.evaluation.gradient_flow import (
    HORIZON,
    GradientFlow,
    check_length,
    measure,
    plot_flows,
)
from lm.models.cells import CELLS
from lm.settings import check_settings, setting, with_settings

SHOWN_LAGS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def _cells(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise ValueError(f"comma-separated cells from {', '.join(CELLS)}")
    return names


def _positive(value: float) -> bool:
    return value > 0


@dataclass
class DiagnoseConfig:
    """What ``lm diagnose`` measures and, with ``--compare-cells``, what it trains."""

    split: str = setting("valid", "Split of the model's dataset to measure on.")
    lags: int = setting(100, "Measure ∂L_t/∂h_{t−k} for k = 0 … LAGS.", at_least=1)
    windows: int = setting(8, "Batches of windows averaged.", at_least=1)
    batch_size: int = setting(16, "Windows per batch (positions averaged: --windows × this).",
                              at_least=1)
    warmup: int = setting(50, "Tokens read before each window (no gradient), so the state is "
                          "that of running text.", at_least=0)
    device: str = setting("auto", "auto, cpu, cuda or mps.")
    plot: Path | None = setting(None, "Write the PNG here (default: "
                                "STORE/diagnoses/NAME/gradient-flow.png).")
    compare_cells: bool = setting(False, "Train each of --cells on the dataset REF for "
                                  "--budget seconds, all of one size, and compare them.")
    cells: tuple[str, ...] = setting(("rnn-tanh", "gru", "lstm"), "With --compare-cells: the "
                                     "cells (comma-separated).", parse=_cells)
    budget: float = setting(120.0, "With --compare-cells: training seconds per cell.",
                            valid=_positive, rule="positive seconds")
    layers: int = setting(1, "With --compare-cells: layers of each model.", at_least=1)
    emb_size: int = setting(256, "With --compare-cells: embedding size.", at_least=1)
    hidden_size: int = setting(256, "With --compare-cells: hidden size.", at_least=1)
    lr: float = setting(2e-3, "With --compare-cells: learning rate (Adam, clip 0.25).",
                        valid=_positive, rule="positive")
    threads: int | None = setting(None, "With --compare-cells: CPU threads for training.",
                                  at_least=1)
    seed: int = setting(0, "With --compare-cells: random seed of every model.")

    def check(self) -> None:
        check_settings(self)
        unknown = [cell for cell in self.cells if cell not in CELLS]
        if unknown:
            raise LMError(f"--cells takes cells from {', '.join(CELLS)}, not {unknown[0]!r}")


def diagnose_model(s: Store, ref: str, config: DiagnoseConfig) -> dict[str, Any]:
    """Measure one model on a split of its dataset; draw and record the curve."""
    from lm.data.prepare import load_split
    from lm.evaluation.scoring import dataset_of
    from lm.models import rnn
    from lm.runtime import pick_device

    artifact = s.resolve(ref, "model")
    dataset = dataset_of(s, artifact)
    device = pick_device(config.device)
    model = rnn.load(artifact.path, device=device)
    flow = measure(model, load_split(dataset, config.split), config.lags, config.windows,
                   config.batch_size, config.warmup, device)
    plot = _plot_path(s, config, artifact.name)
    plot_flows({f"{model.config.cell} ({artifact.ref})": flow}, plot,
               f"gradient flow through time: {artifact.ref} on {config.split}")
    result = {"model": artifact.ref, "cell": model.config.cell, "split": config.split,
              **flow.to_json(), "plot": str(plot)}
    write_json(plot.with_suffix(".json"), result)
    return result


def compare_cells(s: Store, ref: str, config: DiagnoseConfig,
                  log: Callable[[str], None]) -> dict[str, Any]:
    """Train every cell of ``--cells`` alike on a dataset, then measure and draw them together."""
    from lm.data.prepare import load_split
    from lm.models import rnn
    from lm.runtime import pick_device

    dataset = s.resolve(ref, "dataset")
    ids = load_split(dataset, config.split)
    check_length(len(ids), config.lags, config.warmup)  # before minutes of training
    device = pick_device(config.device)
    flows: dict[str, GradientFlow] = {}
    rows = []
    for cell in config.cells:
        artifact = _train_cell(s, dataset, cell, config, log)
        model = rnn.load(artifact.path, device=device)
        flows[cell] = measure(model, ids, config.lags, config.windows, config.batch_size,
                              config.warmup, device)
        m = artifact.metrics
        rows.append({"cell": cell, "model": artifact.ref, "steps": m["steps"],
                     "train_seconds": m["train_seconds"], "valid_ppl": m["best_valid_ppl"],
                     **flows[cell].to_json()})
    plot = _plot_path(s, config, f"{dataset.name}-cells")
    plot_flows(flows, plot, f"gradient flow through time on {dataset.ref} {config.split}, "
                            f"{config.budget:g} s of training each")
    result = {"dataset": dataset.ref, "split": config.split, "budget": config.budget,
              "cells": rows, "plot": str(plot)}
    write_json(plot.with_suffix(".json"), result)
    return result


def _train_cell(s: Store, dataset: Artifact, cell: str, config: DiagnoseConfig,
                log: Callable[[str], None]) -> Artifact:
    """One model of the comparison, trained by the ordinary training stage."""
    from lm.training.config import TrainConfig
    from lm.training.loop import train

    settings = TrainConfig.of(cell=cell, layers=config.layers, emb_size=config.emb_size,
                              hidden_size=config.hidden_size, lr=config.lr,
                              max_time=config.budget, eval_tokens=40_000, seed=config.seed,
                              threads=config.threads, device=config.device)
    log(f"training {cell} for {config.budget:g} s")
    artifact, _ = train(s, dataset, settings, f"{dataset.name}-diagnose-{cell}",
                        use_wandb=False, progress=sys.stderr.isatty(), log=log)
    return artifact


def _plot_path(s: Store, config: DiagnoseConfig, name: str) -> Path:
    path = config.plot or s.root / "diagnoses" / name / "gradient-flow.png"
    if path.suffix.lower() != ".png":
        raise LMError(f"--plot {path} must name a .png file")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _horizon_text(horizon: int | None, lags: int) -> str:
    return f"> {lags}" if horizon is None else str(horizon)


def _shown(lags: int) -> list[int]:
    return sorted({lag for lag in SHOWN_LAGS if lag <= lags} | {lags})


def print_model(result: dict[str, Any]) -> None:
    """The norms at chosen lags (absolute and relative to lag 0), then the horizon."""
    norms, lags = result["norms"], result["lags"]
    table = Table("lag", *(f"‖∂L/∂{part[0]}‖" for part in norms), "relative",
                  title=f"{result['model']} on {result['split']}: layer {result['layer']}, "
                        f"{result['positions']:,} positions")
    for lag in _shown(lags):
        table.add_row(str(lag), *(f"{norms[part][lag]:.3e}" for part in norms),
                      " / ".join(f"{norms[part][lag] / norms[part][0]:.2e}" for part in norms))
    print_table(table)
    horizons = " · ".join(f"{'hidden h' if part == 'hidden' else 'memory cell c'} "
                          f"{_horizon_text(result['horizon'][part], lags)}" for part in norms)
    out.print(f"gradient horizon (first lag below {HORIZON:.0%} of lag 0): {horizons}")
    out.print(f"wrote {result['plot']}")


def print_comparison(result: dict[str, Any]) -> None:
    """The relative norms of every cell side by side, each horizon and training figure."""
    rows, lags = result["cells"], result["cells"][0]["lags"]
    table = Table("lag", *(f"{r['cell']} ‖∂L/∂h‖ rel." for r in rows),
                  title=f"gradient flow on {result['dataset']} {result['split']}")
    for lag in _shown(lags):
        table.add_row(str(lag), *(f"{r['norms']['hidden'][lag] / r['norms']['hidden'][0]:.2e}"
                                  for r in rows))
    print_table(table)
    for r in rows:
        extra = ("" if "cell" not in r["horizon"] else
                 f" (memory cell c: {_horizon_text(r['horizon']['cell'], lags)})")
        out.print(f"{r['cell']}: gradient horizon {_horizon_text(r['horizon']['hidden'], lags)}"
                  f"{extra} · {r['model']} · {r['steps']:,} steps in {r['train_seconds']:.0f} s"
                  f" · valid ppl {r['valid_ppl']:.2f}")
    out.print(f"wrote {result['plot']}")


@with_settings(DiagnoseConfig)
def diagnose(
    ref: str = typer.Argument(..., help="A model; with --compare-cells, a dataset."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    *,
    config: DiagnoseConfig,
) -> None:
    """Gradient flow through time: how far back the loss still reaches into the hidden state."""
    s = store()
    if config.compare_cells:
        result = compare_cells(s, ref, config, (lambda line: err.print(line)) if as_json
                               else out.print)
    else:
        result = diagnose_model(s, ref, config)
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    elif config.compare_cells:
        print_comparison(result)
    else:
        print_model(result)
