import json
import os

import numpy as np
import pytest
from tests_support import assert_clean_error

from lm.artifacts import Store
from lm.data.local import SPLITS
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


# --- pinned: what `lm prepare` made before it streamed (issue 13); the streaming version must
# make the same split, the same arrays and the same fingerprint parameters.
PINNED = {
    "word-seed0": (
        {"level": "word"}, [29, 41, 56], [15, 31, 33],
        {"train": "e6dd2a8bae0b8969c0ad82fceb55b7f836f77d9dab1ffde2b18542a4d68d110e",
         "valid": "01203ae895c292045da1fa15aeeaad3287abb50fc79f43d5598017e8a2991a46",
         "test": "a9f87ae714308751cefcfc79bdd43b2f73b5857d74675a97cdccfa0c0bd32cd2"}),
    "word-seed3": (
        {"level": "word", "seed": 3, "split_ratios": (0.8, 0.1, 0.1)},
        [14, 16, 26, 34, 36, 55], [5, 7, 19, 53, 54, 56],
        {"train": "3433fb0150bab408f93ff9b5087811b21a0a75a22b49c80847ea74c4a0c48254",
         "valid": "44bf5438b3807fa3417ac440d002fdbc90901b09a80c1030a48582b4758eec83",
         "test": "5a160ac8ccf4d6f18409367fe078a082603732d880447bb6eed6fe8fd11f08ea"}),
}
PINNED_ORDERED_CHAR = {
    "train": "7f9f7f7b827f8ac8afb02bb011790829c5f2d24a230545106b44bf8555701e28",
    "valid": "1b20460812e375ac22be17a666f9d30b1d50aeb77ade2d608bbdaf791b39366a",
    "test": "8dd30cd1255e5b8aad2a9bea54cc6f423a357819c0990428680de4ff15a6a70b",
}


def _numbered_corpus(path):
    """60 documents; document i starts with the digits of i as words (all seen in train)."""
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away"]
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(60):
            handle.write(" ".join(str(i)) + " "
                         + " ".join(words[(i * k) % 10] for k in range(1, 2 + i % 6)) + "\n")
    return path


def _document_numbers(artifact, split):
    tok = load_tokenizer(artifact.file("tokenizer.json"))
    text = tok.decode([int(i) for i in load_split(artifact, split)], skip_special_tokens=False)
    return [int("".join(w for w in doc.split() if w.isdigit()))
            for doc in text.split("<eos>") if doc.strip()]


@pytest.mark.parametrize("case", sorted(PINNED))
def test_split_and_arrays_are_those_made_before_streaming(tmp_path, case):
    settings, valid, test, hashes = PINNED[case]
    path = _numbered_corpus(tmp_path / "docs.txt")
    artifact, _ = prepare(Store(tmp_path / "art"), PrepareConfig(str(path), **settings), "d")
    assert _document_numbers(artifact, "valid") == valid
    assert _document_numbers(artifact, "test") == test
    assert {s: artifact.manifest["files"][f"{s}.npy"]["sha256"] for s in hashes} == hashes
    params = dict(artifact.manifest["params"])
    assert params.pop("source") == str(path)
    assert params == {"level": "word", "vocab_size": None, "min_freq": 1, "doc_sep": "line",
                      "text_field": "text", "shuffle": True, "simplify": False,
                      "seed": settings.get("seed", 0),
                      "split_ratios": list(settings.get("split_ratios", (0.9, 0.05, 0.05))),
                      "source_hash": params["source_hash"]}


def test_ordered_char_split_is_the_one_made_before_streaming(tmp_path):
    chars = "春夏秋冬山水花月風雲日夜江河"
    path = tmp_path / "poems.txt"
    path.write_text("".join(
        "".join(chars[(i * k + 3) % 14] for k in range(1, 6)) + "，"
        + "".join(chars[(i + k) % 14] for k in range(5)) + "。\n\n" for i in range(30)),
        encoding="utf-8")
    config = PrepareConfig(str(path), level="char", doc_sep="blank", shuffle=False,
                           split_ratios=(0.8, 0.1, 0.1))
    artifact, _ = prepare(Store(tmp_path / "art"), config, "p")
    assert {s: artifact.manifest["files"][f"{s}.npy"]["sha256"]
            for s in PINNED_ORDERED_CHAR} == PINNED_ORDERED_CHAR


