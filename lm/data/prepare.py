"""The ``prepare`` stage: source → splits → tokenizer → token arrays in a dataset artifact.

The artifact holds ``tokenizer.json`` and one ``SPLIT.npy`` per split: a flat array of token
ids (uint16 when the vocabulary fits) in which every document is followed by ``<eos>``. Arrays
load memory-mapped and without pickle. The manifest's metrics give, per split, the documents,
tokens, characters and the <unk> rate.

It streams: documents are read in batches from ``datasets``' memory-mapped Arrow tables, the
tokenizer learns from an iterator over them, and each split is encoded in batches
(``Dataset.map``, ``--num-proc`` processes) into an Arrow file of ids and then copied, batch by
batch, into its ``.npy`` array, opened memory-mapped at its final size. No step holds the
corpus, or a split, in Python objects or in one array in memory; a document longer than
``--cut-chars`` is tokenized in pieces (see :func:`lm.tokenization.cut_pieces`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lm.artifacts import Artifact, Store, fingerprint
from lm.data.local import DOC_SEPS, SPLITS
from lm.data.sources import has_titles, load_source, source_identity
from lm.errors import LMError
from lm.segmentation import identity as segmentation_identity
from lm.segmentation import segment_documents
from lm.settings import check_settings, comma_floats, setting
from lm.tokenization import (
    EOS_ID,
    LEVELS,
    SEP,
    UNK_ID,
    cut_pieces,
    encode_flat,
    train_tokenizer,
)

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa
    from tokenizers import Tokenizer

# Documents per batch read from Arrow, fed to the tokenizer trainer and encoded.
BATCH_DOCS = 1000
# Splits with fewer documents are encoded in this process whatever --num-proc says.
PARALLEL_FROM_DOCS = 50_000
# Characters per item handed to the tokenizer trainer, which buffers 256 items.
TRAIN_ITEM_CHARS = 1 << 18
# Bytes per record batch in the Arrow files written here (see _write_splits).
WRITE_BATCH_BYTES = 16 << 20


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
    level: str = setting("char", "Tokenizer level: char, word (Chinese cut into words by "
                         "jieba first) or bpe.",
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
    title_field: str | None = setting(None, "Field holding each document's title in tabular "
                                      "sources (chinese-poetry corpora have their own): a "
                                      "document becomes title, <sep>, body, <eos>.", later=True)
    titles: bool = setting(True, "Keep the titles a source has; --no-titles drops them (the "
                           "dataset is then the one made before titles were read).",
                           later=True)
    split_ratios: tuple[float, float, float] = setting(
        (0.9, 0.05, 0.05), "train,valid,test shares when the source gives no splits.",
        parse=_ratios)
    shuffle: bool = setting(True, "Shuffle documents before splitting (seeded); "
                            "--no-shuffle cuts in order by characters.")
    seed: int = setting(0, "Seed for the document shuffle.")
    simplify: bool = setting(False, "Convert traditional to simplified Chinese (OpenCC).")
    num_proc: int | None = setting(None, "Processes that encode the splits (datasets' map); "
                                   "a split of fewer than 50,000 documents is encoded in one.",
                                   at_least=1)
    cut_chars: int = setting(100_000, "Tokenize documents longer than this many characters "
                             "in pieces, cut before a whitespace (else after a sentence end): "
                             "memory stays bounded and the tokens are the same.",
                             at_least=64, later=True)

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


@contextlib.contextmanager
def keeps_environ() -> Iterator[None]:
    """Keep ``os.environ`` the process's own mapping across ``datasets``' parallel ``map``.

    ``Dataset.map(num_proc=...)`` sets a variable for its workers, then puts back a *copy* of
    the environment in place of ``os.environ``. Whoever kept the original object (rich's
    consoles read their width from it) no longer sees what later code sets: the next command
    of the same process (``lm run``) or the next test. The original object is put back, with
    the copy's contents.
    """
    original = os.environ
    try:
        yield
    finally:
        if os.environ is not original:
            contents = dict(os.environ)
            os.environ = original  # noqa: B003 (the original object, not a new mapping)
            for key in set(original) - set(contents):
                del original[key]
            original.update(contents)


def prepare(store: Store, config: PrepareConfig, name: str) -> tuple[Artifact, bool]:
    """Run the stage, or reuse an identical earlier version. Returns (artifact, reused)."""
    import datasets

    config.check()
    params = _fingerprint_params(config)
    params["split_ratios"] = list(config.split_ratios)
    params["source_hash"] = source_identity(config.source)
    if config.titles and (config.title_field is not None or has_titles(config.source)):
        params["titled"] = True
    # At word level, Chinese is cut into words first (lm.segmentation); the segmenter enters
    # the fingerprint of a dataset it changed, so one with no Chinese keeps its fingerprint.
    segmented = (dict(params, segmentation=segmentation_identity())
                 if config.level == "word" else None)
    for candidate in filter(None, (params, segmented)):
        cached = store.find_cached("dataset", name, fingerprint("dataset", [], candidate))
        if cached is not None:
            return cached, True

    with tempfile.TemporaryDirectory(prefix="lm-prepare-") as scratch, keeps_environ():
        loaded = with_titles(load_source(config.source, config.doc_sep, config.text_field,
                                         config.num_proc, config.title_field), config.titles)
        splits = make_splits(loaded, config, Path(scratch))
        if config.simplify:
            splits = datasets.DatasetDict(
                {s: d.map(_to_simplified, batched=True, num_proc=config.num_proc)
                 for s, d in splits.items()}
            )
        characters = None
        if segmented is not None:
            splits, characters = segment_documents(splits, config.num_proc)
        return _tokenize_and_write(store, config, name, params if characters is None
                                   else segmented, splits, Path(scratch), characters), False


def with_titles(loaded: datasets.DatasetDict, keep: bool) -> datasets.DatasetDict:
    """Each document as ``title<sep>body`` when the source has titles and they are kept;
    otherwise the ``title`` column dropped and the documents as they were."""
    import datasets

    if not any("title" in d.column_names for d in loaded.values()):
        return loaded
    if not keep:
        return datasets.DatasetDict({s: d.remove_columns("title") for s, d in loaded.items()})
    return datasets.DatasetDict({s: d.map(_join_title, batched=True, remove_columns=["title"])
                                 for s, d in loaded.items()})


def _join_title(batch: dict[str, list[str]]) -> dict[str, list[str]]:
    return {"text": [f"{title.replace(SEP, '')}{SEP}{body.replace(SEP, '')}"
                     for title, body in zip(batch["title"], batch["text"], strict=True)]}


def _tokenize_and_write(store: Store, config: PrepareConfig, name: str, params: dict[str, Any],
                        splits: datasets.DatasetDict, scratch: Path,
                        characters: dict[str, int] | None = None) -> Artifact:
    """Train the tokenizer on the train split, then encode every split into the artifact
    (``characters``: each split's characters before word segmentation, for its metrics)."""
    train = splits["train"]
    if not _has_text(train):
        raise LMError("the train split holds no text: check the source and --text-field")
    tokenizer = train_tokenizer(_training_items(train, config.cut_chars), config.level,
                                config.vocab_size, config.min_freq,
                                titled=params.get("titled", False))
    vocab_size = tokenizer.get_vocab_size()
    dtype = np.uint16 if vocab_size <= np.iinfo(np.uint16).max else np.uint32
    with store.create("dataset", name, [], params) as pending:
        tokenizer.save(str(pending.path / "tokenizer.json"))
        split_metrics = {
            split: write_split(data, tokenizer, dtype, pending.path / f"{split}.npy",
                               config.num_proc, config.cut_chars, scratch)
            for split, data in splits.items()
        }
        for split, count in (characters or {}).items():
            split_metrics[split]["characters"] = count
        pending.metrics = {"vocab_size": vocab_size, "splits": split_metrics}
        pending.extra["level"] = config.level
    return store.resolve(pending.extra["ref"], "dataset")


def _fingerprint_params(config: PrepareConfig) -> dict[str, Any]:
    """Every setting but ``--num-proc`` (it changes no token) and ``--titles`` (a dataset with
    titles says ``titled``; one without is the dataset made before titles were read), and a
    ``later`` one only when changed, so datasets made before it existed keep their
    fingerprints."""
    params = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name in ("num_proc", "titles") or (f.metadata.get("later") and value == f.default):
            continue
        params[f.name] = value
    return params


def make_splits(loaded: datasets.DatasetDict, config: PrepareConfig,
                scratch: Path) -> datasets.DatasetDict:
    """Keep the source's own splits; otherwise divide documents by the seeded ratios.

    Divided splits are written, in one sequential pass, to Arrow files in ``scratch``: each
    holds its documents in source order, as ``select`` of the sorted indices would.
    """
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
        order = np.arange(n)
        lengths = _lengths(data) + 1
        cumulative = np.cumsum(lengths) / lengths.sum()
        n_train = int(np.searchsorted(cumulative, config.split_ratios[0] - 1e-12) + 1)
        n_valid = int(np.searchsorted(cumulative, sum(config.split_ratios[:2]) - 1e-12) + 1)
        n_valid = min(n_valid, n) - min(n_train, n)
        n_train = min(n_train, n)
    if config.split_ratios[1] > 0 and n_valid == 0 and n - n_train > 0:
        n_valid = 1
    bounds = {"train": (0, n_train), "valid": (n_train, n_train + n_valid),
              "test": (n_train + n_valid, n)}
    _refuse_empty(bounds, config, n)
    assign = np.empty(n, dtype=np.int8)  # each document's split, by its place in the source
    for number, (a, b) in enumerate(bounds.values()):
        assign[order[a:b]] = number
    del order
    return _write_splits(data, assign, scratch)


def _write_splits(data: datasets.Dataset, assign: np.ndarray, scratch: Path
                  ) -> datasets.DatasetDict:
    """Route every document, reading the source once in order, to its split's Arrow file.

    Each file is written in record batches of about ``WRITE_BATCH_BYTES``: ``datasets`` maps
    a file and reads the header of every batch when it opens it, and each of those reads
    makes the pages around it resident.
    """
    import datasets
    import pyarrow as pa

    columns = [c for c in ("text", "words") if c in data.column_names]  # words: see sources
    schema = pa.schema([pa.field(c, pa.string()) for c in columns])
    paths = {s: scratch / f"split-{s}.arrow" for s in SPLITS}
    writers = {s: pa.ipc.new_stream(str(p), schema) for s, p in paths.items()}
    pending: dict[str, list[pa.RecordBatch]] = {s: [] for s in SPLITS}
    held = dict.fromkeys(SPLITS, 0)

    def flush(split: str) -> None:
        table = pa.Table.from_batches(pending[split], schema=schema).combine_chunks()
        for batch in table.to_batches():
            writers[split].write_batch(batch)
        pending[split], held[split] = [], 0

    start = 0
    for batch in _record_batches(data):
        here = assign[start:start + batch.num_rows]
        texts = pa.record_batch([batch.column(c).cast(pa.string()) for c in columns],
                                schema=schema)
        for number, split in enumerate(SPLITS):
            pending[split].append(texts.filter(pa.array(here == number)))
            held[split] += pending[split][-1].nbytes
            if held[split] >= WRITE_BATCH_BYTES:
                flush(split)
        start += batch.num_rows
    for split, writer in writers.items():
        flush(split)
        writer.close()
    return datasets.DatasetDict({s: datasets.Dataset.from_file(str(p)) for s, p in paths.items()})


def _refuse_empty(bounds: dict[str, tuple[int, int]], config: PrepareConfig, n: int) -> None:
    """A split the ratios ask for must get a document: training would silently validate on
    its own text, and the test perplexity would not exist."""
    for share, (split, (a, b)) in zip(config.split_ratios, bounds.items(), strict=True):
        if share > 0 and a == b:
            ratios = ",".join(f"{r:g}" for r in config.split_ratios)
            raise LMError(
                f"the source holds {n:,} document(s), too few for --split-ratios {ratios}: "
                f"the {split} split would be empty; cut it into more documents (--doc-sep "
                "line or blank), pass a folder with train.txt, valid.txt and test.txt, or "
                "--split-ratios 1,0,0 to keep it all for training"
            )


def _record_batches(data: datasets.Dataset) -> Iterator[pa.RecordBatch]:
    """The dataset's rows in order, at most ``BATCH_DOCS`` at a time, without mapping its files.

    A dataset that is exactly its Arrow files (as loaded, or as written by ``map`` or
    :func:`_write_splits`) is read from them as streams: a memory-mapped read would keep every
    page it touched resident, so the process would grow by the corpus's size. Any other (in
    memory, or a selection of rows) is read through ``datasets``.
    """
    import pyarrow as pa

    files = _plain_files(data)
    if files is None:
        batches = (b for t in data.with_format("arrow").iter(batch_size=BATCH_DOCS)
                   for b in t.to_batches())
    else:
        batches = (b for name in files for b in pa.ipc.open_stream(pa.OSFile(name)))
    for batch in batches:
        for start in range(0, batch.num_rows, BATCH_DOCS):
            yield batch.slice(start, BATCH_DOCS)


def _plain_files(data: datasets.Dataset) -> list[str] | None:
    """The Arrow files that hold exactly ``data``'s rows and columns, in order, or None."""
    import pyarrow as pa

    files = [f["filename"] for f in data.cache_files]
    if not files or data._indices is not None:  # no files, or a selection of their rows
        return None
    for name in files:
        with pa.OSFile(name) as source:
            if pa.ipc.open_stream(source).schema.names != data.column_names:
                return None  # columns renamed or dropped since
    return files


def _arrow_batches(data: datasets.Dataset) -> Iterator[pa.Array]:
    """The text column, a batch of documents at a time."""
    for batch in _record_batches(data):
        yield batch.column(batch.schema.get_field_index("text"))


def _lengths(data: datasets.Dataset) -> np.ndarray:
    """Characters of every document, read a batch at a time."""
    import pyarrow.compute as pc

    parts = [pc.utf8_length(t).to_numpy(zero_copy_only=False) for t in _arrow_batches(data)]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def _has_text(data: datasets.Dataset) -> bool:
    """Whether some document holds more than whitespace (stops at the first that does)."""
    import pyarrow.compute as pc

    for texts in _arrow_batches(data):
        lengths = pc.utf8_length(pc.utf8_trim_whitespace(texts))
        if (pc.max(lengths).as_py() or 0) > 0:
            return True
    return False


def _training_items(data: datasets.Dataset, cut_chars: int) -> Iterator[list[str]]:
    """Lists of training text for the tokenizer trainer, long documents cut into pieces.

    Each list holds at most about ``TRAIN_ITEM_CHARS`` characters (or one piece), since the
    trainer reads 256 of them ahead.
    """
    item: list[str] = []
    size = 0
    for texts in _arrow_batches(data):
        for text in texts.to_pylist():
            for piece in cut_pieces(text, cut_chars) if len(text) > cut_chars else (text,):
                if item and size + len(piece) > TRAIN_ITEM_CHARS:
                    yield item
                    item, size = [], 0
                item.append(piece)
                size += len(piece)
    if item:
        yield item


def _encode_batch(batch: pa.Table, tokenizer: Tokenizer, cut_chars: int) -> pa.Table:
    """``Dataset.map``'s function: documents → their ids (list<uint32>) and character counts."""
    import pyarrow as pa

    texts = batch.column("text").to_pylist()
    flat, lengths = encode_flat(tokenizer, texts, cut_chars)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat))
    counts = [_counts([t]) for t in texts]
    return pa.table({"ids": ids, "chars": pa.array([c[0] for c in counts], pa.int64()),
                     "title_chars": pa.array([c[1] for c in counts], pa.int64())})


