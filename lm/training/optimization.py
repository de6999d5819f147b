"""The optimizer, the learning-rate policy and NT-ASGD's running average of the weights.

The policy: drop the learning rate by ``lr_decay`` whenever validation does not improve;
with ``variable_bptt`` (AWD-LSTM) scale each window's rate by its length over ``bptt``; with
``asgd`` (NT-ASGD) keep the rate until validation is worse than the best of all but the last
``nonmono`` evaluations, then average the weights from there on, and validate and save the
average.

With ``schedule`` linear or cosine the rate follows the budget instead: it rises linearly from 0
to ``lr`` over the first ``warmup`` fraction of the budget, then falls to 0 (linearly, or along
half a cosine) exactly as the budget runs out. Progress is the fraction of the budget used
before the step; when several budgets are set (``max_time``, ``max_steps``, ``max_tokens``,
``epochs``) the one nearest its end drives it, as that one ends the run.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch

from lm.training.config import TrainConfig
from lm.training.state import TrainState

ADAMS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam (weight decay as an L2 term), AdamW (decoupled) or SGD, with the config's rate."""
    if config.optimizer in ADAMS:
        return ADAMS[config.optimizer](model.parameters(), lr=config.lr,
                                       betas=(0.9, config.beta2),
                                       weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


class Averager:
    """The running mean of the weights since averaging began (the A of NT-ASGD)."""

    def __init__(self, params: list[torch.Tensor], count: int = 1,
                 saved: list[torch.Tensor] | None = None) -> None:
        self.params = params
        self.count = count
        self.avg = saved if saved is not None else [p.detach().clone() for p in params]

    def update(self) -> None:
        self.count += 1
        torch._foreach_lerp_(self.avg, [p.detach() for p in self.params], 1.0 / self.count)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block."""
        with torch.no_grad():
            kept = [p.detach().clone() for p in self.params]
            torch._foreach_copy_([p.data for p in self.params], self.avg)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_([p.data for p in self.params], kept)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f"avg.{i}": t for i, t in enumerate(self.avg)}


def averaged(averager: Averager | None) -> contextlib.AbstractContextManager:
    """The averaged weights swapped in, when averaging has begun."""
    return averager.swapped_in() if averager else contextlib.nullcontext()


def budget_factor(progress: float, schedule: str, warmup: float) -> float:
    """The fraction of ``lr`` a budget schedule gives at ``progress`` (0 to 1) of the budget."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup:
        return progress / warmup
    decayed = (progress - warmup) / (1.0 - warmup)
    if schedule == "linear":
        return 1.0 - decayed
    return 0.5 * (1.0 + math.cos(math.pi * decayed))


def budget_progress(config: TrainConfig, state: TrainState, epoch_steps: int) -> float:
    """The fraction used of the budget that ends first: time, steps, tokens or epochs.

    ``epoch_steps`` is the number of steps ``epochs`` passes take; time is the run's own clock
    (``state.elapsed_seconds``, carried across resumes).
    """
    used = [state.step / epoch_steps]
    if config.max_steps:
        used.append(state.step / config.max_steps)
    if config.max_tokens:
        used.append(state.train_tokens / config.max_tokens)
    if config.max_time:
        used.append(state.elapsed_seconds / config.max_time)
    return min(max(used), 1.0)


class LearningRate:
    """Applies the policy to the optimizer's groups; the base rate lives in the run state."""

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig,
                 state: TrainState) -> None:
        self.optimizer, self.config, self.state = optimizer, config, state

    @property
    def follows_budget(self) -> bool:
        return self.config.schedule != "plateau"

    def for_window(self, length: int, progress: float = 0.0) -> None:
        """Set the step's rate: the budget schedule's at ``progress`` (with linear or cosine),
        then AWD's variable BPTT, where the step size follows the window's length."""
        config = self.config
        if self.follows_budget:
            self.state.base_lr = config.lr * budget_factor(progress, config.schedule,
                                                           config.warmup)
        elif not config.variable_bptt:
            return  # plateau: the rate changes only after validation
        rate = self.state.base_lr
        if config.variable_bptt:
            rate = rate * length / config.bptt
        for group in self.optimizer.param_groups:
            group["lr"] = rate

    def should_average(self, nats: float, averaging: bool) -> bool:
        """NT-ASGD's trigger: worse than the best of all but the last ``nonmono`` evaluations."""
        if not self.config.asgd or averaging:
            return False
        earlier = [h["valid_loss"] for h in self.state.history]
        nonmono = self.config.nonmono
        return len(earlier) > nonmono and nats > min(earlier[:-nonmono])

    def after_validation(self, improved: bool, averaging: bool) -> str:
        """Drop the rate on a plateau (not while NT-ASGD waits to average, nor when the rate
        follows the budget); say what changed."""
        if improved or self.follows_budget or (self.config.asgd and not averaging):
            return ""
        self.state.base_lr *= self.config.lr_decay
        for group in self.optimizer.param_groups:
            group["lr"] *= self.config.lr_decay
        return f" — lr now {self.state.base_lr:.3g}"
