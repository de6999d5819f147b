"""Gradient telemetry: norms before clipping, the clipped share, the explosion line."""

import json
import math

import pytest
import torch
from PIL import Image

from lm.artifacts import Store
from lm.data.prepare import PrepareConfig, prepare
from lm.errors import LMError
from lm.training import loop, telemetry
from lm.training.loop import TrainConfig, train
from lm.training.telemetry import GradientMeter, clip_and_measure

# Hand-made gradients of two parameters whose global norms are exact in float32: 13/64,
# 0.25 (exactly --clip), 13/16, 13, 13/128 and 0.5.
GRADS = [([3 / 64, 4 / 64], [0, 0, 12 / 64]), ([0.25, 0], [0, 0, 0]),
         ([3 / 16, 4 / 16], [0, 0, 12 / 16]), ([3, 4], [0, 0, 12]),
         ([3 / 128, 4 / 128], [0, 0, 12 / 128]), ([0, 0], [0, 0.5, 0])]
NORMS = [13 / 64, 0.25, 13 / 16, 13.0, 13 / 128, 0.5]
CLIP = 0.25


def _params() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))]


def _set_grads(params, grads) -> None:
    for param, grad in zip(params, grads, strict=True):
        param.grad = torch.tensor(grad, dtype=torch.float32)


def test_clip_fraction_mean_and_peak_are_exact_on_a_hand_made_gradient_sequence():
    params, meter = _params(), GradientMeter(log_every=len(GRADS), device=torch.device("cpu"))
    for step, (grads, norm) in enumerate(zip(GRADS, NORMS, strict=True)):
        _set_grads(params, grads)
        measured = clip_and_measure(params, CLIP)
        assert float(measured) == norm  # the norm before clipping
        meter.add(step, measured)
        after = math.hypot(*params[0].grad, *params[1].grad)
        assert after == pytest.approx(min(norm, CLIP), rel=1e-5)  # clipped to --clip above it
    record = telemetry.window(meter.read(len(GRADS)), len(GRADS), CLIP)
    # fired at 13/16, 13 and 0.5; not at 0.25, which is not above --clip
    assert record["clip_fraction"] == 3 / 6
    assert record["grad_norm_max"] == 13.0 and record["max_step"] == 4
    assert record["grad_norm"] == sum(NORMS) / 6
    assert record["grad_norm_median"] == (0.25 + 0.5) / 2
    assert record["steps"] == 6 and record["step"] == 6
    assert meter.read(6) == []  # a reading empties the window


def test_measuring_and_recording_a_step_never_reads_the_device():
    """On the meta device any read of a value fails: the step's telemetry must not read."""
    meta = torch.device("meta")
    params = [torch.nn.Parameter(torch.empty(3, device=meta)) for _ in range(2)]
    for param in params:
        param.grad = torch.empty_like(param)
    meter = GradientMeter(log_every=4, device=meta)
    for step in range(4):
        meter.add(step, clip_and_measure(params, CLIP if step % 2 else 0.0))
    with pytest.raises(NotImplementedError, match="meta"):
        meter.read(4)  # the reading at logging time is where the values come back


def test_without_clipping_the_norm_is_measured_and_the_gradients_left_alone():
    params = _params()
    _set_grads(params, GRADS[3])
    assert float(clip_and_measure(params, 0.0)) == 13.0
    assert params[1].grad.tolist() == [0.0, 0.0, 12.0]
    assert telemetry.summary([13.0, 0.1], 0.0)["clip_fraction"] == 0.0


def test_a_window_cut_by_a_checkpoint_continues_with_the_same_values():
    meter = GradientMeter(log_every=4, device=torch.device("cpu"))
    for step, value in enumerate([0.5, 1.5, 2.5, 3.5, 4.5, 5.5]):
        meter.add(step, torch.tensor(value))
        if step == 3:
            assert meter.read(4) == [0.5, 1.5, 2.5, 3.5]
    saved = meter.unread(6)
    again = GradientMeter(log_every=4, device=torch.device("cpu"))
    again.restore(6, saved)
    again.add(6, torch.tensor(6.5))
    assert saved == [4.5, 5.5] and again.read(7) == [4.5, 5.5, 6.5]


