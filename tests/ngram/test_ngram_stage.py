import numpy as np

from lm.artifacts import Store
from lm.data.prepare import PrepareConfig, load_split, prepare
from lm.evaluation.perplexity import Evaluation
from lm.ngram import NgramModel
from lm.ngram.arpa import arpa_names, arpa_vocabulary
from lm.ngram.stage import NgramConfig, build_ngram


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
