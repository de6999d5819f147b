"""``lm inspect``: what the cells learned — the units that track a feature, and a unit's tint.

``lm inspect MODEL --find`` ranks every unit of one model (or several side by side) against
the features of the text (:mod:`lm.evaluation.inspection`); ``lm inspect MODEL --text T
--unit 1:c:123`` tints each character of T by that unit's value (``--feature NAME``: by the
feature's best unit), in the terminal or as a standalone page (``--html``).
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from lm.cli_common import err, out, print_table, store
from lm.errors import LMError
from lm.evaluation.inspection import InspectConfig
from lm.settings import with_settings


def _fmt(value: float | None, metric: str = "r2") -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if metric == "accuracy" else f"{value:.3f}"


def _probe_text(item: dict[str, Any]) -> str:
    fitted = item["probe"]
    if fitted is None:
        return "-"
    if fitted["metric"] != "accuracy":  # R²: the baseline that reads nothing scores 0
        return f"R² {_fmt(fitted['held_out'])}"
    capped = "" if fitted.get("converged", True) else ", not converged"
    return (f"acc. {_fmt(fitted['held_out'], 'accuracy')} (baseline "
            f"{_fmt(fitted['baseline'], 'accuracy')}{capped})")


def print_find(result: dict[str, Any]) -> None:
    """The best units per feature, then each probe, then where the PNG went."""
    out.print(f"{result['model']}: {result['units']:,} units on {result['split']} "
              f"({result['tokens']:,} tokens); R² and probes on {result['heldout']} "
              f"({result['heldout_tokens']:,} tokens)")
    table = Table("feature", "unit", "r", "R² one unit", "probe, whole state")
    for name, item in result["features"].items():
        if not item["best"]:
            table.add_row(name, "-", "-", "-", "constant on this text")
            continue
        for rank, best in enumerate(item["best"]):
            table.add_row(name if rank == 0 else "", best["unit"], f"{best['r']:+.3f}",
                          f"{best['r2']:.3f}", _probe_text(item) if rank == 0 else "")
    print_table(table)
    out.print(f"wrote {result['plot']}")


def print_side_by_side(results: list[dict[str, Any]]) -> None:
    """Each model's best unit (|r|) and probe per feature, one column pair per model."""
    out.print(f"best unit per feature on {results[0]['split']} ({results[0]['tokens']:,} "
              f"tokens); probes on {results[0]['heldout']}")
    cells = [r["cell"] for r in results]
    names = cells if len(set(cells)) == len(cells) else [r["model"] for r in results]
    table = Table("feature", *(f"{name} {part}" for name in names
                               for part in ("best unit", "probe")))
    for name in results[0]["features"]:
        cells = []
        for r in results:
            item = r["features"][name]
            best = item["best"][0] if item["best"] else None
            cells += ["-" if best is None else f"{best['unit']} r {best['r']:+.3f}",
                      _probe_text(item)]
        table.add_row(name, *cells)
    print_table(table)
    for r in results:
        out.print(f"{r['cell']}: {r['model']} · wrote {r['plot']}")


def tint_command(ref: str, config: InspectConfig, as_json: bool) -> None:
    """Tint ``--text`` by each ``--unit`` (comma-separated) or by ``--feature``'s best unit."""
    from lm.evaluation.cells import tint
    from lm.evaluation.cells_render import html_page, rich_text
    from lm.evaluation.inspection import Loaded, best_for

    s = store()
    loaded = Loaded.of(s, ref, config.device)
    if config.unit:
        units = [u.strip() for u in config.unit.split(",") if u.strip()]
    else:
        units = [best_for(s, loaded, config)["unit"]]
    tinted = [tint(loaded.model, loaded.tokenizer, config.text or "", u) for u in units]
    if as_json:
        print(json.dumps({"model": loaded.artifact.ref, "tinted": [t.to_json() for t in tinted]},
                         ensure_ascii=False))
    else:
        for item in tinted:
            out.print(f"unit {item.unit} of {loaded.artifact.ref} (red +, blue −, full at "
                      f"|value| {item.scale:.3g}):")
            out.print(rich_text(item))
    if config.html is not None:
        config.html.parent.mkdir(parents=True, exist_ok=True)
        config.html.write_text(html_page(tinted, f"{loaded.artifact.ref}: units "
                                         f"{', '.join(units)}"), "utf-8")
        (err if as_json else out).print(f"wrote {config.html}")


@with_settings(InspectConfig)
def inspect(
    refs: list[str] = typer.Argument(..., help="A model; with --find, one or more models."),
    find: bool = typer.Option(False, "--find", help="Rank every unit against the text's "
                              "features and fit the probes."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    *,
    config: InspectConfig,
) -> None:
    """What the cells learned: units that track the line, the poem, brackets; a unit's tint."""
    from lm.evaluation.inspection import find as find_units

    if find == (config.text is not None):
        raise LMError("lm inspect needs --find, or --text with --unit or --feature")
    if not find:
        if len(refs) > 1 or bool(config.unit) == bool(config.feature):
            raise LMError("--text tints one model's text by --unit L:PART:I or by --feature "
                          "NAME's best unit: give one model and one of the two")
        tint_command(refs[0], config, as_json)
        return
    if len(refs) > 1 and config.plot is not None:
        raise LMError("--plot names one file: with several models drop it (each PNG goes to "
                      "STORE/inspections/NAME/)")
    log = (lambda line: err.print(line)) if as_json else out.print
    results = [find_units(store(), ref, config, log) for ref in refs]
    if as_json:
        print(json.dumps(results[0] if len(results) == 1 else {"models": results},
                         ensure_ascii=False))
    elif len(results) == 1:
        print_find(results[0])
    else:
        print_side_by_side(results)
