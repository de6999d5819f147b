"""``lm prepare``: flags of the data stage, parsed and handed to ``lm.data.prepare``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from lm.cli_common import announce, out, store
from lm.errors import LMError


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
    announce(out, artifact, reused)
    table = Table("split", "documents", "tokens", "characters", "unk rate")
    for split, m in artifact.metrics["splits"].items():
        table.add_row(split, f"{m['documents']:,}", f"{m['tokens']:,}", f"{m['characters']:,}",
                      f"{m['unk_rate']:.3%}")
    out.print(table)
    out.print(f"vocabulary: {artifact.metrics['vocab_size']:,} ({artifact.manifest['level']})")
