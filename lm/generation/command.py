"""``lm sample``: flags of the generation stage, parsed and handed to the sampler."""

from __future__ import annotations

import json

import typer

from lm.cli_common import err, out, store


def sample(
    model: str = typer.Argument(..., help="Model or n-gram artifact."),
    temperature: float = typer.Option(1.0, help="0 is greedy; higher is more adventurous."),
    top_k: int | None = typer.Option(None, help="Sample among the k likeliest tokens."),
    top_p: float | None = typer.Option(None, help="Nucleus sampling mass in (0, 1]."),
    prime: str = typer.Option("", help="Text to begin with (printed and continued)."),
    num: int = typer.Option(4, help="Samples, generated as one batch."),
    max_tokens: int = typer.Option(200, help="Stop a sample after this many tokens."),
    seed: int = typer.Option(0, help="Seed: the same seed gives the same samples."),
    as_json: bool = typer.Option(False, "--json", help="Print {\"samples\": [...]}."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
) -> None:
    """Generate text; each sample starts as a new document and ends at <eos>."""
    from lm.generation.run import sample_texts

    texts, warnings = sample_texts(store(), model, temperature=temperature, top_k=top_k,
                                   top_p=top_p, prime=prime, num=num, max_tokens=max_tokens,
                                   seed=seed, device=device)
    for warning in warnings:
        err.print(f"warning: {warning}")
    if as_json:
        print(json.dumps({"samples": texts}, ensure_ascii=False))
        return
    for index, sample_text in enumerate(texts, 1):
        out.print(f"[bold]── {index} ──[/bold]")
        out.print(sample_text, markup=False)
