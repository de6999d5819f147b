"""Shared fixtures: small corpora the tests make themselves, and an in-process CLI runner."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from tests_support import make_poem_corpus, make_word_corpus

torch.set_num_threads(1)  # the suite's tensors are tiny: threads only add contention


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
