"""``lm perplexity`` and ``lm compare``: flags of the evaluation stage."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from lm.cli_common import err, out, store


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
