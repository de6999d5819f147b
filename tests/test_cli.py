"""The command line as a user meets it: the whole pipeline, and one-line errors on bad input."""

import json

import pytest
from tests_support import assert_clean_error


def test_prepare_train_perplexity_sample_by_name(cli, word_corpus):
    assert cli("prepare", word_corpus, "--level", "word", "--name", "x").code == 0
    train = cli("train", "x", "--max-steps", "30", "--no-wandb", "--no-progress", "--emb-size",
                "16", "--hidden-size", "16", "--batch-size", "8", "--bptt", "10")
    assert train.code == 0, train.err
    assert "wrote model:x@v1" in train.out
    result = cli("perplexity", "x", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["model"] == "model:x@v1" and report["tokens"] > 0
    assert report["perplexity"] == pytest.approx(2 ** report["bits_per_token"], rel=1e-9)
    first = cli("sample", "x", "--json", "--num", "3", "--seed", "4", "--prime", "the cat")
    second = cli("sample", "x", "--json", "--num", "3", "--seed", "4", "--prime", "the cat")
    assert first.code == 0 and first.out == second.out
    samples = json.loads(first.out)["samples"]
    assert len(samples) == 3 and all(s.startswith("the cat") for s in samples)
    listing = cli("artifacts", "list")
    assert "dataset:x@v1" in listing.out and "model:x@v1" in listing.out
    shown = cli("artifacts", "show", "model:x")
    assert "dataset:x@v1" in shown.out and "lineage" in shown.out
    again = cli("prepare", word_corpus, "--level", "word", "--name", "x")
    assert "reusing dataset:x@v1" in again.out


def test_unknown_prime_characters_are_named(cli, word_corpus):
    cli("prepare", word_corpus, "--level", "word", "--name", "x")
    cli("train", "x", "--max-steps", "5", "--no-wandb", "--no-progress", "--emb-size", "8",
        "--hidden-size", "8")
    result = cli("sample", "x", "--prime", "the zebra", "--num", "1", "--max-tokens", "3")
    assert result.code == 0
    assert "'zebra'" in result.err and "<unk>" in result.err


def test_ngram_compare_and_mixture(cli, word_corpus):
    cli("prepare", word_corpus, "--level", "word", "--name", "x")
    cli("train", "x", "--max-steps", "20", "--no-wandb", "--no-progress", "--emb-size", "8",
        "--hidden-size", "8")
    built = cli("ngram", "x", "--order", "3")
    assert built.code == 0 and "ngram:x-3gram@v1" in built.out
    ng = json.loads(cli("perplexity", "x-3gram", "--json").out)
    rnn = json.loads(cli("perplexity", "x", "--json").out)
    assert ng["tokens"] == rnn["tokens"]
    mixed = json.loads(cli("perplexity", "x", "--mix", "x-3gram", "--weight", "auto",
                           "--json").out)
    assert 0 <= mixed["weight"] <= 1
    assert mixed["perplexity"] <= max(ng["perplexity"], rnn["perplexity"]) + 1e-9
    compared = cli("compare", "x", "x-3gram")
    assert compared.code == 0 and "comparison:x-vs-x-3gram@v1" in compared.out


def test_pipeline_with_override(cli, word_corpus, tmp_path):
    spec = tmp_path / "p.yaml"
    spec.write_text(f"""
stages:
  prepare: {{source: {word_corpus}, name: p, level: word}}
  train: {{dataset: p, max_steps: 200, emb_size: 8, hidden_size: 8, wandb: false,
          progress: false}}
  sample: {{model: p, num: 2, max_tokens: 5}}
""")
    result = cli("run", spec, "--set", "train.max_steps=7")
    assert result.code == 0, result.err
    assert "--max-steps 7" in result.out and "── 2 ──" in result.out
    assert cli("run", spec, "--set", "nonsense").code == 2


def _bad_files(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text("  \n\t\n")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02abc")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    (tmp_path / "nosplits").mkdir()
    (tmp_path / "rows.jsonl").write_text('{"body": "hello"}\n')


BAD_INPUTS = [
    (["prepare", "empty.txt"], "empty"),
    (["prepare", "blank.txt"], "only whitespace"),
    (["prepare", "binary.txt"], "looks binary"),
    (["prepare", "latin1.txt"], "not UTF-8"),
    (["prepare", "missing.txt"], "no such file"),
    (["prepare", "nosplits"], "no train.txt"),
    (["prepare", "rows.jsonl"], "no field 'text'"),
    (["prepare", "chinese-poetry:nope"], "unknown corpus"),
    (["prepare", "WORDS", "--vocab-size", "0"], "--vocab-size"),
    (["prepare", "WORDS", "--min-freq", "0"], "--min-freq"),
    (["prepare", "WORDS", "--split-ratios", "0.5,0.2,0.2"], "sum to 1"),
    (["prepare", "WORDS", "--split-ratios", "a,b,c"], "comma-separated numbers"),
    (["prepare", "WORDS", "--level", "byte"], "--level"),
    (["prepare", "WORDS", "--doc-sep", "comma"], "--doc-sep"),
    (["prepare", "WORDS", "--name", "../evil"], "invalid artifact name"),
    (["train", "nothing"], "no dataset artifact named 'nothing'"),
    (["train", "w", "--hidden-size", "0"], "--hidden-size"),
    (["train", "w", "--emb-size", "-3"], "--emb-size"),
    (["train", "w", "--layers", "0"], "--layers"),
    (["train", "w", "--bptt", "0"], "--bptt"),
    (["train", "w", "--bptt", "100000", "--batch-size", "1"], "longer than"),
    (["train", "w", "--lr", "-1"], "--lr"),
    (["train", "w", "--lr", "nan"], "--lr"),
    (["train", "w", "--dropout", "1.5"], "--dropout"),
    (["train", "w", "--cell", "transformer"], "--cell"),
    (["train", "w", "--optimizer", "lbfgs"], "--optimizer"),
    (["train", "w", "--device", "cuda"], "CUDA"),
    (["train", "w", "--device", "tpu9"], "--device"),
    (["train", "w", "--resume"], "nothing to resume"),
    (["train", "m"], "needs a dataset"),
    (["sample", "w"], "needs a model or ngram"),
    (["sample", "m", "--temperature", "-1"], "--temperature"),
    (["sample", "m", "--temperature", "nan"], "--temperature"),
    (["sample", "m", "--top-p", "0"], "--top-p"),
    (["sample", "m", "--top-p", "1.5"], "--top-p"),
    (["sample", "m", "--top-k", "0"], "--top-k"),
    (["sample", "m", "--num", "0"], "--num"),
    (["sample", "m", "--prime", "zebra yak"], "every token of --prime"),
    (["sample", "m@v9"], "no version v9"),
    (["sample", "m@@x"], "cannot read artifact reference"),
    (["perplexity", "m", "--split", "dev"], "no split 'dev'"),
    (["perplexity", "m", "--file", "missing.txt"], "no such file"),
    (["perplexity", "m", "--file", "binary.txt"], "looks binary"),
    (["perplexity", "m", "--text", " "], "--text is empty"),
    (["perplexity", "m", "--context", "global"], "--context"),
    (["perplexity", "m", "--mix", "m"], "one RNN model and one n-gram"),
    (["perplexity", "m", "--mix", "w-1gram", "--weight", "2"], "--weight"),
    (["ngram", "w", "--order", "0"], "--order"),
    (["ngram", "w", "--from-arpa", "missing.arpa"], "no such ARPA file"),
    (["run", "missing.yaml"], "no such pipeline spec"),
    (["artifacts", "show", "nothing"], "no dataset or model"),
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """One store with dataset w, model m and n-gram w-1gram, plus the bad files, made once."""
    from tests_support import make_word_corpus

    from lm.artifacts import Store
    from lm.data.prepare import PrepareConfig, prepare
    from lm.ngram.stage import NgramConfig, build_ngram
    from lm.training.loop import TrainConfig, train

    folder = tmp_path_factory.mktemp("bad-input")
    _bad_files(folder)
    corpus = make_word_corpus(folder / "words.txt")
    store = Store(folder / "artifacts")
    data, _ = prepare(store, PrepareConfig(str(corpus), level="word"), "w")
    train(store, data, TrainConfig.of(emb_size=8, hidden_size=8, max_steps=3, device="cpu"), "m",
          use_wandb=False, progress=False, log=lambda *_: None)
    build_ngram(store, data, "w-1gram", NgramConfig(order=1, arpa=False))
    return folder


@pytest.mark.parametrize("args, message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_gives_one_line_error(cli, prepared, args, message):
    import torch

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    names = {p.name for p in prepared.iterdir()} | {"missing.txt", "missing.yaml", "missing.arpa"}
    args = [args[0]] + [str(prepared / "words.txt") if a == "WORDS" else
                        str(prepared / a) if a in names else a for a in args[1:]]
    before = sorted(p.relative_to(prepared) for p in (prepared / "artifacts").rglob("*"))
    result = cli("--artifacts", prepared / "artifacts", *args)
    assert_clean_error(result, message)
    after = sorted(p.relative_to(prepared) for p in (prepared / "artifacts").rglob("*"))
    assert after == before  # nothing written, nothing lost


def test_debug_shows_the_traceback(cli, prepared):
    from lm.errors import LMError

    with pytest.raises(LMError):
        cli("--artifacts", prepared / "artifacts", "--debug", "sample", "m", "--temperature", "-1")


def test_a_store_root_that_is_a_file_is_an_error(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("not a folder\n")
    result = cli("--artifacts", tmp_path / "notes.txt", "artifacts", "list")
    assert_clean_error(result, "is not a folder: pass --artifacts a folder")
    assert result.out == ""


def test_an_unknown_cell_is_named_with_the_choices(cli, word_corpus):
    cli("prepare", word_corpus, "--level", "word", "--name", "x")
    result = cli("train", "x", "--cell", "sru", "--no-wandb", "--no-progress")
    assert_clean_error(result, "--cell must be one of rnn-tanh, rnn-relu, gru, lstm, indrnn")


def test_indrnn_trains_end_to_end(cli, word_corpus):
    cli("prepare", word_corpus, "--level", "word", "--name", "x")
    result = cli("train", "x", "--cell", "indrnn", "--max-steps", "30", "--no-wandb",
                 "--no-progress", "--emb-size", "16", "--hidden-size", "16", "--batch-size",
                 "8", "--bptt", "10")
    assert result.code == 0, result.err
    report = json.loads(cli("perplexity", "x", "--json").out)
    assert report["perplexity"] < 17  # the corpus has 16 words + <unk> + <eos>: it learnt
