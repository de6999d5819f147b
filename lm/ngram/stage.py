"""The ``ngram`` stage: a Kneser-Ney model from a dataset artifact, as an ``ngram`` artifact.

The artifact holds the model in ARPA (``model.arpa``, the lingua franca other tools read),
the fast-loading binary form (``ngram.npz`` + ``ngram.json``) and the dataset's
``tokenizer.json``, so it is measured and sampled exactly like an RNN on the same tokens.

``--memory SIZE`` bounds counting the way lmplz's ``-S`` does: when the in-memory count
would not fit, the train split is counted in blocks whose sorted runs spill to disk
(``external``), in a folder inside the artifact being built (or under ``--tmp``). The model
is the same, bit for bit; the metrics record the path taken, the spill's disk use and the
process's peak resident memory.
"""

from __future__ import annotations

import math
import re
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lm.artifacts import Artifact, Store, fingerprint
from lm.data.prepare import load_split, source_identity
from lm.errors import LMError
from lm.ngram import NgramModel, estimate
from lm.ngram.arpa import arpa_names, arpa_vocabulary
from lm.ngram.estimate import estimate_tables_external
from lm.ngram.spill import read_tokens
from lm.settings import check_settings, setting
from lm.tokenization import EOS_ID, load_tokenizer, title_id, title_positions, vocabulary

# Peak bytes per train token of the in-memory build at order 5 (measured with /usr/bin/time
# beyond the process's own 240 MiB: 210 on WikiText-2, 105 on 17 M tokens of repeated text);
# when the split times this fits the budget, the in-memory path is kept.
IN_MEMORY_BYTES_PER_TOKEN = 170
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``512M`` → 536870912 bytes (K, M, G, T are powers of 1024; a plain number is bytes)."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError("a size such as 512M or 2G")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def format_size(n: float) -> str:
    """Bytes as a short human size (``1.5 GiB``), for the command's output."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


@dataclass
class NgramConfig:
    """The n-gram stage's settings; each field is one ``lm ngram`` flag."""

    order: int = setting(5, "n-gram order (1 and up).", at_least=1)
    from_arpa: Path | None = setting(None, "Import this ARPA file instead of estimating (e.g. "
                                     "from KenLM).")
    arpa: bool = setting(True, "Also write model.arpa into the artifact.")
    memory: int | None = setting(None, "Memory budget for counting, e.g. 512M or 2G: beyond "
                                 "it, sorted runs spill to disk and are merged (as lmplz -S). "
                                 "Default: count in memory.", parse=parse_size,
                                 valid=lambda v: v >= 2**16, rule="at least 64K")
    tmp: Path | None = setting(None, "Folder for the spill files of --memory (default: inside "
                               "the artifact being built).")


