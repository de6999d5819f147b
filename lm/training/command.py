"""``lm train``: flags of the training stage, parsed and handed to the loop."""

from __future__ import annotations

import os
import sys

import typer

from lm.cli_common import announce, err, out, store
from lm.errors import LMError


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
    softmax: str = typer.Option("full", help="full, or adaptive (AdaptiveLogSoftmaxWithLoss: "
                                "much faster for large word vocabularies)."),
    cutoffs: str | None = typer.Option(None, help="Adaptive-softmax cluster bounds, e.g. "
                                       "2000,10000 (default: by vocabulary size)."),
    precision: str = typer.Option("auto", help="auto (bf16 autocast on GPUs and AMX CPUs, "
                                  "else fp32), fp32 or bf16. Weights and loss stay fp32."),
    compile: bool = typer.Option(False, help="torch.compile the training step (the cell "
                                 "step with --impl explicit)."),
    impl: str = typer.Option("fused", help="fused (cuDNN/oneDNN) or explicit (the cell "
                             "equations of lm.models.cells)."),
    threads: int | None = typer.Option(None, help="CPU threads (default: one per core; "
                                       "fewer can be faster when other programs load the "
                                       "cores)."),
    locked_dropout: bool = typer.Option(False, help="AWD: one dropout mask per sequence "
                                        "(variational) on inputs, between layers, output."),
    dropout_input: float | None = typer.Option(None, help="Dropout on the embeddings "
                                               "(default: --dropout)."),
    dropout_hidden: float | None = typer.Option(None, help="Dropout between layers "
                                                "(default: --dropout)."),
    dropout_embed: float = typer.Option(0.0, help="AWD: drop whole words from the "
                                        "embedding matrix."),
    weight_drop: float = typer.Option(0.0, help="AWD: DropConnect on the hidden-to-hidden "
                                      "weights."),
    variable_bptt: bool = typer.Option(False, help="AWD: draw each window's length around "
                                       "--bptt (lr scaled to match)."),
    ar: float = typer.Option(0.0, help="AWD: activation regularisation weight (e.g. 2)."),
    tar: float = typer.Option(0.0, help="AWD: temporal activation regularisation (e.g. 1)."),
    asgd: bool = typer.Option(False, help="NT-ASGD: average the weights once validation "
                              "stalls (with --optimizer sgd)."),
    nonmono: int = typer.Option(5, help="NT-ASGD: evaluations without beating the older "
                                "best before averaging starts."),
    resume: bool = typer.Option(False, help="Continue the run NAME from its checkpoint."),
    wandb: bool = typer.Option(True, help="Log to wandb (offline unless logged in)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Train an RNN language model on a dataset artifact."""
    from lm.training.loop import Interrupted, TrainConfig
    from lm.training.loop import train as run_train

    s = store()
    data = s.resolve(dataset, "dataset")
    try:
        bounds = [int(c) for c in cutoffs.split(",")] if cutoffs else None
    except ValueError:
        raise LMError(f"--cutoffs takes comma-separated integers, e.g. 2000,10000, "
                      f"not {cutoffs!r}") from None
    config = TrainConfig(
        cell=cell, layers=layers, emb_size=emb_size, hidden_size=hidden_size, dropout=dropout,
        tied=tied, bptt=bptt, batch_size=batch_size, optimizer=optimizer, lr=lr,
        lr_decay=lr_decay, weight_decay=weight_decay, clip=clip, epochs=epochs,
        max_steps=max_steps, max_time=max_time, eval_every=eval_every, eval_tokens=eval_tokens,
        checkpoint_every=checkpoint_every, log_every=log_every, seed=seed, device=device,
        softmax=softmax, cutoffs=bounds, precision=precision, compile=compile, impl=impl,
        threads=threads,
        locked_dropout=locked_dropout, dropout_input=dropout_input,
        dropout_hidden=dropout_hidden, dropout_embed=dropout_embed, weight_drop=weight_drop,
        variable_bptt=variable_bptt, ar=ar, tar=tar, asgd=asgd, nonmono=nonmono)
    main = os.environ.get("RANK", "0") == "0"  # under torchrun, only rank 0 reports
    try:
        artifact, reused = run_train(s, data, config, name or data.name, resume=resume,
                                     use_wandb=wandb, progress=progress and sys.stderr.isatty(),
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
