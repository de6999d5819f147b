"""Verse forms: how many lines, how long each, and whether a finished text has that form.

A form counts content tokens (characters at char level, words at word level) per verse line.
The named forms are the regular quatrain and octave: 五言绝句 ``wujue`` (4×5), 七言绝句
``qijue`` (4×7), 五言律诗 ``wulv`` (8×5) and 七言律诗 ``qilv`` (8×7), and 六言绝句 ``liujue``
(4×6); ``any`` is any one of the first four (all lines as long as the first); ``5,5,7,7``
gives every line's length.
Punctuation follows the corpus: ， after odd verse lines, 。 after even ones and after the
last, a newline after every 。 but the last (see :mod:`lm.generation.verse.vocab` for the layouts
of vocabularies without ，/。). A Song ci tune (``ci:浣溪沙``, :mod:`lm.generation.verse.tunes`)
gives its own mark after each clause and where the text lines break.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from lm.errors import LMError
from lm.settings import named

if TYPE_CHECKING:
    from lm.generation.verse.lexicon import Lexicon

COMMA, PERIOD, NEWLINE = "，", "。", "\n"


def is_content(text: str) -> bool:
    """True for a token that fills a slot of a verse line: it has a letter, mark or number."""
    return any(unicodedata.category(ch)[0] in "LMN" for ch in text)


NAMED: dict[str, tuple[int, ...]] = {
    "wujue": (5,) * 4, "qijue": (7,) * 4, "wulv": (5,) * 8, "qilv": (7,) * 8,
    "liujue": (6,) * 4,  # 六言绝句, e.g. 王维《田园乐》
}
POEM_WIDTHS = frozenset({5, 7})
# the regulated verse (近体诗) the Pingshui patterns cover: 4 or 8 lines of 5 or 7 characters
REGULATED_LINES = (4, 8)
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
    template: Any = None  # the ci tune's template (lm.generation.verse.tunes), for its rhymes

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
        """A bound on a poem's tokens: content, one end and a newline per line, the <eos>."""
        if self.lengths is not None:
            return sum(self.lengths) + 2 * len(self.lengths) + 1
        return self.max_lines * (max(self.widths) + 2) + 1

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
    def regulated(self) -> bool:
        """Regulated verse (近体诗) the Pingshui checker judges: 4 or 8 lines of 5 or 7."""
        if self.lengths is None:
            return self.widths <= POEM_WIDTHS
        return len(set(self.lengths)) == 1 and self.lengths[0] in POEM_WIDTHS and \
            len(self.lengths) in REGULATED_LINES

    @property
    def all_marks(self) -> str:
        return "".join(dict.fromkeys(self.marks)) if self.marks is not None else COMMA + PERIOD


ANY = Form(frozenset({4, 8}), POEM_WIDTHS, spec="any")


def parse_form(spec: str) -> Form:
    """A form that needs no corpus: a named one, ``any``, or line lengths such as ``5,5,5,5``."""
    for family in (NamedForms(), AnyRegular(), LineLengths()):
        form = family.parse(spec, None)
        if form is not None:
            return form
    raise LMError(f"{named('form')} {spec!r} is not a form: use {', '.join(NAMED)}, any, or "
                  "the length of each line such as 5,5,5,5")


class FormFamily(Protocol):
    """A kind of ``--form``: which specs it reads, and the form each one names.

    The families are registered in :data:`lm.generation.verse.registry.FORM_FAMILIES`; their
    patterns together are the ``form`` field's pattern in the API schema.
    """

    def pattern(self, lexicon: Lexicon | None) -> str | None:
        """The specs it reads, as a regular expression (None: none for this model)."""

    def parse(self, spec: str, lexicon: Lexicon | None) -> Form | None:
        """The form ``spec`` names, or None when the spec is not of this family."""

    def listing(self, lexicon: Lexicon) -> list[tuple[str, str]]:
        """Rows of ``lm sample --list-forms``: (form, its lines)."""


class NamedForms:
    """The forms of :data:`NAMED`: one line each there makes a new one."""

    def pattern(self, lexicon: Lexicon | None) -> str:
        return "|".join(NAMED)

    def parse(self, spec: str, lexicon: Lexicon | None) -> Form | None:
        lengths = NAMED.get(spec)
        return Form(frozenset({len(lengths)}), lengths=lengths, spec=spec) if lengths else None

    def listing(self, lexicon: Lexicon) -> list[tuple[str, str]]:
        return [(name, ",".join(map(str, lengths))) for name, lengths in NAMED.items()]


class AnyRegular:
    """``any``: 4 or 8 lines, all as long as the first, of 5 or 7 characters."""

    def pattern(self, lexicon: Lexicon | None) -> str:
        return "any"

    def parse(self, spec: str, lexicon: Lexicon | None) -> Form | None:
        return ANY if spec == "any" else None

    def listing(self, lexicon: Lexicon) -> list[tuple[str, str]]:
        return [("any", "4 or 8 lines of 5 or 7 (the first line decides)")]


class LineLengths:
    """Each line's length, e.g. ``5,5,7,7``: 1 to 999 content tokens a line."""

    PATTERN = "[1-9][0-9]{0,2}(?:,[1-9][0-9]{0,2})*"

    def pattern(self, lexicon: Lexicon | None) -> str:
        return self.PATTERN

    def parse(self, spec: str, lexicon: Lexicon | None) -> Form | None:
        if not re.fullmatch(self.PATTERN, spec):
            return None
        lengths = tuple(int(part) for part in spec.split(","))
        return Form(frozenset({len(lengths)}), lengths=lengths, spec=spec)

    def listing(self, lexicon: Lexicon) -> list[tuple[str, str]]:
        return [("5,5,7,7", "each line's length, as given")]


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
        raise LMError(f"{named('acrostic')} has {lines} characters but {named('form')} "
                      f"{form.spec} has {have} lines: give one acrostic character per line")
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


def regulated_specs() -> str:
    """The ``--form`` specs of regulated verse, as a regular expression: the named forms of
    4 or 8 lines of 5 or 7 characters, and those line lengths written out."""
    named = [name for name, lengths in NAMED.items()
             if len(set(lengths)) == 1 and lengths[0] in POEM_WIDTHS
             and len(lengths) in REGULATED_LINES]
    written = [f"{w}(?:,{w}){{{n - 1}}}" for w in sorted(POEM_WIDTHS) for n in REGULATED_LINES]
    return "|".join(named + written)


def static_specs() -> str:
    """The ``--form`` specs every model reads (named forms, ``any``, line lengths), as a
    regular expression: all but a corpus's ci tunes."""
    return "|".join(f().pattern(None) for f in (NamedForms, AnyRegular, LineLengths))
