"""A tiny ReLU RNN whose units count by construction, and a store holding it with its text.

Its embedding has four dimensions: 1 for a line end (newline or <eos>), a constant 1, 1 for
``(`` and 1 for ``)``. With hand-set weights:

- unit 0 counts the tokens since the line began: ``a0 = relu(a0' + 1 − 100·a1')``, so it is
  reset to 0 on the token after a line end and equals ``line_position`` exactly;
- unit 1 remembers that the token just read ended a line: ``a1 = relu(end)``;
- unit 2 is the bracket depth: ``a2 = relu(a2' + open − close)``;
- unit 3 is noise: small random weights.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from tests_support import run_stages

from lm.artifacts import Store
from lm.models import rnn
from lm.tokenization import EOS, load_tokenizer, vocabulary

LINE_END, CONSTANT, OPEN, CLOSE = range(4)


def counting_model(tokens: list[str], seed: int = 0) -> rnn.RNNLM:
    """The counting RNN for a vocabulary given by id (see the module's doc)."""
    config = rnn.ModelConfig(vocab_size=len(tokens), cell="rnn-relu", layers=1, emb_size=4,
                             hidden_size=4, dropout=0.0, softmax="full")
    model = rnn.RNNLM(config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        embedding = torch.zeros(len(tokens), 4)
        embedding[:, CONSTANT] = 1.0
        for i, token in enumerate(tokens):
            embedding[i, LINE_END] = float(token in ("\n", EOS))
            embedding[i, OPEN] = float(token == "(")
            embedding[i, CLOSE] = float(token == ")")
        model.embedding.weight.copy_(embedding)
        w_ih, w_hh = torch.zeros(4, 4), torch.zeros(4, 4)
        w_ih[0, CONSTANT], w_hh[0, 0], w_hh[0, 1] = 1.0, 1.0, -100.0
        w_ih[1, LINE_END] = 1.0
        w_ih[2, OPEN], w_ih[2, CLOSE], w_hh[2, 2] = 1.0, -1.0, 1.0
        w_ih[3] = torch.rand(4, generator=generator) * 0.1
        w_hh[3, 3] = 0.5
        for name, value in (("weight_ih_l0", w_ih), ("weight_hh_l0", w_hh)):
            getattr(model.rnn, name).copy_(value)
        model.rnn.bias_ih_l0.zero_()
        model.rnn.bias_hh_l0.zero_()
    return model


def lines_corpus(path: Path, documents: int = 120, seed: int = 3) -> Path:
    """Documents of 2–6 lines of letters, some with a bracketed stretch, blank-line separated.
    No line is empty and no document ends with a newline, so line ends never come in runs."""
    rng = random.Random(seed)
    docs = []
    for _ in range(documents):
        lines = []
        for _ in range(rng.randint(2, 6)):
            line = "".join(rng.choice("abcdef") for _ in range(rng.randint(2, 9)))
            if rng.random() < 0.4:
                cut = rng.randint(0, len(line))
                line = f"{line[:cut]}({''.join(rng.choice('ab') for _ in range(3))}){line[cut:]}"
            lines.append(line)
        docs.append("\n".join(lines))
    path.write_text("\n\n".join(docs) + "\n", "utf-8")
    return path


def counting_store(folder: Path) -> Path:
    """A store with dataset ``lines`` (prepared by ``lm prepare``) and model ``counter``, the
    counting RNN over its vocabulary, recorded as made from it."""
    corpus = lines_corpus(folder / "lines.txt")
    root = run_stages(folder, [["prepare", str(corpus), "--doc-sep", "blank", "--name",
                                "lines"]])
    store = Store(root)
    dataset = store.resolve("lines", "dataset")
    tokenizer = load_tokenizer(dataset.file("tokenizer.json"))
    model = counting_model(vocabulary(tokenizer))
    with store.create("model", "counter", [dataset], {"hand_set": True}) as pending:
        rnn.save(model, pending.path)
        tokenizer.save(str(pending.path / "tokenizer.json"))
    return root
