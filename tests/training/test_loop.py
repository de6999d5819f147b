import hashlib

import pytest

from lm.artifacts import Store
from lm.data.prepare import PrepareConfig, prepare
from lm.errors import LMError
from lm.training.loop import TrainConfig, train


def _dataset(tmp_path, corpus):
    store = Store(tmp_path / "art")
    artifact, _ = prepare(store, PrepareConfig(str(corpus), level="word"), "w")
    return store, artifact


def _config(**overrides) -> TrainConfig:
    base = dict(emb_size=16, hidden_size=16, layers=2, dropout=0.3, bptt=8, batch_size=4,
                epochs=5, eval_every=15, checkpoint_every=7, log_every=5, device="cpu")
    base.update(overrides)
    return TrainConfig(**base)


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
    from lm.training import loop

    store, data = _dataset(tmp_path, word_corpus)
    real_loss, calls = loop.F.cross_entropy, {"n": 0}

    def poisoned(*args, **kwargs):
        loss = real_loss(*args, **kwargs)
        if kwargs.get("reduction", "mean") == "mean":  # training steps only, not validation
            calls["n"] += 1
            if calls["n"] == 23:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(loop.F, "cross_entropy", poisoned)
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
