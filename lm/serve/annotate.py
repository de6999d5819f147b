"""What the page draws for a text: its verse lines, rhyme positions, and each token's surprisal.

A verse line is a clause closed by ，or 。 (the corpus layout), or a text line elsewhere. The
rhyme positions are the characters before each 。, as ``lm sample --report`` counts them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from lm.evaluation.scoring import LineScore
from lm.generation.verse.forms import COMMA, PERIOD
from lm.generation.verse.metre import tone_marks
from lm.generation.verse.script import convert


def pingshui_tones(line: str) -> str:
    """One mark per character under the Pingshui book: 平, 仄, 中 (either reading), ？ (unknown).

    The book is in traditional characters; a line that OpenCC would change on the way to
    traditional is read as simplified (each character through its traditional forms).
    """
    return tone_marks(line, simplified=convert(line, "traditional") != line)


# A function from a verse line's characters to its tone pattern, one mark per character; the
# API returns it as each line's ``"tones"`` and the page draws it under the line.
TONE_PATTERN: Callable[[str], str | None] | None = pingshui_tones

_LINE = re.compile(f"[^{COMMA}{PERIOD}\n]+[{COMMA}{PERIOD}]?")


def verse_lines(text: str) -> list[dict[str, Any]]:
    """Each verse line's character span, its rhyme position (or None) and its tones."""
    lines = []
    for match in _LINE.finditer(text):
        start, end = match.span()
        rhyme = end - 2 if match.group().endswith(PERIOD) and end - start >= 2 else None
        body = match.group().rstrip(COMMA + PERIOD)
        tones = TONE_PATTERN(body) if TONE_PATTERN is not None else None
        lines.append({"start": start, "end": end, "rhyme": rhyme, "tones": tones})
    return lines


def annotate(score: LineScore) -> dict[str, Any]:
    """A text's lines and its tokens' surprisal, with its perplexity under the model."""
    return {**finite(score.as_dict(per_token=True)), "lines": verse_lines(score.text)}


def finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such numbers become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