def test_a_source_too_small_to_fill_every_split_is_refused(tmp_path, cli):
    one_line = tmp_path / "line.txt"
    one_line.write_text("one long line of words and no newline " * 50)
    with pytest.raises(LMError, match="1 document.*valid split would be empty.*--doc-sep"):
        prepare(Store(tmp_path / "art"), PrepareConfig(str(one_line), level="word"), "x")
    assert_clean_error(cli("prepare", one_line, "--level", "word"), "--split-ratios 1,0,0")
    ten = tmp_path / "ten.txt"  # 9 train, 1 valid, 0 test at 0.9,0.05,0.05
    ten.write_text("".join(f"line {i}\n" for i in range(10)))
    with pytest.raises(LMError, match="10 document.*the test split would be empty"):
        prepare(Store(tmp_path / "art"), PrepareConfig(str(ten), level="word"), "x")
    # asked for: everything in train
    config = PrepareConfig(str(one_line), level="word", split_ratios=(1.0, 0.0, 0.0))
    artifact, _ = prepare(Store(tmp_path / "art"), config, "x")
    assert [artifact.metrics["splits"][s]["documents"] for s in SPLITS] == [1, 0, 0]


def test_a_long_document_is_cut_into_pieces_with_the_same_tokens(tmp_path):
    """One line longer than --cut-chars: the same arrays as one read whole; only the
    fingerprint tells the two apart, and only because the setting was changed."""
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    line = " ".join(words[(i * i) % 5] for i in range(3000))
    path = tmp_path / "docs.txt"
    path.write_text(line + "\n" + "\n".join(" ".join(words[:k]) for k in range(1, 40)) + "\n")
    store = Store(tmp_path / "art")
    whole, _ = prepare(store, PrepareConfig(str(path), level="bpe", vocab_size=30), "w")
    cut, _ = prepare(store, PrepareConfig(str(path), level="bpe", vocab_size=30,
                                          cut_chars=100), "w")
    assert cut.version == 2 and cut.manifest["params"]["cut_chars"] == 100
    assert "cut_chars" not in whole.manifest["params"]  # the default leaves fingerprints as
    for split in SPLITS:  # they were before the setting existed
        assert np.array_equal(load_split(cut, split), load_split(whole, split))
    assert cut.metrics == whole.metrics
    tok = load_tokenizer(whole.file("tokenizer.json"))
    assert sum(s["tokens"] for s in whole.metrics["splits"].values()) == sum(
        len(tok.encode(doc).ids) for doc in path.read_text().splitlines())


def test_parallel_encoding_writes_the_same_arrays(tmp_path, monkeypatch, word_corpus):
    from lm.data import prepare as stage

    store = Store(tmp_path / "art")
    serial, _ = prepare(store, PrepareConfig(str(word_corpus), level="word"), "s")
    monkeypatch.setattr(stage, "PARALLEL_FROM_DOCS", 10)
    monkeypatch.setattr(stage, "BATCH_DOCS", 7)  # several batches per worker
    environ, before = os.environ, dict(os.environ)
    parallel, reused = prepare(store, PrepareConfig(str(word_corpus), level="word",
                                                    num_proc=2), "p")
    # datasets swaps os.environ for a copy when it forks: the process keeps its own, as it was
    assert os.environ is environ and dict(os.environ) == before
    assert not reused and parallel.metrics == serial.metrics
    for split in SPLITS:
        assert np.array_equal(load_split(parallel, split), load_split(serial, split))
    assert load_split(parallel, "train").dtype == np.uint16


def test_documents_are_read_in_order_from_files_or_through_datasets(tmp_path):
    """Files are streamed as they are; a selection or an in-memory table goes through
    datasets; both give the rows in order, at most BATCH_DOCS at a time."""
    import datasets

    from lm.data import prepare as stage

    path = tmp_path / "docs.txt"
    path.write_text("".join(f"doc {i}\n" for i in range(2500)))
    loaded = datasets.load_dataset("text", data_files=str(path), split="train",
                                   cache_dir=str(tmp_path / "cache"))
    selected = loaded.select(range(3, 2500, 7))
    in_memory = datasets.Dataset.from_dict({"text": [f"doc {i}" for i in range(1200)]})
    assert stage._plain_files(loaded) == [f["filename"] for f in loaded.cache_files]
    assert stage._plain_files(selected) is None and stage._plain_files(in_memory) is None
    assert stage._plain_files(loaded.rename_column("text", "body")) is None
    for data, expected in ((loaded, range(2500)), (selected, range(3, 2500, 7)),
                           (in_memory, range(1200))):
        batches = list(stage._record_batches(data))
        assert max(b.num_rows for b in batches) <= stage.BATCH_DOCS
        texts = [t for b in batches for t in b.column("text").to_pylist()]
        assert texts == [f"doc {i}" for i in expected]
