"""What ``lm perplexity`` measures: a model (RNN or n-gram, or their mixture) on some text.

The text is a split of the dataset the model was trained on, a file or a string; it becomes
the same token stream as in training (every document closed by ``<eos>``), so RNN and n-gram
figures on the same split are directly comparable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lm.artifacts import Artifact, Store
from lm.data.local import check_text_file
from lm.data.prepare import load_split, split_characters
from lm.errors import LMError
from lm.evaluation.perplexity import LN2, Evaluation
from lm.segmentation import Segmented, segment_with_origin
from lm.settings import check_settings, setting, unit_or_auto
from lm.tokenization import (
    encode_documents,
    is_word_level,
    load_tokenizer,
    title_id,
    title_positions,
    vocabulary,
)

MODEL_KINDS = ("model", "ngram")
CONTEXTS = ("stream", "document")
DOC_SEPS = ("line", "blank", "file")


@dataclass
class ScoreRequest:
    """What ``lm perplexity`` measures and how; each field is one of its flags."""

    split: str = setting("test", "Split of the model's dataset (valid,test joins).")
    file: Path | None = setting(None, "Score a text file instead.")
    text: str | None = setting(None, "Score this text instead.")
    doc_sep: str = setting("line", "Documents in --file: line, blank or file.",
                           valid=DOC_SEPS.__contains__, rule="line, blank or file")
    context: str = setting("stream", "stream (carry state across documents) or document (each "
                           "from a fresh state).", valid=CONTEXTS.__contains__,
                           rule="stream or document")
    batch_size: int = setting(64, "Segments (stream) or documents scored at once.",
                              at_least=1)
    mix: str | None = setting(None, "An n-gram artifact to interpolate with.")
    weight: str = setting("auto", "RNN weight λ in the mixture, or auto (tuned on valid).",
                          valid=unit_or_auto, rule="a number in [0, 1] or auto")
    per_token: bool = setting(False, "List each token's surprisal in bits.")
    rank: bool = setting(False, "Score each document of --file (or --text) on its own, from a "
                         "fresh state and closed by <eos>, and list them from the lowest "
                         "perplexity (most fluent) up, each with its most surprising token.")
    device: str = setting("auto", "auto, cpu, cuda or mps.")

    def check(self) -> None:
        check_settings(self)


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


LogProbs = Callable[[np.ndarray, str, int], np.ndarray]


def load_weights(artifact: Artifact, device: str = "auto") -> Any:
    """An RNN (on its device) or n-gram artifact's model, loaded."""
    if artifact.kind == "ngram":
        from lm.ngram import NgramModel

        return NgramModel.load(artifact.path)
    from lm.models import rnn
    from lm.runtime import pick_device

    return rnn.load(artifact.path, device=pick_device(device))


def logprobs_of(weights: Any) -> LogProbs:
    """A loaded RNN or n-gram as ``(ids, context, batch_size) -> log-probs``.

    A server scores many small requests with the model it already holds: nothing is loaded
    again.
    """
    from lm.models.rnn import RNNLM

    if not isinstance(weights, RNNLM):  # an n-gram: no state to carry or reset
        return lambda ids, context, batch_size: weights.logprobs(np.asarray(ids))
    from lm.evaluation.perplexity import document_logprobs, stream_logprobs

    device = next(weights.parameters()).device

    def logprobs(ids: np.ndarray, context: str, batch_size: int) -> np.ndarray:
        scorer = stream_logprobs if context == "stream" else document_logprobs
        return scorer(weights, ids, batch_size=batch_size, device=device)

    return logprobs


def load_logprobs(artifact: Artifact, device: str = "auto") -> LogProbs:
    """An RNN or n-gram artifact loaded once, as ``(ids, context, batch_size) -> log-probs``."""
    return logprobs_of(load_weights(artifact, device))


def model_logprobs(store: Store, artifact: Artifact, ids: np.ndarray, context: str = "stream",
                   batch_size: int = 10, device: str = "auto") -> np.ndarray:
    """Natural-log probability of each token under an RNN or n-gram artifact."""
    return load_logprobs(artifact, device)(ids, context, batch_size)


def tune_weight(rnn_lp: np.ndarray, ngram_lp: np.ndarray, tolerance: float = 1e-9) -> float:
    """The RNN weight λ in [0, 1] that minimises the mixture's mean negative log-likelihood.

    The loss −mean log(λ a + (1 − λ) b) is convex in λ, so its derivative
    −mean((a − b) / (λ a + (1 − λ) b)) increases with λ: bisection on its sign finds the
    optimum (an end of [0, 1] when the derivative keeps one sign). a and b are scaled by the
    larger of the two per token, which leaves every ratio unchanged and nothing underflows.
    """
    top = np.maximum(rnn_lp, ngram_lp)
    a, b = np.exp(rnn_lp - top), np.exp(ngram_lp - top)

    def slope(lam: float) -> float:
        return -float(np.mean((a - b) / (lam * a + (1 - lam) * b)))

    if slope(0.0) >= 0:
        return 0.0
    if slope(1.0) <= 0:
        return 1.0
    low, high = 0.0, 1.0
    while high - low > tolerance:
        middle = (low + high) / 2
        low, high = (middle, high) if slope(middle) < 0 else (low, middle)
    return (low + high) / 2


