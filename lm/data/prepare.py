"""The ``prepare`` stage: source → splits → tokenizer → token arrays in a dataset artifact.

The artifact holds ``tokenizer.json`` and one ``SPLIT.npy`` per split: a flat array of token
ids (uint16 when the vocabulary fits) in which every document is followed by ``<eos>``. Arrays
load memory-mapped and without pickle. The manifest's metrics give, per split, the documents,
tokens, characters and the <unk> rate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lm.artifacts import Artifact, Store, fingerprint
from lm.data.local import DOC_SEPS, SPLITS
from lm.data.sources import load_source, source_identity
from lm.errors import LMError
from lm.settings import check_settings, comma_floats, setting
from lm.tokenization import LEVELS, UNK_ID, encode_documents, train_tokenizer

if TYPE_CHECKING:
    import datasets


def _ratios(text: str) -> tuple[float, ...]:
    """``0.9,0.05,0.05`` → three shares (the ``parse`` of ``--split-ratios``)."""
    ratios = comma_floats(text)
    if len(ratios) != 3:
        raise ValueError("three numbers (train,valid,test)")
    return ratios


@dataclass
class PrepareConfig:
    """The settings of ``lm prepare``; ``source`` is the command's argument, not an option."""

    source: str = setting("", cli=False)
    level: str = setting("char", "Tokenizer level: char, word or bpe.",
                         valid=LEVELS.__contains__, rule="one of " + ", ".join(LEVELS))
    vocab_size: int | None = setting(None, "Keep at most this many types "
                                     "(<unk> and <eos> included).",
                                     valid=lambda v: v >= 3,
                                     rule="at least 3 (<unk>, <eos> and one token)")
    min_freq: int = setting(1, "Types seen fewer times in train become <unk>.", at_least=1)
    doc_sep: str = setting("line", "Documents in .txt files: line, blank (blank-line "
                           "separated) or file.",
                           valid=DOC_SEPS.__contains__, rule="line, blank or file")
    text_field: str = setting("text", "Field holding the text in tabular sources.")
    split_ratios: tuple[float, float, float] = setting(
        (0.9, 0.05, 0.05), "train,valid,test shares when the source gives no splits.",
        parse=_ratios)
    shuffle: bool = setting(True, "Shuffle documents before splitting (seeded); "
                            "--no-shuffle cuts in order by characters.")
    seed: int = setting(0, "Seed for the document shuffle.")
    simplify: bool = setting(False, "Convert traditional to simplified Chinese (OpenCC).")
    num_proc: int | None = setting(None, "Processes for datasets' map.", at_least=1)

    def check(self) -> None:
        check_settings(self)
        ratios = self.split_ratios
        if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
            raise LMError(
                f"--split-ratios {','.join(map(str, ratios))} must be three non-negative "
                "numbers (train,valid,test) that sum to 1, e.g. 0.9,0.05,0.05"
            )
        if ratios[0] == 0:
            raise LMError("--split-ratios gives the train split nothing: e.g. 0.9,0.05,0.05")


def prepare(store: Store, config: PrepareConfig, name: str) -> tuple[Artifact, bool]:
    """Run the stage, or reuse an identical earlier version. Returns (artifact, reused)."""
    import datasets

    config.check()
    params: dict[str, Any] = {
        k: v for k, v in vars(config).items() if k not in ("num_proc",)
    }
    params["split_ratios"] = list(config.split_ratios)
    params["source_hash"] = source_identity(config.source)
    cached = store.find_cached("dataset", name, fingerprint("dataset", [], params))
    if cached is not None:
        return cached, True

    splits = make_splits(load_source(config.source, config.doc_sep, config.text_field,
                                     config.num_proc), config)
    if config.simplify:
        splits = datasets.DatasetDict(
            {s: d.map(_to_simplified, batched=True, num_proc=config.num_proc)
             for s, d in splits.items()}
        )
    train = splits["train"]
    if not _has_text(train):
        raise LMError("the train split holds no text: check the source and --text-field")

    def batches():
        for start in range(0, len(train), 1000):
            yield train[start:start + 1000]["text"]

    tokenizer = train_tokenizer(batches(), config.level, config.vocab_size, config.min_freq,
                                length=len(train))
    vocab_size = tokenizer.get_vocab_size()
    dtype = np.uint16 if vocab_size <= np.iinfo(np.uint16).max else np.uint32

    with store.create("dataset", name, [], params) as pending:
        tokenizer.save(str(pending.path / "tokenizer.json"))
        split_metrics = {}
        for split, data in splits.items():
            ids = _encode(data, tokenizer, dtype, config.num_proc)
            np.save(pending.path / f"{split}.npy", ids, allow_pickle=False)
            chars = _characters(data)
            unk = int(np.count_nonzero(ids == UNK_ID))
            split_metrics[split] = {
                "documents": len(data),
                "tokens": int(ids.size),
                "characters": chars,
                "unk": unk,
                "unk_rate": unk / max(ids.size, 1),
            }
        pending.metrics = {"vocab_size": vocab_size, "splits": split_metrics}
        pending.extra["level"] = config.level
    return store.resolve(pending.extra["ref"], "dataset"), False


