"""Helpers shared by the test suites: corpora the tests make, and CLI assertions."""

import random
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WORDS = "the cat sat on a mat dog ran far away and then came back home".split()
POEM_CHARS = "春夏秋冬山水花月风雨江天人日云白青松"


def make_word_corpus(path: Path, lines: int = 600, seed: int = 1) -> Path:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(lines):
            handle.write(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10))) + "\n")
    return path


def make_poem_corpus(path: Path, poems: int = 300, seed: int = 2) -> Path:
    """Five-character quatrains as blank-line-separated documents."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(poems):
            lines = []
            for _ in range(2):
                a = "".join(rng.choice(POEM_CHARS) for _ in range(5))
                b = "".join(rng.choice(POEM_CHARS) for _ in range(5))
                lines.append(f"{a}，{b}。")
            handle.write("\n".join(lines) + "\n\n")
    return path


def assert_clean_error(result, message: str) -> None:
    """Exit code 2, one line on stderr naming the problem, and no traceback."""
    assert result.code == 2, (result.code, result.out, result.err)
    lines = [line for line in result.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, lines  # never wrapped, whatever the width or the temp path
    text = lines[0]
    assert "Traceback" not in result.err and "Traceback" not in result.out
    assert message in text, text
    assert text.startswith("error: "), text


def logprobs_one_by_one(model, ids, reset_at=()):
    """Log-probabilities fed one token at a time; the state restarts (zeros) at ``reset_at``.

    The input before token 0 is <eos> (every stream starts after one), afterwards the previous
    token, also across a reset: a reset forgets the state, not the last token. The reference
    that batched scoring is checked against.
    """
    import numpy as np
    import torch

    out, previous, hidden = [], 1, model.init_hidden(1)
    with torch.no_grad():
        for position, token in enumerate(ids):
            if position in reset_at:
                hidden = model.init_hidden(1)
            logits, hidden = model(torch.tensor([[previous]]), hidden)
            out.append(torch.log_softmax(logits[0, -1].double(), -1)[int(token)].item())
            previous = int(token)
    return np.array(out)


def interrupted_run(store, data, config, name: str, cut: int, **quiet) -> None:
    """Train until a SIGINT arrives during step ``cut`` (counting from 1), as Ctrl-C would."""
    import os
    import signal

    import pytest

    from lm.training.loop import Interrupted, Run, train

    real_step = Run.train_step

    def step_then_signal(self, epoch, index):
        result = real_step(self, epoch, index)
        if self.state.step == cut - 1:
            os.kill(os.getpid(), signal.SIGINT)
        return result

    Run.train_step = step_then_signal
    try:
        with pytest.raises(Interrupted, match=f"at step {cut};"):
            train(store, data, config, name, **quiet)
    finally:
        Run.train_step = real_step


def run_stages(folder: Path, stages: list[list[str]]) -> Path:
    """Run ``lm`` commands into the store ``folder/art`` as a test fixture would: wandb off, no
    Hub, the datasets cache under ``folder``, one thread (tiny tensors). Returns the store."""
    import pytest
    import torch

    from lm.cli import app

    root = ["--artifacts", str(folder / "art")]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("WANDB_MODE", "disabled")
            patch.setenv("HF_DATASETS_CACHE", str(folder / "hf-cache"))
            patch.setenv("HF_HUB_OFFLINE", "1")
            patch.chdir(folder)
            for argv in stages:
                app([*root, *argv], standalone_mode=False)
    finally:
        torch.set_num_threads(threads)
    return folder / "art"
