"""The optimizer, the learning-rate policy and NT-ASGD's running average of the weights.

The policy: drop the learning rate by ``lr_decay`` whenever validation does not improve;
with ``variable_bptt`` (AWD-LSTM) scale each window's rate by its length over ``bptt``; with
``asgd`` (NT-ASGD) keep the rate until validation is worse than the best of all but the last
``nonmono`` evaluations, then average the weights from there on, and validate and save the
average.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from lm.training.config import TrainConfig
from lm.training.state import TrainState


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr,
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


class LearningRate:
    """Applies the policy to the optimizer's groups; the base rate lives in the run state."""

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig,
                 state: TrainState) -> None:
        self.optimizer, self.config, self.state = optimizer, config, state

    def for_window(self, length: int) -> None:
        """AWD's variable BPTT: the step size follows the window's length."""
        if self.config.variable_bptt:
            for group in self.optimizer.param_groups:
                group["lr"] = self.state.base_lr * length / self.config.bptt

    def should_average(self, nats: float, averaging: bool) -> bool:
        """NT-ASGD's trigger: worse than the best of all but the last ``nonmono`` evaluations."""
        if not self.config.asgd or averaging:
            return False
        earlier = [h["valid_loss"] for h in self.state.history]
        nonmono = self.config.nonmono
        return len(earlier) > nonmono and nats > min(earlier[:-nonmono])

    def after_validation(self, improved: bool, averaging: bool) -> str:
        """Drop the rate on a plateau (not while NT-ASGD waits to average); say what changed."""
        if improved or (self.config.asgd and not averaging):
            return ""
        self.state.base_lr *= self.config.lr_decay
        for group in self.optimizer.param_groups:
            group["lr"] *= self.config.lr_decay
        return f" — lr now {self.state.base_lr:.3g}"
