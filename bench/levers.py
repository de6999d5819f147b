"""What each lever is worth at a fixed number of training tokens (Tang, test perplexity).

Unlike ``bench/speedrun.py`` (one wall-clock budget each, so the CPU's speed decides how much is
read), every contender here reads the same training tokens, so its test perplexity does not
depend on the machine. Each contender trains to the first budget with ``lm train
--max-tokens``, is scored on the whole test split, then is resumed (``--resume``, the same run
continued) to the next budget and scored again: one run gives every budget. A contender is
``shipped`` (the train stage of ``pipelines/tang.yaml``) with levers added, as in the speedrun:
``shipped+gru``, ``shipped+w512+batch16`` (see ``speedrun.LEVERS``).

A leg (one contender to its next budget) runs in its own process. Each call runs the next
``--legs`` pending legs side by side, then stops, so a long study splits into short calls that
can each hold a CPU lock; the results accumulate in ``--results`` (one JSON file per leg) and
``--table`` prints them. Legs side by side run ``--threads`` threads each: the tokens/s they
report are those of a core shared with the other leg, comparable with each other only.

    python bench/levers.py --contenders shipped,shipped+gru --legs 2      # the next 2 legs
    python bench/levers.py --contenders shipped,shipped+gru --table
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speedrun import CORPORA as SPEEDRUN_CORPORA  # noqa: E402
from speedrun import LEVERS, REPO, _env, _flag, contender_flags, prepare  # noqa: E402

EVAL_TOKENS = 40_000  # the pipeline's validation: the first 40,000 valid tokens


def slug(contender: str) -> str:
    return "lev-" + contender.replace("+", "-").replace(".", "p")


def leg_file(results: Path, contender: str, budget: int) -> Path:
    return results / f"{slug(contender)}-{budget}.json"


def pending_legs(contenders: list[str], budgets: list[int], results: Path
                 ) -> list[tuple[str, int, bool]]:
    """(contender, budget, resume) of every contender's next budget not yet run, in order."""
    legs = []
    for contender in contenders:
        for index, budget in enumerate(budgets):
            path = leg_file(results, contender, budget)
            if not path.is_file():
                legs.append((contender, budget, index > 0))
                break
            if "error" in json.loads(path.read_text()):
                break  # a failed leg ends the contender: its error is in the table
    return legs


def every_steps(flags: list[str], every_tokens: int) -> int:
    return max(1, round(every_tokens / (_flag(flags, "--batch-size", 32)
                                        * _flag(flags, "--bptt", 64))))


def run_leg(contender: str, budget: int, resume: bool, args: argparse.Namespace) -> dict:
    """Train one contender to ``budget`` tokens (continuing its run), then score the test
    split; the result is written to its leg file."""
    flags = contender_flags(contender)
    name = slug(contender)
    job = {"store": args.store}
    env = dict(_env(job), OMP_NUM_THREADS=str(args.threads))
    command = [sys.executable, "-m", "lm", "train", "tang", "--name", name, "--no-progress",
               "--no-wandb", "--max-tokens", str(budget), "--eval-tokens", str(EVAL_TOKENS),
               "--eval-every", str(every_steps(flags, args.every_tokens)), *flags,
               "--threads", str(args.threads)] + (["--resume"] if resume else [])
    started, load = time.time(), os.getloadavg()[0]
    trained = subprocess.run(command, env=env, capture_output=True, text=True)
    result = {"contender": contender, "budget": budget, "flags": flags, "resumed": resume,
              "load_at_start": load, "threads": args.threads}
    if trained.returncode != 0:
        result["error"] = (trained.stderr or trained.stdout).strip().splitlines()[-3:]
        leg_file(Path(args.results), contender, budget).write_text(json.dumps(result))
        return result
    tested = subprocess.run([sys.executable, "-m", "lm", "perplexity", name, "--split",
                             "test", "--json"], env=env, capture_output=True, text=True)
    lines = [line for line in tested.stdout.splitlines() if line.startswith("{")]
    result["test_ppl"] = json.loads(lines[-1])["perplexity"] if lines else None
    result.update(_model_record(args.store, name))
    result["wall_seconds"] = time.time() - started
    result["log"] = [line for line in trained.stdout.splitlines()
                     if line.startswith(("output layer", "step ", "size"))]
    leg_file(Path(args.results), contender, budget).write_text(json.dumps(result, indent=1))
    return result


