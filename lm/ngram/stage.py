"""The ``ngram`` stage: a Kneser-Ney model from a dataset artifact, as an ``ngram`` artifact.

The artifact holds the model in ARPA (``model.arpa``, the lingua franca other tools read),
the fast-loading binary form (``ngram.npz`` + ``ngram.json``) and the dataset's
``tokenizer.json``, so it is measured and sampled exactly like an RNN on the same tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lm.artifacts import Artifact, Store, fingerprint
from lm.data.prepare import load_split, source_identity
from lm.errors import LMError
from lm.ngram import NgramModel, estimate
from lm.ngram.arpa import arpa_names, arpa_vocabulary
from lm.settings import check_settings, setting
from lm.tokenization import EOS_ID, load_tokenizer, vocabulary


@dataclass
class NgramConfig:
    """The n-gram stage's settings; each field is one ``lm ngram`` flag."""

    order: int = setting(5, "n-gram order (1 and up).", at_least=1)
    from_arpa: Path | None = setting(None, "Import this ARPA file instead of estimating (e.g. "
                                     "from KenLM).")
    arpa: bool = setting(True, "Also write model.arpa into the artifact.")


def build_ngram(store: Store, dataset: Artifact, name: str, config: NgramConfig | None = None
                ) -> tuple[Artifact, bool]:
    """Estimate (or import) an n-gram model; returns (artifact, reused)."""
    config = config or NgramConfig()
    check_settings(config)
    order, from_arpa, write_arpa = config.order, config.from_arpa, config.arpa
    params = {"order": order, "smoothing": "interpolated modified Kneser-Ney",
              "discount_fallback": [0.5, 1.0, 1.5], "write_arpa": write_arpa}
    if from_arpa is not None:
        if not from_arpa.is_file():
            raise LMError(f"no such ARPA file: {from_arpa}: check the path")
        params = {"from_arpa": str(from_arpa), "arpa_hash": source_identity(str(from_arpa))}
    cached = store.find_cached("ngram", name, fingerprint("ngram", [dataset], params))
    if cached is not None:
        return cached, True

    tokens = vocabulary(load_tokenizer(dataset.file("tokenizer.json")))
    started = time.perf_counter()
    if from_arpa is not None:
        try:
            model = NgramModel.from_arpa(from_arpa, arpa_vocabulary(tokens), eos_id=EOS_ID)
        except (ValueError, UnicodeDecodeError) as exc:
            raise LMError(f"cannot import {from_arpa}: {exc}") from None
    else:
        model = estimate(np.asarray(load_split(dataset, "train")), len(tokens), order, EOS_ID)
    seconds = time.perf_counter() - started

    with store.create("ngram", name, [dataset], params) as pending:
        model.save(pending.path)
        if write_arpa:
            model.write_arpa(pending.path / "model.arpa", arpa_names(tokens))
        (pending.path / "tokenizer.json").write_bytes(dataset.file("tokenizer.json").read_bytes())
        metrics: dict = {"order": model.order, "ngrams": [int(n) for n in model.num_ngrams],
                         "build_seconds": seconds,
                         "fallback_orders": list(model.fallback_orders)}
        if model.discounts is not None:
            metrics["discounts"] = [list(map(float, d)) for d in model.discounts]
        for split in ("valid", "test"):
            ids = np.asarray(load_split(dataset, split))
            if len(ids):
                metrics[f"{split}_perplexity"] = model.perplexity(ids)
        pending.metrics = metrics
        pending.extra["level"] = dataset.manifest.get("level")
    return store.resolve(pending.extra["ref"], "ngram"), False
