import hashlib
import json

import numpy as np
import pytest

from lm.artifacts import Store
from lm.data.prepare import PrepareConfig, load_split, prepare
from lm.errors import LMError
from lm.training.loop import TrainConfig, train


def _dataset(tmp_path, corpus):
    store = Store(tmp_path / "art")
    artifact, _ = prepare(store, PrepareConfig(str(corpus), level="word"), "w")
    return store, artifact


def _config(**overrides) -> TrainConfig:
    base = dict(emb_size=16, hidden_size=16, layers=2, dropout=0.3, bptt=8, batch_size=4,
                epochs=5, eval_every=15, checkpoint_every=7, log_every=5, device="cpu",
                threads=1)  # one thread: tiny models, and CI machines are often busy
    base.update(overrides)
    return TrainConfig.of(**base)


def _weights_hash(artifact) -> str:
    return hashlib.sha256(artifact.file("model.safetensors").read_bytes()).hexdigest()


def test_training_lowers_perplexity_and_writes_a_model(tmp_path, word_corpus):
    store, data = _dataset(tmp_path, word_corpus)
    model, reused = train(store, data, _config(max_steps=120), "m", use_wandb=False,
                          progress=False, log=lambda *_: None)
    assert not reused and model.kind == "model"
    history = model.metrics
    assert history["steps"] == 120
    assert history["best_valid_ppl"] < data.metrics["vocab_size"]  # better than uniform
    assert {"model.safetensors", "config.json", "tokenizer.json", "curve.png",
            "history.json"} <= set(model.manifest["files"])
    assert model.manifest["inputs"][0]["ref"] == data.ref
    again, reused = train(store, data, _config(max_steps=120), "m", use_wandb=False,
                          progress=False, log=lambda *_: None)
    assert reused and again.ref == model.ref


def test_resume_reaches_exactly_the_uninterrupted_weights(tmp_path, word_corpus):
    store, data = _dataset(tmp_path, word_corpus)
    quiet = {"use_wandb": False, "progress": False, "log": lambda *_: None}
    full, _ = train(store, data, _config(max_steps=40), "full", **quiet)
    train(store, data, _config(max_steps=19), "part", **quiet)
    resumed, _ = train(store, data, _config(max_steps=40), "part", resume=True, **quiet)
    assert _weights_hash(resumed) == _weights_hash(full)
    assert resumed.metrics["steps"] == 40


def test_resume_refuses_other_settings_and_missing_runs(tmp_path, word_corpus):
    store, data = _dataset(tmp_path, word_corpus)
    quiet = {"use_wandb": False, "progress": False, "log": lambda *_: None}
    with pytest.raises(LMError, match="nothing to resume"):
        train(store, data, _config(max_steps=10), "none", resume=True, **quiet)
    train(store, data, _config(max_steps=10), "r", **quiet)
    with pytest.raises(LMError, match="other data or settings"):
        train(store, data, _config(max_steps=10, lr=0.1), "r", resume=True, **quiet)


def test_nan_loss_stops_with_the_step_and_keeps_the_best(tmp_path, word_corpus, monkeypatch):
    from lm.models import rnn

    store, data = _dataset(tmp_path, word_corpus)
    real_loss, calls = rnn.RNNLM.loss, {"n": 0}

    def poisoned(self, *args, **kwargs):  # the training loss; validation scores otherwise
        loss = real_loss(self, *args, **kwargs)
        calls["n"] += 1
        return loss * float("nan") if calls["n"] == 23 else loss

    monkeypatch.setattr(rnn.RNNLM, "loss", poisoned)
    with pytest.raises(LMError, match=r"NaN/inf at step 23: lower --lr"):
        train(store, data, _config(max_steps=60), "nan", use_wandb=False, progress=False,
              log=lambda *_: None)
    monkeypatch.undo()
    best = rnn.load(store.root / "runs" / "nan", "best.safetensors")  # from step 15
    assert all(bool(p.isfinite().all()) for p in best.parameters())


@pytest.mark.parametrize("overrides, message", [
    ({"bptt": 0}, "--bptt"), ({"lr": -1.0}, "--lr"), ({"batch_size": 0}, "--batch-size"),
    ({"bptt": 100000}, "--bptt 100000 is longer"), ({"device": "cuda:0"}, "no CUDA"),
])
def test_bad_settings(tmp_path, word_corpus, overrides, message):
    import torch

    if overrides.get("device") == "cuda:0" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    store, data = _dataset(tmp_path, word_corpus)
    with pytest.raises(LMError, match=message):
        train(store, data, _config(**overrides), "bad", use_wandb=False, progress=False)


