"""Never lose work: kill -9, Ctrl-C and SIGTERM during `lm train`, then --resume.

Each test runs the real CLI in a subprocess and compares the SHA-256 of the final weights
with an uninterrupted run of the same seed on CPU.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests_support import make_word_corpus

TRAIN = ["--max-steps", "60", "--checkpoint-every", "5", "--eval-every", "20", "--emb-size",
         "32", "--hidden-size", "64", "--batch-size", "4", "--bptt", "12", "--dropout", "0.3",
         "--no-wandb", "--no-progress", "--device", "cpu", "--log-every", "1"]
# The run that gets interrupted is told to go on far longer (how long a run lasts may change
# on --resume), so the interruption can never lose a race against the run's end; resumed
# with TRAIN, it must end exactly where the uninterrupted run did.
ENDLESS = [*TRAIN, "--max-steps", "1000000", "--epochs", "100000"]


def resumed_step(out: str, name: str) -> int:
    """The step the resumed run says it continued from."""
    match = re.search(rf"resuming {name} at step (\d+) \(of 60\)", out)
    assert match, out
    return int(match.group(1))


def lm(root: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "disabled", "HF_DATASETS_CACHE": str(root / "hf"),
           "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "lm", "--artifacts", str(root / "art"), *args],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def weights_hash(root: Path, name: str) -> str:
    path = root / "art" / "model" / name / "v1" / "model.safetensors"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_for_checkpoint(root: Path, name: str, proc: subprocess.Popen, step: int) -> None:
    """Block until the run has written a checkpoint at or after ``step``."""
    import json

    state = root / "art" / "runs" / name / "checkpoint" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads(state.read_text())["step"] >= step:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint at step {step}: {proc.poll()}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("interrupt")
    make_word_corpus(root / "words.txt", lines=400)
    code, _, err = finish(lm(root, "prepare", "words.txt", "--level", "word", "--name", "w"))
    assert code == 0, err
    code, _, err = finish(lm(root, "train", "w", "--name", "full", *TRAIN))
    assert code == 0, err
    return root, weights_hash(root, "full")


def test_kill_9_then_resume_reaches_the_same_weights(reference):
    root, expected = reference
    proc = lm(root, "train", "w", "--name", "killed", *ENDLESS)
    wait_for_checkpoint(root, "killed", proc, 22)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (root / "art" / "model" / "killed").exists() or not any(
        (root / "art" / "model" / "killed").glob("v*"))
    code, out, err = finish(lm(root, "train", "w", "--name", "killed", "--resume", *TRAIN))
    assert code == 0, err
    step = resumed_step(out, "killed")
    assert step >= 22 and step % 5 == 0  # a checkpoint step at or after the one waited for
    got = weights_hash(root, "killed")
    print(f"kill -9 resume: uninterrupted {expected} resumed {got}")
    assert got == expected


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_a_checkpoint_and_exits_cleanly(reference, sig):
    root, expected = reference
    name = f"sig{int(sig)}"
    proc = lm(root, "train", "w", "--name", name, *ENDLESS)
    wait_for_checkpoint(root, name, proc, 12)
    proc.send_signal(sig)
    code, _, err = finish(proc)
    assert code == 130, err
    assert "Traceback" not in err and "--resume" in err
    code, out, err = finish(lm(root, "train", "w", "--name", name, "--resume", *TRAIN))
    assert code == 0, err
    assert resumed_step(out, name) >= 12  # where the signal found it: after a checkpoint
    assert weights_hash(root, name) == expected


def test_two_concurrent_stages_get_distinct_versions(tmp_path):
    make_word_corpus(tmp_path / "words.txt", lines=300)
    procs = [lm(tmp_path, "prepare", "words.txt", "--level", "word", "--name", "same",
                "--seed", str(seed)) for seed in (1, 2)]
    results = [finish(p) for p in procs]
    assert all(code == 0 for code, _, _ in results), results
    from lm.artifacts import Store

    versions = Store(tmp_path / "art").versions("dataset", "same")
    assert [a.version for a in versions] == [1, 2]
    assert {a.params["seed"] for a in versions} == {1, 2}
    for artifact in versions:
        artifact.verify()
