"""Out-of-core counting gives the in-memory counts and models exactly, whatever the budget.

Budgets are given in bytes and chosen tiny (a few positions per block) so that every
corpus is cut into many blocks, spilled as many sorted runs and merged; the in-memory
``count_ngrams`` (itself checked against a dict reference and KenLM) is the oracle.
"""

from __future__ import annotations

import numpy as np
import pytest

from lm.ngram import NgramError, NgramModel
from lm.ngram.counting import count_ngrams
from lm.ngram.estimate import estimate_tables, estimate_tables_external
from lm.ngram.external import BYTES_PER_POSITION, _extend, count_ngrams_external
from lm.ngram.tables import insert_sentence_starts


def zipf_corpus(seed: int) -> tuple[np.ndarray, int, int, int]:
    """A random stream (Zipf-like words, sentences of 0-12 words, any eos id), V and order."""
    rng = np.random.default_rng(seed)
    vocab_size = int(rng.integers(3, 40))
    eos = int(rng.integers(0, vocab_size))
    words = np.array([w for w in range(vocab_size) if w != eos])
    weights = 1.0 / np.arange(1, words.size + 1)
    ids: list[int] = []
    for _ in range(int(rng.integers(1, 60))):
        ids.extend(rng.choice(words, size=int(rng.integers(0, 13)), p=weights / weights.sum()))
        ids.append(eos)
    return np.array(ids, dtype=np.int64), vocab_size, eos, int(rng.integers(1, 7))


def assert_same_counts(a, b) -> None:
    assert (a.order, a.vocab_size) == (b.order, b.vocab_size)
    for name in ("keys", "suffix", "adjusted", "count_stats"):
        for k, (x, y) in enumerate(zip(getattr(a, name), getattr(b, name), strict=True), 1):
            assert x.dtype == y.dtype, (name, k)
            np.testing.assert_array_equal(x, y, err_msg=f"{name} of order {k}")


@pytest.mark.parametrize("seed", range(30))
def test_counts_equal_the_in_memory_counts(seed: int, tmp_path) -> None:
    ids, vocab_size, eos, order = zipf_corpus(seed)
    expected = count_ngrams(ids, vocab_size, order, eos)
    for positions in (5, 30, 10**6):  # blocks of at least this many positions
        got, report = count_ngrams_external(ids, vocab_size, order, eos,
                                            4 * positions * BYTES_PER_POSITION, tmp_path / "s")
        assert_same_counts(expected, got)
        assert not (tmp_path / "s").exists()  # the spill folder is removed
        if positions == 5 and order > 1 and ids.size > 70:
            assert report.runs > order  # many blocks, each spilled as a sorted run


@pytest.mark.parametrize("seed", range(12))
def test_models_and_arpa_files_are_byte_identical(seed: int, tmp_path) -> None:
    ids, vocab_size, eos, order = zipf_corpus(100 + seed)
    ids = ids[:-1] if seed % 3 == 0 else ids  # also a trailing sentence without eos
    names = [f"w{i}" for i in range(vocab_size)]
    memory = NgramModel.from_tables(estimate_tables(ids, vocab_size, order, eos))
    tables, _ = estimate_tables_external(ids, vocab_size, order, eos,
                                         memory=20 * BYTES_PER_POSITION, folder=tmp_path / "s")
    spilled = NgramModel.from_tables(tables)
    memory.write_arpa(tmp_path / "a.arpa", names)
    spilled.write_arpa(tmp_path / "b.arpa", names)
    assert (tmp_path / "a.arpa").read_bytes() == (tmp_path / "b.arpa").read_bytes()
    memory.save(tmp_path / "a")
    spilled.save(tmp_path / "b")
    meta = [(tmp_path / side / "ngram.json").read_bytes() for side in ("a", "b")]
    assert meta[0] == meta[1]
    for x, y in zip(memory.keys + memory.log10_probs + memory.log10_backoffs,
                    spilled.keys + spilled.log10_probs + spilled.log10_backoffs, strict=True):
        np.testing.assert_array_equal(x, y)


