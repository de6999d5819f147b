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
from lm.cli_common import err, out, print_table, state, store
from lm.data.command import prepare
from lm.diagnose import diagnose
from lm.errors import LMError
from lm.evaluation.cells_command import inspect
from lm.evaluation.command import compare, perplexity
from lm.generation.command import sample
from lm.models.export_command import export
from lm.ngram.command import ngram
from lm.serve.command import serve
from lm.training.command import train

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Train recurrent and n-gram language models on versioned artifacts, measure them, "
         "and generate text (poems above all).",
)
artifacts_app = typer.Typer(no_args_is_help=True, help="List and inspect artifacts.")
app.add_typer(artifacts_app, name="artifacts")
# One line per stage, in pipeline order.
app.command()(prepare)
app.command()(train)
app.command()(perplexity)
app.command()(sample)
app.command()(ngram)
app.command()(compare)
app.command()(serve)
app.command()(diagnose)
app.command()(inspect)
app.command()(export)


@app.callback()
def _global(
    ctx: typer.Context,
    artifacts: Path | None = typer.Option(
        None, "--artifacts", help="Artifact store folder (default: $LM_HOME or ./artifacts)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    wandb: bool = typer.Option(
        False, "--wandb", help="Log every artifact a stage writes to wandb as an Artifact, "
        "inputs as used (offline unless logged in; also LM_WANDB=1)."),
) -> None:
    state["root"] = artifacts
    state["debug"] = debug
    if wandb:  # for this command and the stages it runs (lm run calls back in here)
        from lm import tracking

        ctx.call_on_close(tracking.enable())


# -------------------------------------------------------------------------------- artifacts
@artifacts_app.command("list")
def artifacts_list(kind: str | None = typer.Argument(None, help="Only this kind.")) -> None:
    """Every valid artifact version, newest last."""
    table = Table("reference", "created", "from", "key metric")
    for a in store().list(kind):
        inputs = ", ".join(i["ref"] for i in a.manifest.get("inputs", []))
        table.add_row(a.ref, a.manifest["created"], inputs or "-", _key_metric(a))
    print_table(table)


def _key_metric(a: Artifact) -> str:
    m = a.metrics
    if a.kind == "dataset":
        return f"{m['splits']['train']['tokens']:,} train tokens, vocab {m['vocab_size']:,}"
    if a.kind == "model" and m.get("best_valid_ppl"):
        return f"valid ppl {m['best_valid_ppl']:.2f}"
    if a.kind == "ngram" and m.get("test_perplexity"):
        return f"test ppl {m['test_perplexity']:.2f}"
    if a.kind == "mixture":
        return f"λ {m['weight']:.4f} (fitted on {m['valid_tokens']:,} valid tokens)"
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

    stages = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    run_pipeline(spec, set_, {k: v for k, v in stages.items() if k not in ("run", "artifacts")},
                 invoke=_invoke, log=out.print)


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

