"""What a training run tells the person watching: progress bar, wandb, the loss curve (with
the gradient norms and clipping of :mod:`lm.training.telemetry` in a second panel).

``LossMeter`` keeps the training loss on the device and reads it every ``log_every`` steps
only, so the loop never waits on the device inside a step; it also keeps the training clock,
which validation pauses do not count towards.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import torch


class LossMeter:
    """Per-step losses summed on the device; their mean, throughput and NaN check on reading."""

    def __init__(self, log_every: int, device: torch.device) -> None:
        self.log_every = log_every
        self.window_loss = torch.zeros((), device=device)
        self.losses = torch.zeros(log_every, device=device)
        self.count = 0  # steps since the last reading
        self.window_start, self.window_tokens = time.time(), 0

    def add(self, step: int, loss: torch.Tensor, tokens: int) -> None:
        """Record step ``step``'s (0-based) loss without reading it."""
        self.losses[step % self.log_every] = loss.detach()
        self.window_loss += loss.detach()
        self.window_tokens += tokens
        self.count += 1

    def unread(self, step: int) -> list[float]:
        """The losses of the steps since the last reading, up to ``step`` (for a checkpoint)."""
        return [float(self.losses[s % self.log_every])
                for s in range(step - self.count, step)]

    def restore(self, step: int, unread: list[float]) -> None:
        """Continue a window that a checkpoint cut: the same sums as if never interrupted."""
        for offset, loss in enumerate(unread):
            self.add(step - len(unread) + offset, torch.tensor(loss), 0)

    def first_non_finite(self, step: int) -> int | None:
        """The 1-based step whose loss was NaN/inf in the window ending at ``step``, if any."""
        for s in range(step - self.count, step):
            if not bool(torch.isfinite(self.losses[s % self.log_every])):
                return s + 1
        return None

    def read(self, step: int) -> tuple[float, float, float]:
        """(mean loss, tokens/s, training seconds) of the window ending at ``step``."""
        mean_loss = float(self.window_loss) / max(self.count, 1)
        self.window_loss.zero_()
        self.count = 0
        now = time.time()
        seconds = now - self.window_start
        tokens_per_s = self.window_tokens / max(seconds, 1e-9)
        self.window_start, self.window_tokens = now, 0
        return mean_loss, tokens_per_s, seconds

    def seconds_since_read(self) -> float:
        return time.time() - self.window_start

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Time spent inside (validation) is not training time."""
        started = time.time()
        try:
            yield
        finally:
            self.window_start += time.time() - started


def wandb_run(name: str, params: dict, run_dir: Path):
    """A wandb run: online if the user is logged in, offline (local files) otherwise."""
    try:
        import wandb
    except ImportError:
        return None
    logged_in = bool(os.environ.get("WANDB_API_KEY")) or _netrc_has_wandb()
    mode = os.environ.get("WANDB_MODE") or ("online" if logged_in else "offline")
    try:
        return wandb.init(project="lm", name=name, config=params, dir=str(run_dir), mode=mode,
                          reinit="finish_previous")
    except Exception as exc:  # a logging failure must not stop training
        print(f"warning: wandb disabled ({str(exc).splitlines()[0][:120]})")
        return None


def _netrc_has_wandb() -> bool:
    netrc = Path.home() / ".netrc"
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def plot_curve(history: list[dict], path: Path, title: str,
               windows: list[dict] | None = None, clip: float = 0.0) -> None:
    """The loss curve; below it, when there are gradient records, the gradient panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not windows:
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        _loss_panel(ax, history, title)
        ax.set_xlabel("step")
    else:
        fig, (ax, low) = plt.subplots(2, 1, figsize=(6, 6.5), dpi=100, sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]})
        _loss_panel(ax, history, title)
        _gradient_panel(low, windows, clip)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _loss_panel(ax, history: list[dict], title: str) -> None:
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["valid_loss"] for h in history], "o-", label="valid")
    train = [(h["step"], h["train_loss"]) for h in history if h.get("train_loss") is not None]
    if train:
        ax.plot(*zip(*train, strict=True), "s--", label="train (last window)")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(f"{title}: training curve")
    ax.grid(alpha=0.3)
    ax.legend()


def _gradient_panel(ax, windows: list[dict], clip: float) -> None:
    """Per logging window: the mean and largest gradient norm before clipping (log scale),
    the clipping threshold, and on the right axis the share of steps that were clipped."""
    finite = [w for w in windows if math.isfinite(w["grad_norm_max"]) and w["grad_norm_max"] > 0]
    steps = [w["step"] for w in finite]
    ax.plot(steps, [w["grad_norm"] for w in finite], "-", color="tab:blue", label="mean norm")
    ax.plot(steps, [w["grad_norm_max"] for w in finite], ".", color="tab:red", ms=4,
            label="largest norm")
    if clip > 0:
        ax.axhline(clip, color="gray", ls=":", label=f"--clip {clip}")
    if steps:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("gradient norm (before clipping)")
    ax.grid(alpha=0.3)
    right = ax.twinx()
    right.plot([w["step"] for w in windows], [w["clip_fraction"] for w in windows], "-",
               color="tab:green", alpha=0.6, label="clipped share")
    right.set_ylim(-0.02, 1.02)
    right.set_ylabel("share of steps clipped", color="tab:green")
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper right")


class ProgressBar:
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
