"""``lm prepare``: the data stage's settings (declared on ``PrepareConfig``) as a command."""

from __future__ import annotations

from dataclasses import replace

import typer
from rich.table import Table

from lm.cli_common import announce, out, print_table, store
from lm.data.prepare import PrepareConfig
from lm.data.prepare import prepare as run_prepare
from lm.data.sources import default_name, sources_help
from lm.settings import with_settings


@with_settings(PrepareConfig)
def prepare(
    source: str = typer.Argument(..., help=sources_help()),
    name: str | None = typer.Option(None, help="Artifact name (default: from the source)."),
    *,
    config: PrepareConfig,
) -> None:
    """Load text, split it by document, train a tokenizer, encode every split."""
    config = replace(config, source=source)
    artifact, reused = run_prepare(store(), config, name or default_name(source))
    announce(out, artifact, reused)
    table = Table("split", "documents", "tokens", "characters", "unk rate")
    for split, m in artifact.metrics["splits"].items():
        table.add_row(split, f"{m['documents']:,}", f"{m['tokens']:,}", f"{m['characters']:,}",
                      f"{m['unk_rate']:.3%}")
    print_table(table)
    out.print(f"vocabulary: {artifact.metrics['vocab_size']:,} ({artifact.manifest['level']})")