def test_a_memory_mapped_split_is_counted_from_its_file(tmp_path) -> None:
    """What ``load_split`` returns (an np.memmap of a .npy, here uint16) gives the same counts,
    and so does a view of it (sliced, not read from the file)."""
    ids, vocab_size, eos, _ = zipf_corpus(7)
    np.save(tmp_path / "train.npy", ids.astype(np.uint16))
    mapped = np.load(tmp_path / "train.npy", mmap_mode="r")
    expected = count_ngrams(ids, vocab_size, 4, eos)
    for source in (mapped, mapped[:]):
        got, _ = count_ngrams_external(source, vocab_size, 4, eos, 36 * BYTES_PER_POSITION,
                                       tmp_path / "s")
        assert_same_counts(expected, got)


def test_block_extension_continues_sentences_across_blocks() -> None:
    """Cutting a stream anywhere and extending the pieces with the carried state gives the
    same ``<s>`` positions and (capped) depths as the whole stream."""
    ids = np.array([5, 6, 1, 1, 7, 7, 7, 7, 7, 1, 4], dtype=np.int64)
    ext, depth = insert_sentence_starts(ids, 1, 9)
    for cut in range(1, ids.size):
        first = _extend(ids[:cut], 1, 9, True, 0, 3)
        second = _extend(ids[cut:], 1, 9, bool(ids[cut - 1] == 1), int(first[1][-1]), 3)
        np.testing.assert_array_equal(np.concatenate([first[0], second[0]]), ext)
        np.testing.assert_array_equal(np.concatenate([first[1], second[1]]),
                                      np.minimum(depth, 3))


def test_bad_ids_in_a_late_block_are_refused_and_the_spill_removed(tmp_path) -> None:
    ids = np.array([2, 3, 1] * 20 + [9, 1])
    with pytest.raises(NgramError) as error:
        estimate_tables_external(ids, 5, 3, memory=4 * BYTES_PER_POSITION, folder=tmp_path / "s")
    assert str(error.value) == ("token id 9 is outside [0, 5); map unknown words to <unk> "
                                "(id 0) or raise vocab_size")
    assert not (tmp_path / "s").exists()


def test_argument_errors_match_the_in_memory_path(tmp_path) -> None:
    for call in (estimate_tables, lambda *a, **k: estimate_tables_external(
            *a, **k, memory=2**20, folder=tmp_path / "s")):
        with pytest.raises(NgramError, match="^training data is empty"):
            call(np.array([], dtype=np.int64), 4, 2)
        with pytest.raises(NgramError, match=r"^order must be an integer >= 1 \(got 0\)"):
            call(np.array([2, 1]), 4, 0)
        with pytest.raises(NgramError, match="^token ids must be a 1-D array"):
            call(np.array([[2, 1]]), 4, 2)
    with pytest.raises(NgramError, match="^memory must be a number of bytes >= 1, got 0"):
        estimate_tables_external(np.array([2, 1]), 4, 2, memory=0, folder=tmp_path / "s")


@pytest.mark.slow
@pytest.mark.parametrize("corpus", ["ptb", "wikitext2"])
def test_benchmark_corpora_spilled_give_the_kenlm_exact_tables(corpus: str, tmp_path,
                                                               request: pytest.FixtureRequest):
    """Order 5 on PTB and WikiText-2 under a 32 MiB budget (dozens of runs): the tables are
    those of the in-memory estimate, which ``test_ngram_benchmarks`` checks against lmplz."""
    train, _, vocab = request.getfixturevalue(corpus)
    expected = estimate_tables(train, len(vocab), 5)
    got, report = estimate_tables_external(train, len(vocab), 5, memory=32 * 2**20,
                                           folder=tmp_path / "s")
    assert report.runs > 8
    assert got.discounts == expected.discounts and got.num_ngrams == expected.num_ngrams
    for x, y in zip(expected.keys + expected.log10_probs + expected.log10_backoffs,
                    got.keys + got.log10_probs + got.log10_backoffs, strict=True):
        np.testing.assert_array_equal(x, y)
