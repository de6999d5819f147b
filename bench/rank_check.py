"""Does fluency ranking work? Held-out lines against their own shuffles, per model.

Why: ``lm perplexity --rank`` and ``lm serve``'s Fluency tab claim that a lower perplexity
means a more fluent line. This measures it on lines no model was trained on: the first
``--lines`` lines of the test split of the first model's dataset (in order, not picked), each
against a shuffle of itself that keeps every token, so only order tells them apart: the
characters inside each clause of a Chinese couplet (，/。 stay in place), or the words of an
English line (lines of at least 4 words). Each text is scored on its own, as ``--rank`` does.

Usage: ``python bench/rank_check.py tang tang-5gram [--artifacts DIR] [--lines 100]``
"""

from __future__ import annotations

import argparse
import math
import random
import re

import numpy as np

from lm.artifacts import Store
from lm.data.prepare import load_split
from lm.evaluation.scoring import LineScorer, dataset_of
from lm.tokenization import decode, load_tokenizer

COUPLET = re.compile(r"([^，。\s<>]{5}|[^，。\s<>]{7})，([^，。\s<>]{5}|[^，。\s<>]{7})。")


def shuffled(line: str, rng: random.Random) -> str | None:
    """The line with its order scrambled, or None when it has no shape to scramble."""
    match = COUPLET.fullmatch(line)
    if match:
        clauses = [list(clause) for clause in match.groups()]
        for clause in clauses:
            rng.shuffle(clause)
        text = f"{''.join(clauses[0])}，{''.join(clauses[1])}。"
    else:
        words = line.split()
        if len(words) < 4:
            return None
        rng.shuffle(words)
        text = " ".join(words)
    return text if text != line else None


def held_out_pairs(store: Store, ref: str, count: int, seed: int) -> list[tuple[str, str]]:
    model = store.resolve(ref, ("model", "ngram"))
    dataset = dataset_of(store, model)
    tokenizer = load_tokenizer(dataset.file("tokenizer.json"))
    ids = np.asarray(load_split(dataset, "test")[:200_000]).tolist()
    text = decode(tokenizer, ids, dataset.manifest.get("level", "char"))
    rng, pairs = random.Random(seed), []
    for line in text.split("\n"):
        other = shuffled(line.strip(), rng) if "<unk>" not in line else None
        if other is not None:
            pairs.append((line.strip(), other))
        if len(pairs) == count:
            break
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--artifacts", help="Artifact store (default: $LM_HOME or ./artifacts).")
    parser.add_argument("--lines", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    store = Store(args.artifacts)
    pairs = held_out_pairs(store, args.models[0], args.lines, args.seed)
    print(f"{len(pairs)} held-out test lines against their shuffles, e.g. {pairs[0][0]} / "
          f"{pairs[0][1]}")
    print("| model | originals ranked first | mean ppl, originals | mean ppl, shuffles |")
    print("|---|---|---|---|")
    for ref in args.models:
        scorer = LineScorer.open(store, ref)
        nats = [s.evaluation.nats_per_token for s in scorer.score([t for p in pairs for t in p])]
        # a win is strictly lower; equal scores (an order-blind model) are not rounding luck
        wins = sum(nats[2 * i] < nats[2 * i + 1] - 1e-9 for i in range(len(pairs)))
        print(f"| {scorer.artifact.ref} | {wins}/{len(pairs)} | "
              f"{math.exp(np.mean(nats[0::2])):.1f} | {math.exp(np.mean(nats[1::2])):.1f} |")


if __name__ == "__main__":
    main()
