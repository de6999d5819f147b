"""The verse rules, registered: one line each, in the order they build a :class:`Draft`.

A request's verse is composed here once (:func:`compose`): every rule of :data:`RULES` reads
its own settings and adds to the draft (the form, fixed slots, slot rules), and the draft
becomes a :class:`~lm.generation.verse.draft.Verse` holding the form constraint. The forms
``--form`` may name come from :data:`FORM_FAMILIES`; their patterns together are what the
API schema allows for ``form``. A new rule or form family is a module of its own, a line here
and, when it reads a new setting, a field of :class:`~lm.generation.request.SampleRequest`.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

from lm.errors import LMError
from lm.generation.verse.acrostic import Acrostic
from lm.generation.verse.draft import Draft, Verse, VerseRule
from lm.generation.verse.forms import (
    NAMED,
    AnyRegular,
    Form,
    FormFamily,
    LineLengths,
    NamedForms,
)
from lm.generation.verse.keywords import Keywords
from lm.generation.verse.lexicon import Lexicon
from lm.generation.verse.metre import Metre, PingshuiRhymes
from lm.generation.verse.rhyme import ModernRhymes
from lm.generation.verse.template import Template
from lm.generation.verse.tunes import TuneForms, TuneRhymes
from lm.settings import named

if TYPE_CHECKING:
    from lm.generation.request import SampleRequest


class Shape:
    """``--form``: the first form family that reads the spec gives the form."""

    def apply(self, draft: Draft, *, form: str | None) -> None:
        if form is None:
            return
        draft.ask(named("form"))
        draft.form = parse_spec(form, draft.lexicon)
        draft.template = draft.form.template


FORM_FAMILIES: tuple[FormFamily, ...] = (
    NamedForms(),
    AnyRegular(),
    LineLengths(),
    TuneForms(),
)

RULES: tuple[VerseRule, ...] = (
    Shape(),
    Template(),
    Acrostic(),
    ModernRhymes(),
    Metre(),
    PingshuiRhymes(),
    TuneRhymes(),
    Keywords(),
)


def parse_spec(spec: str, lexicon: Lexicon | None) -> Form:
    for family in FORM_FAMILIES:
        form = family.parse(spec, lexicon)
        if form is not None:
            return form
    raise LMError(f"{named('form')} {spec!r} is not a form: use {', '.join(NAMED)}, any, the "
                  "length of each line such as 5,5,5,5, or ci:TUNE for a ci model")


def form_pattern(lexicon: Lexicon | None) -> str:
    """Every spec ``--form`` reads for this model, as one regular expression."""
    patterns = (family.pattern(lexicon) for family in FORM_FAMILIES)
    return "|".join(p for p in patterns if p is not None)


def list_forms(lexicon: Lexicon) -> list[tuple[str, str]]:
    return [row for family in FORM_FAMILIES for row in family.listing(lexicon)]


def rhyme_book(chosen: str | None, lexicon: Lexicon) -> str:
    """``--rhyme-book``, or by the corpus: Pingshui for chinese-poetry, modern otherwise."""
    if chosen is not None:
        return chosen
    return "pingshui" if lexicon.corpus.poetry is not None else "modern"


def reads(rule: VerseRule) -> tuple[str, ...]:
    """The settings a rule reads: the keyword parameters of its ``apply``."""
    parameters = inspect.signature(rule.apply).parameters.values()
    return tuple(p.name for p in parameters if p.kind is p.KEYWORD_ONLY)


def compose(request: SampleRequest, lexicon: Lexicon, warnings: list[str],
            title_first: bool = False) -> Verse:
    """The verse a request asks of a model: every registered rule in order, each handed the
    settings it reads. ``title_first``: the model writes each poem's title before it."""
    draft = Draft(lexicon, rhyme_book(request.rhyme_book, lexicon), warnings,
                  title=title_first)
    for rule in RULES:
        rule.apply(draft, **{name: getattr(request, name) for name in reads(rule)})
    return draft.finish()
