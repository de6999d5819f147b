"""Benchmark of the n-gram subpackage on PTB and WikiText-2 (order 5 by default).

Why: the n-gram baseline must stay exact to KenLM lmplz *and* about as fast to
build; this prints both in one table so regressions show up.

Columns:
  build s     wall time of ``estimate()`` (ids prepared beforehand): the first call in the
              process, then the best of ``--repeat`` calls (later calls reuse warm memory)
  peak MiB    peak of memory allocated during ``estimate()`` as traced by ``tracemalloc``
              (numpy buffers included), measured in a separate run
  ppl         test perplexity, default model (uniform over the vocabulary; sums to 1)
  ppl lmplz   test perplexity with ``vocab_pad=V+1``, lmplz's own arithmetic
  target      lmplz's figure for the same data (literal <unk> as an ordinary word)
  score tok/s ``logprobs()`` over the test split, best of ``--repeat``
  load s      best ``NgramModel.load`` of the saved model (``ngram.npz`` + ``ngram.json``)

With ``--memory SIZE`` (e.g. 32M) a second table shows the out-of-core path (``--memory`` of
``lm ngram``) beside the in-memory one on the same data:

  build s     wall time of ``estimate_tables_external()`` under that budget (first call)
  peak MiB    tracemalloc peak of that call (blocks, merge buffers and the count tables)
  runs        sorted runs spilled and merged; ``spill MiB`` the spill folder's peak size
  identical   whether every key, probability and backoff equals the in-memory estimate

Usage: ``python bench/ngram_bench.py [--data DIR] [--orders 5] [--repeat 3] [--memory 32M]``
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from lm.ngram import NgramModel, estimate
from lm.ngram.estimate import estimate_tables, estimate_tables_external
from lm.ngram.stage import parse_size

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CORPORA = {"PTB": "ptb", "WikiText-2": "wikitext-2"}
TARGETS = {("PTB", 5): 141.186, ("PTB", 3): 148.282, ("WikiText-2", 5): 220.139}


def _load(folder: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Whitespace words + eos (id 1) per line; vocabulary = train words, <unk> is id 0."""
    vocab = {"<unk>": 0, "<eos>": 1}

    def encode(path: Path, grow: bool) -> np.ndarray:
        out: list[int] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            for word in line.split():
                if grow:
                    out.append(vocab.setdefault(word, len(vocab)))
                else:
                    out.append(vocab[word])
            out.append(1)
        return np.array(out, dtype=np.int64)

    train = encode(folder / "train.txt", grow=True)
    test = encode(folder / "test.txt", grow=False)
    return train, test, len(vocab)


def _times(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """Wall times of ``repeat`` calls (first call first) and the last result."""
    times, result = [], None
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def _peak_mib(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def _row(
    name: str, train: np.ndarray, test: np.ndarray, vocab_size: int, order: int, repeat: int
) -> str:
    """Measure one (corpus, order) and format its table row."""
    build = partial(estimate, train, vocab_size, order)
    build_times, model = _times(build, repeat)
    peak = _peak_mib(build)
    score_times, logp = _times(partial(model.logprobs, test), repeat)
    ppl = math.exp(-float(logp.mean()))
    padded = estimate(train, vocab_size, order, vocab_pad=vocab_size + 1)
    ppl_lmplz = math.exp(-float(padded.logprobs(test).mean()))
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp))
        load_times, _ = _times(partial(NgramModel.load, Path(tmp)), repeat)
    target = TARGETS.get((name, order))
    target_text = f"{target:.3f}" if target else "-"
    return (
        f"| {name} | {order} | {sum(model.num_ngrams):,} "
        f"| {build_times[0]:.2f} / {min(build_times):.2f} | {peak:.0f} "
        f"| {ppl:.4f} | {ppl_lmplz:.4f} | {target_text} | {test.size / min(score_times):,.0f} "
        f"| {min(load_times):.3f} |"
    )


def _spilled_row(name: str, train: np.ndarray, vocab_size: int, order: int, memory: int) -> str:
    """Measure the out-of-core path under ``memory`` bytes against the in-memory tables."""
    expected = estimate_tables(train, vocab_size, order)
    with tempfile.TemporaryDirectory() as tmp:
        run = partial(estimate_tables_external, train, vocab_size, order, memory=memory,
                      folder=Path(tmp) / "spill")
        (seconds,), (tables, report) = _times(run, 1)
        peak = _peak_mib(run)
    same = all(np.array_equal(a, b) for a, b in zip(
        expected.keys + expected.log10_probs + expected.log10_backoffs,
        tables.keys + tables.log10_probs + tables.log10_backoffs, strict=True))
    spill = report.spill_peak_bytes / 2**20
    return (f"| {name} | {order} | {memory / 2**20:.0f} | {seconds:.2f} | {peak:.0f} "
            f"| {report.runs} | {spill:.1f} | {'yes' if same else 'NO'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--orders", type=int, nargs="+", default=[5])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory", type=parse_size, default=None,
                        help="also time the out-of-core path under this budget, e.g. 32M")
    args = parser.parse_args()

    header = (
        "| corpus | order | n-grams | build s first / best | peak MiB | ppl | ppl lmplz | target "
        "| score tok/s | load s |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, folder in CORPORA.items():
        if not (args.data / folder).is_dir():
            print(f"| {name} | - | data not found at {args.data / folder} |")
            continue
        train, test, vocab_size = _load(args.data / folder)
        for order in args.orders:
            print(_row(name, train, test, vocab_size, order, args.repeat))
    if args.memory is not None:
        _print_spilled(args)


def _print_spilled(args: argparse.Namespace) -> None:
    print()
    header = "| corpus | order | budget MiB | build s | peak MiB | runs | spill MiB | identical |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, folder in CORPORA.items():
        if (args.data / folder).is_dir():
            train, _, vocab_size = _load(args.data / folder)
            for order in args.orders:
                print(_spilled_row(name, train, vocab_size, order, args.memory))


if __name__ == "__main__":
    main()
