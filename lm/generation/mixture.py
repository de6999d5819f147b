"""Sampling from the mixture that ``lm perplexity --mix`` measures: λ·p_model + (1−λ)·p_ngram.

Both models read every token, and each step's next-token distribution is their interpolation,
so every decoding rule (forms, acrostics, rhymes, metre, top-k/p, beam search, the report's
log-probabilities) sees the mixture as it would see one model. ``--weight auto`` takes the λ
that ``lm perplexity MODEL --mix NGRAM --weight auto`` fits on the valid split.
"""

from __future__ import annotations

import math

import torch

from lm.artifacts import Artifact, Store
from lm.errors import LMError
from lm.generation.sampling import Stepper


class MixtureStepper:
    """A :class:`~lm.generation.sampling.Stepper` over two steppers of one vocabulary."""

    def __init__(self, first: Stepper, second: Stepper, weight: float) -> None:
        self.first, self.second = first, second
        self.log_first = math.log(max(weight, 1e-300))
        self.log_second = math.log(max(1.0 - weight, 1e-300))

    def _mix(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.logaddexp(a.float() + self.log_first,
                               b.to(a.device).float() + self.log_second)

    def start(self, contexts: list[list[int]]) -> torch.Tensor:
        return self._mix(self.first.start(contexts), self.second.start(contexts))

    def advance(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._mix(self.first.advance(tokens), self.second.advance(tokens))

    def select(self, rows: torch.Tensor) -> None:
        self.first.select(rows)
        self.second.select(rows)


def mixture_partner(store: Store, artifact: Artifact, ref: str) -> Artifact:
    """The n-gram to mix with an RNN model; both must read the same tokens."""
    if artifact.kind != "model":
        raise LMError("--mix interpolates an RNN model with an n-gram: sample from the RNN "
                      "model and pass the n-gram to --mix")
    other = store.resolve(ref, "ngram")
    if _tokenizer_hash(other) != _tokenizer_hash(artifact):
        raise LMError(f"--mix {other.ref} has another vocabulary than {artifact.ref}: build the "
                      f"n-gram on the model's dataset (lm ngram DATASET)")
    return other


def _tokenizer_hash(artifact: Artifact) -> str:
    return artifact.manifest["files"]["tokenizer.json"]["sha256"]


def fitted_weight(store: Store, model: Artifact, ngram: Artifact, device: str) -> float:
    """The λ ``lm perplexity --mix --weight auto`` uses: the best fit on the valid split."""
    from lm.evaluation.scoring import ScoreRequest, tuned_weight

    return tuned_weight(store, model, ngram, None, ScoreRequest(device=device))
