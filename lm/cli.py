"""The ``lm`` command line: thin wrappers that parse flags and call the stages.

Every stage reads artifacts by reference and writes a new versioned artifact. A problem the
user can fix is reported in one line with exit code 2 and no traceback (``--debug`` shows it).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.table import Table
from safetensors import SafetensorError

from lm.artifacts import Artifact
from lm.cli_common import announce, err, out, state, store
from lm.errors import LMError
from lm.generation.command import sample
from lm.training.command import train

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Train recurrent and n-gram language models on versioned artifacts, measure them, "
         "and generate text (poems above all).",
)
artifacts_app = typer.Typer(no_args_is_help=True, help="List and inspect artifacts.")
app.add_typer(artifacts_app, name="artifacts")
app.command()(train)
app.command()(sample)


@app.callback()
def _global(
    artifacts: Path | None = typer.Option(
        None, "--artifacts", help="Artifact store folder (default: $LM_HOME or ./artifacts)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    state["root"] = artifacts
    state["debug"] = debug


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise LMError(f"{flag} takes comma-separated numbers, e.g. 0.9,0.05,0.05, not {text!r}") \
            from None


def _default_name(source: str) -> str:
    if source.startswith("chinese-poetry:"):
        return source.split(":", 1)[1].replace("/", "-")
    path = Path(source)
    return (path.stem if path.is_file() else path.name) or "dataset"


# ---------------------------------------------------------------------------------- prepare
@app.command()
def prepare(
    source: str = typer.Argument(..., help="A .txt file, a folder with train/valid/test.txt, a "
                                 ".jsonl/.json/.parquet/.csv file, chinese-poetry:NAME, or a "
                                 "Hugging Face Hub dataset id."),
    name: str | None = typer.Option(None, help="Artifact name (default: from the source)."),
    level: str = typer.Option("char", help="Tokenizer level: char, word or bpe."),
    vocab_size: int | None = typer.Option(None, help="Keep at most this many types "
                                             "(<unk> and <eos> included)."),
    min_freq: int = typer.Option(1, help="Types seen fewer times in train become <unk>."),
    doc_sep: str = typer.Option("line", help="Documents in .txt files: line, blank (blank-line "
                                "separated) or file."),
    text_field: str = typer.Option("text", help="Field holding the text in tabular sources."),
    split_ratios: str = typer.Option("0.9,0.05,0.05", help="train,valid,test shares when the "
                                     "source gives no splits."),
    shuffle: bool = typer.Option(True, help="Shuffle documents before splitting (seeded); "
                                 "--no-shuffle cuts in order by characters."),
    seed: int = typer.Option(0, help="Seed for the document shuffle."),
    simplify: bool = typer.Option(False, help="Convert traditional to simplified Chinese "
                                  "(OpenCC)."),
    num_proc: int | None = typer.Option(None, help="Processes for datasets' map."),
) -> None:
    """Load text, split it by document, train a tokenizer, encode every split."""
    from lm.data.prepare import PrepareConfig
    from lm.data.prepare import prepare as run_prepare

    ratios = _floats(split_ratios, "--split-ratios")
    if len(ratios) != 3:
        raise LMError(f"--split-ratios takes three numbers (train,valid,test), not {split_ratios}")
    config = PrepareConfig(source, level, vocab_size, min_freq, doc_sep, text_field, ratios,
                           shuffle, seed, simplify, num_proc)
    artifact, reused = run_prepare(store(), config, name or _default_name(source))
    _announce(artifact, reused)
    table = Table("split", "documents", "tokens", "characters", "unk rate")
    for split, m in artifact.metrics["splits"].items():
        table.add_row(split, f"{m['documents']:,}", f"{m['tokens']:,}", f"{m['characters']:,}",
                      f"{m['unk_rate']:.3%}")
    out.print(table)
    out.print(f"vocabulary: {artifact.metrics['vocab_size']:,} ({artifact.manifest['level']})")


def _announce(artifact: Artifact, reused: bool) -> None:
    announce(out, artifact, reused)


# ------------------------------------------------------------------------------- perplexity
@app.command()
def perplexity(
    model: str = typer.Argument(..., help="Model or n-gram artifact."),
    split: str = typer.Option("test", help="Split of the model's dataset (valid,test joins)."),
    file: Path | None = typer.Option(None, help="Score a text file instead."),
    text: str | None = typer.Option(None, help="Score this text instead."),
    doc_sep: str = typer.Option("line", help="Documents in --file: line, blank or file."),
    context: str = typer.Option("stream", help="stream (carry state across documents) or "
                                "document (each from a fresh state)."),
    batch_size: int = typer.Option(64, help="Segments (stream) or documents scored at once."),
    mix: str | None = typer.Option(None, help="An n-gram artifact to interpolate with."),
    weight: str = typer.Option("auto", help="RNN weight λ in the mixture, or auto (tuned on "
                               "valid)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    per_token: bool = typer.Option(False, help="List each token's surprisal in bits."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
) -> None:
    """Perplexity, bits per token and bits per character on a split, a file or a text."""
    from lm.evaluation.scoring import score

    result = score(store(), model, split=split, file=file, text=text, doc_sep=doc_sep,
                   context=context, batch_size=batch_size, mix=mix, weight=weight,
                   device=device, per_token=per_token)
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    table = Table("measure", "value", title=f"{result['model']} on {result['on']}")
    for key in ("tokens", "oov", "nats_per_token", "bits_per_token", "perplexity",
                "bits_per_char", "weight"):
        value = result.get(key)
        if value is not None:
            table.add_row(key.replace("_", " "),
                          f"{value:,}" if isinstance(value, int) else f"{value:.4f}")
    out.print(table)
    if per_token:
        for token, bits in result["per_token"]:
            out.print(f"{token!r}\t{bits:.3f}")


# ------------------------------------------------------------------------------------ ngram
@app.command()
def ngram(
    dataset: str = typer.Argument(..., help="Dataset artifact to count (its train split)."),
    order: int = typer.Option(5, help="n-gram order (1 and up)."),
    name: str | None = typer.Option(None, help="Artifact name (default: DATASET-ORDERgram)."),
    from_arpa: Path | None = typer.Option(None, help="Import this ARPA file instead of "
                                             "estimating (e.g. from KenLM)."),
    arpa: bool = typer.Option(True, help="Also write model.arpa into the artifact."),
) -> None:
    """An interpolated modified Kneser-Ney n-gram model on the dataset's tokens."""
    from lm.ngram.stage import build_ngram

    s = store()
    data = s.resolve(dataset, "dataset")
    default = f"{data.name}-{'arpa' if from_arpa else f'{order}gram'}"
    artifact, reused = build_ngram(s, data, order, name or default, from_arpa, arpa)
    _announce(artifact, reused)
    m = artifact.metrics
    out.print(f"order {m['order']} · n-grams per order {m['ngrams']} · built in "
              f"{m['build_seconds']:.2f} s")
    for split in ("valid", "test"):
        if f"{split}_perplexity" in m:
            out.print(f"{split} perplexity {m[f'{split}_perplexity']:.3f}")


