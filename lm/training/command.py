"""``lm train``: the training stage's flags (declared once in ``TrainConfig``), then the loop."""

from __future__ import annotations

import contextlib
import os
import sys

import typer

from lm import tracking
from lm.cli_common import announce, err, out, store
from lm.settings import with_settings
from lm.training.config import TrainConfig


@with_settings(TrainConfig)
def train(
    dataset: str = typer.Argument(..., help="Dataset artifact (NAME, NAME@v2, ...)."),
    name: str | None = typer.Option(None, help="Model name (default: the dataset's)."),
    resume: bool = typer.Option(False, help="Continue the run NAME from its checkpoint."),
    wandb: bool = typer.Option(True, help="Log to wandb (offline unless logged in)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    *,
    config: TrainConfig,
) -> None:
    """Train an RNN language model on a dataset artifact."""
    from lm.training.loop import Interrupted
    from lm.training.loop import train as run_train

    s = store()
    data = s.resolve(dataset, "dataset")
    main = os.environ.get("RANK", "0") == "0"  # under torchrun, only rank 0 reports
    # --no-wandb means no wandb at all, so the model is not logged as a wandb Artifact either
    # (lm --wandb / LM_WANDB=1 decide that otherwise).
    quiet = contextlib.nullcontext() if wandb else tracking.switched(False)
    try:
        with quiet:
            artifact, reused = run_train(s, data, config, name or data.name, resume=resume,
                                         use_wandb=wandb,
                                         progress=progress and sys.stderr.isatty(),
                                         log=out.print)
    except Interrupted as stop:
        if main:
            err.print(f"interrupted: {stop}")
        raise typer.Exit(130) from None
    if not main:
        return
    announce(out, artifact, reused)
    m = artifact.metrics
    out.print(f"best valid perplexity {m['best_valid_ppl']:.2f} at step {m['best_step']} · "
              f"{m['steps']} steps · {m['train_seconds']:.0f} s · {m['tokens_per_s']:,.0f} tok/s")
