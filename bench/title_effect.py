"""Does a titled model use the title? The test bodies under their own titles and under
another poem's title, side by side.

Why: a model of ``title<sep>body`` documents could learn to ignore the title. If it uses it,
each body is likelier after its own title than after a random other one. The bench scores
the test split as ``lm perplexity`` does (one stream, bodies in the headline), then the same
split with the titles dealt out again at random (no body keeps its own; seeded), and prints
both body perplexities and how much lower the true titles make it.

Usage: ``python bench/title_effect.py MODEL [--artifacts DIR] [--split test] [--seed 0]``
"""

from __future__ import annotations

import argparse

import numpy as np


def documents(ids: np.ndarray, sep: int, eos: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(title ids, body ids with its <eos>) of each document of a titled stream."""
    found, start = [], 0
    for end in np.flatnonzero(ids == eos):
        doc = ids[start:end + 1]
        cut = int(np.flatnonzero(doc == sep)[0])
        found.append((doc[:cut], doc[cut + 1:]))
        start = end + 1
    return found


def dealt(docs: list[tuple[np.ndarray, np.ndarray]], seed: int) -> np.ndarray:
    """The stream with every body under another document's title (a seeded derangement)."""
    rng = np.random.default_rng(seed)
    n = len(docs)
    order = rng.permutation(n)
    while n > 1 and np.any(order == np.arange(n)):  # no body keeps its own title
        fixed = np.flatnonzero(order == np.arange(n))
        swap = rng.integers(0, n, size=len(fixed))
        order[fixed], order[swap] = order[swap], order[fixed]
    parts = []
    for (_, body), other in zip(docs, order, strict=True):
        parts += [docs[other][0], [SEP_ID], body]
    return np.concatenate(parts).astype(np.int64)


SEP_ID = 2


def body_perplexity(scorer, ids: np.ndarray, tokenizer) -> float:
    from lm.evaluation.scoring import headline

    return headline(ids, scorer(ids, "stream", 64), None, tokenizer, None, "test")["perplexity"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--artifacts", help="Artifact store (default: $LM_HOME or ./artifacts).")
    parser.add_argument("--split", default="test")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from lm.artifacts import Store
    from lm.data.prepare import load_split
    from lm.evaluation.scoring import dataset_of, load_logprobs
    from lm.tokenization import EOS_ID, load_tokenizer, title_id

    store = Store(args.artifacts)
    model = store.resolve(args.model, "model")
    tokenizer = load_tokenizer(model.file("tokenizer.json"))
    if title_id(tokenizer) != SEP_ID:
        raise SystemExit(f"{model.ref} is not a model of titled documents")
    ids = np.asarray(load_split(dataset_of(store, model), args.split), dtype=np.int64)
    scorer = load_logprobs(model)
    own = body_perplexity(scorer, ids, tokenizer)
    other = body_perplexity(scorer, dealt(documents(ids, SEP_ID, EOS_ID), args.seed),
                            tokenizer)
    print(f"| {model.ref} on {args.split} | body perplexity |")
    print("|---|---|")
    print(f"| under its own title | {own:.2f} |")
    print(f"| under another poem's title (seed {args.seed}) | {other:.2f} |")
    print(f"own titles: {100 * (1 - own / other):.1f}% lower")


if __name__ == "__main__":
    main()