def write_split(data: datasets.Dataset, tokenizer: Tokenizer, dtype: type, path: Path,
                num_proc: int | None, cut_chars: int, scratch: Path) -> dict[str, Any]:
    """Encode a split into ``path`` (.npy) and give its metrics.

    The ids are appended to a raw file a batch at a time; the .npy is its header and then
    those bytes, once the number of tokens is known. A split of titled documents also counts
    its titles' tokens and characters (each with its ``<sep>``) apart from the bodies'.
    """
    raw = scratch / f"{path.stem}.ids"
    tokens = chars = unk = title_tokens = title_chars = 0
    sep = tokenizer.token_to_id(SEP)
    with open(raw, "wb") as out:
        for flat, characters, titles in _encoded_batches(data, tokenizer, cut_chars, num_proc,
                                                         scratch):
            out.write(flat.astype(dtype, copy=False).tobytes())
            tokens += flat.size
            chars += characters
            title_chars += titles
            unk += int(np.count_nonzero(flat == UNK_ID))
            if sep is not None:
                title_tokens += _title_tokens(flat, sep)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": (tokens,)}
    with open(path, "wb") as out, open(raw, "rb") as source:
        np.lib.format.write_array_header_1_0(out, header)  # as np.save writes it
        shutil.copyfileobj(source, out, 1 << 24)
    raw.unlink()
    metrics = _metrics(len(data), tokens, chars + len(data), unk)
    if sep is not None:
        metrics.update(title_tokens=title_tokens, title_characters=title_chars + len(data))
    return metrics