# ---------------------------------------------------------------------------------- compare
@app.command()
def compare(
    refs: list[str] = typer.Argument(..., help="Models and n-grams to compare."),
    split: str = typer.Option("test", help="Split of their dataset."),
    name: str | None = typer.Option(None, help="Artifact name for the comparison "
                                    "(default: the compared names joined by -vs-)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
) -> None:
    """Perplexity, bits/token and bits/char of several models on the same split."""
    from lm.evaluation.compare import compare as run_compare

    default = "-vs-".join(ref.split(":")[-1].split("@")[0] for ref in refs)
    artifact, rows = run_compare(store(), refs, split, name or default, device)
    table = Table("model", "kind", "tokens", "perplexity", "bits/token", "bits/char",
                  title=f"{split} split")
    for row in rows:
        bpc = row["bits_per_char"]
        table.add_row(row["ref"], row["kind"], f"{row['tokens']:,}", f"{row['perplexity']:.2f}",
                      f"{row['bits_per_token']:.4f}", f"{bpc:.4f}" if bpc else "-")
    out.print(table)
    if not artifact.metrics["same_tokens"]:
        err.print("warning: these models were scored on different datasets; compare bits/char")
    out.print(f"wrote {artifact.ref} (comparison.json, comparison.png)")


# -------------------------------------------------------------------------------- artifacts
@artifacts_app.command("list")
def artifacts_list(kind: str | None = typer.Argument(None, help="Only this kind.")) -> None:
    """Every valid artifact version, newest last."""
    table = Table("reference", "created", "from", "key metric")
    for a in store().list(kind):
        inputs = ", ".join(i["ref"] for i in a.manifest.get("inputs", []))
        table.add_row(a.ref, a.manifest["created"], inputs or "-", _key_metric(a))
    out.print(table)


def _key_metric(a: Artifact) -> str:
    m = a.metrics
    if a.kind == "dataset":
        return f"{m['splits']['train']['tokens']:,} train tokens, vocab {m['vocab_size']:,}"
    if a.kind == "model" and m.get("best_valid_ppl"):
        return f"valid ppl {m['best_valid_ppl']:.2f}"
    if a.kind == "ngram" and m.get("test_perplexity"):
        return f"test ppl {m['test_perplexity']:.2f}"
    return ""


@artifacts_app.command("show")
def artifacts_show(ref: str = typer.Argument(..., help="Artifact reference.")) -> None:
    """An artifact's manifest and lineage."""
    from lm.artifacts import KINDS

    s = store()
    artifact = s.resolve(ref, KINDS)
    out.print_json(json.dumps({k: v for k, v in artifact.manifest.items()}, ensure_ascii=False))
    out.print("lineage:")
    for depth, parent, status in s.lineage(artifact):
        out.print(f"{'  ' * (depth + 1)}{parent}  {status}")


# -------------------------------------------------------------------------------------- run
@app.command()
def run(
    spec: Path = typer.Argument(..., help="A pipeline YAML file."),
    set_: list[str] = typer.Option([], "--set", help="Override: stage.key=value."),
) -> None:
    """Run a pipeline spec: its stages in order, each as the command of the same name."""
    from lm.pipelines import run_pipeline

    run_pipeline(spec, set_, invoke=_invoke, log=out.print)


def _invoke(argv: list[str]) -> None:
    args = [*(["--artifacts", str(state["root"])] if state["root"] else []), *argv]
    code = app(args, standalone_mode=False)
    if isinstance(code, int) and code:
        raise typer.Exit(code)


def main() -> None:
    """Entry point: one-line errors, exit 2, no traceback unless --debug."""
    debug = "--debug" in sys.argv or os.environ.get("LM_DEBUG") == "1"
    try:
        code = app(standalone_mode=False)  # click returns a command's Exit code here
        if isinstance(code, int) and code:
            sys.exit(code)
    except LMError as exc:
        if debug:
            raise
        err.print(f"error: {exc}", markup=False)
        sys.exit(2)
    except SafetensorError as exc:
        if debug:
            raise
        err.print(f"error: a weights file is not valid safetensors ({exc}); it is damaged or "
                  "was not written by lm: re-run the stage that made it", markup=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except typer.Exit as stop:
        sys.exit(stop.exit_code)
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click/typer usage errors
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            sys.exit(130)
        if debug:
            raise
        err.print(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                  markup=False)
        sys.exit(1)

