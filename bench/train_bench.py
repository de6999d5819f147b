"""Training, evaluation and sampling speed of ``lm train`` against a plain PyTorch loop.

The reference is PyTorch's ``word_language_model`` example, written out below: nn.Embedding →
nn.LSTM → nn.Linear, fp32, full softmax, SGD by hand (lr 20, clip 0.25), bptt 35, batch 20,
evaluation with batch 10, and generation one token at a time for one sequence. ``lm`` runs its
real training loop (``lm.training.loop.train``) with the same hyperparameters and data, once
per speed option. Every contender runs in its own fresh process (so the allocator settings
``lm`` makes, and peak memory, stay its own), one after another, on the same token streams.

For each contender the table gives training tokens/s (the second half of the N steps, so
warm-up such as cuDNN's or torch.compile's is left out; validation excluded),
validation perplexity after the same N steps (every model scored by ``lm``'s evaluator on the
same validation tokens), evaluation and sampling tokens/s, peak memory, and the ratios to the
reference. With ``--same-time`` (default on) each ``lm`` option also trains for as long as
``lm``'s fp32 full-softmax run took for its N steps, and its validation perplexity then is
shown: a speed option should be within 2% after the same steps and lower after the same time.

    python bench/train_bench.py                          # CPU, a few minutes
    python bench/train_bench.py --steps 1000 --eval-tokens 0   # longer, full validation
    python bench/train_bench.py --device cuda --configs wt2,ptb650 --variants gpu

Data: ``--data`` (default ``../shared/data`` beside the repository) with ``wikitext-2/`` and
``ptb/``; datasets are prepared once into ``--store`` (default: a folder in the temp dir).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"

# name: (data folder, emb, hidden, layers, dropout, tied, default steps)
CONFIGS = {
    "wt2": ("wikitext-2", 200, 200, 2, 0.2, False, 200),
    "ptb650": ("ptb", 650, 650, 2, 0.5, True, 40),
}
# name: lm options (TrainConfig fields) on top of the reference's hyperparameters
LM_VARIANTS = {
    "lm-defaults": {},  # lm train's own defaults: --softmax auto, --precision auto
    "lm-fp32-full": {"precision": "fp32", "softmax": "full"},
    "lm-fp32-adaptive": {"precision": "fp32", "softmax": "adaptive"},
    "lm-bf16-full": {"precision": "bf16", "softmax": "full"},
    "lm-bf16-adaptive": {"precision": "bf16", "softmax": "adaptive"},
    "lm-explicit-compile": {"precision": "fp32", "impl": "explicit", "compile": True},
    "lm-bf16-explicit-compile": {"precision": "bf16", "impl": "explicit", "compile": True},
    "lm-bf16-compile": {"precision": "bf16", "compile": True},
}
VARIANT_SETS = {
    "cpu": ["reference", "lm-defaults", "lm-fp32-full", "lm-fp32-adaptive"],
    "gpu": ["reference", "lm-fp32-full", "lm-bf16-full", "lm-bf16-adaptive",
            "lm-bf16-explicit-compile"],
}


# ------------------------------------------------------------------ the reference program
def reference_worker(job: dict) -> dict:
    """PyTorch's word_language_model (main.py + generate.py), LSTM, as its README runs it."""
    import torch
    from reference_loop import ReferenceConfig, ReferenceTrainer, RNNModel, batchify, get_batch
    from torch import nn

    from lm.data.prepare import load_split

    device = torch.device(job["device"])
    if job["threads"]:
        torch.set_num_threads(job["threads"])
    torch.manual_seed(job["seed"])
    dataset = _dataset(job)
    ntokens = dataset.metrics["vocab_size"]
    config = ReferenceConfig(job["emb"], job["hidden"], job["layers"], job["dropout"],
                             job["tied"])
    bptt = config.bptt
    model = RNNModel(ntokens, config).to(device)
    trainer = ReferenceTrainer(model, load_split(dataset, "train"), device)
    criterion = nn.NLLLoss()
    halfway: list[float] = []

    def train_steps(max_steps: int | None, max_time: float | None) -> tuple[int, float]:
        start = time.time()
        for steps, _ in enumerate(trainer.epochs(), start=1):
            if max_steps and steps == max_steps // 2:
                _sync(device)
                halfway.append(time.time() - start)
            if (max_steps and steps >= max_steps) or (
                    max_time and time.time() - start > max_time):
                return steps, time.time() - start
        raise AssertionError("epochs() never ends")

    valid = load_split(dataset, "valid")
    if job["eval_tokens"]:
        valid = valid[: job["eval_tokens"]]

    @torch.no_grad()
    def evaluate_example() -> float:  # the example's evaluate(), timed for eval tokens/s
        model.eval()
        data_source = batchify(valid, 10, device)
        hidden = model.init_hidden(10)
        total = 0.0
        for i in range(0, data_source.size(0) - 1, bptt):
            data, targets = get_batch(data_source, i, bptt)
            output, hidden = model(data, hidden)
            hidden = tuple(v.detach() for v in hidden)
            total += len(data) * criterion(output, targets).item()
        return total / (len(data_source) - 1)

    result: dict = {}
    _sync(device)
    steps, seconds = train_steps(job["steps"], None)
    _sync(device)
    second_half = steps - steps // 2
    result.update(train_steps_done=steps, train_seconds=seconds,
                  train_tok_s_all=steps * 20 * bptt / seconds,
                  train_tok_s=second_half * 20 * bptt / (seconds - halfway[0]))
    start = time.time()
    evaluate_example()
    _sync(device)
    result["eval_tok_s"] = len(valid) / (time.time() - start)

    # generate.py: one sequence, one token at a time
    model.eval()
    hidden = model.init_hidden(1)
    token = torch.randint(ntokens, (1, 1), dtype=torch.long, device=device)
    n = job["sample_tokens"]
    start = time.time()
    with torch.no_grad():
        for _ in range(n):
            output, hidden = model(token, hidden)
            word_weights = output.squeeze().div(1.0).exp().cpu()
            word_idx = torch.multinomial(word_weights, 1)[0]
            token.fill_(word_idx)
    result["sample_tok_s"] = n / (time.time() - start)
    result["peak_mb"] = _peak_mb(device)
    # last: lm's evaluator tunes the allocator (lm.training.memory), which the plain loop's
    # timings above must not get
    result["valid_ppl"] = _lm_ppl_of_reference(model, dataset, valid, device, job)
    return result


