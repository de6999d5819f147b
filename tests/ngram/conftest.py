"""Shared fixtures for the n-gram tests: the benchmark corpora and the kenlm module.

Corpora come from ../shared/data relative to the repository root (the same
relative location in CI); tests that use them are marked ``slow`` (marker
registered in pyproject.toml). When the data or kenlm (dev extras) is missing
they skip, saying what is missing, except under CI (environment variable ``CI``
set, as CI services do), where they fail: there a skip would hide that the
KenLM exactness checks did not run.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TINYSHAKESPEARE_SPLIT = 1_003_854

Corpus = tuple[np.ndarray, np.ndarray, dict[str, int]]


def missing(what: str, fix: str) -> None:
    """Fail under CI, skip elsewhere, with a message naming what is missing."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI={os.environ['CI']!r}: this check must run in CI); {fix}",
                    pytrace=False)
    pytest.skip(f"{what}; {fix}")


def _require(*parts: str) -> Path:
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        missing(f"benchmark data not found: {path}",
                "the corpora live in ../shared/data beside the repository (see its README)")
    return path


@pytest.fixture(scope="session")
def kenlm() -> ModuleType:
    """The ``kenlm`` module (PyPI ``kenlm``, in the dev extras), to check against KenLM itself."""
    try:
        import kenlm
    except ImportError:
        missing("the kenlm Python module is not installed",
                "pip install kenlm (PyPI; builds from source with a C++ compiler)")
    return kenlm


def _lines(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _encode(lines: list[str], vocab: dict[str, int], grow: bool) -> np.ndarray:
    """Whitespace-split words + eos (id 1) per line; ``<unk>`` is id 0 like any word."""
    out: list[int] = []
    for line in lines:
        for word in line.split():
            if grow and word not in vocab:
                vocab[word] = len(vocab)
            out.append(vocab[word])
        out.append(1)
    return np.array(out, dtype=np.int64)


def _word_corpus(name: str) -> Corpus:
    folder = _require(name)
    vocab = {"<unk>": 0, "<eos>": 1}
    train = _encode(_lines(folder / "train.txt"), vocab, grow=True)
    test = _encode(_lines(folder / "test.txt"), vocab, grow=False)
    return train, test, vocab


@pytest.fixture(scope="session")
def ptb() -> Corpus:
    """PTB (train ids, test ids, vocab); vocabulary = the 9,999 train words + eos."""
    return _word_corpus("ptb")


@pytest.fixture(scope="session")
def ptb_train_types() -> set[str]:
    """The distinct whitespace-separated words of PTB's train.txt, as lmplz reads them."""
    return set(_require("ptb", "train.txt").read_text(encoding="utf-8").split())


@pytest.fixture(scope="session")
def wikitext2() -> Corpus:
    """WikiText-2 (train ids, test ids, vocab); blank lines are empty sentences."""
    return _word_corpus("wikitext-2")


@pytest.fixture(scope="session")
def shakespeare_chars() -> Corpus:
    """Tiny Shakespeare characters, first 90% train; each line is a sentence.

    Vocabulary: ``<unk>`` (0), eos (1), then the train characters; test
    characters unseen in train map to ``<unk>``.
    """
    text = _require("tinyshakespeare", "input.txt").read_text(encoding="utf-8")
    train_text, test_text = text[:TINYSHAKESPEARE_SPLIT], text[TINYSHAKESPEARE_SPLIT:]
    vocab = {"<unk>": 0, "<eos>": 1}
    for ch in sorted(set(train_text) - {"\n"}):
        vocab[ch] = len(vocab)

    def encode(part: str) -> np.ndarray:
        lines = part.split("\n")
        lines = lines[:-1] if lines[-1] == "" else lines
        out: list[int] = []
        for line in lines:
            out.extend(vocab.get(ch, 0) for ch in line)
            out.append(1)
        return np.array(out, dtype=np.int64)

    return encode(train_text), encode(test_text), vocab
