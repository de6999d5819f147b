"""``--resume`` continues a run bit for bit: the whole final state, not only the best weights.

Each run is interrupted by a real SIGINT in the middle of training (the loop checkpoints and
stops), resumed, and its final checkpoint (weights, optimizer state, learning rate, averager,
hidden state, RNG, counters) compared with that of the same run left alone.
"""

import json
import math
import os

import pytest
from safetensors.torch import load_file
from tests_support import interrupted_run

from lm.artifacts import Store
from lm.data.prepare import PrepareConfig, prepare
from lm.training import checkpoint as ckpt
from lm.training.loop import TrainConfig, train

BASE = dict(emb_size=16, hidden_size=16, layers=2, dropout=0.3, bptt=8, batch_size=4, epochs=5,
            checkpoint_every=7, log_every=5, device="cpu", threads=1, max_steps=40)
SCENARIOS = {
    "plain": dict(eval_every=15),
    # SGD too fast for this data: validation stalls, and the rate halves at steps 20, 32, ...
    "plateau": dict(optimizer="sgd", lr=8.0, lr_decay=0.5, eval_every=4),
    # NT-ASGD starts averaging at step 18, before the interruption at 19.
    "asgd": dict(optimizer="sgd", lr=2.0, asgd=True, nonmono=1, eval_every=3),
    # The rate warms up over 4 steps, then follows a cosine to zero at step 40.
    "cosine": dict(optimizer="sgd", lr=2.0, schedule="cosine", warmup=0.1, eval_every=6),
    # The batch grows from 1 to 4 rows over the first 600 tokens: still growing at the cut.
    "grow": dict(batch_start=1, batch_ramp=600, eval_every=5),
}
CUT = 19
TIMING = {"train_seconds", "elapsed_seconds", "resumed_at"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """For each scenario: (uninterrupted folder, resumed folder, log of the resumed run)."""
    from tests_support import make_word_corpus

    folder = tmp_path_factory.mktemp("resume")
    store = Store(folder / "art")
    data, _ = prepare(store, PrepareConfig(str(make_word_corpus(folder / "w.txt")),
                                           level="word"), "w")
    quiet = {"use_wandb": False, "progress": False, "log": lambda *_: None}
    out = {}
    for name, extra in SCENARIOS.items():
        config = TrainConfig.of(**BASE, **extra)
        train(store, data, config, f"{name}-full", **quiet)
        interrupted_run(store, data, config, f"{name}-cut", CUT, **quiet)
        lines: list[str] = []
        resumed, _ = train(store, data, config, f"{name}-cut", resume=True,
                           use_wandb=False, progress=False, log=lines.append)
        out[name] = (store.root / "runs" / f"{name}-full", store.root / "runs" / f"{name}-cut",
                     lines, resumed)
    return out




def _state(run_dir) -> dict:
    state = json.loads((run_dir / "checkpoint" / ckpt.STATE).read_text())
    for entry in state["history"]:
        entry.pop("seconds")
    return {k: v for k, v in state.items() if k not in TIMING}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_resumed_run_says_where_it_continued(runs, scenario):
    _, _, lines, resumed = runs[scenario]
    assert f"resuming {scenario}-cut at step {CUT} (of 40)" in lines
    assert resumed.metrics["resumed_at"] == [CUT]
    assert resumed.metrics["steps"] == 40


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("part", ["model", "optimizer", "runtime", "extra"])
def test_final_tensors_equal_the_uninterrupted_run(runs, scenario, part):
    """Weights, optimizer moments, hidden state and RNG (runtime), NT-ASGD average (extra)."""
    full, cut, _, _ = runs[scenario]
    path = f"checkpoint/{part}.safetensors"
    if part == "extra" and scenario != "asgd":
        assert not (full / path).exists() and not (cut / path).exists()
        return
    a, b = load_file(str(full / path)), load_file(str(cut / path))
    assert a.keys() == b.keys()
    assert a or (part == "optimizer" and scenario != "plain")  # plain SGD keeps no tensors
    for key in a:
        assert a[key].equal(b[key]), key


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_final_counters_rates_and_history_equal_the_uninterrupted_run(runs, scenario):
    full, cut, _, _ = runs[scenario]
    assert _state(full) == _state(cut)


def test_the_scenarios_exercise_what_they_claim(runs):
    """The plateau run drops its rate after the cut; the NT-ASGD run averages across it; the
    cosine run's rate follows its step budget."""
    plateau = _state(runs["plateau"][0])
    rates = {entry["step"]: entry["lr"] for entry in plateau["history"]}
    assert rates[CUT - 3] > rates[CUT + 1] > plateau["base_lr"]
    assert plateau["optimizer"]["param_groups"][0]["lr"] == plateau["base_lr"] < 8.0 / 4
    asgd = _state(runs["asgd"][0])
    assert asgd["asgd_from"] < CUT and asgd["avg_count"] == 40 - asgd["asgd_from"] + 1
    # The cosine run's rate at validation after step s is the one step s used: progress
    # (s - 1)/40, past the 10% warm-up, along the cosine from 2.0 towards 0 at step 40.
    cosine = _state(runs["cosine"][0])
    for entry in cosine["history"]:
        q = ((entry["step"] - 1) / 40 - 0.1) / 0.9
        assert entry["lr"] == pytest.approx(2.0 * (1 + math.cos(math.pi * q)) / 2, rel=1e-12)
    assert [e["step"] for e in cosine["history"]][-1] == 40 and cosine["base_lr"] < 2.0 * 0.01


def test_the_old_checkpoint_is_used_when_a_kill_fell_between_the_renames(tmp_path, runs):
    """save_checkpoint renames checkpoint → checkpoint.old, then .tmp → checkpoint."""
    import shutil

    full = runs["plain"][0] / "checkpoint"
    folder = tmp_path / "checkpoint"
    shutil.copytree(full, tmp_path / "checkpoint.old")
    assert ckpt.find_checkpoint(folder) == tmp_path / "checkpoint.old"
    shutil.copytree(full, folder)
    assert ckpt.find_checkpoint(folder) == folder  # the new one wins once it is in place
    (folder / ckpt.STATE).unlink()  # half-written new folder: the old one is still whole
    assert ckpt.find_checkpoint(folder) == tmp_path / "checkpoint.old"
    shutil.rmtree(tmp_path / "checkpoint.old")
    assert ckpt.find_checkpoint(folder) is None


def test_resume_continues_from_the_old_checkpoint(tmp_path, word_corpus):
    store = Store(tmp_path / "art")
    data, _ = prepare(store, PrepareConfig(str(word_corpus), level="word"), "w")
    quiet = {"use_wandb": False, "progress": False, "log": lambda *_: None}
    config = TrainConfig.of(**{**BASE, "max_steps": 20, "eval_every": 10})
    full, _ = train(store, data, config, "full", **quiet)
    interrupted_run(store, data, config, "cut", CUT, **quiet)
    run_dir = store.root / "runs" / "cut"
    os.rename(run_dir / "checkpoint", run_dir / "checkpoint.old")  # killed between renames
    lines: list[str] = []
    resumed, _ = train(store, data, config, "cut", resume=True, use_wandb=False,
                       progress=False, log=lambda s: lines.append(str(s)))
    assert f"resuming cut at step {CUT} (of 20)" in lines
    a = load_file(str(store.root / "runs" / "full" / "checkpoint" / "model.safetensors"))
    b = load_file(str(run_dir / "checkpoint" / "model.safetensors"))
    assert all(a[k].equal(b[k]) for k in a)