def mix_logprobs(rnn_lp: np.ndarray, ngram_lp: np.ndarray, weight: float) -> np.ndarray:
    return np.logaddexp(math.log(max(weight, 1e-300)) + rnn_lp,
                        math.log(max(1 - weight, 1e-300)) + ngram_lp)


def score(store: Store, ref: str, request: ScoreRequest | None = None) -> dict[str, Any]:
    """Perplexity and friends of one model (optionally mixed with an n-gram) on some text."""
    from lm.evaluation.weights import fitted_weight

    request = request or ScoreRequest()
    request.check()
    artifact = store.resolve(ref, MODEL_KINDS)
    tokenizer = load_tokenizer(artifact.file("tokenizer.json"))
    ids, characters, on, dataset = _scored_tokens(store, artifact, tokenizer, request)
    logprobs = _logprobs(store, artifact, ids, request)
    result: dict[str, Any] = {"model": artifact.ref, "on": on}
    if request.mix is not None:
        other = store.resolve(request.mix, MODEL_KINDS)
        if other.kind == artifact.kind:
            raise LMError("--mix needs one RNN model and one n-gram: pass the n-gram to --mix")
        rnn_model, ngram = (artifact, other) if artifact.kind == "model" else (other, artifact)
        other_lp = _logprobs(store, other, ids, request)
        rnn_lp, ngram_lp = (logprobs, other_lp) if artifact.kind == "model" else (other_lp,
                                                                                 logprobs)
        lam = (fitted_weight(store, rnn_model, ngram, request)
               if request.weight == "auto" else float(request.weight))
        logprobs = mix_logprobs(rnn_lp, ngram_lp, lam)
        result["mixture"] = other.ref
        result["weight"] = lam
    result.update(headline(ids, logprobs, characters, tokenizer, dataset, request.split))
    if request.per_token:
        vocab = vocabulary(tokenizer)
        result["per_token"] = [(vocab[int(t)], float(-lp / LN2))
                               for t, lp in zip(ids, logprobs, strict=True)]
    return result


def headline(ids: np.ndarray, logprobs: np.ndarray, characters: int | None, tokenizer,
             dataset: Artifact | None, split: str) -> dict[str, Any]:
    """The figures of the scored tokens. For titled documents the headline counts the bodies
    (each read after its title, its <eos> included), comparable with untitled datasets;
    ``title`` gives the titles' own figures (each <sep> included)."""
    sep = title_id(tokenizer)
    titles = title_positions(ids, sep) if sep is not None else None
    if titles is None or not titles.any():
        return Evaluation.from_logprobs(ids, logprobs, characters).summary()
    figures = Evaluation.from_logprobs(ids[~titles], logprobs[~titles], characters).summary()
    title_chars = None
    if dataset is not None:
        splits = dataset.metrics.get("splits", {})
        names = split.split(",")
        if all("title_characters" in splits.get(n, {}) for n in names):
            title_chars = sum(splits[n]["title_characters"] for n in names)
    figures["title"] = Evaluation.from_logprobs(ids[titles], logprobs[titles],
                                                title_chars).summary()
    return figures


def _scored_tokens(store: Store, artifact: Artifact, tokenizer, request: ScoreRequest
                   ) -> tuple[np.ndarray, int | None, str, Artifact | None]:
    """(token ids, characters, what they are, their dataset if a split) of the scored text."""
    if request.file is not None or request.text is not None:
        docs = documents_from(request.file, request.text, request.doc_sep)
        ids = np.concatenate([np.asarray(d, dtype=np.int64)
                              for d in encode_documents(tokenizer, docs)])
        on = "--text" if request.text is not None else str(request.file)
        return ids, sum(len(d) + 1 for d in docs), on, None
    dataset = dataset_of(store, artifact)
    ids = np.asarray(load_split(dataset, request.split), dtype=np.int64)
    if len(ids) == 0:
        raise LMError(f"split {request.split!r} of {dataset.ref} is empty: choose another "
                      "--split")
    characters = split_characters(dataset, request.split)
    return ids, characters, f"{dataset.ref} {request.split}", dataset


def _logprobs(store: Store, artifact: Artifact, ids: np.ndarray, request: ScoreRequest
              ) -> np.ndarray:
    return model_logprobs(store, artifact, ids, request.context, request.batch_size,
                          request.device)


