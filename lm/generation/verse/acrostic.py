"""藏头诗: ``--acrostic 春夏秋冬`` begins each line with the next character (word at word level).

The heads are fixed slots ``(line, 0)`` of the form constraint, so every other rule (metre,
rhymes) is shown them before the first token and keeps only what agrees with them. Without
``--form``, the poem has one line per head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lm.errors import LMError
from lm.generation.verse.forms import with_acrostic
from lm.generation.verse.script import fit_to_vocabulary
from lm.settings import named

if TYPE_CHECKING:
    from lm.generation.verse.draft import Draft


class Acrostic:
    def apply(self, draft: Draft, *, acrostic: str | None) -> None:
        if acrostic is None:
            return
        flag = named("acrostic")
        draft.ask(flag)
        heads = heads_of(acrostic, draft)
        draft.form = with_acrostic(draft.form, len(heads), draft.classes.layout)
        for line, head in enumerate(heads):
            draft.fix(line, 0, head, flag)


def heads_of(text: str, draft: Draft) -> list[int]:
    """The token of each head; char-level text is read in the model's script (OpenCC)."""
    classes, flag = draft.classes, named("acrostic")
    if classes.level == "char" and text:
        fitted = fit_to_vocabulary(text, classes.index)
        if fitted != text:
            draft.warnings.append(f"{flag}: read {text!r} as {fitted!r}, the model's script")
        text = fitted
    pieces = text.split() if classes.level == "word" else [c for c in text if not c.isspace()]
    if not pieces:
        raise LMError(f"{flag} is empty: give one character (word) per line")
    return [classes.id_of(p, flag) for p in pieces]
