"""The source registry: recognising, loading, naming and identifying each kind of SOURCE."""

import json
import random

import pytest
from tests_support import POEM_CHARS

from lm.artifacts import Store
from lm.data import chinese_poetry
from lm.data.prepare import PrepareConfig, prepare
from lm.data.sources import default_name, find_source, load_source, source_identity
from lm.errors import LMError


def _fake_chinese_poetry(cache, version, poems=40, seed=3):
    """The npm package as ``package_dir`` leaves it, for one version: Tang poems only."""
    rng = random.Random(seed)
    records = [{"paragraphs": ["".join(rng.choice(POEM_CHARS) for _ in range(5)) + "，"
                               + "".join(rng.choice(POEM_CHARS) for _ in range(5)) + "。"
                               for _ in range(2)]} for _ in range(poems)]
    folder = cache / f"{chinese_poetry.PACKAGE}-{version}" / "dist" / "quantangshi"
    folder.mkdir(parents=True)
    (folder / "poet.tang.0.json").write_text(json.dumps(records, ensure_ascii=False), "utf-8")


def test_a_new_corpus_version_or_cleaning_never_reuses_a_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("LM_CACHE", str(tmp_path / "cache"))
    for version in ("2.0.1", "2.0.2"):  # the same poems under both versions
        _fake_chinese_poetry(tmp_path / "cache", version)
    store = Store(tmp_path / "art")
    config = PrepareConfig("chinese-poetry:tang", level="char")
    monkeypatch.setattr(chinese_poetry, "VERSION", "2.0.1")
    first, reused = prepare(store, config, "tang")
    assert not reused and first.metrics["splits"]["train"]["documents"] > 0
    assert prepare(store, config, "tang") == (first, True)

    monkeypatch.setattr(chinese_poetry, "VERSION", "2.0.2")
    newer, reused = prepare(store, config, "tang")
    assert not reused and newer.version == 2

    monkeypatch.setattr(chinese_poetry, "CLEANING_VERSION", chinese_poetry.CLEANING_VERSION + 1)
    recleaned, reused = prepare(store, config, "tang")
    assert not reused and recleaned.version == 3

    monkeypatch.setattr(chinese_poetry, "_LOST", chinese_poetry.re.compile("[□]"))
    assert source_identity("chinese-poetry:tang") != recleaned.manifest["params"]["source_hash"]


def test_each_source_is_recognised_and_named(tmp_path):
    (tmp_path / "words.txt").write_text("a b\n")
    (tmp_path / "rows.jsonl").write_text('{"text": "a"}\n')
    (tmp_path / "split").mkdir()
    (tmp_path / "split" / "train.txt").write_text("a\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "one.txt").write_text("a\n")
    kinds = {"chinese-poetry:tang/regular": "Corpus", "words.txt": "TextFile",
             "rows.jsonl": "TableFile", "docs": "DocumentFolder", "split": "SplitFolder",
             "user/corpus": "HubDataset"}
    names = {"chinese-poetry:tang/regular": "tang-regular", "words.txt": "words",
             "rows.jsonl": "rows", "docs": "docs", "split": "split", "user/corpus": "corpus"}
    for text, kind in kinds.items():
        assert type(find_source(text)).__name__ == kind, text
        assert default_name(text) == names[text]
    assert source_identity("user/corpus") == "user/corpus"
    with pytest.raises(LMError, match="no such file or folder"):
        find_source("missing.txt")
    with pytest.raises(LMError, match="unknown corpus"):
        source_identity("chinese-poetry:nope")


def _document_folder(folder):
    folder.mkdir()
    (folder / "b.txt").write_text("second\ndocument\n\n")
    (folder / "a.txt").write_text("\nfirst\r\n")
    (folder / "c [1].TXT").write_text("third")
    (folder / ".hidden.txt").write_text("ignored")
    (folder / "notes.md").write_text("ignored")
    (folder / "sub").mkdir()
    (folder / "sub" / "d.txt").write_text("ignored")
    return folder


def test_document_folder_makes_one_document_per_file_in_name_order(tmp_path):
    folder = _document_folder(tmp_path / "docs")
    loaded = load_source(str(folder), doc_sep="line")  # --doc-sep does not apply
    assert list(loaded) == ["all"]
    assert loaded["all"]["text"] == ["first", "second\ndocument", "third"]


def test_document_folder_through_the_command(cli, tmp_path):
    folder = tmp_path / "stories"
    folder.mkdir()
    for i in range(30):
        (folder / f"{i:02d}.txt").write_text(f"story {i}\nends here\n")
    result = cli("--artifacts", tmp_path / "art", "prepare", folder, "--level", "word")
    assert result.code == 0, result.err
    assert "wrote dataset:stories@v1" in result.out
    artifact = Store(tmp_path / "art").resolve("stories", "dataset")
    assert sum(s["documents"] for s in artifact.metrics["splits"].values()) == 30
    assert artifact.metrics["splits"]["train"]["documents"] == 27


def test_folder_sources_refuse_what_they_cannot_read(tmp_path):
    partial = tmp_path / "partial"  # split files but no train.txt: not a document folder
    partial.mkdir()
    (partial / "valid.txt").write_text("a\n")
    (partial / "other.txt").write_text("b\n")
    with pytest.raises(LMError, match="no train.txt"):
        load_source(str(partial))
    empty = _document_folder(tmp_path / "docs")
    (empty / "e.txt").write_text("\n")
    with pytest.raises(LMError, match="e.txt is empty"):
        load_source(str(empty))


def test_a_text_file_whose_name_looks_like_a_pattern(tmp_path):
    path = tmp_path / "poems [1].txt"
    path.write_text("one\ntwo\n")
    assert load_source(str(path))["all"]["text"] == ["one", "two"]
