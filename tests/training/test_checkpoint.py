"""Checkpoints on their own: what a round trip restores, and what a crash or damage leaves.

The resume tests (test_resume.py, test_loop.py) train real runs; these call ``save_checkpoint``
and ``load_checkpoint`` directly on tiny models, so they also reach what those runs never meet
(more than ten hidden-state parts, optimizer state that is not a tensor, a crash inside
``save_checkpoint``), and they are fast enough for ``make mutation``.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

from lm.errors import LMError
from lm.models import rnn
from lm.models.state import RecurrentState
from lm.training import checkpoint as ckpt
from lm.training.state import TrainState


def _model(layers: int = 1, seed: int = 0, **overrides) -> rnn.RNNLM:
    torch.manual_seed(seed)
    config = dict(vocab_size=7, cell="lstm", layers=layers, emb_size=4, hidden_size=5,
                  dropout=0.0)
    return rnn.RNNLM(rnn.ModelConfig(**{**config, **overrides}))


def _random_hidden(model: rnn.RNNLM, batch: int = 2) -> RecurrentState:
    return model.init_hidden(batch).map(lambda part: torch.randn_like(part))


def _state(step: int) -> TrainState:
    return TrainState(fingerprint="fp", base_lr=0.01, step=step, best_valid=12.5, best_step=3,
                      history=[{"step": step, "lr": 0.01}])


def _train_step(model: rnn.RNNLM, optimizer: torch.optim.Optimizer) -> None:
    ids = torch.tensor([[1, 2, 3, 4], [5, 6, 1, 2]])
    output, _ = model.features(ids[:, :-1], model.init_hidden(2))
    model.loss(output, ids[:, 1:]).backward()
    optimizer.step()
    optimizer.zero_grad()


class CountingSGD(torch.optim.SGD):
    """Plain SGD that also keeps plain numbers per parameter, as some optimizers do (older torch
    kept Adam's ``step`` as an int), and a tensor with a dot in its slot name for matrices
    only: the biases' state holds nothing but numbers."""

    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["steps"] = state.get("steps", 0) + 1
                state["ema.decay"] = 0.5 ** state["steps"]
                if p.dim() > 1:
                    state["trace.fast"] = p.detach().clone() * 2
        return loss


def test_round_trip_restores_plain_and_dotted_optimizer_state(tmp_path):
    model = _model()
    optimizer = CountingSGD(model.parameters(), lr=0.1)
    for _ in range(3):
        _train_step(model, optimizer)
    ckpt.save_checkpoint(tmp_path / "checkpoint", model, optimizer, _random_hidden(model),
                         _state(3))
    fresh = _model(seed=1)
    restored = CountingSGD(fresh.parameters(), lr=0.5)
    ckpt.load_checkpoint(tmp_path / "checkpoint", fresh, restored, torch.device("cpu"))
    expected, got = optimizer.state_dict(), restored.state_dict()
    assert got["param_groups"] == expected["param_groups"]  # lr 0.1 again
    assert set(got["state"]) == set(expected["state"])
    assert any("trace.fast" not in slots for slots in expected["state"].values())
    for index, slots in expected["state"].items():
        assert set(got["state"][index]) == set(slots)
        assert got["state"][index]["steps"] == 3
        assert got["state"][index]["ema.decay"] == 0.125
        if "trace.fast" in slots:
            assert torch.equal(got["state"][index]["trace.fast"], slots["trace.fast"])
    # and the next step is the same step
    _train_step(model, optimizer)
    _train_step(fresh, restored)
    for a, b in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(a, b)


def test_round_trip_restores_weights_rng_and_more_than_ten_hidden_parts(tmp_path):
    """A six-layer per-layer LSTM carries twelve state tensors: part 10 must not come back
    before part 2 (names sort as strings otherwise)."""
    model = _model(layers=6, locked_dropout=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    _train_step(model, optimizer)
    hidden = _random_hidden(model)
    assert len(hidden.parts) == 12
    torch.manual_seed(123)
    ckpt.save_checkpoint(tmp_path / "checkpoint", model, optimizer, hidden, _state(1))
    expected_draw = torch.rand(5)

    fresh = _model(layers=6, locked_dropout=True, seed=9)
    state, restored = ckpt.load_checkpoint(tmp_path / "checkpoint", fresh,
                                           torch.optim.Adam(fresh.parameters(), lr=0.01),
                                           torch.device("cpu"))
    assert torch.equal(torch.rand(5), expected_draw)  # the RNG continues where it was saved
    assert state == _state(1)
    assert len(restored.parts) == 12
    for a, b in zip(restored.parts, hidden.parts, strict=True):
        assert torch.equal(a, b)
    for (name, a), b in zip(fresh.state_dict().items(), model.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name


def test_a_checkpoint_of_another_architecture_is_refused(tmp_path):
    """Weights load strictly: a model with parameters the checkpoint lacks is not half-loaded."""
    model = _model()
    ckpt.save_checkpoint(tmp_path / "checkpoint", model,
                         torch.optim.SGD(model.parameters(), lr=0.1), model.init_hidden(2),
                         _state(0))
    projected = _model(tied=True, hidden_size=6)  # tied with emb 4 != hidden 6: a projection
    with pytest.raises(RuntimeError, match="projection"):
        ckpt.load_checkpoint(tmp_path / "checkpoint", projected,
                             torch.optim.SGD(projected.parameters(), lr=0.1), torch.device("cpu"))


def test_stale_temporary_folder_from_a_crash_is_replaced(tmp_path):
    """A crash while writing leaves ``checkpoint.tmp``; the next save starts it afresh and
    leaves nothing but the checkpoint behind."""
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    (tmp_path / "checkpoint.tmp").mkdir()
    (tmp_path / "checkpoint.tmp" / "model.safetensors").write_bytes(b"half written")
    for step in (1, 2):
        ckpt.save_checkpoint(tmp_path / "checkpoint", model, optimizer, model.init_hidden(2),
                             _state(step))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    record = json.loads((tmp_path / "checkpoint" / ckpt.STATE).read_text())
    assert record["step"] == 2


def test_a_kill_during_the_final_cleanup_is_harmless(tmp_path):
    """Killed while deleting ``checkpoint.old`` at the end: both folders exist; the next save
    still swaps in the new checkpoint and removes the old one."""
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    folder = tmp_path / "checkpoint"
    ckpt.save_checkpoint(folder, model, optimizer, model.init_hidden(2), _state(1))
    ckpt.save_checkpoint(tmp_path / "checkpoint.old", model, optimizer, model.init_hidden(2),
                         _state(0))
    ckpt.save_checkpoint(folder, model, optimizer, model.init_hidden(2), _state(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    assert ckpt.load_checkpoint(folder, model, optimizer, torch.device("cpu"))[0].step == 2


def test_the_first_checkpoint_of_a_run_creates_its_folders(tmp_path):
    model = _model()
    folder = tmp_path / "runs" / "new" / "checkpoint"
    ckpt.save_checkpoint(folder, model, torch.optim.SGD(model.parameters(), lr=0.1),
                         model.init_hidden(2), _state(1))
    assert ckpt.find_checkpoint(folder) == folder


def test_a_kill_between_the_two_renames_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    """save_checkpoint moves the previous checkpoint aside, then moves the new one in; if the
    process dies in between, find_checkpoint returns the previous one, whole."""
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    folder = tmp_path / "checkpoint"
    ckpt.save_checkpoint(folder, model, optimizer, model.init_hidden(2), _state(5))

    real_rename = os.rename

    def killed_after_first_rename(src, dst):
        real_rename(src, dst)
        raise KeyboardInterrupt  # stands for the kill

    monkeypatch.setattr(ckpt.os, "rename", killed_after_first_rename)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(folder, model, optimizer, model.init_hidden(2), _state(6))
    monkeypatch.setattr(ckpt.os, "rename", real_rename)

    found = ckpt.find_checkpoint(folder)
    assert found is not None and found != folder
    state, _ = ckpt.load_checkpoint(found, model, optimizer, torch.device("cpu"))
    assert state.step == 5
    assert ckpt.saved_fingerprint(found) == "fp"
    # the next save completes and cleans up
    ckpt.save_checkpoint(folder, model, optimizer, model.init_hidden(2), _state(7))
    assert ckpt.find_checkpoint(folder) == folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


@pytest.mark.parametrize("damage", ["state", "missing", "weights"])
def test_a_damaged_checkpoint_says_so_and_what_to_do(tmp_path, damage):
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    folder = tmp_path / "checkpoint"
    ckpt.save_checkpoint(folder, model, optimizer, model.init_hidden(2), _state(1))
    if damage == "state":
        (folder / ckpt.STATE).write_text('{"step": ')
    elif damage == "weights":
        (folder / "model.safetensors").write_bytes(b"\x00" * 3)
    else:
        (folder / "optimizer.safetensors").unlink()
    with pytest.raises(LMError) as error:
        ckpt.load_checkpoint(folder, model, optimizer, torch.device("cpu"))
    message = str(error.value)
    assert message.startswith(f"the checkpoint in {folder} is damaged (")
    assert message.endswith("): start again without --resume")


def test_fingerprint_of_an_unreadable_checkpoint_is_none(tmp_path):
    assert ckpt.saved_fingerprint(tmp_path / "nothing") is None
    (tmp_path / ckpt.STATE).write_text("not json")
    assert ckpt.saved_fingerprint(tmp_path) is None


def test_extra_tensors_come_back_only_when_saved(tmp_path):
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    ckpt.save_checkpoint(tmp_path / "plain", model, optimizer, model.init_hidden(2), _state(1))
    assert ckpt.load_extra(tmp_path / "plain", torch.device("cpu")) == {}
    average = {"avg.decoder.weight": torch.randn(7, 5), "avg.count": torch.tensor([4.0])}
    ckpt.save_checkpoint(tmp_path / "asgd", model, optimizer, model.init_hidden(2), _state(1),
                         extra=average)
    extra = ckpt.load_extra(tmp_path / "asgd", torch.device("cpu"))
    assert set(extra) == set(average)
    assert all(torch.equal(extra[k], average[k]) for k in average)
