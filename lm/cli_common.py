"""What every command shares: the consoles and the artifact store chosen by global flags."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

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
