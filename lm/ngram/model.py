"""The n-gram model: backoff lookup, scoring, next-token distributions, storage.

Why a backoff representation: an interpolated Kneser-Ney model is stored, as in
ARPA files and KenLM, as the interpolated log10 probability of every seen n-gram
plus a log10 backoff weight per context. Then::

    log p(w | h) = log p(h_m w) + sum of log backoff(h_l) for l = m .. len(h)

where ``h_m w`` is the longest stored n-gram ending the query and ``h_l`` is the
last ``l`` words of ``h`` (missing contexts contribute 0). This is exactly
KenLM's query, so a model imported from an ARPA file scores like KenLM does.

Storage: for order k >= 2 a sorted int64 array of keys ``prefix_index * (V + 1)
+ word`` where ``prefix_index`` is the position of the (k-1)-word prefix in the
order k-1 array (see ``counting.py``). Lookups are ``np.searchsorted`` chains,
vectorised over all positions of a stream at once. Unigram arrays are indexed by
word id directly, with the pseudo-id ``V`` standing for ``<s>``. Values are
float32 log10, like KenLM and ARPA files; results are returned as float64
natural logs.

Sentences: a stream is cut after every eos; each sentence is scored from
``<s>``. In ``next_logprobs`` a context containing eos starts over after its
last eos.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from . import arpa as _arpa
from .counting import insert_sentence_starts, lookup_keys
from .errors import NgramError, validate_ids

_LN10 = math.log(10.0)
_FORMAT = "lm.ngram"
_FORMAT_VERSION = 1
META_FILE = "ngram.json"
ARRAYS_FILE = "ngram.npz"


class NgramModel:
    """A backoff n-gram language model over ids ``0..vocab_size-1``.

    Build one with ``estimate`` (modified Kneser-Ney), ``NgramModel.load`` or
    ``NgramModel.from_arpa``. ``discounts`` holds the (D1, D2, D3+) of each order
    (``None`` for an imported ARPA); ``fallback_orders`` lists the orders whose
    discounts came from the fallback.
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
        discounts: tuple[tuple[float, float, float], ...] | None = None,
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
        # keys[i] holds the (i+2)-grams; log10_probs[i] / log10_backoffs[i] the (i+1)-grams.
        self.keys = [np.ascontiguousarray(k, dtype=np.int64) for k in keys]
        self.log10_probs = [np.ascontiguousarray(p, dtype=np.float32) for p in log10_probs]
        self.log10_backoffs = [np.ascontiguousarray(b, dtype=np.float32) for b in log10_backoffs]
        self.discounts = discounts
        self.fallback_orders = tuple(fallback_orders)

    def __repr__(self) -> str:
        sizes = [self.vocab_size + 1] + [k.size for k in self.keys]
        return f"NgramModel(order={self.order}, vocab_size={self.vocab_size}, ngrams={sizes})"

    @property
    def num_ngrams(self) -> list[int]:
        """Number of stored n-grams per order (unigrams include ``<s>``)."""
        return [self.vocab_size + 1] + [int(k.size) for k in self.keys]

    # ------------------------------------------------------------------ lookup
    def _child(self, k: int, parent: np.ndarray, word: np.ndarray) -> np.ndarray:
        """Index of the k-gram ``parent + word`` among the k-grams, or -1 (k >= 2).

        A parent of -1 (missing prefix) gives a negative key and is never found.
        """
        return lookup_keys(self.keys[k - 2], parent * (self.vocab_size + 1) + word)

    # ----------------------------------------------------------------- scoring
    def logprobs(self, ids: np.ndarray) -> np.ndarray:
        """Natural-log probability of every token of a stream (same length as ``ids``).

        Each sentence (ended by eos) is scored from ``<s>``; the eos itself is
        predicted. Vectorised over the whole stream, one searchsorted per order.
        """
        arr = validate_ids(ids, self.vocab_size, self.eos_id)
        if arr.size == 0:
            return np.empty(0, dtype=np.float64)
        ext, depth = insert_sentence_starts(arr, self.eos_id, self.bos_id)
        predicted = np.flatnonzero(depth >= 1)
        score = self.log10_probs[0][ext[predicted]].astype(np.float64)
        matched = np.ones(predicted.size, dtype=np.int64)
        # gid[p] = index of the k-gram ending at ext position p (or -1).
        gids = [ext]
        for k in range(2, self.order + 1):
            prev = gids[-1]
            gid = np.full(ext.size, -1, dtype=np.int64)
            cand = np.flatnonzero(depth >= k - 1)
            cand = cand[prev[cand - 1] >= 0]
            gid[cand] = self._child(k, prev[cand - 1], ext[cand])
            gids.append(gid)
            hit = gid[predicted] >= 0
            score[hit] = self.log10_probs[k - 1][gid[predicted[hit]]]
            matched[hit] = k
        for length in range(1, self.order):
            ctx = gids[length - 1][predicted - 1]
            use = (ctx >= 0) & (length >= matched)
            score[use] += self.log10_backoffs[length - 1][ctx[use]]
        return score * _LN10

    def next_logprobs(self, contexts: list[list[int]]) -> np.ndarray:
        """Natural-log next-token distributions, shape ``[len(contexts), vocab_size]``.

        A context is the ids since sentence start (may be empty); only its last
        ``order - 1`` ids matter. For a model built by ``estimate`` every row
        sums to 1 in probability space.
        """
        n_ctx = self.order - 1
        rows = len(contexts)
        mat = np.full((rows, max(n_ctx, 1)), -1, dtype=np.int64)
        for i, ctx in enumerate(contexts):
            seq = np.asarray(ctx, dtype=np.int64).reshape(-1)
            if seq.size and (seq.min() < 0 or seq.max() >= self.vocab_size):
                bad = seq[(seq < 0) | (seq >= self.vocab_size)][0]
                raise NgramError(
                    f"context {i} has id {bad} outside [0, {self.vocab_size}); "
                    "map unknown words to <unk> (id 0)"
                )
            eos_at = np.flatnonzero(seq == self.eos_id)
            if eos_at.size:
                seq = seq[eos_at[-1] + 1 :]
            full = np.concatenate(([self.bos_id], seq))[-n_ctx:] if n_ctx else np.empty(0, np.int64)
            if full.size:
                mat[i, n_ctx - full.size :] = full
        out = np.tile(self.log10_probs[0][: self.vocab_size].astype(np.float64), (rows, 1))
        base = self.vocab_size + 1
        for length in range(1, n_ctx + 1):
            toks = mat[:, n_ctx - length :]
            cid = toks[:, 0].copy()
            for t in range(1, length):
                ok = cid >= 0
                cid[ok] = self._child(t + 1, cid[ok], toks[ok, t])
            have = np.flatnonzero(cid >= 0)
            if have.size == 0:
                continue
            cids = cid[have]
            out[have] += self.log10_backoffs[length - 1][cids].astype(np.float64)[:, None]
            keys = self.keys[length - 1]
            lo = np.searchsorted(keys, cids * base)
            hi = np.searchsorted(keys, cids * base + base)
            sizes = hi - lo
            total = int(sizes.sum())
            if total == 0:
                continue
            row_of = np.repeat(have, sizes)
            offsets = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
            idx = np.repeat(lo, sizes) + offsets
            out[row_of, keys[idx] % base] = self.log10_probs[length][idx]
        return out * _LN10

    # ----------------------------------------------------------------- storage
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
    def load(cls, directory: Path) -> NgramModel:
        """Load a model written by ``save`` (``np.load`` with ``allow_pickle=False``)."""
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

    # -------------------------------------------------------------------- ARPA
    def write_arpa(self, path: Path, id_to_token: list[str]) -> None:
        """Write a standard ARPA file (log10 probabilities and backoffs).

        Id 0 is written as ``<unk>``, eos as ``</s>``, the sentence start as ``<s>``.
        """
        _arpa.write_arpa(self, Path(path), id_to_token)

    @classmethod
    def from_arpa(
        cls, path: Path, token_to_id: dict[str, int], *, eos_id: int = 1, drop_unknown: bool = False
    ) -> NgramModel:
        """Import an ARPA file (e.g. from KenLM) against a tokenizer's vocabulary.

        ``</s>`` maps to ``eos_id``, ``<unk>`` to id 0, ``<s>`` to the sentence
        start. An ARPA word missing from ``token_to_id`` is an error, or with
        ``drop_unknown=True`` every n-gram containing it is dropped. Vocabulary
        words absent from the ARPA get the ``<unk>`` unigram probability (and
        no backoff), as KenLM scores them.
        """
        return cls(
            **_arpa.read_arpa(Path(path), token_to_id, eos_id=eos_id, drop_unknown=drop_unknown)
        )
