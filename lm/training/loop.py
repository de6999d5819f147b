"""The ``train`` stage: one readable loop, top to bottom.

Truncated BPTT over the training stream with the hidden state carried and detached, gradient
clipping, Adam or SGD with a learning-rate drop when validation stops improving, the best
weights kept, and a resumable checkpoint written periodically and on Ctrl-C/SIGTERM. The loop
never waits on the device inside a step: losses are summed on the device and read every
``log_every`` steps.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from lm.artifacts import Artifact, Store, fingerprint, write_json
from lm.data.prepare import load_split, split_characters
from lm.errors import LMError
from lm.evaluation.perplexity import evaluate
from lm.models import rnn
from lm.training import checkpoint as ckpt
from lm.training.batching import batchify, get_batch, steps_per_epoch


@dataclass
class TrainConfig:
    cell: str = "lstm"
    layers: int = 2
    emb_size: int = 256
    hidden_size: int = 256
    dropout: float = 0.2
    tied: bool = False
    bptt: int = 64
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 2e-3
    lr_decay: float = 0.25
    weight_decay: float = 0.0
    clip: float = 0.25
    epochs: int = 10
    max_steps: int | None = None
    max_time: float | None = None
    eval_every: int | None = None
    eval_tokens: int | None = None
    checkpoint_every: int = 500
    log_every: int = 20
    seed: int = 0
    device: str = "auto"

    def check(self) -> None:
        positive = {"--bptt": self.bptt, "--batch-size": self.batch_size, "--epochs": self.epochs,
                    "--checkpoint-every": self.checkpoint_every, "--log-every": self.log_every}
        for flag, value in positive.items():
            if value < 1:
                raise LMError(f"{flag} must be at least 1, not {value}")
        if not self.lr > 0 or math.isnan(self.lr):
            raise LMError(f"--lr must be positive, not {self.lr}")
        if self.clip < 0:
            raise LMError(f"--clip must be ≥ 0 (0 turns clipping off), not {self.clip}")
        if self.optimizer not in ("adam", "sgd"):
            raise LMError(f"--optimizer must be adam or sgd, not {self.optimizer!r}")
        for flag, value in (("--max-steps", self.max_steps), ("--eval-every", self.eval_every),
                            ("--eval-tokens", self.eval_tokens)):
            if value is not None and value < 1:
                raise LMError(f"{flag} must be at least 1, not {value}")
        if self.max_time is not None and not self.max_time > 0:
            raise LMError(f"--max-time must be positive seconds, not {self.max_time}")


def pick_device(requested: str) -> torch.device:
    """CUDA, then MPS, then CPU; a device that is asked for but absent is an error."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise LMError(
            f"unknown --device {requested!r}: use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LMError(f"--device {requested} asked for CUDA, but no CUDA GPU is available: "
                      "use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise LMError(f"--device {requested} asked for MPS, which is not available: use cpu")
    return device