def test_fingerprints_of_plain_settings_are_unchanged():
    from lm.artifacts import fingerprint
    from lm.settings import fingerprint_params, names

    later = {"softmax", "cutoffs", "precision", "compile", "impl", "threads", "locked_dropout",
             "dropout_input", "dropout_hidden", "dropout_embed", "weight_drop", "variable_bptt",
             "ar", "tar", "asgd", "nonmono", "max_tokens", "schedule", "warmup",
             "batch_start", "batch_ramp", "beta2", "size"}
    params = fingerprint_params(_config(threads=None))
    assert not set(params) & later  # models trained before these flags still match
    assert set(params) == set(names(TrainConfig)) - later
    assert fingerprint_params(_config(softmax="adaptive"))["softmax"] == "adaptive"
    # Pinned: the parameters (and so the cache key) of a default and of an adaptive-softmax
    # NT-ASGD config, as the first releases computed them.
    assert fingerprint("model", [], fingerprint_params(TrainConfig())) == fingerprint(
        "model", [], {"batch_size": 32, "bptt": 64, "cell": "lstm", "checkpoint_every": 500,
                      "clip": 0.25, "device": "auto", "dropout": 0.2, "emb_size": 256,
                      "epochs": 10, "eval_every": None, "eval_tokens": None, "hidden_size": 256,
                      "layers": 2, "log_every": 20, "lr": 0.002, "lr_decay": 0.25,
                      "max_steps": None, "max_time": None, "optimizer": "adam", "seed": 0,
                      "tied": False, "weight_decay": 0.0})
    import hashlib
    import json

    adaptive = TrainConfig.of(softmax="adaptive", cutoffs=[10, 20], asgd=True)
    digest = hashlib.sha256(json.dumps(fingerprint_params(adaptive), sort_keys=True,
                                       default=str).encode()).hexdigest()
    assert digest == "74b1a962c613d36f4505d53c8b2c6e7fd4645de75b20117f34943dd0a23fe73b"


def test_auto_output_layer_is_decided_before_the_fingerprint(tmp_path, word_corpus,
                                                              monkeypatch):
    from lm.models import rnn

    store, data = _dataset(tmp_path, word_corpus)
    said: list[str] = []
    quiet = {"use_wandb": False, "progress": False, "log": said.append}
    auto, _ = train(store, data, _config(max_steps=10), "auto", **quiet)
    assert "output layer: full softmax (--softmax auto: a " in said[0]
    # auto that chose full is the full softmax models were trained with before auto existed
    full, reused = train(store, data, _config(max_steps=10, softmax="full"), "auto", **quiet)
    assert reused and full.ref == auto.ref
    assert json.loads(auto.file("config.json").read_text())["softmax"] == "full"
    monkeypatch.setattr(rnn, "AUTO_ADAPTIVE_FROM", 2)  # now every vocabulary is large
    said.clear()
    adaptive, reused = train(store, data, _config(max_steps=10), "auto", **quiet)
    assert not reused and said[0].startswith("output layer: adaptive softmax, cutoffs ")
    saved = json.loads(adaptive.file("config.json").read_text())
    assert saved["softmax"] == "adaptive"
    assert saved["cutoffs"] == rnn.frequency_cutoffs(np.bincount(
        load_split(data, "train"), minlength=data.metrics["vocab_size"]))


def test_awd_options_train_and_resume_exactly(tmp_path, word_corpus):
    store, data = _dataset(tmp_path, word_corpus)
    quiet = {"use_wandb": False, "progress": False, "log": lambda *_: None}
    awd = dict(optimizer="sgd", lr=1.0, locked_dropout=True, dropout_embed=0.1, weight_drop=0.3,
               variable_bptt=True, ar=1.0, tar=1.0, asgd=True, nonmono=1, eval_every=4,
               lr_decay=1.0, tied=True, checkpoint_every=5)
    full, _ = train(store, data, _config(max_steps=40, **awd), "full", **quiet)
    assert full.metrics["asgd_from"] is not None  # averaging began, and is kept in checkpoints
    train(store, data, _config(max_steps=23, **awd), "part", **quiet)
    resumed, _ = train(store, data, _config(max_steps=40, **awd), "part", resume=True, **quiet)
    assert _weights_hash(resumed) == _weights_hash(full)