def _peak_rss_bytes() -> int:
    """This process's peak resident set so far (Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _estimate(dataset: Artifact, vocab_size: int, config: NgramConfig, building: Path
              ) -> tuple[NgramModel, dict]:
    """The model, in memory or out of core as ``--memory`` allows, and how it was counted."""
    train = load_split(dataset, "train")
    memory = config.memory
    if memory is None or train.size * IN_MEMORY_BYTES_PER_TOKEN <= memory:
        model = estimate(np.asarray(train), vocab_size, config.order, EOS_ID)
        return model, {"path": "in memory", "memory_bytes": memory}
    parent = config.tmp if config.tmp is not None else building
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="ngram-spill-", dir=parent))
    # the budget is the process's: what Python and the imports already hold is spent
    counting_memory = max(memory - _peak_rss_bytes(), memory // 4)
    try:
        tables, report = estimate_tables_external(train, vocab_size, config.order, EOS_ID,
                                                  memory=counting_memory, folder=folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return NgramModel.from_tables(tables), {"path": "external", **report.as_dict(),
                                            "memory_bytes": memory,
                                            "counting_budget_bytes": counting_memory}


def split_perplexity(model: NgramModel, ids: np.ndarray, block: int | None,
                     sep: int | None = None) -> float:
    """``model.perplexity(ids)``, scored ``block`` tokens at a time (cut after an eos) when
    given, so a large split is never expanded whole; the same per-token figures and sum.
    ``sep``: titled documents, whose bodies alone count, as ``lm perplexity`` counts them."""
    if sep is None and (block is None or ids.size <= block):
        return model.perplexity(np.asarray(ids))
    if block is None:
        block = ids.size
    logprobs = np.empty(ids.size, dtype=np.float64)
    start = 0
    while start < ids.size:
        stop = min(start + block, ids.size)
        chunk = read_tokens(ids, start, stop)
        while stop < ids.size and not (chunk == model.eos_id).any():
            stop = min(stop + block, ids.size)
            chunk = read_tokens(ids, start, stop)
        if stop < ids.size:
            chunk = chunk[: int(np.flatnonzero(chunk == model.eos_id)[-1]) + 1]
        logprobs[start:start + chunk.size] = model.logprobs(chunk)
        start += chunk.size
    if sep is not None:
        logprobs = logprobs[~title_positions(read_tokens(ids, 0, ids.size), sep)]
    nats_per_token = float(-np.sum(logprobs, dtype=np.float64)) / logprobs.size
    return math.exp(nats_per_token) if nats_per_token < 700 else math.inf


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
    with store.create("ngram", name, [dataset], params) as pending:
        started = time.perf_counter()
        counting: dict = {"path": "arpa import"}
        if from_arpa is not None:
            try:
                model = NgramModel.from_arpa(from_arpa, arpa_vocabulary(tokens), eos_id=EOS_ID)
            except (ValueError, UnicodeDecodeError) as exc:
                raise LMError(f"cannot import {from_arpa}: {exc}") from None
        else:
            model, counting = _estimate(dataset, len(tokens), config, pending.path / "spill")
            shutil.rmtree(pending.path / "spill", ignore_errors=True)
        seconds = time.perf_counter() - started
        model.save(pending.path)
        if write_arpa:
            model.write_arpa(pending.path / "model.arpa", arpa_names(tokens))
        (pending.path / "tokenizer.json").write_bytes(dataset.file("tokenizer.json").read_bytes())
        pending.metrics = _metrics(model, dataset, seconds, counting, config.memory)
        pending.extra["level"] = dataset.manifest.get("level")
    return store.resolve(pending.extra["ref"], "ngram"), False


def _metrics(model: NgramModel, dataset: Artifact, seconds: float, counting: dict,
             memory: int | None) -> dict:
    metrics: dict = {"order": model.order, "ngrams": [int(n) for n in model.num_ngrams],
                     "build_seconds": seconds, "fallback_orders": list(model.fallback_orders)}
    if model.discounts is not None:
        metrics["discounts"] = [list(map(float, d)) for d in model.discounts]
    block = None if memory is None else max(1, memory // (4 * IN_MEMORY_BYTES_PER_TOKEN))
    sep = title_id(load_tokenizer(dataset.file("tokenizer.json")))
    for split in ("valid", "test"):
        ids = load_split(dataset, split)
        if len(ids):
            metrics[f"{split}_perplexity"] = split_perplexity(model, ids, block, sep)
    metrics["counting"] = counting
    metrics["peak_rss_bytes"] = _peak_rss_bytes()
    return metrics


def resources_line(metrics: dict) -> str:
    """One line on how the model was counted: the path, the spill's disk use, peak memory."""
    counting = metrics["counting"]
    peak = metrics.get("peak_rss_bytes")
    parts = [f"counted {counting['path']}"]
    if counting.get("memory_bytes"):
        parts[0] += f" (budget {format_size(counting['memory_bytes'])})"
    if counting.get("path") == "external":
        parts.append(f"{counting['runs']} sorted runs, spill peak "
                     f"{format_size(counting['spill_peak_bytes'])} on disk, "
                     f"{format_size(counting['spill_written_bytes'])} written")
        parts.append(f"count tables {format_size(counting['table_bytes'])} in memory")
    if peak:
        parts.append(f"peak RSS {format_size(peak)}")
    return " · ".join(parts)
