"""The budget-aware schedule: the rate warms up, then decays to zero as the budget runs out.

The rates a real run sets are compared with the formulas written out here, step by step; the
budgets (--max-steps, --max-tokens, --max-time with a fake clock, --epochs) each drive it, and
a time budget's clock goes on across --resume.
"""

import json
import math

import pytest
from safetensors.torch import load_file
from tests_support import interrupted_run

from lm.artifacts import fingerprint
from lm.settings import fingerprint_params
from lm.training import checkpoint as ckpt
from lm.training.loop import Run, TrainConfig, train
from lm.training.optimization import budget_factor

BASE = dict(emb_size=16, hidden_size=16, layers=2, dropout=0.3, bptt=8, batch_size=4,
            checkpoint_every=7, log_every=5, device="cpu", threads=1, optimizer="sgd", lr=0.5)
QUIET = {"use_wandb": False, "progress": False, "log": lambda *_: None}


def _expected(step: int, total: float, lr: float, schedule: str, warmup: float) -> float:
    """The rate of (0-based) step ``step`` of ``total``, written out without the library."""
    p = step / total
    if p < warmup:
        return lr * p / warmup
    q = (p - warmup) / (1 - warmup)
    return lr * ((1 - q) if schedule == "linear" else (1 + math.cos(math.pi * q)) / 2)


@pytest.fixture
def rates(monkeypatch):
    """The rate each step used (read from the optimizer after the step), and its tokens."""
    seen: list[tuple[float, int]] = []
    real_step = Run.train_step

    def recording(self, epoch, index):
        loss, tokens = real_step(self, epoch, index)
        seen.append((self.optimizer.param_groups[0]["lr"], tokens))
        return loss, tokens

    monkeypatch.setattr(Run, "train_step", recording)
    return seen


