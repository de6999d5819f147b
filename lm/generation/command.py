"""``lm sample``: the generation stage's settings (:class:`SampleRequest`) as flags, plus the
output-only ones, handed to the sampler."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from lm.cli_common import err, out, print_table, store
from lm.errors import LMError
from lm.generation.request import SampleRequest
from lm.settings import with_settings

REPORT_ROWS = (("well_formed_rate", "well-formed"), ("rhyme_rate", "rhyming"),
               ("distinct_1", "distinct-1"), ("distinct_2", "distinct-2"),
               ("logprob_per_char", "log-prob / char (nats)"),
               ("logprob_per_token", "log-prob / token (nats)"),
               ("copy_rate", "verse lines copied from train"))


@with_settings(SampleRequest, into="request")
def sample(
    model: str = typer.Argument(..., help="Model or n-gram artifact."),
    as_json: bool = typer.Option(False, "--json/--no-json", help="Print {\"samples\": [...]} (and "
                                 "\"report\" with --report)."),
    show: int | None = typer.Option(None, help="Print only the first N samples (the report "
                                    "and --json still cover all of them)."),
    *,
    request: SampleRequest,  # every other flag, from with_settings
) -> None:
    """Generate text; each sample starts as a new document and ends at <eos>."""
    from lm.generation.run import sample as run_sample

    if show is not None and show < 0:
        raise LMError(f"--show must be ≥ 0, not {show}")
    result = run_sample(store(), model, request)
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False)
    if as_json:
        payload: dict[str, Any] = {"samples": result.texts}
        if result.report is not None:
            payload["report"] = result.report
        print(json.dumps(payload, ensure_ascii=False))
        return
    for index, sample_text in enumerate(result.texts[:show], 1):
        out.print(f"[bold]── {index} ──[/bold]")
        out.print(sample_text, markup=False)
    if result.report is not None:
        print_report(result.report)


def print_report(report: dict[str, Any]) -> None:
    table = Table("measure", "value",
                  title=f"{report['samples']} samples, form: {report['form']}")
    for key, label in REPORT_ROWS:
        value = report.get(key)
        shown = "-" if value is None else (f"{value:.1%}" if key.endswith("rate")
                                           else f"{value:.4f}")
        table.add_row(label, shown)
    print_table(table)
