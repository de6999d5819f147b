"""Time to quality: several ways to train, one wall-clock budget each, on the same machine.

Every contender trains in its own fresh process, one after another, on the same prepared tokens,
for the same budget (the wall clock of the run, its validations included), and is validated
every ``--every-tokens`` training tokens on the same validation tokens by ``lm``'s evaluator.

- ``reference``: PyTorch's ``word_language_model`` loop (``bench/reference_loop.py``): full
  softmax, SGD at lr 20, clip 0.25, bptt 35, batch 20, lr ÷ 4 when an epoch does not improve.
- ``today``: ``lm train`` with the settings ``pipelines/tang.yaml`` had before this benchmark.
- ``shipped``: ``lm train`` with the train stage of the pipeline that ships now.
- the levers, each alone on top of ``today``, and combined (see ``CONTENDERS``).

Each runs the real ``lm train`` command. The table gives steps, training tokens, tokens/s,
the last validation perplexity, the test perplexity of the model ``lm train`` saved, and the
training seconds to reach ``--target`` (validation time excluded). The PNG plots validation
perplexity against training seconds. With ``--stop-at-target`` a run ends once it reaches the
target (its test perplexity is then not measured).

    python bench/speedrun.py                       # Tang at 600 s, then PTB to perplexity 150
    python bench/speedrun.py --corpus tang --budget 120 --contenders reference,today,shipped
    python bench/speedrun.py --corpus ptb --stop-at-target
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
LOG_LINE = re.compile(r"step (\d+): valid ppl ([\d.]+|nan|inf).* · ([\d,]+) tokens in ([\d.]+) s")
PICKED_LINE = re.compile(r"^output layer: .*$", re.M)


@dataclass
class Corpus:
    """One corpus and how it is prepared, validated and compared."""

    source: str                 # lm prepare's source (``{data}`` is --data)
    prepare: list[str]          # lm prepare's flags
    reference: dict             # the reference network (ReferenceConfig fields)
    budget: float               # seconds per contender
    every_tokens: int           # validate this often
    eval_tokens: int | None     # on the first N validation tokens (None: all)
    target: float | None        # report the time to this validation perplexity
    contenders: list[str] = field(default_factory=list)


TODAY_TANG = ["--cell", "lstm", "--layers", "2", "--emb-size", "256", "--hidden-size", "256",
              "--dropout", "0.1", "--tied", "--bptt", "64", "--batch-size", "64", "--lr",
              "0.003", "--clip", "0.25", "--softmax", "full"]
PTB_SMALL = ["--cell", "lstm", "--layers", "2", "--emb-size", "200", "--hidden-size", "200",
             "--dropout", "0.2", "--bptt", "35", "--batch-size", "20", "--no-tied"]
CORPORA = {
    "tang": Corpus("chinese-poetry:tang/regular", ["--level", "char", "--vocab-size", "6000"],
                   dict(emb=256, hidden=256, layers=2, dropout=0.1, tied=True), 600, 250_000,
                   40_000, None, ["reference", "today", "shipped", "shipped+full"]),
    "ptb": Corpus("{data}/ptb", ["--level", "word"], dict(emb=200, hidden=200, layers=2,
                  dropout=0.2, tied=False), 600, 100_000, None, 150.0,
                  ["reference", "ptb-full", "ptb-adaptive", "defaults"]),
}
# name: lm train flags. "shipped" reads pipelines/tang.yaml; "+lever" adds a lever's flags.
CONTENDERS: dict[str, list[str]] = {
    "today": TODAY_TANG,
    "defaults": [],
    "ptb-full": PTB_SMALL + ["--softmax", "full", "--lr", "0.003"],
    "ptb-adaptive": PTB_SMALL + ["--softmax", "adaptive", "--lr", "0.003"],
}
LEVERS: dict[str, list[str]] = {
    "adaptive": ["--softmax", "adaptive"],
    "full": ["--softmax", "full"],
    "cosine": ["--schedule", "cosine", "--warmup", "0.02"],
    "linear": ["--schedule", "linear", "--warmup", "0.02"],
    "gru": ["--cell", "gru"],
    "wide": ["--emb-size", "512", "--hidden-size", "512"],
    "deep": ["--layers", "3"],
    "shallow": ["--layers", "1"],
    "batch20": ["--batch-size", "20"],
    "batch32": ["--batch-size", "32"],
    "batch128": ["--batch-size", "128"],
    "bptt35": ["--bptt", "35"],
    "bptt128": ["--bptt", "128"],
    "sgd": ["--optimizer", "sgd", "--lr", "20"],
    "adam5": ["--optimizer", "adam", "--lr", "0.005"],
    "nodropout": ["--dropout", "0"],
    "threads1": ["--threads", "1"],
    "explicit": ["--impl", "explicit"],
    "fp32": ["--precision", "fp32"],
    # the lever study at fixed tokens (bench/levers.py)
    "w384": ["--emb-size", "384", "--hidden-size", "384"],
    "w512": ["--emb-size", "512", "--hidden-size", "512"],
    "w768": ["--emb-size", "768", "--hidden-size", "768"],
    "batch16": ["--batch-size", "16"],
    "batch24": ["--batch-size", "24"],
    "grow": ["--batch-start", "8", "--batch-ramp", "1000000"],
    "lr3e3": ["--lr", "0.003"],
    "lr1e2": ["--lr", "0.01"],
    "b2-99": ["--beta2", "0.99"],
    "b2-95": ["--beta2", "0.95"],
    "wd": ["--weight-decay", "1e-6"],
    "adamw": ["--optimizer", "adamw", "--weight-decay", "0.1"],
    "drop2": ["--dropout", "0.2"],
    "drop3": ["--dropout", "0.3"],
    "edrop": ["--dropout-embed", "0.1"],
    "wdrop": ["--weight-drop", "0.2"],
    "threads2": ["--threads", "2"],
}


def contender_flags(name: str) -> list[str]:
    """``lm train`` flags of a contender: a named one or ``shipped``, each with +lever+lever…
    (a later flag overrides an earlier one)."""
    parts = name.split("+")
    flags = shipped_flags() if parts[0] == "shipped" else list(CONTENDERS[parts[0]])
    for lever in parts[1:]:
        flags += LEVERS[lever]
    return flags


def shipped_flags() -> list[str]:
    """The train stage of pipelines/tang.yaml as flags: the budget keys are left to the
    bench, and ``size`` too, so that ``shipped`` is the sizes the YAML writes (the study's
    starting point) and a width lever is not replaced by ``--size auto``'s choice."""
    import yaml

    stage = yaml.safe_load((REPO / "pipelines" / "tang.yaml").read_text())["stages"]["train"]
    flags = []
    for key, value in stage.items():
        if key in ("dataset", "max_time", "max_tokens", "max_steps", "epochs", "eval_every",
                   "eval_tokens", "size"):
            continue  # the budget is the bench's; --size auto would override a width lever
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False:
            flags.append("--no-" + key.replace("_", "-"))
        else:
            flags += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return flags