class FakeClock:
    """One second passes between any two readings: the run's clock then counts steps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_step_budget_rates_follow_the_formula_and_reach_zero(data, rates, schedule):
    store, artifact = data
    config = TrainConfig.of(**BASE, epochs=50, max_steps=40, schedule=schedule, warmup=0.1)
    model, _ = train(store, artifact, config, "m", **QUIET)
    assert model.metrics["steps"] == 40
    got = [lr for lr, _ in rates]
    assert got == pytest.approx([_expected(s, 40, 0.5, schedule, 0.1) for s in range(40)],
                                rel=1e-12, abs=1e-15)
    assert got[0] == 0.0 and got[2] == pytest.approx(0.5 * 0.5)  # warm-up: 2/40 of 4/40
    assert got[4] == pytest.approx(0.5) == max(got)  # warm-up ends at step 4
    assert 0 < got[-1] < 0.5 * 0.03  # near zero on the budget's last step
    assert got == sorted(got[:4]) + sorted(got[4:], reverse=True)


def test_plateau_stays_the_default_and_ignores_the_budget(data, rates):
    store, artifact = data
    train(store, artifact, TrainConfig.of(**BASE, epochs=50, max_steps=30), "m", **QUIET)
    assert {lr for lr, _ in rates} <= {0.5 * 0.25 ** k for k in range(10)}


@pytest.mark.parametrize("variable", [False, True])
def test_max_tokens_stops_at_the_first_step_that_reaches_it(data, rates, variable):
    store, artifact = data
    config = TrainConfig.of(**BASE, epochs=50, max_tokens=1000, variable_bptt=variable,
                            schedule="linear")
    model, _ = train(store, artifact, config, "m", **QUIET)
    tokens = [t for _, t in rates]
    assert sum(tokens) >= 1000 > sum(tokens[:-1])
    assert model.metrics["train_tokens"] == sum(tokens)
    assert model.metrics["steps"] == len(tokens)
    if not variable:  # 4 rows × 8 steps = 32 tokens a step
        assert len(tokens) == math.ceil(1000 / 32) == 32
        done = [sum(tokens[:s]) for s in range(len(tokens))]
        assert [lr for lr, _ in rates] == pytest.approx(
            [0.5 * (1 - d / 1000) for d in done], rel=1e-12)


def test_the_epochs_budget_drives_the_rate_when_it_ends_first(data, rates):
    store, artifact = data
    config = TrainConfig.of(**BASE, epochs=1, max_steps=10_000, schedule="linear")
    model, _ = train(store, artifact, config, "m", **QUIET)
    total = model.metrics["steps"]
    assert total < 10_000 and model.metrics["epochs"] == 1
    assert [lr for lr, _ in rates] == pytest.approx(
        [0.5 * (1 - s / total) for s in range(total)], rel=1e-12)


def _time_run(store, artifact, name, cut=None, resume=False):
    config = TrainConfig.of(**BASE, epochs=50, max_time=30, schedule="cosine", warmup=0.2)
    if cut is None:
        return train(store, artifact, config, name, resume=resume, **QUIET)[0]
    interrupted_run(store, artifact, config, name, cut, **QUIET)


def test_a_time_budget_follows_the_runs_clock_across_a_resume(data, rates, monkeypatch):
    """With a fake clock (1 s a reading, one reading a step) the run ends at 30 s = 30 steps,
    the cosine follows elapsed seconds, and a run stopped at 13 s and resumed continues its
    clock from the checkpoint: same rates, same final checkpoint."""
    store, artifact = data
    monkeypatch.setattr(Run, "clock", FakeClock())
    full = _time_run(store, artifact, "full")
    assert full.metrics["steps"] == 30
    whole = [lr for lr, _ in rates]
    assert whole == pytest.approx([_expected(s, 30, 0.5, "cosine", 0.2) for s in range(30)],
                                  rel=1e-12, abs=1e-15)
    rates.clear()
    monkeypatch.setattr(Run, "clock", FakeClock())
    _time_run(store, artifact, "cut", cut=13)
    saved = json.loads((store.root / "runs" / "cut" / "checkpoint" / ckpt.STATE).read_text())
    assert saved["elapsed_seconds"] == 13.0 and saved["step"] == 13
    monkeypatch.setattr(Run, "clock", FakeClock())  # a new process: its clock starts anew
    resumed = _time_run(store, artifact, "cut", resume=True)
    assert resumed.metrics["steps"] == 30 and resumed.metrics["resumed_at"] == [13]
    assert [lr for lr, _ in rates] == whole
    for part in ("model", "optimizer", "runtime"):
        a = load_file(str(store.root / "runs" / "full" / "checkpoint" / f"{part}.safetensors"))
        b = load_file(str(store.root / "runs" / "cut" / "checkpoint" / f"{part}.safetensors"))
        assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a), part


def test_budget_factor_edges():
    assert budget_factor(0.0, "cosine", 0.0) == 1.0
    assert budget_factor(1.0, "cosine", 0.0) == pytest.approx(0.0, abs=1e-15)
    assert budget_factor(1.0, "linear", 0.5) == 0.0
    assert budget_factor(0.25, "linear", 0.5) == 0.5
    assert budget_factor(0.5, "cosine", 0.0) == pytest.approx(0.5)
    assert budget_factor(2.0, "linear", 0.0) == 0.0  # past the budget: zero, never negative


def test_new_settings_keep_existing_fingerprints():
    """At their defaults the new settings leave the model's fingerprint as it was; a budget
    schedule is part of it; --max-tokens (how long, like --max-steps) is resumable."""
    plain = fingerprint_params(TrainConfig())
    assert not {"schedule", "warmup", "max_tokens"} & set(plain)
    assert fingerprint("model", [], plain) == fingerprint(
        "model", [], fingerprint_params(TrainConfig.of(schedule="plateau", warmup=0.0)))
    assert fingerprint_params(TrainConfig.of(schedule="cosine", warmup=0.05))["warmup"] == 0.05
    assert fingerprint_params(TrainConfig.of(max_tokens=5))["max_tokens"] == 5
    from lm.settings import resumable_names

    assert "max_tokens" in resumable_names(TrainConfig)
    assert not {"schedule", "warmup"} & resumable_names(TrainConfig)


@pytest.mark.parametrize(("args", "message"), [
    (["--schedule", "step"], "--schedule must be one of plateau, linear, cosine"),
    (["--schedule", "cosine", "--warmup", "1.5"], "--warmup must be a fraction"),
    (["--schedule", "linear", "--warmup", "-0.1"], "--warmup must be a fraction"),
    (["--warmup", "0.1"], "--warmup 0.1 needs a budget schedule"),
    (["--max-tokens", "0"], "--max-tokens must be at least 1"),
])
def test_bad_schedule_values_give_one_line_errors(cli, word_corpus, args, message):
    from tests_support import assert_clean_error

    assert cli("prepare", str(word_corpus), "--level", "word", "--name", "w").code == 0
    assert_clean_error(cli("train", "w", "--no-wandb", "--no-progress", *args), message)
