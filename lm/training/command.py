"""``lm train``: flags of the training stage, parsed and handed to the loop."""

from __future__ import annotations

import sys

import typer

from lm.cli_common import announce, err, out, store


def train(
    dataset: str = typer.Argument(..., help="Dataset artifact (NAME, NAME@v2, ...)."),
    name: str | None = typer.Option(None, help="Model name (default: the dataset's)."),
    cell: str = typer.Option("lstm", help="rnn-tanh, rnn-relu, gru or lstm."),
    layers: int = typer.Option(2, help="Stacked recurrent layers."),
    emb_size: int = typer.Option(256, help="Embedding size."),
    hidden_size: int = typer.Option(256, help="Hidden state size."),
    dropout: float = typer.Option(0.2, help="Dropout on embeddings, between layers and output."),
    tied: bool = typer.Option(False, help="Tie input and output embeddings."),
    bptt: int = typer.Option(64, help="Truncated-BPTT length."),
    batch_size: int = typer.Option(32, help="Parallel rows of the token stream."),
    optimizer: str = typer.Option("adam", help="adam or sgd."),
    lr: float = typer.Option(2e-3, help="Learning rate."),
    lr_decay: float = typer.Option(0.25, help="Multiply the lr by this when validation "
                                   "does not improve."),
    weight_decay: float = typer.Option(0.0, help="L2 weight decay."),
    clip: float = typer.Option(0.25, help="Gradient-norm clipping (0: off)."),
    epochs: int = typer.Option(10, help="Passes over the training split."),
    max_steps: int | None = typer.Option(None, help="Stop after this many steps in all."),
    max_time: float | None = typer.Option(None, help="Stop after this many seconds."),
    eval_every: int | None = typer.Option(None, help="Validate every N steps "
                                             "(default: every epoch)."),
    eval_tokens: int | None = typer.Option(None, help="Validate on the first N tokens only."),
    checkpoint_every: int = typer.Option(500, help="Write a resumable checkpoint every N steps."),
    log_every: int = typer.Option(20, help="Read the loss from the device every N steps."),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps."),
    resume: bool = typer.Option(False, help="Continue the run NAME from its checkpoint."),
    wandb: bool = typer.Option(True, help="Log to wandb (offline unless logged in)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Train an RNN language model on a dataset artifact."""
    from lm.training.loop import Interrupted, TrainConfig
    from lm.training.loop import train as run_train

    s = store()
    data = s.resolve(dataset, "dataset")
    config = TrainConfig(cell, layers, emb_size, hidden_size, dropout, tied, bptt, batch_size,
                         optimizer, lr, lr_decay, weight_decay, clip, epochs, max_steps,
                         max_time, eval_every, eval_tokens, checkpoint_every, log_every, seed,
                         device)
    try:
        artifact, reused = run_train(s, data, config, name or data.name, resume=resume,
                                     use_wandb=wandb, progress=progress and sys.stderr.isatty(),
                                     log=out.print)
    except Interrupted as stop:
        err.print(f"interrupted: {stop}")
        raise typer.Exit(130) from None
    announce(out, artifact, reused)
    m = artifact.metrics
    out.print(f"best valid perplexity {m['best_valid_ppl']:.2f} at step {m['best_step']} · "
              f"{m['steps']} steps · {m['train_seconds']:.0f} s · {m['tokens_per_s']:,.0f} tok/s")
