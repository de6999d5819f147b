"""``--template``: revise a draft, as Jiuge's users do: keep the characters you like, refill
the rest.

``--template '床前明月光，疑是□□□。□□□□□，□□□□□。'`` gives the poem's shape (each line's
length, its marks) and fixes every character that is not □ at its place, anywhere in a line.
The fixed characters are fixed slots of the form constraint, so every other rule (the form,
the metre, the rhymes, no 重韵) is shown them before the first token: a template that breaks
them is a one-line error naming the place, and one that fits is kept in every sample.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from lm.errors import LMError
from lm.generation.verse.forms import COMMA, PERIOD, Form
from lm.generation.verse.script import fit_to_vocabulary
from lm.settings import named

if TYPE_CHECKING:
    from lm.generation.verse.draft import Draft

BLANK = "□"
_LINE = re.compile(f"([^{COMMA}{PERIOD}\n]+)([{COMMA}{PERIOD}])\n?")


def template_lines(template: str) -> list[str]:
    """The template's verse lines (marks and line breaks dropped), checked against the corpus
    layout: ， after odd lines, 。 after even ones and the last."""
    text = template.strip()
    found = _LINE.findall(text)
    if not found or "".join(a + b for a, b in found) != text.replace("\n", ""):
        raise LMError(f"{named('template')} {template!r} is not lines closed by ， or 。: write "
                      "it as the poem, □ for each character to fill")
    lines = [clause.strip() for clause, _ in found]
    form = Form(frozenset({len(lines)}), lengths=tuple(map(len, lines)))
    for number, (_, mark) in enumerate(found):
        wanted = PERIOD if number == len(found) - 1 else form.mark(number)
        if mark != wanted:
            raise LMError(f"{named('template')}: line {number + 1} ends with {mark}, where a "
                          f"poem has {wanted}: close odd lines with ， and even ones with 。")
    return lines


def fits(form: Form, lengths: tuple[int, ...]) -> bool:
    """Whether a poem of these line lengths has the form."""
    if len(lengths) not in form.counts:
        return False
    width = None
    for line, length in enumerate(lengths):
        if length not in form.allowed_lengths(line, width):
            return False
        width = length if width is None else width
    return True


class Template:
    def apply(self, draft: Draft, *, template: str | None) -> None:
        if template is None:
            return
        flag = named("template")
        draft.ask(flag)
        if draft.classes.layout != "poem":
            raise LMError(f"{flag} needs a char-level Chinese model whose vocabulary has ， and "
                          "。: sample this one without it")
        lines = template_lines(fit_to_vocabulary(template, draft.classes.index))
        lengths = tuple(map(len, lines))
        shape = ",".join(map(str, lengths))
        if draft.form is not None and not fits(draft.form, lengths):
            raise LMError(f"{flag} has lines of {shape} characters, which {named('form')} "
                          f"{draft.form.spec} does not: make them agree, or drop "
                          f"{named('form')}")
        spec = draft.form.spec if draft.form is not None else shape
        draft.form = Form(frozenset({len(lines)}), lengths=lengths, spec=spec)
        for line, text in enumerate(lines):
            for pos, char in enumerate(text):
                if char != BLANK:
                    token = draft.classes.id_of(char, f"{flag} line {line + 1}, position "
                                                      f"{pos + 1}")
                    draft.fix(line, pos, token, flag)