class _Stop:
    """Turns SIGINT/SIGTERM into a flag the loop checks, so it can checkpoint and exit."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Interrupted(Exception):
    """Training stopped by a signal after writing a resumable checkpoint."""


def train(store: Store, dataset: Artifact, config: TrainConfig, name: str, resume: bool = False,
          use_wandb: bool = True, progress: bool = True, log=print) -> tuple[Artifact, bool]:
    """Train a model on a dataset artifact; returns (model artifact, reused)."""
    config.check()
    params = asdict(config)
    print_ = fingerprint("model", [dataset], params)
    # A run may be resumed with a different length or device, not with different learning.
    how_long = ("epochs", "max_steps", "max_time", "checkpoint_every", "log_every", "device")
    run_print = fingerprint("run", [dataset], {k: v for k, v in params.items()
                                               if k not in how_long})
    if not resume and config.max_time is None:
        cached = store.find_cached("model", name, print_)
        if cached is not None:
            return cached, True

    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    if device.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    vocab_size = dataset.metrics["vocab_size"]
    train_rows = batchify(load_split(dataset, "train"), config.batch_size).to(device)
    if train_rows.shape[1] - 1 < config.bptt:
        raise LMError(f"--bptt {config.bptt} is longer than each batch row "
                      f"({train_rows.shape[1] - 1} tokens): lower --bptt or --batch-size")
    valid_ids = load_split(dataset, "valid")
    if len(valid_ids) == 0:
        log("warning: the dataset has no valid split; validating on the train split")
        valid_ids = load_split(dataset, "train")
    if config.eval_tokens:
        valid_ids = valid_ids[: config.eval_tokens]
    per_epoch = steps_per_epoch(train_rows, config.bptt)
    total_steps = config.epochs * per_epoch
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    eval_every = config.eval_every or per_epoch

    model_config = rnn.ModelConfig(vocab_size, config.cell, config.layers, config.emb_size,
                                   config.hidden_size, config.dropout, config.tied)
    model = rnn.RNNLM(model_config).to(device)
    if config.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr,
                                    weight_decay=config.weight_decay)

    run_dir = store.root / "runs" / name
    state_dir = run_dir / "checkpoint"
    record: dict[str, Any] = {"step": 0, "best_valid": None, "bad_evals": 0, "history": [],
                              "train_seconds": 0.0, "fingerprint": run_print}
    hidden = model.init_hidden(config.batch_size, device)
    found = ckpt.find_checkpoint(state_dir)
    if resume:
        if found is None:
            raise LMError(f"nothing to resume for {name!r} in {run_dir}: run without --resume")
        saved = json.loads((found / ckpt.STATE).read_text())
        if saved.get("fingerprint") != run_print:
            raise LMError(f"the checkpoint in {run_dir} was made with other data or settings: "
                          "resume with the same flags, or train without --resume")
        record, hidden = ckpt.load_checkpoint(found, model, optimizer, device)
        log(f"resuming {name} at step {record['step']}")
    elif found is not None:
        log(f"note: starting {name} afresh; the earlier run's checkpoint is replaced "
            "(use --resume to continue it)")
    run_dir.mkdir(parents=True, exist_ok=True)

    tracker = _wandb_run(name, params, run_dir) if use_wandb else None
    valid_chars = split_characters(dataset, "valid")

    def run_validation(step: int) -> float:
        result = evaluate(model, valid_ids, batch_size=10, device=device)
        ppl = result.perplexity
        if not math.isfinite(result.nats_per_token):
            raise LMError(
                f"the validation loss became NaN/inf at step {step}: lower --lr (now "
                f"{config.lr}) or set --clip (now {config.clip}); the best checkpoint so far "
                f"is kept in {run_dir}"
            )
        improved = record["best_valid"] is None or ppl < record["best_valid"]
        if improved:
            record["best_valid"] = ppl
            record["best_step"] = step
            record["bad_evals"] = 0
            rnn.save(model, run_dir, "best.safetensors")
        else:
            record["bad_evals"] += 1
            for group in optimizer.param_groups:  # drop the learning rate on a plateau
                group["lr"] *= config.lr_decay
        entry = {"step": step, "tokens": step * config.batch_size * config.bptt,
                 "train_loss": record.get("last_loss"), "valid_loss": result.nats_per_token,
                 "valid_ppl": ppl, "lr": optimizer.param_groups[0]["lr"],
                 "seconds": record["train_seconds"]}
        if valid_chars and len(valid_ids) == dataset.metrics["splits"]["valid"]["tokens"]:
            entry["valid_bpc"] = result.bits_per_char
        record["history"].append(entry)
        if tracker:
            tracker.log({k: v for k, v in entry.items() if v is not None}, step=step)
        log(f"step {step}: valid ppl {ppl:.2f}" + (" (best)" if improved else
            f" — lr now {optimizer.param_groups[0]['lr']:.3g}"))
        return ppl

    def save_state() -> None:
        ckpt.save_checkpoint(state_dir, model, optimizer, hidden, record)

    # ---------------------------------------------------------------- the loop
    model.train()
    start_step = record["step"]
    started = time.time()
    window_loss = torch.zeros((), device=device)
    losses = torch.zeros(config.log_every, device=device)
    window_start, window_tokens, tokens_per_s = time.time(), 0, 0.0
    bar = _progress(progress, total_steps, start_step)
    stopped_by: int | None = None
    with _Stop() as stop:
        step = start_step
        while step < total_steps:
            in_epoch = step % per_epoch
            if in_epoch == 0:
                hidden = model.init_hidden(config.batch_size, device)
            inputs, targets = get_batch(train_rows, in_epoch, config.bptt)
            hidden = rnn.detach(hidden)
            logits, hidden = model(inputs, hidden)
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            losses[step % config.log_every] = loss.detach()
            window_loss += loss.detach()
            window_tokens += targets.numel()
            step += 1
            record["step"] = step

            if step % config.log_every == 0 or step == total_steps:
                count = (step - 1) % config.log_every + 1
                recent = losses[:count]
                if not bool(torch.isfinite(recent).all()):
                    bad = step - count + int((~torch.isfinite(recent)).nonzero()[0])
                    raise LMError(
                        f"the training loss became NaN/inf at step {bad + 1}: lower --lr "
                        f"(now {config.lr}) or set --clip (now {config.clip}); the best "
                        f"checkpoint so far is kept in {run_dir}"
                    )
                mean_loss = float(window_loss) / count
                window_loss.zero_()
                now = time.time()
                tokens_per_s = window_tokens / max(now - window_start, 1e-9)
                record["train_seconds"] += now - window_start
                window_start, window_tokens = now, 0
                record["last_loss"] = mean_loss
                if tracker:
                    tracker.log({"train_loss": mean_loss, "tokens_per_s": tokens_per_s}, step=step)
                bar.update(step, mean_loss, tokens_per_s)
            if step % eval_every == 0 or step == total_steps:
                run_validation(step)
            if step % config.checkpoint_every == 0:
                save_state()
            if stop.signal is not None:
                stopped_by = stop.signal
                break
            if config.max_time and time.time() - started > config.max_time:
                if step % eval_every != 0:
                    run_validation(step)
                break
    bar.close()
    record["train_seconds"] += time.time() - window_start
    save_state()
    if tracker:
        tracker.finish()
    if stopped_by is not None:
        raise Interrupted(f"stopped by signal {stopped_by} at step {record['step']}; "
                          f"resume with: lm train {dataset.name} --name {name} --resume")

    seconds = record["train_seconds"]
    with store.create("model", name, [dataset], params) as pending:
        model_best = rnn.load(run_dir, "best.safetensors", device="cpu")
        rnn.save(model_best, pending.path)
        (pending.path / "tokenizer.json").write_bytes(dataset.file("tokenizer.json").read_bytes())
        write_json(pending.path / "history.json", record["history"])
        _plot_curve(record["history"], pending.path / "curve.png", name)
        pending.metrics = {
            "best_valid_ppl": record["best_valid"],
            "best_step": record.get("best_step"),
            "steps": record["step"],
            "epochs": record["step"] / per_epoch,
            "train_tokens": record["step"] * config.batch_size * config.bptt,
            "train_seconds": seconds,
            "tokens_per_s": record["step"] * config.batch_size * config.bptt / max(seconds, 1e-9),
            "parameters": sum(p.numel() for p in model_best.parameters()),
            "device": str(device),
        }
        pending.extra["level"] = dataset.manifest.get("level")
        pending.extra["run_dir"] = str(run_dir)
    artifact = store.resolve(pending.extra["ref"], "model")
    return artifact, False


def _wandb_run(name: str, params: dict, run_dir: Path):
    """A wandb run: online if the user is logged in, offline (local files) otherwise."""
    try:
        import wandb
    except ImportError:
        return None
    logged_in = bool(os.environ.get("WANDB_API_KEY")) or _netrc_has_wandb()
    mode = os.environ.get("WANDB_MODE") or ("online" if logged_in else "offline")
    try:
        return wandb.init(project="lm", name=name, config=params, dir=str(run_dir), mode=mode,
                          reinit=True)
    except Exception as exc:  # a logging failure must not stop training
        print(f"warning: wandb disabled ({str(exc).splitlines()[0][:120]})")
        return None


def _netrc_has_wandb() -> bool:
    netrc = Path.home() / ".netrc"
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def _plot_curve(history: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["valid_loss"] for h in history], "o-", label="valid")
    train = [(h["step"], h["train_loss"]) for h in history if h.get("train_loss") is not None]
    if train:
        ax.plot(*zip(*train, strict=True), "s--", label="train (last window)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(f"{title}: training curve")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


class _progress:
    """A rich progress bar with loss, perplexity and tokens/s, or nothing."""

    def __init__(self, enabled: bool, total: int, completed: int) -> None:
        self.bar = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]} ppl {task.fields[ppl]} "
                           "{task.fields[speed]} tok/s"),
                TimeElapsedColumn(), TimeRemainingColumn(),
            )
            self.task = self.bar.add_task("train", total=total, completed=completed,
                                          loss="-", ppl="-", speed="-")
            self.bar.start()

    def update(self, step: int, loss: float, speed: float) -> None:
        if self.bar:
            self.bar.update(self.task, completed=step, loss=f"{loss:.3f}",
                            ppl=f"{math.exp(min(loss, 50)):.1f}", speed=f"{speed:,.0f}")

    def close(self) -> None:
        if self.bar:
            self.bar.stop()
