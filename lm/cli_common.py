"""What every command shares: the consoles and the artifact store chosen by global flags."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from lm.artifacts import Artifact, Store

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
state: dict[str, Path | bool | None] = {"root": None, "debug": False}


def store() -> Store:
    return Store(state["root"])


def announce(console: Console, artifact: Artifact, reused: bool) -> None:
    if reused:
        console.print(f"reusing {artifact.ref}: same inputs and parameters")
    else:
        console.print(f"wrote {artifact.ref}")
