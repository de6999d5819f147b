"""Simplified ↔ traditional Chinese with OpenCC, for output display and for user input.

A model trained on traditional characters can be primed in simplified ones (and the reverse):
input text whose characters the vocabulary lacks is tried in the other script.
"""

from __future__ import annotations

from collections.abc import Container
from functools import cache

from lm.errors import LMError

SCRIPTS = {"simplified": "t2s", "traditional": "s2t"}


@cache
def _converter(config: str):
    import opencc

    return opencc.OpenCC(config)


def check_script(script: str | None) -> None:
    if script is not None and script not in SCRIPTS:
        raise LMError(f"--script must be simplified or traditional, not {script!r}")


def convert(text: str, script: str | None) -> str:
    """``text`` written in ``script`` (None leaves it as it is)."""
    if script is None or not text:
        return text
    check_script(script)
    return _converter(SCRIPTS[script]).convert(text)


def fit_to_vocabulary(text: str, vocab: Container[str]) -> str:
    """``text``, or its other-script spelling when that has fewer characters outside ``vocab``."""
    def missing(candidate: str) -> int:
        return sum(ch not in vocab for ch in candidate if not ch.isspace())

    best = text
    if not missing(text):
        return text
    for script in SCRIPTS:
        other = convert(text, script)
        if missing(other) < missing(best):
            best = other
    return best
