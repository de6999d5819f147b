"""The n-gram tables: what estimation writes and what querying and ARPA I/O read.

Why a module of its own: as in KenLM, where estimation (``lm/builder``) and query
(``lm/``) meet only in shared structures (``lm/common``), the estimator
(``counting``, ``estimate``) produces ``NgramTables`` and the query side (``model``)
and the ARPA reader/writer (``arpa``) consume them; none of them imports another.
This module also holds the two conventions both sides must share exactly: the
sentence starts inserted before scoring or counting, and the key lookup.

Representation (backoff form, as in ARPA files and KenLM): the interpolated log10
probability of every stored n-gram plus a log10 backoff weight per context.
For order k >= 2 a sorted int64 array of keys ``prefix_index * (V + 1) + word``
where ``prefix_index`` is the position of the (k-1)-word prefix in the order k-1
array; all extensions of a context are one contiguous run of keys, and lookups
are ``np.searchsorted`` chains. Unigram arrays are indexed by word id directly,
with the pseudo-id ``V`` standing for ``<s>``. Values are float32 log10, like
KenLM and ARPA files.

Storage: ``ngram.json`` (metadata) and ``ngram.npz`` (arrays, loaded without pickle).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import numpy as np

from .errors import NgramError

Discounts = tuple[float, float, float]
T = TypeVar("T", bound="NgramTables")

_FORMAT = "lm.ngram"
_FORMAT_VERSION = 1
META_FILE = "ngram.json"
ARRAYS_FILE = "ngram.npz"


class NgramTables:
    """Sorted keys, log10 probabilities and backoffs of every order, over ids ``0..V-1``.

    ``keys[i]`` holds the (i+2)-grams; ``log10_probs[i]`` / ``log10_backoffs[i]`` the
    (i+1)-grams (``log10_probs[0]`` has ``V + 1`` entries, the last one ``<s>``).
    ``discounts`` holds the (D1, D2, D3+) of each order (``None`` for an imported
    ARPA); ``fallback_orders`` lists the orders whose discounts came from the fallback.
    """

    def __init__(
        self,
        *,
        order: int,
        vocab_size: int,
        eos_id: int,
        keys: list[np.ndarray],
        log10_probs: list[np.ndarray],
        log10_backoffs: list[np.ndarray],
        discounts: tuple[Discounts, ...] | None = None,
        fallback_orders: tuple[int, ...] = (),
    ) -> None:
        if len(keys) != order - 1 or len(log10_probs) != order or len(log10_backoffs) != order - 1:
            raise NgramError(
                f"inconsistent model arrays for order {order}; rebuild or re-save the model"
            )
        if log10_probs[0].size != vocab_size + 1:
            raise NgramError(
                f"unigram table has {log10_probs[0].size} entries, "
                f"expected vocab_size+1={vocab_size + 1}"
            )
        self.order = int(order)
        self.vocab_size = int(vocab_size)
        self.eos_id = int(eos_id)
        self.bos_id = int(vocab_size)
        self.keys = [np.ascontiguousarray(k, dtype=np.int64) for k in keys]
        self.log10_probs = [np.ascontiguousarray(p, dtype=np.float32) for p in log10_probs]
        self.log10_backoffs = [np.ascontiguousarray(b, dtype=np.float32) for b in log10_backoffs]
        self.discounts = discounts
        self.fallback_orders = tuple(fallback_orders)

    @classmethod
    def from_tables(cls: type[T], tables: NgramTables) -> T:
        """The same tables as an instance of ``cls`` (the arrays are shared, not copied)."""
        return cls(
            order=tables.order,
            vocab_size=tables.vocab_size,
            eos_id=tables.eos_id,
            keys=tables.keys,
            log10_probs=tables.log10_probs,
            log10_backoffs=tables.log10_backoffs,
            discounts=tables.discounts,
            fallback_orders=tables.fallback_orders,
        )

    @property
    def num_ngrams(self) -> list[int]:
        """Number of stored n-grams per order (unigrams include ``<s>``)."""
        return [self.vocab_size + 1] + [int(k.size) for k in self.keys]

    def save(self, directory: Path) -> list[str]:
        """Write ``ngram.json`` (metadata) and ``ngram.npz`` (arrays, no pickle).

        Returns the file names written (relative to ``directory``).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        for k, p in enumerate(self.log10_probs, start=1):
            arrays[f"log10_probs_{k}"] = p
        for k, b in enumerate(self.log10_backoffs, start=1):
            arrays[f"log10_backoffs_{k}"] = b
        for k, key in enumerate(self.keys, start=2):
            arrays[f"keys_{k}"] = key
        np.savez(directory / ARRAYS_FILE, **arrays)
        meta = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "order": self.order,
            "vocab_size": self.vocab_size,
            "eos_id": self.eos_id,
            "discounts": [list(d) for d in self.discounts] if self.discounts is not None else None,
            "fallback_orders": list(self.fallback_orders),
            "num_ngrams": self.num_ngrams,
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return [META_FILE, ARRAYS_FILE]

    @classmethod
    def load(cls: type[T], directory: Path) -> T:
        """Load tables written by ``save`` (``np.load`` with ``allow_pickle=False``)."""
        directory = Path(directory)
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            raise NgramError(
                f"{meta_path} not found; pass the directory that NgramModel.save wrote"
            )
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != _FORMAT or meta.get("version") != _FORMAT_VERSION:
            raise NgramError(
                f"{meta_path} is not an {_FORMAT} v{_FORMAT_VERSION} model; "
                "re-save it with this version"
            )
        order = int(meta["order"])
        with np.load(directory / ARRAYS_FILE, allow_pickle=False) as data:
            probs = [data[f"log10_probs_{k}"] for k in range(1, order + 1)]
            backoffs = [data[f"log10_backoffs_{k}"] for k in range(1, order)]
            keys = [data[f"keys_{k}"] for k in range(2, order + 1)]
        discounts = meta.get("discounts")
        return cls(
            order=order,
            vocab_size=int(meta["vocab_size"]),
            eos_id=int(meta["eos_id"]),
            keys=keys,
            log10_probs=probs,
            log10_backoffs=backoffs,
            discounts=tuple(tuple(d) for d in discounts) if discounts is not None else None,
            fallback_orders=tuple(meta.get("fallback_orders", ())),
        )


def insert_sentence_starts(
    ids: np.ndarray, eos_id: int, bos_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """Insert ``bos_id`` before every sentence of a token stream.

    Returns the extended stream and, for each of its positions, the depth in
    the sentence (0 for ``<s>``, 1 for the first real token, ...). A trailing
    sentence without eos is kept as an open sentence. Both scoring and counting
    use this, so they see exactly the same contexts.
    """
    n = ids.size
    starts = np.concatenate(([0], np.flatnonzero(ids == eos_id) + 1))
    starts = starts[starts < n]
    ext = np.insert(ids.astype(np.int64, copy=False), starts, bos_id)
    bos_positions = starts + np.arange(starts.size)
    marker = np.zeros(ext.size, dtype=np.int64)
    marker[bos_positions] = 1
    sentence = np.cumsum(marker) - 1
    depth = np.arange(ext.size, dtype=np.int64) - bos_positions[sentence]
    return ext, depth


def lookup_keys(sorted_keys: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Index of each ``key`` in ``sorted_keys``, or -1 where absent."""
    if sorted_keys.size == 0:
        return np.full(np.shape(key), -1, dtype=np.int64)
    idx = np.searchsorted(sorted_keys, key)
    clipped = np.minimum(idx, sorted_keys.size - 1)
    return np.where(sorted_keys[clipped] == key, clipped, -1)