def make_splits(loaded: datasets.DatasetDict, config: PrepareConfig) -> datasets.DatasetDict:
    """Keep the source's own splits; otherwise divide documents by the seeded ratios."""
    import datasets

    if "all" not in loaded:
        result = dict(loaded)
        for split in SPLITS:
            if split not in result:
                result[split] = result["train"].select([])
        return datasets.DatasetDict(result)
    data = loaded["all"]
    n = len(data)
    if n == 0 or not _has_text(data):
        raise LMError("the source holds no documents with text: check the file or --text-field")
    if config.shuffle:
        order = np.random.default_rng(config.seed).permutation(n)
        n_train = int(round(config.split_ratios[0] * n))
        n_valid = int(round(config.split_ratios[1] * n))
    else:  # in order, cut where the running character count crosses each ratio
        import pyarrow.compute as pc

        order = np.arange(n)
        lengths = pc.utf8_length(_texts(data)).to_numpy(zero_copy_only=False) + 1
        cumulative = np.cumsum(lengths) / lengths.sum()
        n_train = int(np.searchsorted(cumulative, config.split_ratios[0] - 1e-12) + 1)
        n_valid = int(np.searchsorted(cumulative, sum(config.split_ratios[:2]) - 1e-12) + 1)
        n_valid = min(n_valid, n) - min(n_train, n)
        n_train = min(n_train, n)
    if config.split_ratios[1] > 0 and n_valid == 0 and n - n_train > 0:
        n_valid = 1
    bounds = {"train": (0, n_train), "valid": (n_train, n_train + n_valid),
              "test": (n_train + n_valid, n)}
    return datasets.DatasetDict(
        {s: data.select(np.sort(order[a:b]) if config.shuffle else order[a:b])
         for s, (a, b) in bounds.items()}
    )


def _texts(data: datasets.Dataset):
    """The text column as Arrow, honouring a ``select``'s index mapping."""
    return data.with_format("arrow")[:]["text"]


def _characters(data: datasets.Dataset) -> int:
    """Characters of the text plus one per document, the newline its <eos> stands for."""
    import pyarrow.compute as pc

    if len(data) == 0:
        return 0
    return int(pc.sum(pc.utf8_length(_texts(data))).as_py() or 0) + len(data)


def _has_text(data: datasets.Dataset) -> bool:
    import pyarrow.compute as pc

    lengths = pc.utf8_length(pc.utf8_trim_whitespace(_texts(data)))
    return bool(len(data)) and (pc.max(lengths).as_py() or 0) > 0


def _encode(data: datasets.Dataset, tokenizer, dtype, num_proc: int | None) -> np.ndarray:
    """Batch-encode a split with datasets' map and flatten to one array (no Python loops)."""
    import pyarrow.compute as pc

    if len(data) == 0:
        return np.zeros(0, dtype=dtype)
    proc = num_proc if num_proc and len(data) > 50_000 else None
    encoded = data.map(
        lambda batch: {"ids": encode_documents(tokenizer, batch["text"])},
        batched=True, batch_size=2000, remove_columns=data.column_names, num_proc=proc,
    )
    flat = pc.list_flatten(encoded.data.column("ids"))
    return np.asarray(flat.to_numpy(zero_copy_only=False), dtype=dtype)


def _to_simplified(batch: dict[str, list[str]]) -> dict[str, list[str]]:
    import opencc

    converter = opencc.OpenCC("t2s")
    return {"text": [converter.convert(t) for t in batch["text"]]}


def load_split(artifact: Artifact, split: str) -> np.ndarray:
    """Token ids of a split, memory-mapped; several splits joined with ``valid,test``."""
    parts = []
    for name in split.split(","):
        path = artifact.file(f"{name}.npy")
        if not path.is_file():
            have = ", ".join(sorted(p.stem for p in artifact.path.glob("*.npy")))
            raise LMError(f"{artifact.ref} has no split {name!r} (it has {have})")
        parts.append(np.load(path, mmap_mode="r", allow_pickle=False))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def split_characters(artifact: Artifact, split: str) -> int | None:
    splits = artifact.metrics.get("splits", {})
    names = split.split(",")
    if all(n in splits for n in names):
        return sum(splits[n]["characters"] for n in names)
    return None


os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
