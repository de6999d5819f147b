"""What a text says about each of its tokens: where it stands in its line, poem and brackets.

These are the features a recurrent model's units are correlated with
(:mod:`lm.evaluation.cells`): computed from the tokens' text alone, one value per token of a
token stream (a character of a char-level model), each the value *after* reading the token,
which is when the model's state is recorded.

A *line* ends with a newline, ``，`` or ``。``: the Tang corpus keeps one couplet per text
line (``白日依山盡，黃河入海流。``), so each clause is a verse line, and elsewhere a line is a
text line. A run of such ends (``。`` then the newline) closes one line, and ``<eos>``, the end
of a document, closes its last line; the line ends belong to the line they close. A titled
document's title is a line of its own, closed by its ``<sep>``, and the body's lines are
counted from 0 after it (the title is no line of the poem, so the rhyming lines stay the
even ones).

- ``line_position``: tokens since the line began (0 at its first token);
- ``chars_left``: tokens from here to the line's last token (0 at it);
- ``line_index``: the line's index in its document (0 for the first);
- ``line_parity``: 1 on the 2nd, 4th, … line of a document (the rhyming lines), 0 on the
  others;
- ``in_brackets``: 1 inside brackets or quotes — ``(…) […] {…} （…） 《…》 「…」 『…』 “…” ‘…’``
  and ASCII ``"…"`` — the opening mark included, the closing one not; an ASCII ``'`` is an
  apostrophe (``pardon'd``, ``'tis``), never a quote;
- ``doc_position``: tokens since the document began.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lm.tokenization import EOS, SEP

LINE_ENDS = frozenset("\n，。")
OPENERS = dict(zip("([{（《「『“‘", ")]}）》」』”’", strict=True))
CLOSERS = frozenset(OPENERS.values())
TOGGLE = '"'  # ASCII double quotes open and close alike


@dataclass(frozen=True)
class Layout:
    """Per token: the first token of its document and of its line, its line's last token,
    the line's index in the document, and whether it is inside brackets or quotes."""

    doc_start: np.ndarray
    line_start: np.ndarray
    line_end: np.ndarray
    line_index: np.ndarray
    inside: np.ndarray

    @property
    def index(self) -> np.ndarray:
        return np.arange(len(self.doc_start))


@dataclass(frozen=True)
class Feature:
    """One feature: what it is, whether it takes two values only, and how it is computed."""

    name: str
    help: str
    binary: bool
    compute: Callable[[Layout], np.ndarray]


FEATURES: dict[str, Feature] = {}


def register(feature: Feature) -> Feature:
    FEATURES[feature.name] = feature
    return feature


register(Feature("line_position", "position in the line", False,
                 lambda t: t.index - t.line_start))
register(Feature("chars_left", "characters left in the line", False,
                 lambda t: t.line_end - t.index))
register(Feature("line_index", "line index in the document", False, lambda t: t.line_index))
register(Feature("line_parity", "odd (0) or even (1) line", True, lambda t: t.line_index % 2))
register(Feature("in_brackets", "inside brackets or quotes", True, lambda t: t.inside))
register(Feature("doc_position", "position in the document", False,
                 lambda t: t.index - t.doc_start))


def _ends_line(piece: str) -> bool:
    return piece in (EOS, SEP) or piece[-1:] in LINE_ENDS


class _Brackets:
    """The bracket depth and the open ASCII quote, updated character by character."""

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.quoted = False

    def read(self, piece: str) -> bool:
        for ch in piece:  # <eos> and <unk> hold no bracket
            if ch in OPENERS:
                self.stack.append(OPENERS[ch])
            elif ch in CLOSERS and ch in self.stack:  # a stray closer changes nothing
                del self.stack[len(self.stack) - 1 - self.stack[::-1].index(ch):]
            elif ch == TOGGLE:
                self.quoted = not self.quoted
        return self.inside

    @property
    def inside(self) -> bool:
        return bool(self.stack) or self.quoted


def layout(pieces: Sequence[str]) -> Layout:
    """The line and document structure of a token stream given as the tokens' text."""
    n = len(pieces)
    doc_start, line_start, line_index = (np.zeros(n, np.int64) for _ in range(3))
    line_end, inside = np.zeros(n, np.int64), np.zeros(n, np.int64)
    doc, line, number, brackets = 0, 0, 0, _Brackets()
    for i, piece in enumerate(pieces):
        doc_start[i], line_start[i], line_index[i] = doc, line, number
        inside[i] = brackets.read(piece)
        last = i + 1 == n
        if last or (_ends_line(piece) and (piece in (EOS, SEP) or not _ends_line(pieces[i + 1]))):
            line_end[line:i + 1] = i
            line, number = i + 1, number + 1
        if piece == SEP:  # the title was the line just closed: the poem's lines start at 0
            number = 0
        if piece == EOS:
            doc, number, brackets = i + 1, 0, _Brackets()
    return Layout(doc_start, line_start, line_end, line_index, inside)


def features(pieces: Sequence[str], names: Sequence[str] | None = None
             ) -> dict[str, np.ndarray]:
    """Each feature (all of ``FEATURES`` by default) for every token, as float64 arrays."""
    structure = layout(pieces)
    return {name: FEATURES[name].compute(structure).astype(np.float64)
            for name in (names or FEATURES)}


def text_features(text: str) -> dict[str, np.ndarray]:
    """The features of a text read character by character, as one document."""
    return features(list(text))
