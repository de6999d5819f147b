"""What every command shares: the consoles and the artifact store chosen by global flags."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from lm.artifacts import Artifact, Store

# soft_wrap: a line a person copies (an error, an echoed command, a path) is never hard-wrapped,
# whatever the terminal width or when the output is not a terminal.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
state: dict[str, Path | bool | None] = {"root": None, "debug": False}


def store() -> Store:
    return Store(state["root"])


def announce(console: Console, artifact: Artifact, reused: bool) -> None:
    if reused:
        console.print(f"reusing {artifact.ref}: same inputs and parameters")
    else:
        console.print(f"wrote {artifact.ref}")


def print_table(table: Table, console: Console = out) -> None:
    """A table at its natural width, never squeezed into a narrow terminal or pipe.

    Rich fits tables to the console (80 columns when the output is not a terminal), folding
    and cutting cells: ``dataset:x@v1`` became ``d…``. References and figures are copied by
    people, so a table keeps its width and a narrow terminal wraps the lines instead.
    """
    natural = console.measure(table, options=console.options.update_width(10_000)).maximum
    if natural <= console.width:
        console.print(table)
        return
    wide = Console(file=console.file, width=natural, highlight=False,
                   force_terminal=console.is_terminal, no_color=console.no_color)
    wide.print(table)
