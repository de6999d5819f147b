"""How ``lm prepare`` and ``lm ngram`` scale with the corpus: time, peak memory and disk.

It builds corpora of the given sizes (default 10 MB, 100 MB and 1 GB) from the text in
``../shared/data`` (PTB, WikiText-2, Tiny Shakespeare), every copy of their lines in a fresh
shuffled order, in a temporary folder that is deleted afterwards. For each size it runs, each
in a fresh process with its own artifact store, datasets cache and TMPDIR:

* ``lm prepare CORPUS --level word``;
* ``lm ngram NAME --order 5 --memory 2G`` (without ``--memory`` when this ``lm`` has no such
  flag, which the table says); with ``--in-memory-upto`` also the in-memory path;
* ``lmplz -o 5 -S 2G`` on the same text, when ``lmplz`` is on the PATH.

First it prepares one line of 32 MB (no newline), as given (one document, which cannot fill
three splits) and with ``--split-ratios 1,0,0``. It prints a table and writes a log-log plot
of time and peak memory against size.

Peak RSS is the child's ``ru_maxrss`` (the largest process among its descendants, read in a
fresh wrapper process per run). Disk is the largest total size, polled every half second, of
the run's store, datasets cache and temporary folder together.

    python bench/scale_bench.py                          # 10M,100M,1G; a few minutes per GB
    python bench/scale_bench.py --sizes 10M --single-line 32M --plot /tmp/scale.png
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TEXTS = ["ptb/train.txt", "ptb/valid.txt", "ptb/test.txt", "wikitext-2/train.txt",
         "wikitext-2/valid.txt", "wikitext-2/test.txt", "tinyshakespeare/input.txt"]
UNITS = {"K": 10**3, "M": 10**6, "G": 10**9}

# Runs COMMAND and prints, as JSON on its last stderr line, the largest RSS among its children.
WRAPPER = """
import json, resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"rc": code, "peak_rss": peak}), file=sys.stderr)
"""


@dataclass
class Run:
    """One measured command."""

    stage: str
    size: int
    seconds: float
    peak_rss: int
    disk: int
    rc: int
    note: str = ""


def parse_size(text: str) -> int:
    """``10M`` → 10_000_000 (decimal units, as disk sizes are quoted)."""
    text = text.strip().upper().removesuffix("B")
    if text and text[-1] in UNITS:
        return int(float(text[:-1]) * UNITS[text[-1]])
    return int(text)


def label(size: int) -> str:
    for unit, factor in sorted(UNITS.items(), key=lambda u: -u[1]):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def base_lines() -> list[str]:
    """Every non-blank line of the shared corpora (about 20 MB)."""
    lines: list[str] = []
    for name in TEXTS:
        path = SHARED / name
        if not path.is_file():
            raise SystemExit(f"missing {path}: the bench reads ../shared/data")
        lines += [line for line in path.read_text("utf-8").splitlines(keepends=True)
                  if line.strip()]
    return lines


def make_corpus(path: Path, size: int, lines: list[str], seed: int) -> None:
    """Copies of ``lines``, each in a new shuffled order, until ``size`` bytes are written."""
    rng = random.Random(seed)
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < size:
            order = lines[:]
            rng.shuffle(order)
            for line in order:
                out.write(line)
                written += len(line.encode("utf-8"))
                if written >= size:
                    break


def make_single_line(path: Path, size: int, lines: list[str]) -> None:
    """One line of ``size`` bytes, the corpus's words joined by spaces, no newline."""
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < size:
            for line in lines:
                piece = line.strip() + " "
                out.write(piece)
                written += len(piece.encode("utf-8"))
                if written >= size:
                    break


