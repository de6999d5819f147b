"""``lm sample``: flags of the generation stage, parsed and handed to the sampler."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from lm.cli_common import err, out, store
from lm.errors import LMError

REPORT_ROWS = (("well_formed_rate", "well-formed"), ("rhyme_rate", "rhyming"),
               ("distinct_1", "distinct-1"), ("distinct_2", "distinct-2"),
               ("logprob_per_char", "log-prob / char (nats)"),
               ("logprob_per_token", "log-prob / token (nats)"),
               ("copy_rate", "verse lines copied from train"))


def sample(
    model: str = typer.Argument(..., help="Model or n-gram artifact."),
    temperature: float = typer.Option(1.0, help="0 is greedy; higher is more adventurous."),
    top_k: int | None = typer.Option(None, help="Sample among the k likeliest tokens."),
    top_p: float | None = typer.Option(None, help="Nucleus sampling mass in (0, 1]."),
    prime: str = typer.Option("", help="Text to begin with (printed and continued)."),
    style: str = typer.Option("", help="Text the model reads first to set the mood; not "
                              "printed (read after the opening <eos>, before --prime)."),
    num: int = typer.Option(4, help="Samples, generated as one batch."),
    max_tokens: int = typer.Option(200, help="Stop a sample after this many tokens (a --form "
                                   "sets its own length)."),
    seed: int = typer.Option(0, help="Seed: the same seed gives the same samples."),
    form: str | None = typer.Option(None, help="Verse form every sample keeps: wujue, qijue, "
                                    "wulv, qilv, any (one of those four), or each line's "
                                    "length in characters (words at word level), e.g. 5,5,5,5."),
    acrostic: str | None = typer.Option(None, help="藏头诗: each line begins with the next "
                                        "character (word at word level), e.g. 春夏秋冬."),
    rhyme: bool = typer.Option(False, "--rhyme/--no-rhyme", help="Lines closed by 。 end in "
                               "one rhyme group (中华新韵, from pypinyin)."),
    level_tone: bool = typer.Option(False, "--level-tone/--no-level-tone", help="Rhyme "
                                    "positions take level tone (平声: Mandarin tones 1, 2)."),
    beam: int | None = typer.Option(None, help="Beam search with this many beams instead of "
                                    "sampling; returns the best --num (≤ --beam) texts."),
    length_penalty: float = typer.Option(1.0, help="Beam score = log p / length^α; this is α "
                                         "(0 favours short texts)."),
    repetition_penalty: float = typer.Option(1.0, help="CTRL penalty (>1) on the scores of "
                                             "tokens already written; 1 is off."),
    no_repeat_ngram: int = typer.Option(0, help="Never repeat an n-gram of this size; 0 is "
                                        "off."),
    script: str | None = typer.Option(None, help="Print in simplified or traditional Chinese "
                                      "(OpenCC), whatever the model was trained on."),
    report: bool = typer.Option(False, "--report/--no-report", help="Measure the samples: "
                                "well-formed and rhyme rates, distinct-1/2, log-prob per "
                                "character under the model, share of verse lines copied from "
                                "the training text."),
    as_json: bool = typer.Option(False, "--json/--no-json", help="Print {\"samples\": [...]} (and "
                                 "\"report\" with --report)."),
    show: int | None = typer.Option(None, help="Print only the first N samples (the report "
                                    "and --json still cover all of them)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
) -> None:
    """Generate text; each sample starts as a new document and ends at <eos>."""
    from lm.generation.run import SampleRequest
    from lm.generation.run import sample as run_sample

    request = SampleRequest(
        temperature=temperature, top_k=top_k, top_p=top_p, prime=prime, style=style, num=num,
        max_tokens=max_tokens, seed=seed, form=form, acrostic=acrostic, rhyme=rhyme,
        level_tone=level_tone, beam=beam, length_penalty=length_penalty,
        repetition_penalty=repetition_penalty, no_repeat_ngram=no_repeat_ngram, script=script,
        report=report, device=device)
    result = run_sample(store(), model, request)
    if show is not None and show < 0:
        raise LMError(f"--show must be ≥ 0, not {show}")
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
    out.print(table)