def _title_tokens(flat: np.ndarray, sep: int) -> int:
    """Tokens of the titles of whole documents, each ``<sep>`` included."""
    starts = np.concatenate([[0], np.flatnonzero(flat == EOS_ID)[:-1] + 1])
    return int((np.flatnonzero(flat == sep) - starts + 1).sum())


def _counts(texts: list[str]) -> tuple[int, int]:
    """(body characters, title characters) of documents written ``title<sep>body`` or not."""
    titles = sum(t.index(SEP) for t in texts if SEP in t)
    cut = sum(len(SEP) for t in texts if SEP in t)
    return sum(map(len, texts)) - titles - cut, titles


def _encoded_batches(data: datasets.Dataset, tokenizer: Tokenizer, cut_chars: int,
                     num_proc: int | None, scratch: Path
                     ) -> Iterator[tuple[np.ndarray, int, int]]:
    """(flat ids, body characters, title characters) of each batch of documents, in order.

    With ``--num-proc`` (and enough documents) ``Dataset.map`` encodes the shards in parallel
    into Arrow files, read back in order; otherwise batches are encoded here as they are read.
    """
    import pyarrow.compute as pc

    if num_proc and len(data) >= PARALLEL_FROM_DOCS:
        encoded = data.with_format("arrow").map(
            _encode_batch, fn_kwargs={"tokenizer": tokenizer, "cut_chars": cut_chars},
            batched=True, batch_size=BATCH_DOCS, writer_batch_size=64 * BATCH_DOCS,
            remove_columns=data.column_names, num_proc=num_proc,
            cache_file_name=str(scratch / f"ids-{uuid.uuid4().hex}.arrow"),
            new_fingerprint=uuid.uuid4().hex,
        )
        for batch in _record_batches(encoded):
            flat = pc.list_flatten(batch.column("ids")).to_numpy(zero_copy_only=False)
            yield (flat, int(pc.sum(batch.column("chars")).as_py() or 0),
                   int(pc.sum(batch.column("title_chars")).as_py() or 0))
        return
    for texts in _arrow_batches(data):
        strings = texts.to_pylist()
        flat, _ = encode_flat(tokenizer, strings, cut_chars)
        yield (flat, *_counts(strings))


def _metrics(documents: int, tokens: int, chars: int, unk: int) -> dict[str, Any]:
    """A split's metrics; ``characters`` count one per document for the newline <eos> stands
    for."""
    return {"documents": documents, "tokens": tokens, "characters": chars, "unk": unk,
            "unk_rate": unk / max(tokens, 1)}


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