def tree_size(folders: list[Path]) -> int:
    total = 0
    for folder in folders:
        for dirpath, _, files in os.walk(folder):
            for name in files:
                with contextlib.suppress(OSError):  # removed while walking
                    total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def measure(command: list[str], env: dict[str, str], watch: list[Path],
            stdin: Path | None = None, stdout: Path | None = None
            ) -> tuple[float, int, int, int, str]:
    """(seconds, peak RSS, peak disk, exit code, last stderr line) of one fresh process.

    It runs in ``watch[0]``, not here: ``python -m`` puts its working folder first on the
    path, which would hide the ``--pythonpath`` checkout behind this one.
    """
    peak_disk = [0]
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.5):
            peak_disk[0] = max(peak_disk[0], tree_size(watch))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    start = time.perf_counter()
    with open(stdin or os.devnull, "rb") as fin, open(stdout or os.devnull, "wb") as fout:
        proc = subprocess.Popen([sys.executable, "-c", WRAPPER, *command], env=env, stdin=fin,
                                stdout=fout, stderr=subprocess.PIPE, text=True, cwd=watch[0],
                                start_new_session=True)
        try:
            _, err = proc.communicate()
        except BaseException:  # interrupted: stop the whole run, not just the wrapper
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            done.set()
            poller.join()
    seconds = time.perf_counter() - start
    peak_disk[0] = max(peak_disk[0], tree_size(watch))
    lines = err.strip().splitlines()
    stats = json.loads(lines[-1])
    message = next((x for x in reversed(lines[:-1]) if x.strip()), "")
    return seconds, stats["peak_rss"], peak_disk[0], stats["rc"], message


class Bench:
    """Runs the stages at each size in its own folder and collects the rows."""

    def __init__(self, work: Path, python: str, pythonpath: str | None, memory: str) -> None:
        self.work, self.python, self.memory = work, python, memory
        self.pythonpath = pythonpath
        self.runs: list[Run] = []
        self.has_memory_flag = "--memory" in self._lm_help("ngram")

    def _env(self, folder: Path) -> dict[str, str]:
        env = dict(os.environ, LM_HOME=str(folder / "store"),
                   HF_DATASETS_CACHE=str(folder / "hf-cache"), TMPDIR=str(folder / "tmp"),
                   OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
                   WANDB_MODE="disabled", HF_HUB_OFFLINE="1", COLUMNS="200")
        if self.pythonpath:
            env["PYTHONPATH"] = self.pythonpath
        for name in ("store", "hf-cache", "tmp"):
            (folder / name).mkdir(parents=True, exist_ok=True)
        return env

    def _lm_help(self, command: str) -> str:
        env = self._env(self.work / "help")
        done = subprocess.run([self.python, "-m", "lm", command, "--help"], env=env,
                              capture_output=True, text=True, cwd=self.work)
        return done.stdout

    def run(self, stage: str, size: int, folder: Path, args: list[str], note: str = "",
            lm: bool = True, **io) -> Run:
        command = [self.python, "-m", "lm", *args] if lm else args
        watch = [folder / "store", folder / "hf-cache", folder / "tmp"]
        seconds, rss, disk, rc, message = measure(command, self._env(folder), watch, **io)
        if rc != 0:
            note = (note + "; " if note else "") + f"exit {rc}: {message}"
        run = Run(stage, size, seconds, rss, disk, rc, note)
        self.runs.append(run)
        print(f"  {stage:<32} {label(size):>5} {seconds:8.1f} s {rss / 1e6:8.0f} MB "
              f"{disk / 1e6:8.0f} MB  {note}", flush=True)
        return run

    def size(self, size: int, corpus: Path, order: int, in_memory_upto: int,
             ngram: bool = True) -> None:
        """Prepare the corpus, then the n-gram model(s) on it, then lmplz."""
        folder = self.work / f"run-{label(size)}"
        self.run("lm prepare --level word", size, folder,
                 ["prepare", str(corpus), "--level", "word", "--name", "corpus"])
        if ngram:
            self.ngram(size, folder, corpus, order, in_memory_upto)
        shutil.rmtree(folder, ignore_errors=True)

    def ngram(self, size: int, folder: Path, corpus: Path, order: int,
              in_memory_upto: int) -> None:
        ngram = ["ngram", "corpus", "--order", str(order)]
        if self.has_memory_flag:
            self.run(f"lm ngram --order {order} --memory {self.memory}", size, folder,
                     [*ngram, "--memory", self.memory, "--name", "kn-budget"])
            if size <= in_memory_upto:
                self.run(f"lm ngram --order {order} (in memory)", size, folder,
                         [*ngram, "--name", "kn-memory"])
        else:
            self.run(f"lm ngram --order {order}", size, folder, [*ngram, "--name", "kn"],
                     note="no --memory flag in this lm: in-memory path")
        lmplz = shutil.which("lmplz")
        if lmplz:
            self.run(f"lmplz -o {order} -S {self.memory}", size, folder,
                     [lmplz, "-o", str(order), "-S", self.memory, "-T", str(folder / "tmp")],
                     lm=False, stdin=corpus, stdout=folder / "tmp" / "lmplz.arpa")

    def single_line(self, size: int, path: Path) -> None:
        """The one-line corpus as given, then all in train; each from an empty cache."""
        base = ["prepare", str(path), "--level", "word", "--name", "line"]
        for stage, extra in (("lm prepare, one line", []),
                             ("lm prepare, one line, --split-ratios 1,0,0",
                              ["--split-ratios", "1,0,0"])):
            folder = self.work / f"run-single-{len(extra)}"
            self.run(stage, size, folder, [*base, *extra])
            shutil.rmtree(folder, ignore_errors=True)


