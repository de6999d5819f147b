"""What ``lm perplexity`` measures: a model (RNN or n-gram, or their mixture) on some text.

The text is a split of the dataset the model was trained on, a file or a string; it becomes
the same token stream as in training (every document closed by ``<eos>``), so RNN and n-gram
figures on the same split are directly comparable.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from lm.artifacts import Artifact, Store
from lm.data.local import check_text_file
from lm.data.prepare import load_split, split_characters
from lm.errors import LMError
from lm.evaluation.perplexity import LN2, Evaluation
from lm.tokenization import encode_documents, load_tokenizer, vocabulary

MODEL_KINDS = ("model", "ngram")


def dataset_of(store: Store, artifact: Artifact) -> Artifact:
    """The dataset a model was made from, checked to be the very same content."""
    for item in artifact.manifest.get("inputs", []):
        if item["ref"].startswith("dataset:"):
            data = store.resolve(item["ref"], "dataset")
            if data.content_hash != item["content_hash"]:
                raise LMError(f"{data.ref} changed since {artifact.ref} was made from it")
            return data
    raise LMError(f"{artifact.ref} records no dataset: score it with --file or --text")


def documents_from(file: Path | None, text: str | None, doc_sep: str) -> list[str]:
    if text is not None:
        if not text.strip():
            raise LMError("--text is empty: pass some text to score")
        return [text]
    assert file is not None
    if not file.is_file():
        raise LMError(f"no such file: {file}: check the path")
    check_text_file(file)
    content = file.read_text("utf-8")
    if doc_sep == "line":
        return content.removesuffix("\n").split("\n")
    if doc_sep == "blank":
        return [d.strip("\n") for d in content.split("\n\n") if d.strip()]
    return [content.removesuffix("\n")]


def model_logprobs(store: Store, artifact: Artifact, ids: np.ndarray, context: str = "stream",
                   batch_size: int = 10, device: str = "auto") -> np.ndarray:
    """Natural-log probability of each token under an RNN or n-gram artifact."""
    if artifact.kind == "ngram":
        from lm.ngram import NgramModel

        return NgramModel.load(artifact.path).logprobs(np.asarray(ids))
    from lm.evaluation.perplexity import document_logprobs, stream_logprobs
    from lm.models import rnn
    from lm.runtime import pick_device

    if context not in ("stream", "document"):
        raise LMError(f"--context must be stream or document, not {context!r}")
    if batch_size < 1:
        raise LMError(f"--batch-size must be at least 1, not {batch_size}")
    dev = pick_device(device)
    model = rnn.load(artifact.path, device=dev)
    if context == "stream":
        return stream_logprobs(model, ids, batch_size=batch_size, device=dev)
    return document_logprobs(model, ids, batch_size=batch_size, device=dev)


def tune_weight(rnn_lp: np.ndarray, ngram_lp: np.ndarray) -> float:
    """The RNN weight λ in [0, 1] that minimises the mixture's loss (grid, then refine)."""
    def loss(lam: float) -> float:
        return -float(np.mean(np.logaddexp(math.log(max(lam, 1e-12)) + rnn_lp,
                                           math.log(max(1 - lam, 1e-12)) + ngram_lp)))

    grid = np.linspace(0, 1, 21)
    best = min(grid, key=loss)
    fine = np.clip(np.linspace(best - 0.05, best + 0.05, 21), 0, 1)
    return float(min(fine, key=loss))


def mix_logprobs(rnn_lp: np.ndarray, ngram_lp: np.ndarray, weight: float) -> np.ndarray:
    return np.logaddexp(math.log(max(weight, 1e-300)) + rnn_lp,
                        math.log(max(1 - weight, 1e-300)) + ngram_lp)


def score(store: Store, ref: str, split: str = "test", file: Path | None = None,
          text: str | None = None, doc_sep: str = "line", context: str = "stream",
          batch_size: int = 64, mix: str | None = None, weight: str = "auto",
          device: str = "auto", per_token: bool = False) -> dict[str, Any]:
    artifact = store.resolve(ref, MODEL_KINDS)
    tokenizer = load_tokenizer(artifact.file("tokenizer.json"))
    if file is not None or text is not None:
        docs = documents_from(file, text, doc_sep)
        ids = np.concatenate([np.asarray(d, dtype=np.int64)
                              for d in encode_documents(tokenizer, docs)])
        characters: int | None = sum(len(d) + 1 for d in docs)
        on = "--text" if text is not None else str(file)
        dataset = None
    else:
        dataset = dataset_of(store, artifact)
        ids = np.asarray(load_split(dataset, split), dtype=np.int64)
        if len(ids) == 0:
            raise LMError(f"split {split!r} of {dataset.ref} is empty: choose another --split")
        characters = split_characters(dataset, split)
        on = f"{dataset.ref} {split}"
    logprobs = model_logprobs(store, artifact, ids, context, batch_size, device)
    result: dict[str, Any] = {"model": artifact.ref, "on": on}
    if mix is not None:
        other = store.resolve(mix, MODEL_KINDS)
        if other.kind == artifact.kind:
            raise LMError("--mix needs one RNN model and one n-gram: pass the n-gram to --mix")
        other_lp = model_logprobs(store, other, ids, context, batch_size, device)
        rnn_lp, ngram_lp = (logprobs, other_lp) if artifact.kind == "model" else (other_lp,
                                                                                 logprobs)
        if weight == "auto":
            if dataset is None:
                dataset = dataset_of(store, artifact)
            valid = np.asarray(load_split(dataset, "valid"), dtype=np.int64)
            if len(valid) == 0:
                raise LMError("--weight auto tunes on the valid split, which is empty: "
                              "pass --weight 0.5")
            lam = tune_weight(
                model_logprobs(store, artifact if artifact.kind == "model" else other, valid,
                               context, batch_size, device),
                model_logprobs(store, other if artifact.kind == "model" else artifact, valid,
                               context, batch_size, device))
        else:
            try:
                lam = float(weight)
            except ValueError:
                raise LMError(f"--weight must be a number in [0, 1] or auto, not {weight!r}") \
                    from None
            if not 0 <= lam <= 1:
                raise LMError(f"--weight must be in [0, 1], not {weight}")
        logprobs = mix_logprobs(rnn_lp, ngram_lp, lam)
        result["mixture"] = other.ref
        result["weight"] = lam
    evaluation = Evaluation.from_logprobs(ids, logprobs, characters)
    result.update(evaluation.summary())
    if per_token:
        vocab = vocabulary(tokenizer)
        result["per_token"] = [(vocab[int(t)], float(-lp / LN2))
                               for t, lp in zip(ids, logprobs, strict=True)]
    return result
