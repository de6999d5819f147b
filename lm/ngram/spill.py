"""Disk-backed arrays and the k-way merge of sorted runs, for out-of-core counting.

Why plain file reads and writes rather than ``np.memmap``: pages of a mapped file that
have been touched count in the process's resident set (and in ``ru_maxrss``) until the
kernel needs the memory back, so streaming a 1 GB array through a mapping makes the
process *look* 1 GB larger. Reading each block with ``np.fromfile`` keeps the resident
set at the size of the block, which is what a memory budget has to bound.

A *run* is what one block of the stream produced: its distinct keys, sorted, and their
counts. ``merge_runs`` merges any number of runs into the global sorted keys with summed
counts, holding about ``chunk`` entries in memory at a time (a buffer of
``chunk // runs`` entries per run, as lmplz's sort merges its blocks), and writes for
each run the global index of each of its keys.
"""

from __future__ import annotations

import mmap
import shutil
from pathlib import Path

import numpy as np

MERGE_BYTES_PER_ENTRY = 96  # peak bytes per buffered entry during a merge round


class Column:
    """A 1-D array in a raw binary file: appended block by block, read back by ranges."""

    def __init__(self, path: Path, dtype: np.dtype | type, spill: Spill | None = None) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.size = 0
        self.spill = spill
        self.path.write_bytes(b"")

    def append(self, values: np.ndarray) -> None:
        self._write(values, "ab", None)
        self.size += int(np.size(values))

    def read(self, start: int, stop: int) -> np.ndarray:
        """Elements ``start:stop`` (clipped to the column) as a new in-memory array."""
        start, stop = max(0, start), min(stop, self.size)
        if stop <= start:
            return np.empty(0, dtype=self.dtype)
        return np.fromfile(self.path, dtype=self.dtype, count=stop - start,
                           offset=start * self.dtype.itemsize)

    def write_at(self, start: int, values: np.ndarray) -> None:
        """Overwrite elements from ``start`` (in place; the column does not grow)."""
        self._write(values, "r+b", start)

    def _write(self, values: np.ndarray, mode: str, start: int | None) -> None:
        data = np.ascontiguousarray(values, dtype=self.dtype)
        with open(self.path, mode) as f:
            if start is not None:
                f.seek(start * self.dtype.itemsize)
            data.tofile(f)
        if self.spill is not None:
            self.spill.written_bytes += data.nbytes

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class Spill:
    """The temporary folder of one out-of-core build; tracks its disk use (peak and written)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.peak_bytes = 0
        self.written_bytes = 0
        self._count = 0

    def column(self, stem: str, dtype: np.dtype | type) -> Column:
        self._count += 1
        return Column(self.folder / f"{self._count:05d}-{stem}.bin", dtype, self)

    def note(self) -> None:
        """Record the folder's current size (call after each pass) in ``peak_bytes``."""
        size = sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())
        self.peak_bytes = max(self.peak_bytes, size)

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def read_tokens(ids: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``ids[start:stop]`` as an in-memory copy; a whole-file ``np.memmap`` is read with file
    I/O so that its pages never join the resident set."""
    if (isinstance(ids, np.memmap) and isinstance(ids.base, mmap.mmap) and ids.filename
            and ids.ndim == 1 and ids.flags.c_contiguous):
        stop = min(stop, ids.size)
        if stop <= start:
            return np.empty(0, dtype=ids.dtype)
        return np.fromfile(ids.filename, dtype=ids.dtype, count=stop - start,
                           offset=ids.offset + start * ids.dtype.itemsize)
    return np.array(ids[start:stop])


class _RunBuffer:
    """One run's window of keys and counts during a merge, refilled from disk as it drains."""

    def __init__(self, keys: Column, counts: Column, step: int) -> None:
        self.keys_col, self.counts_col, self.step = keys, counts, step
        self.read_to = 0
        self.keys = np.empty(0, dtype=np.int64)
        self.counts = np.empty(0, dtype=np.int64)
        self.refill()

    def refill(self) -> None:
        want = self.step - self.keys.size
        if want <= 0 or self.read_to >= self.keys_col.size:
            return
        stop = self.read_to + want
        self.keys = np.concatenate([self.keys, self.keys_col.read(self.read_to, stop)])
        self.counts = np.concatenate([self.counts, self.counts_col.read(self.read_to, stop)])
        self.read_to = min(stop, self.keys_col.size)

    def take(self, bound: int) -> tuple[np.ndarray, np.ndarray]:
        """Remove and return the buffered keys ``<= bound`` (and their counts)."""
        n = int(np.searchsorted(self.keys, bound, side="right"))
        keys, counts = self.keys[:n], self.counts[:n]
        self.keys, self.counts = self.keys[n:], self.counts[n:]
        return keys, counts


def merge_runs(runs: list[tuple[Column, Column]], maps: list[Column] | None, chunk: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Merge sorted runs ``(keys, counts)`` into the sorted distinct keys and summed counts.

    ``maps[r]`` (if given) receives, for each key of run ``r`` in order, its index in the
    result. Each
    round takes from every run the buffered keys up to the smallest last buffered key, so
    no run can hold a key that belongs to the round but was not read yet.
    """
    step = max(1, chunk // max(1, len(runs)))
    buffers = [_RunBuffer(k, c, step) for k, c in runs]
    out_keys: list[np.ndarray] = []
    out_counts: list[np.ndarray] = []
    merged = 0
    while True:
        live = [b for b in buffers if b.keys.size]
        if not live:
            break
        bound = min(int(b.keys[-1]) for b in live)
        pieces = [b.take(bound) for b in buffers]
        keys = np.concatenate([p[0] for p in pieces])
        counts = np.concatenate([p[1] for p in pieces])
        order = np.argsort(keys, kind="stable")
        keys, counts = keys[order], counts[order]
        del order
        new = np.empty(keys.size, dtype=bool)
        new[0] = True
        np.not_equal(keys[1:], keys[:-1], out=new[1:])
        starts = np.flatnonzero(new)
        unique = keys[starts]
        out_keys.append(unique)
        out_counts.append(np.add.reduceat(counts, starts))
        for (piece, _), target in zip(pieces, maps or [None] * len(pieces), strict=True):
            if piece.size and target is not None:
                target.append(merged + np.searchsorted(unique, piece))
        merged += unique.size
        for b in buffers:
            b.refill()
    if not out_keys:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(out_keys), np.concatenate(out_counts)
