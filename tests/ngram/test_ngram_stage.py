import numpy as np

from lm.artifacts import Store
from lm.data.prepare import PrepareConfig, load_split, prepare
from lm.ngram import NgramModel
from lm.ngram.stage import arpa_names, build_ngram


def test_arpa_names_escape_whitespace():
    assert arpa_names(["<unk>", "<eos>", "\n", " ", "a b", "春"]) == [
        "<unk>", "<eos>", "<U+000A>", "<U+0020>", "a<U+0020>b", "春"]


def test_char_level_ngram_artifact_round_trips_through_arpa(tmp_path, poem_corpus):
    store = Store(tmp_path / "art")
    data, _ = prepare(store, PrepareConfig(str(poem_corpus), level="char", doc_sep="blank"), "p")
    built, reused = build_ngram(store, data, 4, "p4")
    assert not reused and built.metrics["test_perplexity"] > 1
    assert "<U+000A>" in built.file("model.arpa").read_text("utf-8")
    imported, _ = build_ngram(store, data, 4, "p4-arpa", from_arpa=built.file("model.arpa"))
    ids = np.asarray(load_split(data, "test"))
    np.testing.assert_allclose(NgramModel.load(imported.path).logprobs(ids),
                               NgramModel.load(built.path).logprobs(ids), atol=1e-5)
    again, reused = build_ngram(store, data, 4, "p4")
    assert reused and again.ref == built.ref