def table(runs: list[Run], cpu: str) -> str:
    """The rows as a markdown table."""
    lines = [f"CPU: {cpu}", "",
             "| stage | corpus | time (s) | peak RSS (MB) | disk (MB) | note |",
             "|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r.stage} | {label(r.size)} | {r.seconds:.1f} | {r.peak_rss / 1e6:,.0f}"
                     f" | {r.disk / 1e6:,.0f} | {r.note} |")
    return "\n".join(lines)


def plot(runs: list[Run], path: Path) -> None:
    """Log-log time and peak memory against corpus size, one line per stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(11, 4.2))
    stages = [s for s in dict.fromkeys(r.stage for r in runs) if "one line" not in s]
    for stage in stages:
        rows = sorted((r for r in runs if r.stage == stage and r.rc == 0), key=lambda r: r.size)
        if not rows:
            continue
        sizes = [r.size / 1e6 for r in rows]
        ax_time.plot(sizes, [r.seconds for r in rows], "o-", label=stage)
        ax_mem.plot(sizes, [r.peak_rss / 1e6 for r in rows], "o-", label=stage)
    for ax, what in ((ax_time, "wall time (s)"), (ax_mem, "peak RSS (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("corpus size (MB)")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
    ax_mem.legend(fontsize=8)
    fig.suptitle("lm scale bench: time and memory against corpus size")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip() + f", {os.cpu_count()} cores"
    return "unknown"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10M,100M,1G",
                        help="corpus sizes, comma-separated (K, M, G are powers of 1000)")
    parser.add_argument("--single-line", default="32M",
                        help="size of the one-line corpus; 0 skips it")
    parser.add_argument("--order", type=int, default=5)
    parser.add_argument("--memory", default="2G", help="lm ngram --memory and lmplz -S")
    parser.add_argument("--in-memory-upto", default="100M",
                        help="also run the in-memory n-gram path up to this size")
    parser.add_argument("--plot", type=Path, default=Path("scale_bench.png"))
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument("--work", type=Path, help="folder for the temporary corpora")
    parser.add_argument("--python", default=sys.executable, help="Python that runs `-m lm`")
    parser.add_argument("--pythonpath", help="PYTHONPATH for lm (to bench another checkout)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ngram", action="store_true", help="only lm prepare")
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    work = Path(tempfile.mkdtemp(prefix="scale-bench-", dir=args.work))
    signal.signal(signal.SIGTERM, _interrupt)  # `timeout` still gets the table of what ran
    bench = Bench(work, args.python, args.pythonpath, args.memory)
    print(f"work folder {work}; lm ngram --memory: "
          f"{'yes' if bench.has_memory_flag else 'no'}", flush=True)
    try:
        lines = base_lines()
        single = parse_size(args.single_line)
        if single:  # first: it is quick, and a long run cut short still has it
            path = work / f"line-{label(single)}.txt"
            make_single_line(path, single, lines)
            bench.single_line(single, path)
            path.unlink()
        for size in sizes:
            corpus = work / f"corpus-{label(size)}.txt"
            make_corpus(corpus, size, lines, args.seed)
            bench.size(size, corpus, args.order, parse_size(args.in_memory_upto),
                       ngram=not args.no_ngram)
            corpus.unlink()
    except KeyboardInterrupt as stop:
        print(f"interrupted ({stop}): the table holds the runs that finished")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(bench.runs, cpu_name()))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in bench.runs], indent=1))
    if any(r.rc == 0 and "one line" not in r.stage for r in bench.runs):
        plot(bench.runs, args.plot)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
