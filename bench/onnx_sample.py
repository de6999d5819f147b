"""Sample from a model exported by ``lm export MODEL --onnx FILE`` with onnxruntime alone.

Needs only numpy, tokenizers and onnxruntime (no torch, no lm): the sidecar FILE.json names the
graph's inputs and outputs and says how a sample starts; tokenizer.json beside FILE turns ids
back into text. ``--temperature 0`` is greedy and gives what ``lm sample --temperature 0`` gives.

    python bench/onnx_sample.py tang.onnx --num 4 --temperature 0.8 --seed 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def choose(log_probs: np.ndarray, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """One token per row: the argmax if ``temperature`` is 0, else a draw from
    ``softmax(log_probs / temperature)`` by inverting the cumulative distribution."""
    if temperature == 0:
        return log_probs.argmax(axis=1).astype(np.int64)
    scaled = log_probs / temperature
    probs = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    cdf = probs.cumsum(axis=1)
    u = rng.random((len(probs), 1)) * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=1), probs.shape[1] - 1).astype(np.int64)


def sample(onnx_path: Path, num: int, max_tokens: int, temperature: float,
           seed: int) -> list[str]:
    meta = json.loads(onnx_path.with_name(onnx_path.name + ".json").read_text("utf-8"))
    tokenizer = Tokenizer.from_file(str(onnx_path.with_name(meta["tokenizer"])))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    state = {s["input"]: np.zeros([num if d == "batch" else d for d in s["shape"]], np.float32)
             for s in meta["state"]}
    fetch = ["log_probs", *(s["output"] for s in meta["state"])]
    tokens = np.full(num, meta["start"]["token"], dtype=np.int64)
    stop = meta["stop"]["token"]
    outputs: list[list[int]] = [[] for _ in range(num)]
    done = np.zeros(num, dtype=bool)
    for _ in range(max_tokens):
        log_probs, *new_state = session.run(fetch, {"tokens": tokens, **state})
        state = {s["input"]: value for s, value in zip(meta["state"], new_state, strict=True)}
        tokens = choose(log_probs, temperature, rng)
        for row in np.flatnonzero(~done):
            if tokens[row] == stop:
                done[row] = True
            else:
                outputs[row].append(int(tokens[row]))
        if done.all():
            break
    return [tokenizer.decode(ids, skip_special_tokens=False) for ids in outputs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx", type=Path, help="The .onnx file written by `lm export`.")
    parser.add_argument("--num", type=int, default=4, help="Samples, run as one batch.")
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=1.0, help="0 is greedy.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="Print the texts as JSON.")
    args = parser.parse_args()
    texts = sample(args.onnx, args.num, args.max_tokens, args.temperature, args.seed)
    if args.json:
        print(json.dumps(texts, ensure_ascii=False))
        return
    for index, text in enumerate(texts, 1):
        print(f"── {index} ──\n{text}")


if __name__ == "__main__":
    main()
