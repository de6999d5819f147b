"""DDP: two CPU processes under torchrun learn what one process learns from the same batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lm.artifacts import Store
from lm.data.prepare import PrepareConfig, prepare
from lm.models import rnn

WORKER = Path(__file__).with_name("ddp_worker.py")
CONFIG = dict(emb_size=16, hidden_size=16, layers=2, dropout=0.0, bptt=8, batch_size=4,
              optimizer="sgd", lr=1.0, max_steps=8, eval_every=2, log_every=1,
              checkpoint_every=5, device="cpu")


def _run(args: list[str], tmp_path: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled",
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[0])


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_two_processes_learn_what_one_learns(tmp_path, word_corpus):
    store = Store(tmp_path / "art")
    prepare(store, PrepareConfig(str(word_corpus), level="word"), "w")
    args = [str(tmp_path / "art"), "w"]
    one = _run([sys.executable, str(WORKER), *args, "one", json.dumps(CONFIG)], tmp_path)
    two = _run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", "2", str(WORKER), *args, "two", json.dumps(CONFIG)],
               tmp_path)
    a, b = store.resolve(one["ref"], "model"), store.resolve(two["ref"], "model")
    history_a = json.loads(a.file("history.json").read_text())
    history_b = json.loads(b.file("history.json").read_text())
    assert [h["step"] for h in history_a] == [h["step"] for h in history_b] == list(
        range(2, 9, 2))
    for ha, hb in zip(history_a, history_b, strict=True):  # the same losses, to float noise
        assert hb["train_loss"] == pytest.approx(ha["train_loss"], rel=1e-4)
        assert hb["valid_loss"] == pytest.approx(ha["valid_loss"], rel=1e-4)
    assert history_a[-1]["train_loss"] < history_a[0]["train_loss"]
    wa, wb = rnn.load(a.path).state_dict(), rnn.load(b.path).state_dict()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-4, atol=1e-5)
    # only rank 0 wrote: one model version, one checkpoint
    assert len(store.versions("model", "two")) == 1
    assert (tmp_path / "art" / "runs" / "two" / "checkpoint" / "state.json").is_file()
    # the process group is gone once train() returns: no gloo thread runs on into the
    # interpreter's shutdown (where one aborted the process now and then)
    assert two["gloo_threads"] == []


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_a_collective_returns_once_gloo_has_let_go_of_its_tensors(tmp_path):
    """gloo's worker drops its hold on a collective's tensors after the collective returns,
    and needs the GIL for it; ``released`` waits for that, handing the GIL over by sleeping.
    Here a thread stands in for the worker: it holds the tensor 0.2 s longer."""
    import threading
    import time

    import torch.distributed as dist

    from lm.training.distributed import released

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0,
                            world_size=1)
    try:
        tensor, let_go = torch.ones(3), threading.Event()

        def worker(held: torch.Tensor) -> None:
            time.sleep(0.2)
            let_go.set()
            del held

        with released(tensor):
            dist.all_reduce(tensor)
            threading.Thread(target=worker, args=(tensor,)).start()
        assert let_go.is_set()
    finally:
        dist.destroy_process_group()
