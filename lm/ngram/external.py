"""Out-of-core n-gram counting under a memory budget, the way KenLM's ``lmplz`` builds.

Why: ``counting.count_ngrams`` holds the whole stream and several int64 arrays per
position in memory (about 150 bytes per token at order 5), so a corpus of hundreds of
millions of words does not fit. This module produces the *same* ``NgramCounts``, array
for array, while holding only one block of the stream at a time:

1. **Stream pass.** The token ids are read in blocks (a memory-mapped split with plain
   file reads, see ``spill``); ``<s>`` is inserted before every sentence and each
   position's depth in its sentence (capped at the order) is computed, carrying the open
   sentence from block to block. Both go to disk (``ext`` uint32, ``depth`` uint8), and
   the unigram counts and every word's first position (lmplz's word ids) are collected.
2. **lmplz's last n-gram** (the counts-of-counts quirk, see ``counting``): the
   occurrences of the word that appeared last are compared block by block, with a margin
   of ``order - 1`` positions before each block.
3. **Orders 2..N.** For each block the keys ``prev_id * (V + 1) + word`` of the
   positions where a k-gram ends are sorted and grouped into a *run* (distinct keys and
   counts) written to disk, and each position's index within its run is written too.
   The runs are merged (``spill.merge_runs``) into the order's sorted keys and counts;
   a second pass turns each position's run index into its global index, which is the
   ``prev_id`` of order k + 1. Blocks need no overlap: the id of the (k-1)-gram ending
   just before a block is read from the previous order's file.
4. Suffix links and ``<s>``-starts come from the tables themselves (the suffix of
   ``w1..wk`` is the suffix of its prefix extended by ``wk``); adjusted counts and
   counts-of-counts are ``counting.adjust_counts``, shared with the in-memory path.

Memory: a block of B positions peaks at about ``BYTES_PER_POSITION * B`` bytes; B is
chosen so that the block plus the count tables finished so far (keys and raw counts,
16 bytes per n-gram) fit the budget. The tables of every order stay in memory, as
estimation needs them; they are the size of the model. Disk: about 13 bytes per
position at the peak (stream, two id files) plus the runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import counting
from .counting import NgramCounts, _sort_group, adjust_counts
from .errors import NgramError, validate_ids
from .spill import MERGE_BYTES_PER_ENTRY, Column, Spill, merge_runs, read_tokens
from .tables import lookup_keys

BYTES_PER_POSITION = 120  # peak bytes per stream position while one block is counted
_NONE = int(np.iinfo(np.uint32).max)  # "no n-gram ends here" in the per-position id files
_FAR = np.iinfo(np.int64).max


@dataclass
class CountingReport:
    """What an out-of-core count did, for the command's output and the artifact's metrics."""

    memory_bytes: int
    positions: int = 0
    block_positions: list[int] = field(default_factory=list)
    runs: int = 0
    spill_peak_bytes: int = 0
    spill_written_bytes: int = 0
    table_bytes: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Stream:
    """The stream on disk: tokens with ``<s>`` inserted, depths, and what the pass collected."""

    ext: Column
    depth: Column
    size: int
    raw1: np.ndarray
    first: np.ndarray


def _extend(ids: np.ndarray, eos: int, bos: int, at_start: bool, depth_before: int,
            cap: int) -> tuple[np.ndarray, np.ndarray]:
    """``<s>``-extended block and capped depths, continuing the sentence left open before it.

    The same positions and depths as ``tables.insert_sentence_starts`` on the whole stream.
    """
    starts = np.flatnonzero(ids[:-1] == eos) + 1
    if at_start:
        starts = np.concatenate(([0], starts))
    ext = np.insert(ids, starts, bos)
    idx = np.arange(ext.size, dtype=np.int64)
    depth = depth_before + 1 + idx
    if starts.size:
        bos_pos = starts + np.arange(starts.size)
        marker = np.zeros(ext.size, dtype=np.int64)
        marker[bos_pos] = 1
        sentence = np.cumsum(marker) - 1
        inside = sentence >= 0
        depth[inside] = idx[inside] - bos_pos[sentence[inside]]
    return ext, np.minimum(depth, cap)


def _write_stream(ids: np.ndarray, vocab_size: int, eos: int, order: int, block: int,
                  spill: Spill) -> _Stream:
    """Pass 1: write ``ext``/``depth`` to disk; unigram counts and first positions."""
    n, bos, base = int(ids.shape[0]), vocab_size, vocab_size + 1
    depth_dtype = np.uint8 if order < 255 else np.uint32
    stream = _Stream(spill.column("ext", np.uint32), spill.column("depth", depth_dtype), 0,
                     np.zeros(base, dtype=np.int64), np.full(base, _FAR, dtype=np.int64))
    at_start, depth_before = True, 0
    for start in range(0, n, block):
        chunk = validate_ids(read_tokens(ids, start, start + block), vocab_size, eos)
        if start + block >= n and chunk[-1] != eos:
            chunk = np.append(chunk, eos)  # close a trailing open sentence, as estimate does
        ext, depth = _extend(chunk, eos, bos, at_start, depth_before, order)
        stream.raw1 += np.bincount(ext, minlength=base)
        tokens = np.flatnonzero(depth >= 1)
        words, where = np.unique(ext[tokens], return_index=True)
        stream.first[words] = np.minimum(stream.first[words], stream.size + tokens[where])
        stream.ext.append(ext)
        stream.depth.append(depth)
        at_start, depth_before = bool(chunk[-1] == eos), int(depth[-1])
        stream.size += ext.size
    stream.raw1[bos] = 0
    spill.note()
    return stream


def _last_position(stream: _Stream, order: int, bos: int, eos: int, block: int
                   ) -> tuple[int, int]:
    """(position, capped depth) of lmplz's last highest-order n-gram, block by block.

    ``counting._lmplz_last_position`` on the whole stream: the occurrences of the word
    first seen last, compared by the ranks of the words before them; the earliest wins ties.
    """
    rank = np.full(bos + 1, -3, dtype=np.int64)
    seen = stream.first < _FAR
    rank[seen] = stream.first[seen]
    rank[eos], rank[bos] = -1, -2
    target = int(np.argmax(rank))
    margin = order - 1
    best_key: tuple | None = None
    best = (-1, 0)
    for a in range(int(stream.first[target]), stream.size, block):
        lo, b = max(0, a - margin), min(a + block, stream.size)
        ext = stream.ext.read(lo, b).astype(np.int64)
        depth = stream.depth.read(lo, b).astype(np.int64)
        cand = (a - lo) + np.flatnonzero((ext[a - lo:] == target) & (depth[a - lo:] >= 1))
        for d in range(1, order):
            if cand.size <= 1:
                break
            before = np.where(depth[cand] >= d, ext[cand - np.minimum(d, depth[cand])], bos)
            values = rank[before]
            cand = cand[values == values.max()]
        if cand.size == 0:
            continue
        c = int(cand[0])
        key = tuple(int(rank[ext[c - d]] if depth[c] >= d else rank[bos]) for d in range(1, order))
        if best_key is None or key > best_key:
            best_key, best = key, (lo + c, int(depth[c]))
    return best


def _spill_runs(k: int, stream: _Stream, prev: Column, base: int, block: int, spill: Spill,
                local: Column | None) -> tuple[list[tuple[Column, Column]], list[tuple[int, int]]]:
    """Sort each block's k-gram keys into a run on disk; per-position run indices to ``local``."""
    runs: list[tuple[Column, Column]] = []
    spans: list[tuple[int, int]] = []
    pos_bits = max(1, int(block).bit_length())
    for a in range(0, stream.size, block):
        b = min(a + block, stream.size)
        ext = stream.ext.read(a, b).astype(np.int64)
        pos = np.flatnonzero(stream.depth.read(a, b) >= max(1, k - 1))
        # the id of the (k-1)-gram ending one position earlier; position 0 is a <s>, never used
        before = prev.read(a - 1, b - 1).astype(np.int64)
        if a == 0:
            before = np.concatenate(([0], before))
        ids = np.full(b - a, _NONE, dtype=np.uint32) if local is not None else None
        if pos.size:
            unique, counts, sorted_pos, group, _ = _sort_group(
                before[pos] * base + ext[pos], pos, pos_bits)
            run = (spill.column(f"run{k}-keys", np.int64), spill.column(f"run{k}-counts", np.int64))
            run[0].append(unique)
            run[1].append(counts)
            runs.append(run)
            spans.append((a, b))
            if ids is not None:
                ids[sorted_pos] = group
            del unique, counts, sorted_pos, group
        if ids is not None and local is not None:
            local.append(ids)
    spill.note()
    return runs, spans


