"""The training stage's settings: each declared once, with its flag's help and its rule.

``lm train``'s options, the keys of a pipeline's ``train`` stage, the checks and the model
artifact's fingerprint all come from these fields (see :mod:`lm.settings`). The network's own
settings live in :class:`lm.models.rnn.ModelConfig`, nested here as ``model``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lm.errors import LMError
from lm.models.rnn import ModelConfig
from lm.runtime import PRECISIONS
from lm.settings import build, check_settings, nested, setting
from lm.training.sizing import SIZES

# adamw: Adam with decoupled weight decay (Loshchilov & Hutter), where adam's is an L2 term.
OPTIMIZERS = ("adam", "adamw", "sgd")
# How the learning rate moves: "plateau" drops it by --lr-decay when validation stalls;
# "linear" and "cosine" warm it up, then decay it to zero exactly as the budget runs out.
SCHEDULES = ("plateau", "linear", "cosine")


def _positive(value: float) -> bool:
    return value > 0


def _non_negative(value: float) -> bool:
    return value >= 0


def _fraction(value: float) -> bool:
    return 0 <= value < 1


@dataclass
class TrainConfig:
    model: ModelConfig = nested(ModelConfig)
    size: str = setting("given", "given: the network and batch the flags say; auto: the "
                        "width and batch that the lever study shows learn most in the budget "
                        "(--max-tokens, or --max-time with a short probe of each candidate's "
                        "speed here).", choices=SIZES, later=True)
    bptt: int = setting(64, "Truncated-BPTT length.", at_least=1)
    batch_size: int = setting(32, "Parallel rows of the token stream.", at_least=1)
    batch_start: int | None = setting(None, "Grow the batch: start with this many of the "
                                      "--batch-size rows and add rows linearly over the first "
                                      "--batch-ramp training tokens.", at_least=1, later=True)
    batch_ramp: int = setting(1_000_000, "With --batch-start: the training tokens over which "
                              "the batch grows to --batch-size.", at_least=1, later=True)
    optimizer: str = setting("adam", "adam, adamw (decoupled weight decay) or sgd.",
                             choices=OPTIMIZERS)
    lr: float = setting(2e-3, "Learning rate.", valid=_positive, rule="positive")
    lr_decay: float = setting(0.25, "Multiply the lr by this when validation does not "
                              "improve.")
    weight_decay: float = setting(0.0, "Weight decay: an L2 term with adam and sgd, decoupled "
                                  "with adamw.")
    beta2: float = setting(0.999, "Adam's β₂: the decay of its running mean of squared "
                           "gradients (lower forgets old gradients sooner).", valid=_fraction,
                           rule="a fraction ≥ 0 and < 1", later=True)
    clip: float = setting(0.25, "Gradient-norm clipping (0: off).", valid=_non_negative,
                          rule="≥ 0 (0 turns clipping off)")
    epochs: int = setting(10, "Passes over the training split.", at_least=1, resumable=True)
    max_steps: int | None = setting(None, "Stop after this many steps in all.", at_least=1,
                                    resumable=True)
    max_time: float | None = setting(None, "Stop after this many seconds.", valid=_positive,
                                     rule="positive seconds", resumable=True)
    max_tokens: int | None = setting(None, "Stop after this many training tokens in all.",
                                     at_least=1, later=True, resumable=True)
    schedule: str = setting("plateau", "Learning-rate schedule: plateau (drop by --lr-decay "
                            "when validation stalls), or linear or cosine (warm up, then "
                            "decay to zero as the first budget to end runs out).",
                            choices=SCHEDULES, later=True)
    warmup: float = setting(0.0, "Linear/cosine: warm the rate up over this fraction of the "
                            "budget (e.g. 0.05).", valid=_fraction, rule="a fraction ≥ 0 and "
                            "< 1", later=True)
    eval_every: int | None = setting(None, "Validate every N steps (default: every epoch).",
                                     at_least=1)
    eval_tokens: int | None = setting(None, "Validate on the first N tokens only.", at_least=1)
    checkpoint_every: int = setting(500, "Write a resumable checkpoint every N steps.",
                                    at_least=1, resumable=True)
    log_every: int = setting(20, "Read the loss from the device every N steps.", at_least=1,
                             resumable=True)
    seed: int = setting(0, "Random seed.")
    device: str = setting("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, mps.",
                          resumable=True)
    # Speed (the same learning, faster).
    precision: str = setting("auto", "auto (bf16 autocast on GPUs and AMX CPUs, else fp32), "
                             "fp32 or bf16. Weights and loss stay fp32.", choices=PRECISIONS,
                             later=True)
    compile: bool = setting(False, "torch.compile the training step (the cell step with "
                            "--impl explicit).", later=True, resumable=True)
    threads: int | None = setting(None, "CPU threads (default: one per core; fewer can be "
                                  "faster when other programs load the cores).", at_least=1,
                                  later=True, resumable=True)
    # AWD-LSTM optimisation (the regularisers are the model's).
    variable_bptt: bool = setting(False, "AWD: draw each window's length around --bptt (lr "
                                  "scaled to match).", later=True)
    ar: float = setting(0.0, "AWD: activation regularisation weight (e.g. 2).",
                        valid=_non_negative, rule="≥ 0", later=True)
    tar: float = setting(0.0, "AWD: temporal activation regularisation (e.g. 1).",
                         valid=_non_negative, rule="≥ 0", later=True)
    asgd: bool = setting(False, "NT-ASGD: average the weights once validation stalls (with "
                         "--optimizer sgd).", later=True)
    nonmono: int = setting(5, "NT-ASGD: evaluations without beating the older best before "
                           "averaging starts.", at_least=1, later=True)

    @classmethod
    def of(cls, **values: Any) -> TrainConfig:
        """A config from flat setting names, as flags and pipeline keys spell them."""
        return build(cls, values)

    def check(self) -> None:
        check_settings(self)
        self.model.check()
        if self.warmup and self.schedule == "plateau":
            raise LMError(f"--warmup {self.warmup} needs a budget schedule: add --schedule "
                          "linear or --schedule cosine, or drop --warmup")
        if self.batch_start is not None and self.batch_start > self.batch_size:
            raise LMError(f"--batch-start {self.batch_start} must not exceed --batch-size "
                          f"{self.batch_size}: the batch grows from the one to the other")

    def model_for(self, vocab_size: int) -> ModelConfig:
        """The network for a dataset's vocabulary."""
        cutoffs = self.model.cutoffs
        if self.model.softmax == "adaptive" and cutoffs and vocab_size <= max(cutoffs):
            raise LMError(f"--cutoffs {','.join(map(str, cutoffs))} must stay below the "
                          f"vocabulary size ({vocab_size})")
        return ModelConfig(**{**vars(self.model), "vocab_size": vocab_size})
