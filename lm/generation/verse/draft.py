"""The verse a request asks for, as the registered rules build it, and what it becomes.

Each rule of :data:`lm.generation.verse.registry.RULES` reads its own settings of the request
and adds to one :class:`Draft`: the form, slots fixed to a token (an acrostic's heads), the
slot rules that restrict content tokens (rhymes, metre, a tune's rhymes). :meth:`Draft.finish`
then freezes it into a :class:`Verse` holding the :class:`FormConstraint` that decoding uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from lm.errors import LMError
from lm.generation.verse.constraint import FormConstraint, SlotRule
from lm.generation.verse.forms import Form, parse_form
from lm.generation.verse.lexicon import Lexicon
from lm.generation.verse.vocab import TokenClasses


@dataclass(frozen=True)
class Verse:
    """The rules in force: form (None: free text), constraint, rhyme book, ci template."""

    form: Form | None
    constraint: FormConstraint | None
    book: str
    lexicon: Lexicon
    template: Any = None  # a lm.generation.verse.tunes.Template

    @property
    def classes(self) -> TokenClasses:
        return self.lexicon.classes

    @property
    def simplified(self) -> bool:
        return self.lexicon.simplified


@dataclass
class Draft:
    """The verse being built: each rule reads the request and adds its part."""

    lexicon: Lexicon
    book: str  # the rhyme book: pingshui or modern
    warnings: list[str] = field(default_factory=list)
    form: Form | None = None
    template: Any = None
    fixed: dict[tuple[int, int], tuple[int, str]] = field(default_factory=dict)
    rules: list[SlotRule] = field(default_factory=list)
    variants: list[dict] = field(default_factory=list)  # each row's own fixed slots
    title: bool = False  # the model writes each poem's title before it
    asked: str | None = None  # the first flag that asked for verse

    @property
    def classes(self) -> TokenClasses:
        return self.lexicon.classes

    def ask(self, flag: str) -> None:
        """A rule applies: verse needs a char- or word-level model."""
        self.classes.check_formable(flag)
        self.asked = self.asked or flag

    def fix(self, line: int, pos: int, token: int, flag: str) -> None:
        """Fix a slot to a token; two rules fixing it to different tokens is an error."""
        held = self.fixed.get((line, pos))
        if held is not None and held[0] != token:
            tokens = self.classes.tokens
            raise LMError(f"{flag} puts {tokens[token]!r} at line {line + 1}, position "
                          f"{pos + 1}, where {held[1]} puts {tokens[held[0]]!r}: make them "
                          "agree")
        self.fixed[(line, pos)] = (token, flag if held is None else held[1])

    def settled_form(self) -> Form:
        """The form so far; a rule that needs one and finds none takes ``any``."""
        if self.form is None:
            self.form = parse_form("any")
        return self.form

    def finish(self) -> Verse:
        if self.asked is None:
            return Verse(None, None, self.book, self.lexicon)
        form = self.settled_form()
        constraint = FormConstraint(self.classes, form, self.fixed, self.rules, self.variants,
                                    self.title)
        return Verse(form, constraint, self.book, self.lexicon, self.template)


class VerseRule(Protocol):
    """One family of verse rules: it adds to the draft what its settings ask for.

    ``apply`` names the settings it reads as keyword parameters (fields of
    :class:`~lm.generation.request.SampleRequest`); the registry hands it those values and
    nothing else of the request.
    """

    def apply(self, draft: Draft, **settings: Any) -> None: ...