def _count_order(k: int, stream: _Stream, prev: Column, base: int, block: int, chunk: int,
                 spill: Spill, want_ids: bool) -> tuple[np.ndarray, np.ndarray, Column | None, int]:
    """Keys and raw counts of order k; with ``want_ids`` also the per-position k-gram ids."""
    local = spill.column(f"ids{k}", np.uint32) if want_ids else None
    runs, spans = _spill_runs(k, stream, prev, base, block, spill, local)
    maps = [spill.column(f"map{k}", np.uint32) for _ in runs] if want_ids else None
    keys, counts = merge_runs(runs, maps, chunk)
    if keys.size >= _NONE:
        raise NgramError(f"{keys.size:,} distinct {k}-grams exceed the out-of-core limit of "
                         f"{_NONE - 1:,}; lower the order")
    for keys_col, counts_col in runs:
        keys_col.remove()
        counts_col.remove()
    if local is not None and maps is not None:
        spill.note()
        for (a, b), mapping in zip(spans, maps, strict=True):
            ids = local.read(a, b)
            used = ids != _NONE
            ids[used] = mapping.read(0, mapping.size)[ids[used]]
            local.write_at(a, ids)
            mapping.remove()
    return keys, counts, local, len(runs)


def _index_at(last: int, last_depth: int, k: int, stream: _Stream, prev: Column,
              keys: np.ndarray, base: int) -> int:
    """Index among the k-grams of the k-gram ending at ``last`` (-1 if none ends there)."""
    if last < 0 or last_depth < k - 1:
        return -1
    key = int(prev.read(last - 1, last)[0]) * base + int(stream.ext.read(last, last + 1)[0])
    return int(lookup_keys(keys, np.array([key], dtype=np.int64))[0])


