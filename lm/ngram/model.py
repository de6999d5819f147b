"""The query side: backoff lookup, scoring and next-token distributions over ``NgramTables``.

Why a backoff representation: an interpolated Kneser-Ney model is stored, as in
ARPA files and KenLM, as the interpolated log10 probability of every seen n-gram
plus a log10 backoff weight per context (layout: ``tables.py``). Then::

    log p(w | h) = log p(h_m w) + sum of log backoff(h_l) for l = m .. len(h)

where ``h_m w`` is the longest stored n-gram ending the query and ``h_l`` is the
last ``l`` words of ``h`` (missing contexts contribute 0). This is exactly
KenLM's query, so a model imported from an ARPA file scores like KenLM does.
Lookups are vectorised over all positions of a stream at once; results are
returned as float64 natural logs.

Sentences: a stream is cut after every eos; each sentence is scored from
``<s>``. In ``next_logprobs`` a context containing eos starts over after its
last eos.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import arpa
from .errors import NgramError, validate_ids
from .tables import NgramTables, insert_sentence_starts, lookup_keys

_LN10 = math.log(10.0)


class NgramModel(NgramTables):
    """A backoff n-gram language model over ids ``0..vocab_size-1``.

    Build one with ``lm.ngram.estimate`` (modified Kneser-Ney), ``NgramModel.load``
    or ``NgramModel.from_arpa``; storage (``save``/``load``) and the arrays come from
    ``NgramTables``.
    """

    def __repr__(self) -> str:
        return (f"NgramModel(order={self.order}, vocab_size={self.vocab_size}, "
                f"ngrams={self.num_ngrams})")

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

    def perplexity(self, ids: np.ndarray) -> float:
        """exp(mean negative natural-log probability per token) of a stream, eos included.

        The same arithmetic as ``lm.evaluation``'s ``Evaluation.perplexity`` (float64
        sum over all tokens; ``inf`` past 700 nats per token).
        """
        logprobs = self.logprobs(ids)
        nats_per_token = float(-np.sum(logprobs, dtype=np.float64)) / max(logprobs.size, 1)
        return math.exp(nats_per_token) if nats_per_token < 700 else math.inf

    # -------------------------------------------------------------------- ARPA
    def write_arpa(self, path: Path, id_to_token: list[str]) -> None:
        """Write a standard ARPA file (log10 probabilities and backoffs).

        Id 0 is written as ``<unk>``, eos as ``</s>``, the sentence start as ``<s>``;
        other tokens must be ARPA-safe (``lm.ngram.arpa.arpa_names`` escapes whitespace).
        """
        arpa.write_arpa(self, Path(path), id_to_token)

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
        tables = arpa.read_arpa(Path(path), token_to_id, eos_id=eos_id, drop_unknown=drop_unknown)
        return cls.from_tables(tables)