# ------------------------------------------------------------------------- the two runners
def run_lm(job: dict) -> dict:
    """``lm train`` in a fresh process; its validation lines make the curve."""
    corpus = Corpus(**job["corpus"])
    flags = contender_flags(job["contender"])
    batch, bptt = _flag(flags, "--batch-size", 32), _flag(flags, "--bptt", 64)
    every = max(1, round(corpus.every_tokens / (batch * bptt)))
    command = [sys.executable, "-m", "lm", "train", job["dataset"], "--name", job["name"],
               "--no-progress", "--no-wandb", "--max-time", str(corpus.budget),
               "--eval-every", str(every), *flags]
    if corpus.eval_tokens:
        command += ["--eval-tokens", str(corpus.eval_tokens)]
    proc = subprocess.Popen(command, env=_env(job), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    curve, output = [], []
    for line in proc.stdout:
        output.append(line)
        match = LOG_LINE.search(line)
        if not match:
            continue
        curve.append({"step": int(match[1]), "valid_ppl": float(match[2]),
                      "tokens": int(match[3].replace(",", "")), "seconds": float(match[4])})
        if job["stop_at_target"] and corpus.target and curve[-1]["valid_ppl"] <= corpus.target:
            proc.send_signal(signal.SIGINT)
    stopped = proc.wait() != 0
    text = "".join(output)
    result = {"curve": curve, "flags": flags, "stopped": stopped}
    picked = PICKED_LINE.search(text)
    if picked:
        result["picked"] = picked[0]
    if stopped and not (job["stop_at_target"] and curve):
        result["error"] = text.strip().splitlines()[-1:] or ["no output"]
    if not stopped:
        tested = subprocess.run([sys.executable, "-m", "lm", "perplexity", job["name"],
                                 "--split", "test", "--json"], env=_env(job),
                                capture_output=True, text=True)
        lines = [line for line in tested.stdout.splitlines() if line.startswith("{")]
        result["test_ppl"] = json.loads(lines[-1])["perplexity"] if lines else None
    return result


def reference_worker(job: dict) -> dict:
    """The PyTorch example's loop, in this (fresh) process."""
    import torch
    from reference_loop import ReferenceConfig, ReferenceTrainer, RNNModel, as_lm_model

    from lm.artifacts import Store
    from lm.data.prepare import load_split
    from lm.evaluation.perplexity import evaluate

    corpus = Corpus(**job["corpus"])
    torch.manual_seed(0)
    dataset = Store(job["store"]).resolve(job["dataset"], "dataset")
    model = RNNModel(dataset.metrics["vocab_size"], ReferenceConfig(**corpus.reference))
    trainer = ReferenceTrainer(model, load_split(dataset, "train"), torch.device("cpu"))
    valid = load_split(dataset, "valid")[: corpus.eval_tokens or None]
    curve: list[dict] = []

    def validate() -> float:
        return evaluate(as_lm_model(model), valid, batch_size=10).perplexity

    def on_eval(point: dict) -> bool:
        curve.append(point)
        print(json.dumps({"point": point}), flush=True)
        return bool(job["stop_at_target"] and corpus.target and
                    point["valid_ppl"] <= corpus.target)

    trainer.train_for(corpus.budget, corpus.every_tokens, validate, on_eval)
    result = {"curve": curve, "stopped": bool(job["stop_at_target"] and corpus.target
                                             and curve and curve[-1]["valid_ppl"]
                                             <= corpus.target)}
    if not result["stopped"]:
        test = load_split(dataset, "test")
        result["test_ppl"] = evaluate(as_lm_model(model), test, batch_size=10).perplexity
    return result


def run_worker(job: dict) -> dict:
    """A worker (the reference loop, or one sweep point) in a fresh process."""
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)],
                          env=_env(job), capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{"result"')]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:], "curve": []}
    return json.loads(lines[-1])["result"]


# ------------------------------------------------------------------------ softmax sweep
def sweep_worker(job: dict) -> dict:
    """Training tokens/s of the full and the adaptive softmax on one network, for one
    vocabulary size, on Zipf-distributed tokens (so the fitted cutoffs are realistic)."""
    import numpy as np
    import torch

    from lm.models import rnn
    from lm.runtime import pick_precision

    vocab, batch, bptt = job["vocab"], job["batch"], job["bptt"]
    torch.manual_seed(0)
    weights = 1.0 / np.arange(1, vocab + 1)
    ids = torch.from_numpy(np.random.default_rng(0).choice(
        vocab, size=(batch, bptt + 1), p=weights / weights.sum()))
    dtype = pick_precision("auto", torch.device("cpu"))
    rates = {}
    for softmax in ("full", "adaptive", "full", "adaptive"):  # twice, interleaved
        cutoffs = rnn.frequency_cutoffs(weights) if softmax == "adaptive" else None
        model = rnn.RNNLM(rnn.ModelConfig(vocab, "lstm", job["layers"], job["size"],
                                          job["size"], 0.1, True, softmax=softmax,
                                          cutoffs=cutoffs))
        step = rnn.TrainingStep(model, 0.0, 0.0)
        optimizer = torch.optim.Adam(model.parameters(), 1e-3)
        hidden = model.init_hidden(batch, torch.device("cpu"))
        times = []
        for _ in range(job["steps"]):
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                objective, _, _ = step(ids[:, :-1], ids[:, 1:], hidden)
            optimizer.zero_grad()
            objective.backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
        rate = batch * bptt / float(np.median(times[2:]))
        rates[softmax] = max(rates.get(softmax, 0.0), rate)
    return rates


def softmax_sweep(sizes: list[int], store: str) -> dict[int, dict]:
    """Where the adaptive softmax starts to pay: a table of tokens/s by vocabulary size."""
    from lm.models.rnn import AUTO_ADAPTIVE_FROM

    results = {}
    print("\n## output layer: training tokens/s by vocabulary size (2×256 tied LSTM, batch 64 × "
          "bptt 64, Zipf tokens, lm's default precision)")
    print("| vocabulary | full tok/s | adaptive tok/s | adaptive ÷ full | --softmax auto |")
    print("|---|---|---|---|---|")
    for vocab in sizes:
        job = {"kind": "sweep", "vocab": vocab, "layers": 2, "size": 256, "batch": 64,
               "bptt": 64, "steps": 8, "store": store}
        r = run_worker(job)
        if "error" in r:
            print(f"| {vocab:,} | failed: {r['error']} |")
            continue
        results[vocab] = r
        picked = "adaptive" if vocab >= AUTO_ADAPTIVE_FROM else "full"
        print(f"| {vocab:,} | {r['full']:,.0f} | {r['adaptive']:,.0f} | "
              f"{r['adaptive'] / r['full']:.2f}× | {picked} |", flush=True)
    return results


# ------------------------------------------------------------------------------ helpers
def _flag(flags: list[str], name: str, default: int) -> int:
    """A flag's value as ``lm train`` reads it: the last occurrence wins."""
    at = [i for i, flag in enumerate(flags) if flag == name]
    return int(flags[at[-1] + 1]) if at else default


def _env(job: dict) -> dict:
    path = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONPATH=path, LM_HOME=job["store"], WANDB_MODE="disabled")