def _links(keys: list[np.ndarray], base: int, bos: int) -> tuple[list[np.ndarray],
                                                                  list[np.ndarray]]:
    """Suffix links and starts-with-``<s>`` flags of every order, from the keys alone."""
    suffix: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
    starts_with_bos: list[np.ndarray] = [np.arange(base) == bos]
    for k in range(2, len(keys) + 1):
        prefix, word = np.divmod(keys[k - 1], base)
        if k == 2:
            suffix.append(word)
        else:
            suffix.append(lookup_keys(keys[k - 2], suffix[k - 2][prefix] * base + word))
        starts_with_bos.append(starts_with_bos[k - 2][prefix])
        del prefix, word
    return suffix, starts_with_bos


def _budget(memory: int, held: int) -> tuple[int, int]:
    """(block positions, merge chunk entries) that fit ``memory`` beside ``held`` bytes.

    At least a quarter of the budget goes to blocks even when the tables already take more
    (the model does not fit the budget then, and blocks of a few positions would only make
    the merge crawl); the report's ``table_bytes`` shows it.
    """
    free = max(memory - held, memory // 4)
    return max(1, free // BYTES_PER_POSITION), max(1, free // MERGE_BYTES_PER_ENTRY)


def count_ngrams_external(ids: np.ndarray, vocab_size: int, order: int, eos_id: int,
                          memory: int, folder: Path) -> tuple[NgramCounts, CountingReport]:
    """``counting.count_ngrams`` in blocks under ``memory`` bytes, spilling to ``folder``.

    ``ids`` is checked block by block (as ``validate_ids`` checks it whole) and need not
    end with ``eos_id``; ``folder`` is created and removed.
    """
    spill = Spill(folder)
    report = CountingReport(memory_bytes=int(memory))
    try:
        base, bos = vocab_size + 1, vocab_size
        block, chunk = _budget(memory, 0)
        stream = _write_stream(ids, vocab_size, eos_id, order, block, spill)
        report.positions = stream.size
        last, last_depth = _last_position(stream, order, bos, eos_id, block)
        last_orders = min(last_depth + 1, order - 1) if last >= 0 else 0
        keys = [np.arange(base, dtype=np.int64)]
        raw = [stream.raw1]
        last_index = [int(stream.ext.read(last, last + 1)[0]) if last >= 0 else -1]
        prev = stream.ext
        for k in range(2, order + 1):
            if keys[-1].size * base >= counting._INT64_LIMIT:
                raise OverflowError(
                    f"{k}-gram keys overflow int64 ({keys[-1].size} contexts x {base})")
            block, chunk = _budget(memory, sum(a.nbytes for a in keys + raw))
            report.block_positions.append(block)
            k_keys, k_counts, ids_k, runs = _count_order(
                k, stream, prev, base, block, chunk, spill, want_ids=k < order)
            report.runs += runs
            last_index.append(_index_at(last, last_depth, k, stream, prev, k_keys, base))
            if prev is not stream.ext:
                prev.remove()
            prev = ids_k if ids_k is not None else prev
            keys.append(k_keys)
            raw.append(k_counts)
        spill.note()
    finally:
        spill.cleanup()
    report.spill_peak_bytes, report.spill_written_bytes = spill.peak_bytes, spill.written_bytes
    suffix, starts_with_bos = _links(keys, base, bos)
    adjusted, count_stats = adjust_counts(order, bos, keys, raw, suffix, starts_with_bos,
                                          last_orders, last_index)
    report.table_bytes = sum(a.nbytes for a in keys + suffix + adjusted + raw)
    del raw
    return NgramCounts(order=order, vocab_size=vocab_size, keys=keys, suffix=suffix,
                       adjusted=adjusted, count_stats=count_stats), report