def _model_record(store: str, name: str) -> dict:
    """Steps, tokens, speed and the validation history of the model a leg saved."""
    sys.path.insert(0, str(REPO))
    from lm.artifacts import Store

    model = Store(store).resolve(name, "model")
    history = json.loads(model.file("history.json").read_text())
    keep = ("steps", "train_tokens", "train_seconds", "tokens_per_s", "best_valid_ppl",
            "best_step", "parameters")
    return {"model": model.ref, **{k: model.metrics.get(k) for k in keep},
            "valid": [{k: h[k] for k in ("step", "tokens", "valid_ppl", "lr")}
                      for h in history]}


def table(contenders: list[str], budgets: list[int], results: Path) -> None:
    heads = " | ".join(f"test ppl at {b / 1e6:g}M" for b in budgets)
    print(f"| contender | {heads} | tok/s (first leg) | parameters | lr drops |")
    print("|---|" + "---|" * (len(budgets) + 3))
    for contender in contenders:
        legs = [leg_file(results, contender, b) for b in budgets]
        found = [json.loads(p.read_text()) if p.is_file() else {} for p in legs]
        ppl = " | ".join(f"{r['test_ppl']:.1f}" if r.get("test_ppl") else
                         ("failed" if r.get("error") else "-") for r in found)
        last = next((r for r in reversed(found) if r.get("test_ppl")), {})
        rates = {round(v["lr"], 8) for r in found for v in r.get("valid", [])}
        first = next((r for r in found if r.get("tokens_per_s")), {})  # not a resumed leg's
        rate = (f"{first['tokens_per_s']:,.0f} ({first['threads']} thr.)"
                if first else "-")
        params = f"{last['parameters']:,}" if last.get("parameters") else "-"
        print(f"| {contender} | {ppl} | {rate} | {params} | {max(len(rates) - 1, 0)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contenders", required=True, help="shipped[+LEVER…], comma-"
                        "separated; levers: " + ", ".join(LEVERS))
    parser.add_argument("--budgets", default="3000000,5000000", help="training tokens")
    parser.add_argument("--legs", type=int, default=2, help="legs to run now, side by side")
    parser.add_argument("--threads", type=int, default=1, help="threads per leg")
    parser.add_argument("--every-tokens", type=int, default=1_250_000,
                        help="validate about this often (in training tokens)")
    parser.add_argument("--store", default=os.environ.get("LM_HOME", "artifacts"))
    parser.add_argument("--results", default="levers-results", help="a folder")
    parser.add_argument("--table", action="store_true", help="print the table and stop")
    args = parser.parse_args()
    contenders = args.contenders.split(",")
    budgets = [int(b) for b in args.budgets.split(",")]
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    if args.table:
        table(contenders, budgets, results)
        return
    prepare(SPEEDRUN_CORPORA["tang"], "tang", args.store, "")
    legs = pending_legs(contenders, budgets, results)[: args.legs]
    with ThreadPoolExecutor(max(1, len(legs))) as pool:
        done = list(pool.map(lambda leg: run_leg(*leg, args), legs))
    for r in done:
        print(f"{r['contender']} @ {r['budget']:,}: test {r.get('test_ppl')} · "
              f"{r.get('tokens_per_s') or 0:,.0f} tok/s · {r.get('error', '')}", flush=True)
    print(f"pending after this: {len(pending_legs(contenders, budgets, results))}")


if __name__ == "__main__":
    main()