def _lm_ppl_of_reference(model, dataset, valid, device, job) -> float:
    """The reference's weights scored by lm's evaluator, so all perplexities are alike."""
    from reference_loop import as_lm_model

    from lm.evaluation.perplexity import evaluate

    return evaluate(as_lm_model(model), valid, batch_size=10, device=device).perplexity


# ------------------------------------------------------------------------- lm's program
def lm_worker(job: dict) -> dict:
    import torch

    from lm.artifacts import Store
    from lm.data.prepare import load_split
    from lm.evaluation.perplexity import evaluate
    from lm.generation.decoding.sampling import generate
    from lm.generation.decoding.steppers import RNNStepper
    from lm.models import rnn
    from lm.training.loop import TrainConfig, train

    device = torch.device(job["device"])
    dataset = _dataset(job)
    store = Store(Path(job["scratch"]) / "models")
    options = LM_VARIANTS[job["variant"]]
    base = dict(cell="lstm", layers=job["layers"], emb_size=job["emb"],
                hidden_size=job["hidden"], dropout=job["dropout"], tied=job["tied"], bptt=35,
                batch_size=20, optimizer="sgd", lr=20.0, lr_decay=0.25, clip=0.25,
                epochs=1000, eval_tokens=job["eval_tokens"] or None, seed=job["seed"],
                device=job["device"], log_every=10, threads=job["threads"] or None, **options)
    quiet = {"use_wandb": False, "progress": False, "log": lambda *_: None}
    # validated halfway too: the second half's rate is the steady state (no warm-up)
    config = TrainConfig.of(**base, max_steps=job["steps"], eval_every=job["steps"] // 2)
    artifact, _ = train(store, dataset, config, f"{job['variant']}-steps", **quiet)
    history = json.loads(artifact.file("history.json").read_text())
    half, end = history[-2], history[-1]
    result = {"train_steps_done": artifact.metrics["steps"],
              "train_seconds": artifact.metrics["train_seconds"],
              "train_tok_s_all": artifact.metrics["tokens_per_s"],
              "train_tok_s": (end["tokens"] - half["tokens"]) / (end["seconds"] - half["seconds"]),
              "valid_ppl": end["valid_ppl"]}
    model = rnn.load(artifact.path, device=device)
    valid = load_split(dataset, "valid")
    if job["eval_tokens"]:
        valid = valid[: job["eval_tokens"]]
    evaluate(model, valid[:2000], batch_size=10, device=device)  # warm-up
    _sync(device)
    start = time.time()
    evaluate(model, valid, batch_size=10, device=device)
    _sync(device)
    result["eval_tok_s"] = len(valid) / (time.time() - start)
    num, length = job["sample_batch"], max(1, job["sample_tokens"] // 4)
    generate(RNNStepper(model, device), [], num=num, max_tokens=4, seed=1)  # warm-up
    start = time.time()
    outputs = generate(RNNStepper(model, device), [], num=num, max_tokens=length, seed=1)
    _sync(device)
    emitted = sum(min(len(o) + 1, length) for o in outputs)
    result["sample_tok_s"] = emitted / (time.time() - start)
    result["peak_mb"] = _peak_mb(device)
    if job.get("same_time"):
        config = TrainConfig.of(**base, max_time=job["same_time"])
        timed, _ = train(store, dataset, config, f"{job['variant']}-time", **quiet)
        history = json.loads(timed.file("history.json").read_text())
        result["same_time_steps"] = timed.metrics["steps"]
        result["same_time_ppl"] = history[-1]["valid_ppl"]
    return result


# ------------------------------------------------------------------------------ helpers
def _dataset(job: dict):
    """The word-level dataset of a config, prepared once into the bench's store."""
    from lm.artifacts import Store
    from lm.data.prepare import PrepareConfig, prepare
    from lm.errors import LMError

    store = Store(job["store"])
    name = job["folder"].replace("-", "")  # ptb, wikitext2: the pipelines' names
    try:
        return store.resolve(name, "dataset")
    except LMError:
        pass
    artifact, _ = prepare(store, PrepareConfig(str(Path(job["data"]) / job["folder"]),
                                               level="word"), name)
    return artifact


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(job: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               WANDB_MODE="disabled")
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], env=env,
                          capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
    return json.loads(lines[-1])


def _fmt(value, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="wt2,ptb650", help="wt2, ptb650 (comma-separated)")
    parser.add_argument("--variants", default=None,
                        help="cpu, gpu, or names: reference," + ",".join(LM_VARIANTS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: "
                        "200 for wt2, 40 for ptb650)")
    parser.add_argument("--eval-tokens", type=int, default=20000,
                        help="validation tokens scored (0: all)")
    parser.add_argument("--sample-tokens", type=int, default=400,
                        help="tokens the reference generates (batch 1)")
    parser.add_argument("--sample-batch", type=int, default=256,
                        help="sequences lm samples at once")
    parser.add_argument("--same-time", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for every contender (0: torch's default, all cores)")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--store", default=str(Path(tempfile.gettempdir()) / "lm-bench-store"))
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        job = json.loads(args.worker)
        worker = reference_worker if job["variant"] == "reference" else lm_worker
        print(json.dumps(worker(job)))
        return

    variants = args.variants or ("gpu" if args.device.startswith("cuda") else "cpu")
    variants = VARIANT_SETS.get(variants, variants.split(","))
    import torch

    print(f"# torch {torch.__version__} · {platform.processor() or platform.machine()} · "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()} · "
          f"{args.threads or torch.get_num_threads()} threads · device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else "")
          + f" · load average at start {os.getloadavg()[0]:.2f}", flush=True)
    everything = {}
    for name in args.configs.split(","):
        folder, emb, hidden, layers, dropout, tied, default_steps = CONFIGS[name]
        steps = -(-(args.steps or default_steps) // 20) * 20  # halves on a log step
        with tempfile.TemporaryDirectory() as scratch:
            base = dict(folder=folder, emb=emb, hidden=hidden, layers=layers, dropout=dropout,
                        tied=tied, steps=steps, eval_tokens=args.eval_tokens,
                        sample_tokens=args.sample_tokens, sample_batch=args.sample_batch,
                        seed=args.seed, data=args.data, store=args.store, device=args.device,
                        scratch=scratch, threads=args.threads)
            _dataset(base)  # prepare once, outside the timed workers
            results: dict[str, dict] = {}
            same_time = None
            for variant in sorted(variants, key=lambda v: v != "lm-fp32-full"):
                if tied and "adaptive" in variant:
                    continue  # the adaptive softmax has no single output matrix to tie
                job = dict(base, variant=variant, same_time=same_time if args.same_time
                           and variant not in ("lm-fp32-full", "reference") else None)
                started = time.time()
                results[variant] = run_worker(job)
                results[variant]["wall_s"] = time.time() - started
                if variant == "lm-fp32-full" and "train_seconds" in results[variant]:
                    same_time = results[variant]["train_seconds"]
                print(f"  {name} {variant}: {json.dumps(results[variant])}", flush=True)
        everything[name] = {"steps": steps, "same_time_s": same_time, "results": results}
        _table(name, steps, same_time, results)
    print(f"# load average at end {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1))


def _table(name: str, steps: int, same_time: float | None, results: dict[str, dict]) -> None:
    ref = results.get("reference", {})
    full = results.get("lm-fp32-full", {})
    print(f"\n## {name}: {steps} steps (batch 20 × bptt 35); perplexity on the same validation "
          f"tokens; same-time budget {_fmt(same_time, '.1f')} s")
    print("| contender | train tok/s | × ref | valid ppl @N | vs lm fp32 | eval tok/s | × ref "
          "| sample tok/s | × ref | peak MB | ppl @same time (steps) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for variant, r in results.items():
        if "error" in r:
            print(f"| {variant} | failed: {r['error']} |")
            continue

        def ratio(key: str, r=r) -> str:
            if key in r and key in ref and ref[key]:
                return f"{r[key] / ref[key]:.2f}×"
            return "-"

        vs = (f"{(r['valid_ppl'] / full['valid_ppl'] - 1) * 100:+.1f}%"
              if full.get("valid_ppl") else "-")
        same = (f"{r['same_time_ppl']:.1f} ({r['same_time_steps']})"
                if "same_time_ppl" in r else "-")
        print(f"| {variant} | {r['train_tok_s']:,.0f} | {ratio('train_tok_s')} | "
              f"{r['valid_ppl']:.1f} | {vs} | {r['eval_tok_s']:,.0f} | {ratio('eval_tok_s')} | "
              f"{r['sample_tok_s']:,.0f} | {ratio('sample_tok_s')} | {r['peak_mb']:,.0f} | "
              f"{same} |")


if __name__ == "__main__":
    main()