def test_adaptive_softmax_and_explicit_cells_train(tmp_path, word_corpus):
    store, data = _dataset(tmp_path, word_corpus)
    quiet = {"use_wandb": False, "progress": False, "log": lambda *_: None}
    adaptive, _ = train(store, data, _config(max_steps=40, lr=1e-2, softmax="adaptive",
                                             cutoffs=[5], eval_every=40), "adaptive", **quiet)
    explicit, _ = train(store, data, _config(max_steps=40, lr=1e-2, impl="explicit",
                                             eval_every=40), "explicit", **quiet)
    for model in (adaptive, explicit):
        assert model.metrics["best_valid_ppl"] < data.metrics["vocab_size"]


def test_variable_bptt_schedule_is_a_function_of_the_step():
    from lm.training.batching import Schedule

    schedule = Schedule(columns=1000, bptt=35, epochs=3, variable=True, seed=4)
    again = Schedule(columns=1000, bptt=35, epochs=3, variable=True, seed=4)
    for epoch in range(3):
        windows = schedule.windows(epoch)
        assert windows == again.windows(epoch)
        assert windows[0][0] == 0 and sum(length for _, length in windows) == 999
        assert all(s + n == s2 for (s, n), (s2, _) in zip(windows, windows[1:], strict=False))
        assert all(n <= 55 for _, n in windows)
    assert schedule.windows(0) != schedule.windows(1)
    step = schedule.per_epoch(0) + 3
    assert schedule.locate(step) == (1, 3)
    fixed = Schedule(columns=100, bptt=10, epochs=2)
    assert fixed.total() == 20 and fixed.windows(0)[-1] == (90, 9)


def test_feeder_fed_window_by_window_gives_the_same_batches():
    import torch

    from lm.training.loop import Feeder

    rows = torch.arange(60).view(3, 20)
    whole = Feeder(rows, torch.device("cpu"))
    streamed = Feeder(rows, torch.device("meta"), resident_bytes=0)
    streamed.device = torch.device("cpu")  # exercise the copy-ahead path on the CPU
    assert not streamed.resident
    for start, length, following in [(0, 5, (5, 5)), (5, 5, (10, 9)), (10, 9, None)]:
        a = whole.get(start, length, following)
        b = streamed.get(start, length, following)
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_precision_stays_fp32_on_cpus_without_fast_bf16(monkeypatch):
    import torch

    from lm import runtime

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert not runtime.cpu_has_fast_bf16()
    assert runtime.pick_precision("auto", torch.device("cpu")) is None
    assert runtime.pick_precision("bf16", torch.device("cpu")) == torch.bfloat16
    assert runtime.pick_precision("fp32", torch.device("cpu")) is None
    with pytest.raises(LMError, match="--precision"):
        _config(precision="fp16").check()


def _two_back_corpus(folder):
    """Lines 'w to w': the last word repeats the first, two tokens back (across 'to').

    Per line of 4 tokens (w, to, w, <eos>) a model that remembers needs ln 10 nats (the free
    first word) — perplexity 10^(1/4) ≈ 1.78; one that sees only the current token also pays
    ln 10 for the repeat — 10^(1/2) ≈ 3.16; the unigram pays ≈ 2.19 nats a token (≈ 8.9).
    """
    import random

    words = "red green blue gold grey pink teal plum rust sand".split()
    rng = random.Random(0)
    folder.mkdir()
    for split, lines in (("train", 1500), ("valid", 100), ("test", 100)):
        (folder / f"{split}.txt").write_text(
            "".join(f"{w} to {w}\n" for w in (rng.choice(words) for _ in range(lines))))
    return folder


@pytest.mark.parametrize("cell", ["gru", "rnn-tanh"])
def test_training_learns_what_only_a_recurrence_can(tmp_path, cell):
    """A model whose recurrence is cut off cannot get below ≈ 3.16 here; a working one must."""
    from lm.evaluation.scoring import ScoreRequest, score

    store = Store(tmp_path / "art")
    data, _ = prepare(store, PrepareConfig(str(_two_back_corpus(tmp_path / "g")),
                                           level="word"), "g")
    config = TrainConfig.of(cell=cell, emb_size=16, hidden_size=48, layers=1, dropout=0.0,
                            bptt=16, batch_size=8, lr=3e-2, clip=5.0, epochs=50, max_steps=150,
                            eval_every=25, log_every=10, device="cpu", threads=1)
    train(store, data, config, cell, use_wandb=False, progress=False, log=lambda *_: None)
    result = score(store, cell, ScoreRequest(split="test", batch_size=1))  # exact context
    assert result["perplexity"] < 2.2
    assert result["perplexity"] > 10 ** 0.25 - 1e-6  # nothing beats the free first word
