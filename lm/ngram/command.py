"""``lm ngram``: flags of the n-gram stage, handed to ``lm.ngram.stage``."""

from __future__ import annotations

from pathlib import Path

import typer

from lm.cli_common import announce, out, store


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
    announce(out, artifact, reused)
    m = artifact.metrics
    out.print(f"order {m['order']} · n-grams per order {m['ngrams']} · built in "
              f"{m['build_seconds']:.2f} s")
    for split in ("valid", "test"):
        if f"{split}_perplexity" in m:
            out.print(f"{split} perplexity {m[f'{split}_perplexity']:.3f}")