def prepare(corpus: Corpus, name: str, store: str, data: str) -> None:
    """The corpus prepared once, outside every timed run (reused when already there)."""
    env = _env({"store": store})
    found = subprocess.run([sys.executable, "-m", "lm", "artifacts", "show", name], env=env,
                           capture_output=True, text=True)
    if found.returncode == 0:
        return
    subprocess.run([sys.executable, "-m", "lm", "prepare", corpus.source.format(data=data),
                    "--name", name, *corpus.prepare], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def time_to(curve: list[dict], target: float | None) -> float | None:
    """Training seconds at the first validation at or below ``target``."""
    for point in curve:
        if target and point["valid_ppl"] <= target:
            return point["seconds"]
    return None


def _fmt(value, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "-"


def table(name: str, corpus: Corpus, results: dict[str, dict]) -> None:
    ref = results.get("reference", {})
    ref_time, ref_ppl = time_to(ref.get("curve", []), corpus.target), _last(ref, "valid_ppl")
    target = f"time to {corpus.target:g}" if corpus.target else "time to target"
    print(f"\n## {name}: {corpus.budget:g} s each · validated every {corpus.every_tokens:,} "
          f"tokens on {corpus.eval_tokens or 'all'} validation tokens")
    print(f"| contender | steps | tokens | tok/s | × ref | valid ppl | vs ref | test ppl | "
          f"{target} (s) | × sooner |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for contender, r in results.items():
        if r.get("error"):
            print(f"| {contender} | failed: {r['error']} |")
            continue
        last = r["curve"][-1] if r["curve"] else {}
        rate = last.get("tokens", 0) / last["seconds"] if last.get("seconds") else None
        ref_rate = (_last(ref, "tokens") / _last(ref, "seconds")) if _last(ref, "seconds") \
            else None
        reached = time_to(r["curve"], corpus.target)
        vs = (f"{(last['valid_ppl'] / ref_ppl - 1) * 100:+.1f}%"
              if ref_ppl and last.get("valid_ppl") else "-")
        sooner = f"{ref_time / reached:.1f}×" if ref_time and reached else "-"
        times_ref = rate / ref_rate if rate and ref_rate else None
        print(f"| {contender} | {_fmt(last.get('step'), ',')} | {_fmt(last.get('tokens'), ',')} "
              f"| {_fmt(rate, ',.0f')} | {_fmt(times_ref, '.2f')} "
              f"| {_fmt(last.get('valid_ppl'), '.1f')} | {vs} | {_fmt(r.get('test_ppl'), '.1f')} "
              f"| {_fmt(reached, '.0f')} | {sooner} |")


def _last(result: dict, key: str):
    curve = result.get("curve") or []
    return curve[-1][key] if curve else None


def plot(everything: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(everything), figsize=(6.5 * len(everything), 4.5),
                             squeeze=False)
    for ax, (name, run) in zip(axes[0], everything.items(), strict=True):
        for contender, r in run["results"].items():
            curve = r.get("curve") or []
            if curve:
                ax.plot([p["seconds"] for p in curve], [p["valid_ppl"] for p in curve],
                        marker=".", label=contender)
        if run["corpus"]["target"]:
            ax.axhline(run["corpus"]["target"], color="grey", linestyle=":", linewidth=1)
        ax.set(title=f"{name}: validation perplexity against training time",
               xlabel="training seconds (validation excluded)", ylabel="validation perplexity",
               yscale="log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _say(corpus: str, contender: str, result: dict) -> None:
    last = result["curve"][-1] if result["curve"] else "no validation"
    extra = [f"test {result.get('test_ppl')}"]
    extra += [result[k] for k in ("picked",) if k in result]
    extra += [f"error {result['error']}"] if result.get("error") else []
    print(f"  {corpus} {contender}: {json.dumps(last)} · " + " · ".join(extra), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="tang,ptb", help="tang, ptb (comma-separated)")
    parser.add_argument("--contenders", default=None, help="names: reference, today, "
                        "shipped, defaults, ptb-full, ptb-adaptive, today+LEVER[+LEVER…] with "
                        "levers " + ", ".join(LEVERS) + " (default: the corpus's own)")
    parser.add_argument("--budget", type=float, default=None, help="seconds per contender "
                        "(default: 600)")
    parser.add_argument("--stop-at-target", action=argparse.BooleanOptionalAction,
                        default=False, help="end a run once it reaches the target perplexity")
    parser.add_argument("--sweep-softmax", default="500,1000,2000,4000,6000,10000,33278",
                        help="vocabulary sizes at which to time the full and the adaptive "
                        "softmax ('' to skip)")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--store", default=str(Path(tempfile.gettempdir()) / "lm-speedrun"),
                        help="where the prepared corpora and trained models go")
    parser.add_argument("--png", default="speedrun.png")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        job = json.loads(args.worker)
        worker = sweep_worker if job.get("kind") == "sweep" else reference_worker
        print(json.dumps({"result": worker(job)}))
        return
    import torch

    print(f"# torch {torch.__version__} · {platform.processor() or platform.machine()} · CPU "
          f"capability {torch.backends.cpu.get_cpu_capability()} · {os.cpu_count()} cores · "
          f"load average at start {os.getloadavg()[0]:.2f}", flush=True)
    everything = {}
    stamp = time.strftime("%H%M%S")
    sweep = {}
    if args.sweep_softmax:
        sweep = softmax_sweep([int(v) for v in args.sweep_softmax.split(",")], args.store)
    for name in filter(None, args.corpus.split(",")):
        corpus = CORPORA[name]
        if args.budget:
            corpus.budget = args.budget
        prepare(corpus, name, args.store, args.data)
        contenders = args.contenders.split(",") if args.contenders else corpus.contenders
        results = {}
        for contender in contenders:
            job = {"corpus": asdict(corpus), "contender": contender, "dataset": name,
                   "store": args.store, "stop_at_target": args.stop_at_target,
                   "name": f"speedrun-{name}-{contender.replace('+', '-')}-{stamp}"}
            runner = run_worker if contender == "reference" else run_lm
            results[contender] = runner(job)
            _say(name, contender, results[contender])
        everything[name] = {"corpus": asdict(corpus), "results": results}
        table(name, corpus, results)
    print(f"\n# load average at end {os.getloadavg()[0]:.2f}")
    if everything:
        plot(everything, Path(args.png))
        print(f"wrote {args.png}")
    if args.json:
        Path(args.json).write_text(json.dumps({"sweep": sweep, **everything}, indent=1))


if __name__ == "__main__":
    main()
