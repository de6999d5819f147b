"""Shared fixtures: small corpora the tests make themselves, and an in-process CLI runner."""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

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


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def word_corpus(tmp_path) -> Path:
    return make_word_corpus(tmp_path / "words.txt")


@pytest.fixture
def poem_corpus(tmp_path) -> Path:
    return make_poem_corpus(tmp_path / "poems.txt")


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``lm ARGS`` in-process through the real entry point; return code and output."""
    from lm import cli as cli_module

    def run(*args: str) -> Result:
        monkeypatch.setattr(sys, "argv", ["lm", *map(str, args)])
        code = 0
        try:
            cli_module.main()
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
