"""N-gram counting with numpy, producing KenLM lmplz's adjusted counts.

Why this layout: every distinct k-gram gets a dense id, its rank in lexicographic
order. A (k+1)-gram is then keyed by ``prefix_id * (V + 1) + last_word``, which
fits in an int64 for any order (ids are bounded by the corpus size), so counting
order k+1 is one sort of one int64 per corpus position; no Python objects per
n-gram. Sorted keys double as the lookup structure of the model (searchsorted),
and all extensions of a context are one contiguous run of keys.

Sentence handling follows lmplz: each sentence is ``<s> w1 .. wn </s>`` (the
``</s>`` is the eos id that closes it in the stream), ``<s>`` is the pseudo-id
``V`` and appears only as the first word of an n-gram; an n-gram never reaches
further left than the ``<s>`` of its sentence (lmplz pads with ``<s>`` and then
collapses ``<s> <s> ..`` to ``<s> ..``). An empty sentence (a lone eos) is
``<s> </s>``, as lmplz does for a blank line.

Adjusted counts (Chen & Goodman / lmplz ``adjust_counts.cc``):

* highest order: the raw count;
* lower orders: the number of distinct words (``<s>`` included) seen directly
  to the left of the n-gram;
* any n-gram starting with ``<s>``: the raw count (nothing can precede it);
* the unigram ``<s>``: 0 (it is never predicted).

Counts-of-counts (for the discounts) are collected as lmplz collects them,
including one lmplz quirk reproduced on purpose so that discounts match to the
last digit: for each lower order up to the one reached by the last highest-order
n-gram in lmplz's sort order, the last n-gram enters the statistics with its raw
count instead of its adjusted count (adjust_counts.cc flushes the final n-grams
with ``actual_counts``). lmplz sorts by suffix using its own word ids, which it
assigns in order of first appearance (``</s>`` first, ``<s>`` below every word),
so that n-gram can be found from the training stream alone. On PTB this moves
one unigram from n4 to n5+ and changes the unigram D3+ in the fourth digit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tables import insert_sentence_starts

_INT64_LIMIT = 2**63


@dataclass(frozen=True)
class NgramCounts:
    """Distinct n-grams of every order with their adjusted counts.

    ``keys[k - 1]`` holds the sorted keys of the k-grams (``prefix_id * (V + 1) +
    word``; for k == 1 simply the word id, ``0..V`` with ``V`` = ``<s>``).
    ``suffix[k - 1][i]`` is the index, among the (k-1)-grams, of k-gram ``i``
    without its first word (empty for k == 1). ``adjusted[k - 1]`` are the
    adjusted counts. ``count_stats[k - 1][j]`` is the number of k-grams with
    adjusted count j (j = 1..4; index 0 unused) as lmplz tallies them for the
    discounts.
    """

    order: int
    vocab_size: int
    keys: list[np.ndarray]
    suffix: list[np.ndarray]
    adjusted: list[np.ndarray]
    count_stats: list[np.ndarray]


def _sort_group(
    keys: np.ndarray, pos: np.ndarray, pos_bits: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sort keys (carrying their positions) and find runs of equal keys.

    Returns ``(unique_keys, counts, sorted_pos, group_of_sorted, run_starts)``.
    When key and position fit together in 64 bits they are packed into one
    uint64 and sorted with ``np.sort``, which is several times faster than
    ``argsort``; otherwise argsort is the fallback.
    """
    n = keys.size
    key_bits = int(keys.max()).bit_length()
    if key_bits + pos_bits <= 64:
        shift = np.uint64(pos_bits)
        packed = (keys.astype(np.uint64) << shift) | pos.astype(np.uint64)
        packed.sort()
        sorted_keys = (packed >> shift).astype(np.int64)
        sorted_pos = (packed & np.uint64((1 << pos_bits) - 1)).astype(np.int64)
        del packed
    else:
        perm = np.argsort(keys)
        sorted_keys = keys[perm]
        sorted_pos = pos[perm]
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=new[1:])
    run_starts = np.flatnonzero(new)
    unique_keys = sorted_keys[run_starts]
    counts = np.diff(run_starts, append=n)
    group = np.cumsum(new) - 1
    return unique_keys, counts, sorted_pos, group, run_starts


