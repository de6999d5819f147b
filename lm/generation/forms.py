"""Verse forms: how many lines, how long each, and whether a finished text has that form.

A form counts content tokens (characters at char level, words at word level) per verse line.
The named forms are the regular quatrain and octave: 五言绝句 ``wujue`` (4×5), 七言绝句
``qijue`` (4×7), 五言律诗 ``wulv`` (8×5) and 七言律诗 ``qilv`` (8×7); ``any`` is any one of
those four (all lines as long as the first); ``5,5,7,7`` gives every line's length.
Punctuation follows the corpus: ， after odd verse lines, 。 after even ones and after the
last, a newline after every 。 but the last (see :mod:`lm.generation.vocab` for the layouts
of vocabularies without ，/。). A Song ci tune (``ci:浣溪沙``, :mod:`lm.generation.tunes`)
gives its own mark after each clause and where the text lines break.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from lm.errors import LMError
from lm.generation.vocab import COMMA, PERIOD, is_content

NAMED: dict[str, tuple[int, ...]] = {
    "wujue": (5,) * 4, "qijue": (7,) * 4, "wulv": (5,) * 8, "qilv": (7,) * 8,
}
POEM_WIDTHS = frozenset({5, 7})
FREE_WIDTHS = frozenset(range(1, 33))  # word-level acrostic lines without --form
_CLAUSE = re.compile(f"([^{COMMA}{PERIOD}\n]+)([{COMMA}{PERIOD}])")


@dataclass(frozen=True)
class Form:
    """Allowed line counts and lengths; ``lengths`` fixes each line, else ``widths`` apply."""

    counts: frozenset[int]
    widths: frozenset[int] = POEM_WIDTHS
    lengths: tuple[int, ...] | None = None
    uniform: bool = True  # every line as long as the first
    spec: str = ""
    marks: tuple[str, ...] | None = None  # the mark closing each line (a ci tune's)
    newlines: tuple[bool, ...] | None = None  # a newline after that mark (a ci tune's)

    def allowed_lengths(self, line: int, width: int | None) -> frozenset[int]:
        """Lengths verse line ``line`` may have, given the first line's length ``width``."""
        if self.lengths is not None:
            return frozenset({self.lengths[line]}) if line < len(self.lengths) else frozenset()
        if self.uniform and width is not None:
            return frozenset({width})
        return self.widths

    @property
    def max_lines(self) -> int:
        return max(self.counts)

    def max_tokens(self) -> int:
        """A bound on a poem's tokens: content, one end per line, newlines and the <eos>."""
        longest = max(self.lengths) if self.lengths is not None else max(self.widths)
        return self.max_lines * (longest + 2) + 1

    def ends_with_period(self, line: int) -> bool:
        """。 after even verse lines (1-based) and after any line the poem may end on."""
        return line % 2 == 1 or (line + 1) in self.counts

    def mark(self, line: int) -> str:
        """The punctuation that closes verse line ``line`` in the poem layout."""
        if self.marks is not None:
            return self.marks[min(line, len(self.marks) - 1)]
        return PERIOD if self.ends_with_period(line) else COMMA

    def breaks(self, line: int) -> bool:
        """Whether a newline (or the end of the poem) follows line ``line``'s mark."""
        if self.newlines is not None:
            return self.newlines[min(line, len(self.newlines) - 1)] or (line + 1) in self.counts
        return self.ends_with_period(line)

    @property
    def all_marks(self) -> str:
        return "".join(dict.fromkeys(self.marks)) if self.marks is not None else COMMA + PERIOD


def parse_form(spec: str) -> Form:
    """``wujue``/``qijue``/``wulv``/``qilv``, ``any``, or line lengths such as ``5,5,5,5``."""
    name = spec.strip().lower()
    if name in NAMED:
        return Form(frozenset({len(NAMED[name])}), lengths=NAMED[name], spec=name)
    if name == "any":
        return Form(frozenset({4, 8}), POEM_WIDTHS, spec="any")
    try:
        lengths = tuple(int(part) for part in name.split(","))
    except ValueError:
        lengths = ()
    if not lengths or any(n < 1 for n in lengths):
        raise LMError(f"--form {spec!r} is not a form: use wujue, qijue, wulv, qilv, any, or "
                      "the length of each line such as 5,5,5,5")
    return Form(frozenset({len(lengths)}), lengths=lengths, spec=",".join(map(str, lengths)))


def with_acrostic(form: Form | None, lines: int, layout: str) -> Form:
    """The form an acrostic of ``lines`` heads asks for: one line per head, agreeing with --form.

    Without --form a poem-layout acrostic has lines of 5 or 7 characters (the model chooses
    with the first line; the rest follow it), other layouts lines of any length.
    """
    if form is None:
        if layout == "poem":
            return Form(frozenset({lines}), POEM_WIDTHS, spec=f"{lines} lines of 5 or 7")
        return Form(frozenset({lines}), FREE_WIDTHS, uniform=False, spec=f"{lines} lines")
    if lines not in form.counts:
        have = " or ".join(map(str, sorted(form.counts)))
        raise LMError(f"--acrostic has {lines} characters but --form {form.spec} has {have} "
                      "lines: give one acrostic character per line")
    return replace(form, counts=frozenset({lines}))


def units(line: str, level: str) -> list[str]:
    """The content slots of a line of text: its characters, or its words at word level."""
    return line.split() if level == "word" else list(line)


def verse_lines(text: str) -> list[tuple[str, str]] | None:
    """(clause, ，or 。) pairs if ``text`` has the poem layout, else None.

    The layout is exact: clauses closed by ，or 。, a newline after each 。 but the last, and
    nothing else (no trailing newline, no stray text).
    """
    pairs = _CLAUSE.findall(text)
    rebuilt = "".join(clause + mark + ("\n" if mark == PERIOD else "") for clause, mark in pairs)
    if not pairs or rebuilt.removesuffix("\n") != text:
        return None
    return pairs


def _tune_lines(text: str, form: Form) -> list[tuple[str, str]] | None:
    """(clause, mark) pairs if ``text`` is laid out exactly as the tune ``form`` says."""
    marks = re.escape(form.all_marks)
    pairs = re.findall(f"([^{marks}\n]+)([{marks}])", text)
    rebuilt = "".join(clause + mark + ("\n" if form.breaks(i) and i + 1 < len(pairs) else "")
                      for i, (clause, mark) in enumerate(pairs))
    return pairs if pairs and rebuilt == text else None


def matches(text: str, form: Form, layout: str, level: str = "char") -> bool:
    """Whether a generated text has the form, checked on the text alone."""
    if layout == "poem":
        pairs = verse_lines(text) if form.marks is None else _tune_lines(text, form)
        if pairs is None:
            return False
        lines = [clause for clause, _ in pairs]
        marks = [mark for _, mark in pairs]
        if len(lines) not in form.counts:
            return False
        expected = [form.mark(i) if form.marks is not None
                    else PERIOD if form.ends_with_period(i) or i == len(lines) - 1 else COMMA
                    for i in range(len(lines))]
        if marks != expected:
            return False
    else:
        lines = text.split("\n")
        if len(lines) not in form.counts:
            return False
    width = None
    for i, line in enumerate(lines):
        pieces = units(line, level)
        if not pieces or not all(is_content(p) for p in pieces):
            return False
        if len(pieces) not in form.allowed_lengths(i, width):
            return False
        width = len(pieces) if width is None else width
    return True
