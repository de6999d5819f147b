"""A run's progress: what a checkpoint restores beside the tensors (``state.json``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class TrainState:
    """The counters, the best validation so far and the history of one training run."""

    fingerprint: str            # the data and learning settings this run belongs to
    base_lr: float              # the learning rate before AWD's per-window scaling
    step: int = 0
    best_valid: float | None = None
    best_step: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0  # wall time spent training, validation excluded
    train_tokens: int = 0
    # The run's own clock: wall seconds in the training loop so far, validation included and
    # across resumes (to the last checkpoint). A time budget's schedule and stop use it.
    elapsed_seconds: float = 0.0
    last_loss: float | None = None
    asgd_from: int | None = None  # the step NT-ASGD began averaging, if it has
    avg_count: int = 0
    resumed_at: list[int] = field(default_factory=list)  # the steps --resume continued from
    unread_losses: list[float] = field(default_factory=list)  # this log window's, so far
    # Gradient telemetry (lm.training.telemetry): this log window's unread norms, the norms
    # read since the last validation, and one record per logging window.
    unread_grad_norms: list[float] = field(default_factory=list)
    grad_since_eval: list[float] = field(default_factory=list)
    grad_windows: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainState:
        """Read a saved state; keys this version does not know (older records) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def improves(self, perplexity: float) -> bool:
        return self.best_valid is None or perplexity < self.best_valid