def test_an_explosion_is_a_norm_a_hundred_times_the_typical_one_or_not_finite():
    calm = [telemetry.window([1.0, 2.0, 1.5], 3 * i, CLIP) for i in range(1, 5)]
    assert telemetry.explosion(calm) is None
    spike = telemetry.window([1.0, 140.0, 1.5], 15, CLIP)  # median 1.5: 140 < 150
    assert telemetry.explosion([*calm, spike]) is None
    burst = telemetry.window([1.0, 1.5, 151.0], 15, CLIP)
    found = telemetry.explosion([*calm, burst])
    assert found == {"step": 15, "norm": 151.0, "typical": 1.5, "windows": 1}
    assert telemetry.explosion_line(found, CLIP) == (
        "warning: the gradients exploded at step 15: norm 151, 101× the run's median 1.5; "
        "clipping scaled it down to --clip 0.25")
    broken = telemetry.window([1.0, math.nan, 2e9], 18, CLIP)
    assert broken["grad_norm_median"] == 1.0 + (2e9 - 1.0) / 2  # of the finite norms
    found = telemetry.explosion([*calm, broken, burst])  # the first is named, the rest counted
    assert found["step"] == 17 and math.isnan(found["norm"]) and found["windows"] == 2
    assert telemetry.explosion_line(found, 0.0) == (
        "warning: the gradients exploded at step 17: norm nan (and in 1 later logging "
        "window); lower --lr or set --clip")


@pytest.fixture
def words(tmp_path, word_corpus):
    store = Store(tmp_path / "art")
    data, _ = prepare(store, PrepareConfig(str(word_corpus), level="word"), "w")
    return store, data


def _config(**overrides) -> TrainConfig:
    base = dict(emb_size=16, hidden_size=16, layers=1, dropout=0.0, bptt=8, batch_size=4,
                eval_every=12, log_every=5, device="cpu", threads=1, max_steps=30)
    return TrainConfig.of(**{**base, **overrides})


def _recording(monkeypatch) -> list[float]:
    """Every step's norm, read as it is made (the test may wait on the device; the loop not)."""
    seen: list[float] = []

    def measured(params, clip):
        norm = clip_and_measure(params, clip)
        seen.append(float(norm))
        return norm

    monkeypatch.setattr(loop, "clip_and_measure", measured)
    return seen


def test_history_windows_and_curve_carry_the_gradient_figures(words, monkeypatch):
    store, data = words
    seen = _recording(monkeypatch)
    model, _ = train(store, data, _config(clip=0.2), "g", use_wandb=False, progress=False,
                     log=lambda *_: None)
    assert len(seen) == 30
    history = json.loads(model.file("history.json").read_text())
    assert [h["step"] for h in history] == [12, 24, 30]
    for entry, (start, stop) in zip(history, [(0, 12), (12, 24), (24, 30)], strict=True):
        steps = seen[start:stop]
        assert entry["grad_norm"] == pytest.approx(sum(steps) / len(steps), rel=1e-12)
        assert entry["grad_norm_max"] == max(steps)
        assert entry["clip_fraction"] == sum(n > 0.2 for n in steps) / len(steps)
    windows = json.loads(model.file("gradients.json").read_text())
    assert [w["step"] for w in windows] == [5, 10, 15, 20, 25, 30]
    assert [w["grad_norm_max"] for w in windows] == [max(seen[i:i + 5]) for i in range(0, 30, 5)]
    assert any(0 < h["clip_fraction"] < 1 for h in history), seen  # a threshold within reach
    with Image.open(model.file("curve.png")) as image:
        assert image.size == (600, 650)  # two panels: loss above, gradients below


def test_a_spike_that_clipping_holds_is_reported_in_one_line_at_the_end(words, monkeypatch):
    from lm.models import rnn

    store, data = words
    real_loss, calls = rnn.RNNLM.loss, {"n": 0}

    def spiked(self, *args, **kwargs):  # validation does not call loss(); training does
        calls["n"] += 1
        loss = real_loss(self, *args, **kwargs)
        return loss * 1e5 if calls["n"] == 17 else loss

    monkeypatch.setattr(rnn.RNNLM, "loss", spiked)
    lines: list[str] = []
    train(store, data, _config(), "spike", use_wandb=False, progress=False, log=lines.append)
    said = [line for line in lines if "exploded" in line]
    assert len(said) == 1 and said[0].startswith("warning: the gradients exploded at step 17: ")
    assert "clipping scaled it down to --clip 0.25" in said[0]


def test_exploding_gradients_are_named_before_the_nan_guard_stops_the_run(words, monkeypatch):
    from lm.models import rnn

    store, data = words
    real_loss, calls = rnn.RNNLM.loss, {"n": 0}

    def poisoned(self, *args, **kwargs):
        calls["n"] += 1
        loss = real_loss(self, *args, **kwargs)
        return loss * float("inf") if calls["n"] == 8 else loss

    monkeypatch.setattr(rnn.RNNLM, "loss", poisoned)
    lines: list[str] = []
    with pytest.raises(LMError, match=r"NaN/inf at step 8: lower --lr") as stop:
        train(store, data, _config(), "boom", use_wandb=False, progress=False,
              log=lines.append)
    said = [line for line in lines if "exploded" in line]
    assert said == ["warning: the gradients exploded at step 8: norm nan; lower --lr"], lines
    assert "exploded" not in str(stop.value)
