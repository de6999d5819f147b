import numpy as np
import pytest
from tests_support import assert_clean_error

from lm.artifacts import Store
from lm.data.prepare import PrepareConfig, load_split, prepare
from lm.evaluation.perplexity import Evaluation
from lm.ngram import NgramModel
from lm.ngram.arpa import arpa_names, arpa_vocabulary
from lm.ngram.stage import NgramConfig, build_ngram, parse_size, split_perplexity


def test_arpa_names_escape_whitespace():
    assert arpa_names(["<unk>", "<eos>", "\n", " ", "a b", "春"]) == [
        "<unk>", "<eos>", "<U+000A>", "<U+0020>", "a<U+0020>b", "春"]
    assert arpa_vocabulary(["<unk>", "<eos>", "\n", "a b"]) == {
        "<unk>": 0, "<eos>": 1, "<U+000A>": 2, "a<U+0020>b": 3}


def test_char_level_ngram_artifact_round_trips_through_arpa(tmp_path, poem_corpus):
    store = Store(tmp_path / "art")
    data, _ = prepare(store, PrepareConfig(str(poem_corpus), level="char", doc_sep="blank"), "p")
    built, reused = build_ngram(store, data, "p4", NgramConfig(order=4))
    assert not reused and built.metrics["test_perplexity"] > 1
    assert "<U+000A>" in built.file("model.arpa").read_text("utf-8")
    imported, _ = build_ngram(store, data, "p4-arpa",
                              NgramConfig(order=4, from_arpa=built.file("model.arpa")))
    ids = np.asarray(load_split(data, "test"))
    np.testing.assert_allclose(NgramModel.load(imported.path).logprobs(ids),
                               NgramModel.load(built.path).logprobs(ids), atol=1e-5)
    again, reused = build_ngram(store, data, "p4", NgramConfig(order=4))
    assert reused and again.ref == built.ref


def test_stage_perplexities_are_the_evaluation_figures(tmp_path, poem_corpus):
    """The stage scores with the model itself (ngram imports no lm.evaluation), same numbers."""
    store = Store(tmp_path / "art")
    data, _ = prepare(store, PrepareConfig(str(poem_corpus), level="char", doc_sep="blank"), "p")
    built, _ = build_ngram(store, data, "p3", NgramConfig(order=3, arpa=False))
    model = NgramModel.load(built.path)
    for split in ("valid", "test"):
        ids = np.asarray(load_split(data, split))
        assert built.metrics[f"{split}_perplexity"] == Evaluation.from_logprobs(
            ids, model.logprobs(ids)).perplexity


def test_memory_sizes_parse_and_bad_ones_are_refused() -> None:
    assert parse_size("512M") == 512 * 2**20
    assert parse_size("2G") == 2 * 2**30
    assert parse_size("1.5g") == 3 * 2**29
    assert parse_size("64KiB") == 2**16
    assert parse_size("4096") == 4096
    for bad in ("", "2Q", "G", "-1G", "two"):
        with pytest.raises(ValueError, match="a size such as 512M or 2G"):
            parse_size(bad)


def test_out_of_core_stage_writes_the_in_memory_artifact(tmp_path, poem_corpus):
    """A 64K budget forces the spilled path on the poem corpus; the model files are the same
    bytes, the perplexities the same numbers, and no spill file is left anywhere."""
    store = Store(tmp_path / "art")
    data, _ = prepare(store, PrepareConfig(str(poem_corpus), level="char", doc_sep="blank"), "p")
    memory, _ = build_ngram(store, data, "in-memory", NgramConfig(order=4))
    spilled, _ = build_ngram(store, data, "spilled",
                             NgramConfig(order=4, memory=2**16, tmp=tmp_path / "tmp"))
    counting = spilled.metrics["counting"]
    assert memory.metrics["counting"] == {"path": "in memory", "memory_bytes": None}
    assert counting["path"] == "external" and counting["runs"] > 4
    assert counting["spill_peak_bytes"] > 0 and spilled.metrics["peak_rss_bytes"] > 0
    for file in ("model.arpa", "ngram.npz", "ngram.json"):
        assert spilled.file(file).read_bytes() == memory.file(file).read_bytes(), file
    for split in ("valid", "test"):
        assert spilled.metrics[f"{split}_perplexity"] == memory.metrics[f"{split}_perplexity"]
    assert sorted(spilled.manifest["files"]) == sorted(memory.manifest["files"])
    assert list((tmp_path / "tmp").iterdir()) == []


def test_chunked_split_perplexity_is_the_whole_split_figure(tmp_path, poem_corpus):
    store = Store(tmp_path / "art")
    data, _ = prepare(store, PrepareConfig(str(poem_corpus), level="char", doc_sep="blank"), "p")
    built, _ = build_ngram(store, data, "p3", NgramConfig(order=3, arpa=False))
    model = NgramModel.load(built.path)
    ids = load_split(data, "test")
    for block in (1, 7, 50, 10**9):
        assert split_perplexity(model, ids, block) == model.perplexity(np.asarray(ids))


def test_cli_memory_errors_are_one_line(cli, word_corpus):
    assert cli("prepare", word_corpus, "--level", "word", "--name", "w").code == 0
    assert_clean_error(cli("ngram", "w", "--memory", "2Q"),
                       "--memory takes a size such as 512M or 2G, not '2Q'")
    assert_clean_error(cli("ngram", "w", "--memory", "1K"), "--memory must be at least 64K")
    result = cli("ngram", "w", "--order", "3", "--memory", "64K")
    assert result.code == 0, result.err
    assert "counted external (budget 64.0 KiB)" in result.out and "peak RSS" in result.out
