"""``lm perplexity`` and ``lm compare``: flags of the evaluation stage."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from lm.cli_common import err, out, print_table, store
from lm.evaluation.scoring import ScoreRequest, rank, score
from lm.settings import with_settings


@with_settings(ScoreRequest, into="request")
def perplexity(
    model: str = typer.Argument(..., help="Model or n-gram artifact."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    *,
    request: ScoreRequest,
) -> None:
    """Perplexity, bits per token and bits per character on a split, a file or a text."""
    if request.rank:
        _print_ranking(rank(store(), model, request), as_json, request.per_token)
        return
    result = score(store(), model, request)
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    title = result.get("title")
    table = Table("measure", "bodies" if title else "value", *(["titles"] if title else []),
                  title=f"{result['model']} on {result['on']}")
    for key in ("tokens", "oov", "nats_per_token", "bits_per_token", "perplexity",
                "bits_per_char", "weight"):
        value = result.get(key)
        if value is not None:
            table.add_row(key.replace("_", " "), _shown(value),
                          *([_shown(title.get(key))] if title else []))
    print_table(table)
    if request.per_token:
        for token, bits in result["per_token"]:
            out.print(f"{token!r}\t{bits:.3f}")


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"


def _print_ranking(result: dict[str, Any], as_json: bool, per_token: bool) -> None:
    """The ranked lines as a table (most fluent first), or one JSON object."""
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    table = Table("rank", "line", "perplexity", "bits/char", "worst token", "text",
                  title=f"{result['model']} on {result['on']}, each line on its own")
    for row in result["ranked"]:
        worst = row["worst"]
        shown = "-" if worst is None else f"{worst['token']!r} {worst['bits']:.1f} bits"
        table.add_row(str(row["rank"]), str(row["line"]), f"{row['perplexity']:.2f}",
                      f"{row['bits_per_char']:.4f}", shown, row["text"])
    print_table(table)
    if per_token:
        for row in result["ranked"]:
            out.print(f"── {row['rank']} (line {row['line']}) ──")
            for token in row["per_token"]:
                out.print(f"{token['token']!r}\t{token['bits']:.3f}", markup=False)


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
    print_table(table)
    if not artifact.metrics["same_tokens"]:
        err.print("warning: these models were scored on different datasets; compare bits/char")
    out.print(f"wrote {artifact.ref} (comparison.json, comparison.png)")