def _lmplz_last_position(
    ext: np.ndarray, depth: np.ndarray, order: int, bos: int, eos_id: int
) -> int:
    """Position (in ``ext``) where lmplz's last highest-order n-gram ends.

    lmplz sorts n-grams by their last word, then the one before, ... using ids
    given in order of first appearance, with ``</s>`` before every word and the
    ``<s>`` padding lowest. Returns -1 for an empty stream.
    """
    tokens = np.flatnonzero(depth >= 1)
    if tokens.size == 0:
        return -1
    words = ext[tokens]
    rank = np.full(bos + 1, -3, dtype=np.int64)
    first = np.full(bos + 1, ext.size, dtype=np.int64)
    np.minimum.at(first, words, tokens)
    seen = first < ext.size
    rank[seen] = first[seen]
    rank[eos_id] = -1
    rank[bos] = -2
    cand = tokens[words == words[np.argmax(rank[words])]]
    for d in range(1, order):
        if cand.size == 1:
            break
        before = np.where(depth[cand] >= d, ext[cand - np.minimum(d, depth[cand])], bos)
        values = rank[before]
        cand = cand[values == values.max()]
    return int(cand[0])


def count_ngrams(ids: np.ndarray, vocab_size: int, order: int, eos_id: int) -> NgramCounts:
    """Count all n-grams up to ``order`` and compute lmplz's adjusted counts.

    ``ids`` must already be validated (1-D, ids in ``[0, vocab_size)``, ending
    with ``eos_id``).
    """
    base = vocab_size + 1
    bos = vocab_size
    ext, depth = insert_sentence_starts(ids, eos_id, bos)
    pos_bits = max(1, int(ext.size).bit_length())
    last = _lmplz_last_position(ext, depth, order, bos, eos_id)
    # lmplz tallies the last n-gram of orders 1..last_orders with its raw count.
    last_orders = min(int(depth[last]) + 1, order - 1) if last >= 0 else 0
    last_index = [int(ext[last])] if last >= 0 else [-1]

    raw1 = np.bincount(ext, minlength=base).astype(np.int64)
    raw1[bos] = 0
    keys: list[np.ndarray] = [np.arange(base, dtype=np.int64)]
    raw: list[np.ndarray] = [raw1]
    suffix: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
    starts_with_bos: list[np.ndarray] = [np.arange(base) == bos]

    prev_gid = ext  # id of the (k-1)-gram ending at each position
    pos = np.flatnonzero(depth >= 1)
    for k in range(2, order + 1):
        if k > 2:
            pos = pos[depth[pos] >= k - 1]
        n_prev = keys[-1].size
        if n_prev * base >= _INT64_LIMIT:
            raise OverflowError(f"{k}-gram keys overflow int64 ({n_prev} contexts x {base})")
        if pos.size == 0:
            empty = np.empty(0, dtype=np.int64)
            for table in (keys, raw, suffix):
                table.append(empty)
            last_index.append(-1)
            starts_with_bos.append(np.empty(0, dtype=bool))
            prev_gid = np.full(ext.size, -1, dtype=np.int64)
            continue
        ngram_keys = prev_gid[pos - 1] * base + ext[pos]
        unique_keys, counts, sorted_pos, group, run_starts = _sort_group(ngram_keys, pos, pos_bits)
        del ngram_keys
        gid = np.full(ext.size, -1, dtype=np.int64)
        gid[sorted_pos] = group
        representative = sorted_pos[run_starts]
        last_index.append(int(gid[last]) if last >= 0 else -1)
        keys.append(unique_keys)
        raw.append(counts.astype(np.int64))
        suffix.append(prev_gid[representative])
        starts_with_bos.append(depth[representative] == k - 1)
        prev_gid = gid

    adjusted, count_stats = adjust_counts(order, bos, keys, raw, suffix, starts_with_bos,
                                          last_orders, last_index)
    return NgramCounts(order=order, vocab_size=vocab_size, keys=keys, suffix=suffix,
                       adjusted=adjusted, count_stats=count_stats)


def adjust_counts(
    order: int, bos: int, keys: list[np.ndarray], raw: list[np.ndarray],
    suffix: list[np.ndarray], starts_with_bos: list[np.ndarray],
    last_orders: int, last_index: list[int],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Adjusted counts and lmplz's counts-of-counts from raw counts and suffix links.

    Shared by the in-memory and the out-of-core counting, which differ only in how they
    find the distinct n-grams. ``last_index[k - 1]`` is the index of lmplz's last n-gram
    among the k-grams (-1: none); it is tallied raw at orders ``1..last_orders``.
    """
    adjusted: list[np.ndarray] = []
    count_stats: list[np.ndarray] = []
    for k in range(1, order + 1):
        if k == order:
            adj = raw[k - 1].copy()
        else:
            adj = np.bincount(suffix[k], minlength=keys[k - 1].size).astype(np.int64)
            mask = starts_with_bos[k - 1]
            adj[mask] = raw[k - 1][mask]
        if k == 1:
            adj[bos] = 0
        adjusted.append(adj)
        tally = adj.copy()
        if k <= last_orders and last_index[k - 1] >= 0:
            tally[last_index[k - 1]] = raw[k - 1][last_index[k - 1]]
        count_stats.append(np.bincount(np.minimum(tally, 5), minlength=6)[:5])
    return adjusted, count_stats
