"""A batch that grows during the run (``--batch-start``, ``--batch-ramp``), Adam's β₂ and
AdamW's decoupled weight decay, and the default thread count under a narrowed CPU set."""

import os

import pytest
import torch

from lm.errors import LMError
from lm.training.batching import BatchRamp, Schedule
from lm.training.loop import Run, TrainConfig, train, usable_cores
from lm.training.optimization import make_optimizer

BASE = dict(emb_size=16, hidden_size=16, layers=2, dropout=0.0, bptt=8, batch_size=4,
            log_every=5, device="cpu", threads=1, optimizer="sgd", lr=0.5, epochs=50)
QUIET = {"use_wandb": False, "progress": False, "log": lambda *_: None}


def _rows(read: int, start: int, full: int, ramp: int, world: int = 1) -> int:
    """The ramp written out: linear from start to full over ``ramp`` tokens, rounded down to
    a multiple of the world size, at least one row per rank."""
    rows = int(start + (full - start) * min(1.0, read / ramp))
    return max(world, rows // world * world)


def test_ramp_rows_grow_linearly_then_stay_full():
    ramp = BatchRamp(start=2, full=10, tokens=800)
    assert [ramp.rows(t) for t in (0, 100, 400, 799, 800, 10_000)] == [2, 3, 6, 9, 10, 10]
    shared = BatchRamp(start=1, full=8, tokens=700, world=2)
    assert [shared.rows(t) for t in (0, 100, 200, 700)] == [2, 2, 2, 8]
    assert all(shared.rows(t) % 2 == 0 for t in range(0, 800, 7))


def test_steps_for_tokens_follows_the_growing_batch():
    schedule = Schedule(columns=1001, bptt=10, epochs=3)
    ramp = BatchRamp(start=1, full=4, tokens=300)
    read = steps = 0
    while read < 1000:  # by hand: every window is 10 tokens per row
        read += _rows(read, 1, 4, 300) * 10
        steps += 1
    assert schedule.steps_for_tokens(1000, ramp.rows) == steps
    assert schedule.steps_for_tokens(1000, 4) == 25  # a fixed batch: 40 tokens a step


def test_a_run_reads_the_ramps_rows_and_stops_at_max_tokens(data, monkeypatch):
    store, artifact = data
    seen: list[tuple[int, int]] = []  # (rows of the inputs, hidden rows carried)
    real = Run.train_step

    def recording(self, epoch, index):
        loss, tokens = real(self, epoch, index)
        seen.append((tokens // 8, self.hidden.batch_size))
        return loss, tokens

    monkeypatch.setattr(Run, "train_step", recording)
    config = TrainConfig.of(**BASE, batch_start=1, batch_ramp=400, max_tokens=900)
    model, _ = train(store, artifact, config, "m", **QUIET)
    expected, read = [], 0
    while read < 900:
        expected.append(_rows(read, 1, 4, 400))
        read += expected[-1] * 8
    assert [rows for rows, _ in seen] == expected and expected[0] == 1 and expected[-1] == 4
    assert {carried for _, carried in seen} == {4}  # the waiting rows' state is kept
    assert model.metrics["train_tokens"] == read and model.metrics["steps"] == len(expected)


def test_batch_start_above_the_batch_is_refused():
    with pytest.raises(LMError, match="--batch-start 8 must not exceed --batch-size 4"):
        TrainConfig.of(batch_size=4, batch_start=8).check()


def test_beta2_and_adamw_decoupled_decay():
    """With a zero gradient Adam's step is zero and AdamW only decays: p ← p (1 − lr·wd);
    Adam's L2 term instead becomes a gradient, normalised to a step of about lr."""
    weights = torch.nn.Linear(3, 1, bias=False)
    torch.nn.init.constant_(weights.weight, 2.0)
    config = TrainConfig.of(optimizer="adamw", lr=0.1, weight_decay=0.5, beta2=0.95)
    optimizer = make_optimizer(weights, config)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.95)
    weights.weight.grad = torch.zeros_like(weights.weight)
    optimizer.step()
    assert torch.allclose(weights.weight, torch.full((1, 3), 2.0 * (1 - 0.1 * 0.5)))
    torch.nn.init.constant_(weights.weight, 2.0)
    adam = make_optimizer(weights, TrainConfig.of(optimizer="adam", lr=0.1, weight_decay=0.5))
    assert type(adam) is torch.optim.Adam and adam.param_groups[0]["betas"] == (0.9, 0.999)
    weights.weight.grad = torch.zeros_like(weights.weight)
    adam.step()
    assert torch.allclose(weights.weight, torch.full((1, 3), 2.0 - 0.1), atol=1e-6)


def test_default_threads_follow_the_cores_this_process_may_use(data, monkeypatch):
    store, artifact = data
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    if hasattr(os, "sched_getaffinity"):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    assert usable_cores() == 1
    before = torch.get_num_threads()
    try:
        config = TrainConfig.of(**{**BASE, "threads": None}, max_steps=2)
        train(store, artifact, config, "m", **QUIET)
        assert torch.get_num_threads() == 1  # not os.cpu_count()'s 8
    finally:
        torch.set_num_threads(before)
