"""Gradient telemetry: how large the gradients were, how often clipping fired, when they exploded.

Every step's global gradient norm, taken before clipping, is written into a small buffer on
the device, so the loop never waits on the device inside a step (the same discipline as the
loss in :mod:`lm.training.reporting`). The buffer is read with the loss every ``log_every``
steps; each reading is one logging window: its mean, median and largest norm, the step of the
largest, and the share of its steps where clipping fired (the norm exceeded ``--clip``: only
then does ``clip_grad_norm_`` change the gradients). The norms read since the last validation
are kept on the host, so each validation entry of ``history.json`` can give exact figures for
the steps it covers.

An *explosion* is a norm that is not finite or more than ``EXPLOSION`` times the typical norm
of the run (the median of the windows' medians, robust to the spikes it is compared with):
two orders of magnitude, as in the exploding-gradient plots of Pascanu et al. (2013). When the
run stops, the first window that exploded is named in one line (its largest norm and step).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import torch

EXPLOSION = 100.0


def clip_and_measure(params: Sequence[torch.Tensor], clip: float) -> torch.Tensor:
    """The global L2 norm of the gradients before clipping (a device scalar, never read here);
    the gradients are clipped to ``clip`` when it is positive."""
    if clip > 0:
        return torch.nn.utils.clip_grad_norm_(params, clip)
    return torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])


def _size(norm: float) -> float:
    """Order norms by size with NaN the largest of all (a NaN gradient is the worst case)."""
    return math.inf if math.isnan(norm) else norm


def clipped(norm: float, clip: float) -> bool:
    """Whether clipping fired: the norm exceeded ``clip`` (NaN/inf included), clipping on."""
    return clip > 0 and not norm <= clip


def summary(norms: Sequence[float], clip: float) -> dict[str, Any]:
    """The figures of some steps' norms: mean, largest and the share where clipping fired."""
    if not norms:
        return {"grad_norm": None, "grad_norm_max": None, "clip_fraction": None}
    fired = sum(clipped(n, clip) for n in norms)
    return {"grad_norm": math.fsum(norms) / len(norms), "grad_norm_max": max(norms, key=_size),
            "clip_fraction": fired / len(norms)}


def window(norms: Sequence[float], last_step: int, clip: float) -> dict[str, Any]:
    """One logging window ending at the 1-based step ``last_step``: its summary, median, the
    number of steps and the step of its largest norm."""
    peak = max(range(len(norms)), key=lambda i: _size(norms[i]))
    finite = [n for n in norms if math.isfinite(n)]
    return {"step": last_step, "steps": len(norms), **summary(norms, clip),
            "grad_norm_median": statistics.median(finite) if finite else math.nan,
            "max_step": last_step - len(norms) + 1 + peak}


def typical(windows: Sequence[dict[str, Any]]) -> float:
    """The run's typical norm: the median of the windows' (finite) medians."""
    medians = [w["grad_norm_median"] for w in windows if math.isfinite(w["grad_norm_median"])]
    return statistics.median(medians) if medians else math.nan


def explosion(windows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The first window whose largest norm is an explosion (judged against the run's typical
    norm): its step and norm, and how many windows exploded in all."""
    usual = typical(windows)
    exploded = [w for w in windows if not (math.isfinite(w["grad_norm_max"])
                                           and w["grad_norm_max"] <= EXPLOSION * usual)]
    if not exploded:
        return None
    first = exploded[0]
    return {"step": first["max_step"], "norm": first["grad_norm_max"], "typical": usual,
            "windows": len(exploded)}


def explosion_line(found: dict[str, Any], clip: float) -> str:
    """One line a person reads when the run stops: where, how large, what to do."""
    norm, usual, later = found["norm"], found["typical"], found["windows"] - 1
    finite = math.isfinite(norm)
    times = f", {norm / usual:,.0f}× the run's median {usual:.3g}" if finite else ""
    more = f" (and in {later} later logging window{'s' * (later > 1)})" if later else ""
    advice = (f"clipping scaled it down to --clip {clip}" if clip > 0 and finite
              else "lower --lr" + ("" if clip > 0 else " or set --clip"))
    return (f"warning: the gradients exploded at step {found['step']}: norm {norm:.3g}{times}"
            f"{more}; {advice}")


class GradientMeter:
    """Per-step gradient norms on the device, read every ``log_every`` steps."""

    def __init__(self, log_every: int, device: torch.device) -> None:
        self.log_every = log_every
        self.norms = torch.zeros(log_every, device=device)
        self.count = 0  # steps since the last reading

    def add(self, step: int, norm: torch.Tensor) -> None:
        """Record the 0-based step ``step``'s norm without reading it."""
        self.norms[step % self.log_every] = norm.detach()
        self.count += 1

    def unread(self, step: int) -> list[float]:
        """The norms of the steps since the last reading, up to ``step`` (one host read)."""
        if not self.count:
            return []
        order = [s % self.log_every for s in range(step - self.count, step)]
        return self.norms[order].tolist()

    def restore(self, step: int, unread: list[float]) -> None:
        """Continue a window that a checkpoint cut, with the same values as before."""
        for offset, norm in enumerate(unread):
            self.add(step - len(unread) + offset, torch.tensor(norm))

    def read(self, step: int) -> list[float]:
        """The window's norms, in step order; the next window starts empty."""
        norms = self.unread(step)
        self.count = 0
        return norms
