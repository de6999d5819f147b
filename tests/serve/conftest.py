"""A store with a tiny char-level poem model (and its 3-gram) shared by the server tests."""

from __future__ import annotations

import pytest
from tests_support import make_poem_corpus, run_stages

from lm.artifacts import Store


@pytest.fixture(scope="session")
def poem_store(tmp_path_factory):
    """Trained in a few steps on hand-made quatrains: enough to sample, score and rank."""
    folder = tmp_path_factory.mktemp("serve-store")
    poems = make_poem_corpus(folder / "poems.txt", poems=200, seed=5)
    tiny = ["--max-steps", "3", "--eval-tokens", "100", "--no-wandb", "--no-progress",
            "--emb-size", "16", "--hidden-size", "16", "--batch-size", "8", "--bptt", "10"]
    return run_stages(folder, [["prepare", str(poems), "--doc-sep", "blank", "--name", "p"],
                               ["train", "p", *tiny],
                               ["ngram", "p", "--order", "3", "--no-arpa"]])


@pytest.fixture(scope="session")
def poem_app(poem_store):
    """The app serving the poem model and, beside it, its 3-gram."""
    from lm.serve.app import create_app
    from lm.serve.config import ServeConfig

    return create_app(Store(poem_store), "p", ServeConfig(ngram="p-3gram"))


@pytest.fixture(scope="session")
def titled_app(tmp_path_factory):
    """A model of titled poems (a .jsonl with --title-field), served."""
    import json
    import random

    from lm.serve.app import create_app

    folder = tmp_path_factory.mktemp("serve-titled")
    rng, chars = random.Random(6), "春夏秋冬山花天人雲風東中空紅同江樓年家流月日水雨"
    with open(folder / "poems.jsonl", "w", encoding="utf-8") as out:
        for _ in range(150):
            body = "，".join("".join(rng.choice(chars) for _ in range(5)) for _ in range(2))
            title = "".join(rng.choice(chars) for _ in range(2))
            out.write(json.dumps({"text": body + "。", "title": title}, ensure_ascii=False)
                      + "\n")
    tiny = ["--max-steps", "3", "--eval-tokens", "100", "--no-wandb", "--no-progress",
            "--emb-size", "16", "--hidden-size", "16", "--batch-size", "8", "--bptt", "10"]
    store = run_stages(folder, [["prepare", str(folder / "poems.jsonl"), "--title-field",
                                 "title", "--name", "t"], ["train", "t", *tiny]])
    return create_app(Store(store), "t")
