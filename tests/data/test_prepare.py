import json

import numpy as np
import pytest

from lm.artifacts import Store
from lm.data.prepare import PrepareConfig, load_split, prepare
from lm.errors import LMError
from lm.tokenization import EOS_ID, load_tokenizer


def test_word_corpus_splits_by_document_and_counts_eos(tmp_path, word_corpus):
    store = Store(tmp_path / "art")
    artifact, reused = prepare(store, PrepareConfig(str(word_corpus), level="word"), "w")
    assert not reused
    lines = word_corpus.read_text().splitlines()
    splits = artifact.metrics["splits"]
    assert sum(s["documents"] for s in splits.values()) == len(lines)
    assert sum(s["tokens"] for s in splits.values()) == sum(len(x.split()) + 1 for x in lines)
    # every split ends with <eos> and holds whole documents
    for split in ("train", "valid", "test"):
        ids = load_split(artifact, split)
        assert ids[-1] == EOS_ID and np.count_nonzero(ids == EOS_ID) == splits[split]["documents"]
    # the tokenizer learned only from train, and the same seed gives the same split
    again, reused = prepare(store, PrepareConfig(str(word_corpus), level="word"), "w")
    assert reused and again.ref == artifact.ref
    other, _ = prepare(store, PrepareConfig(str(word_corpus), level="word", seed=5), "w")
    assert other.version == 2
    assert not np.array_equal(load_split(other, "test"), load_split(artifact, "test"))


def test_folder_keeps_given_splits_and_counts_unk(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "train.txt").write_text(" a b <unk> \n a c \n")
    (folder / "valid.txt").write_text(" a d \n")
    (folder / "test.txt").write_text(" b \n\n")
    artifact, _ = prepare(Store(tmp_path / "art"), PrepareConfig(str(folder), level="word"), "f")
    m = artifact.metrics["splits"]
    assert (m["train"]["tokens"], m["valid"]["tokens"], m["test"]["tokens"]) == (7, 3, 3)
    assert m["train"]["unk"] == 1 and m["valid"]["unk"] == 1  # literal <unk>, unseen "d"
    assert artifact.metrics["vocab_size"] == 5  # <unk> <eos> a b c
    tok = load_tokenizer(artifact.file("tokenizer.json"))
    assert tok.encode("a b").ids == [tok.token_to_id("a"), tok.token_to_id("b"), EOS_ID]


def test_jsonl_source_and_missing_field(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps({"body": f"doc {i} text"}) for i in range(40)))
    store = Store(tmp_path / "art")
    artifact, _ = prepare(store, PrepareConfig(str(path), level="word", text_field="body"), "j")
    assert artifact.metrics["splits"]["train"]["documents"] == 36
    with pytest.raises(LMError, match="no field 'text'.*--text-field"):
        prepare(store, PrepareConfig(str(path), level="word"), "j2")


def test_ordered_split_cuts_by_characters(tmp_path, poem_corpus):
    config = PrepareConfig(str(poem_corpus), level="char", doc_sep="blank", shuffle=False,
                           split_ratios=(0.8, 0.1, 0.1))
    artifact, _ = prepare(Store(tmp_path / "art"), config, "p")
    m = artifact.metrics["splits"]
    total = sum(s["characters"] for s in m.values())
    assert abs(m["train"]["characters"] / total - 0.8) < 0.01
    # in order: the first train document is the file's first poem
    tok = load_tokenizer(artifact.file("tokenizer.json"))
    first = poem_corpus.read_text().split("\n\n")[0]
    ids = list(load_split(artifact, "train")[: len(first) + 1])
    assert ids == tok.encode(first).ids


@pytest.mark.parametrize("ratios", [(0.5, 0.2, 0.2), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1)])
def test_bad_split_ratios(tmp_path, word_corpus, ratios):
    with pytest.raises(LMError, match="split-ratios"):
        prepare(Store(tmp_path), PrepareConfig(str(word_corpus), split_ratios=ratios), "x")
