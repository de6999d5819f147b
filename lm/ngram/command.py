"""``lm ngram``: the n-gram stage's flags (declared once in ``NgramConfig``), then the stage."""

from __future__ import annotations

import typer

from lm.cli_common import announce, out, store
from lm.ngram.stage import NgramConfig
from lm.settings import with_settings


@with_settings(NgramConfig)
def ngram(
    dataset: str = typer.Argument(..., help="Dataset artifact to count (its train split)."),
    name: str | None = typer.Option(None, help="Artifact name (default: DATASET-ORDERgram)."),
    *,
    config: NgramConfig,
) -> None:
    """An interpolated modified Kneser-Ney n-gram model on the dataset's tokens."""
    from lm.ngram.stage import build_ngram, resources_line

    s = store()
    data = s.resolve(dataset, "dataset")
    default = f"{data.name}-{'arpa' if config.from_arpa else f'{config.order}gram'}"
    artifact, reused = build_ngram(s, data, name or default, config)
    announce(out, artifact, reused)
    m = artifact.metrics
    out.print(f"order {m['order']} · n-grams per order {m['ngrams']} · built in "
              f"{m['build_seconds']:.2f} s")
    for split in ("valid", "test"):
        if f"{split}_perplexity" in m:
            out.print(f"{split} perplexity {m[f'{split}_perplexity']:.3f}")
    if "counting" in m:
        out.print(resources_line(m))