# ------------------------------------------------------------------------ lines on their own
@dataclass
class LineScore:
    """One text scored on its own: read after ``<eos>`` from a fresh state, closed by ``<eos>``.

    ``spans`` are each token's characters in ``text`` (the closing ``<eos>`` is the empty
    span at its end), so a page can tint every character by its token's surprisal.
    """

    text: str
    ids: list[int]
    tokens: list[str]
    spans: list[tuple[int, int]]
    logprobs: np.ndarray

    @property
    def evaluation(self) -> Evaluation:
        """The figures of ``lm perplexity``; the closing ``<eos>`` counts as one character."""
        return Evaluation.from_logprobs(np.asarray(self.ids), self.logprobs, len(self.text) + 1)

    @property
    def worst(self) -> int | None:
        """The most surprising token of the text itself (not the closing ``<eos>``)."""
        if len(self.ids) < 2:
            return None
        return int(np.argmin(self.logprobs[:-1]))

    def token(self, index: int) -> dict[str, Any]:
        start, end = self.spans[index]
        return {"token": self.tokens[index], "bits": float(-self.logprobs[index] / LN2),
                "start": start, "end": end}

    def as_dict(self, per_token: bool = True) -> dict[str, Any]:
        summary = self.evaluation.summary()
        result: dict[str, Any] = {"text": self.text, **{k: summary[k] for k in (
            "tokens", "oov", "nats_per_token", "perplexity", "characters", "bits_per_char")}}
        worst = self.worst
        result["worst"] = None if worst is None else {"index": worst, **self.token(worst)}
        if per_token:
            result["per_token"] = [self.token(i) for i in range(len(self.ids))]
        return result


class LineScorer:
    """A loaded model that scores texts, each on its own (``lm perplexity --rank``,
    ``lm serve``'s ``/score`` and the tints of its poems)."""

    def __init__(self, artifact: Artifact, tokenizer: Any, logprobs: LogProbs,
                 batch_size: int = 64) -> None:
        self.artifact, self.tokenizer = artifact, tokenizer
        self.batch_size = batch_size
        self._logprobs = logprobs

    @classmethod
    def open(cls, store: Store, ref: str, device: str = "auto",
             batch_size: int = 64) -> LineScorer:
        artifact = store.resolve(ref, MODEL_KINDS)
        return cls(artifact, load_tokenizer(artifact.file("tokenizer.json")),
                   load_logprobs(artifact, device), batch_size)

    def score(self, texts: list[str]) -> list[LineScore]:
        """Every text as its own document: the same tokens as ``lm perplexity --text``."""
        if not texts:
            return []
        words = is_word_level(self.tokenizer)  # Chinese cut into words first
        cut = [segment_with_origin(t) if words else Segmented(t, list(range(len(t) + 1)))
               for t in texts]
        encodings = self.tokenizer.encode_batch([c.text for c in cut], add_special_tokens=True)
        ids = np.concatenate([np.asarray(e.ids, dtype=np.int64) for e in encodings])
        logprobs = self._logprobs(ids, "document", self.batch_size)
        scores, start = [], 0
        for text, segmented, encoding in zip(texts, cut, encodings, strict=True):
            n = len(encoding.ids)
            spans = [segmented.span(*span) for span in encoding.offsets[:-1]]
            spans.append((len(text), len(text)))
            scores.append(LineScore(text, list(encoding.ids), list(encoding.tokens), spans,
                                    logprobs[start:start + n]))
            start += n
        return scores


def ranked(scores: list[LineScore]) -> list[int]:
    """Indices from the most fluent text (lowest perplexity) to the least; ties keep order."""
    return sorted(range(len(scores)), key=lambda i: scores[i].evaluation.nats_per_token)


def rank(store: Store, ref: str, request: ScoreRequest) -> dict[str, Any]:
    """``lm perplexity --rank``: each document of the file scored on its own, then sorted."""
    request.check()
    if request.file is None and request.text is None:
        raise LMError("--rank ranks the lines of a file: pass --file lines.txt (or --text)")
    if request.mix is not None:
        raise LMError("--rank scores each line with one model: drop --mix")
    documents = documents_from(request.file, request.text, request.doc_sep)
    kept = [(number, doc) for number, doc in enumerate(documents, 1) if doc.strip()]
    scorer = LineScorer.open(store, ref, request.device, request.batch_size)
    scores = scorer.score([doc for _, doc in kept])
    rows = [{"rank": position, "line": kept[i][0], **scores[i].as_dict(request.per_token)}
            for position, i in enumerate(ranked(scores), 1)]
    on = "--text" if request.text is not None else str(request.file)
    return {"model": scorer.artifact.ref, "on": on, "ranked": rows}
