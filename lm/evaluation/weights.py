"""The mixture weight λ of an RNN and an n-gram: fitted once per pair, kept in the store.

``--weight auto`` (``lm perplexity --mix``, ``lm sample --mix``, ``lm serve``) takes the λ that
fits the valid split of the RNN's dataset best (:func:`lm.evaluation.scoring.tune_weight`).
Fitting scores the whole split with both models, seconds of work, so the result is written as
a ``mixture`` artifact whose inputs are the two models: any later process finds it by its
fingerprint (the pair's content hashes and how the split was scored) and reads λ back.
"""

from __future__ import annotations

import numpy as np

from lm.artifacts import Artifact, Store, fingerprint, write_json
from lm.data.prepare import load_split
from lm.errors import LMError
from lm.evaluation.scoring import ScoreRequest, dataset_of, model_logprobs, tune_weight

KIND = "mixture"


def record_params(request: ScoreRequest) -> dict[str, object]:
    """What the fit depends on besides the two models: the split and how it is scored."""
    return {"split": "valid", "context": request.context, "batch_size": request.batch_size}


def recorded_weight(store: Store, model: Artifact, ngram: Artifact,
                    request: ScoreRequest) -> float | None:
    """λ of an earlier fit of this very pair, or None."""
    found = store.find_cached(KIND, model.name,
                              fingerprint(KIND, [model, ngram], record_params(request)))
    return None if found is None else float(found.metrics["weight"])


def fitted_weight(store: Store, model: Artifact, ngram: Artifact,
                  request: ScoreRequest | None = None) -> float:
    """λ for the pair: read from the store, or fitted on the valid split and recorded."""
    request = request or ScoreRequest()
    known = recorded_weight(store, model, ngram, request)
    if known is not None:
        return known
    valid = np.asarray(load_split(dataset_of(store, model), "valid"), dtype=np.int64)
    if len(valid) == 0:
        raise LMError("--weight auto tunes on the valid split, which is empty: "
                      "pass --weight 0.5")
    model_lp, ngram_lp = (model_logprobs(store, a, valid, request.context, request.batch_size,
                                         request.device) for a in (model, ngram))
    weight = tune_weight(model_lp, ngram_lp)
    with store.create(KIND, model.name, [model, ngram], record_params(request)) as pending:
        write_json(pending.path / "weight.json", {"weight": weight})
        pending.metrics = {"weight": weight, "valid_tokens": int(len(valid))}
    return weight
