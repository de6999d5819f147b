"""Shared by the training tests: a small word-level dataset in a fresh store."""

import pytest

from lm.artifacts import Store
from lm.data.prepare import PrepareConfig, prepare


@pytest.fixture
def data(tmp_path, word_corpus):
    """(store, dataset artifact) of the shared word corpus."""
    store = Store(tmp_path / "art")
    artifact, _ = prepare(store, PrepareConfig(str(word_corpus), level="word"), "w")
    return store, artifact
