"""The verse rules a request asks of a model: its form, rhyme book, metre or ci tune.

:func:`verse_for` reads ``--form``, ``--acrostic``, ``--rhyme``, ``--level-tone``,
``--rhyme-book``, ``--meter`` and ``--strict-meter`` and returns the form and the
:class:`~lm.generation.constraints.FormConstraint` that enforces them. The rhyme book defaults
by the model's corpus (:class:`Corpus`): Pingshui for ``chinese-poetry:`` sources, modern
otherwise. The Pingshui book is in traditional characters: a model whose vocabulary is mostly
simplified (a ``--simplify`` dataset, or a corpus written so) is read through OpenCC.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from lm.artifacts import Artifact, Store
from lm.errors import LMError
from lm.generation.constraints import FormConstraint
from lm.generation.forms import Form, parse_form, with_acrostic
from lm.generation.request import SampleRequest
from lm.generation.script import fit_to_vocabulary
from lm.generation.vocab import TokenClasses


@dataclass
class Corpus:
    """What a model was trained on, as far as verse needs it."""

    source: str | None = None  # the dataset's source, e.g. chinese-poetry:tang/regular
    simplify: bool = False  # the dataset was converted to simplified characters
    dataset: Artifact | None = None

    @property
    def poetry(self) -> tuple[str, bool] | None:
        """(chinese-poetry corpus, regular only), or None for other sources."""
        from lm.data.chinese_poetry import parse_source

        return parse_source(self.source) if self.source else None


def corpus_of(store: Store, artifact: Artifact) -> Corpus:
    """The dataset behind a model or n-gram, or an empty Corpus when none is recorded."""
    from lm.evaluation.scoring import dataset_of

    try:
        dataset = dataset_of(store, artifact)
    except LMError:
        return Corpus()
    params = dataset.manifest.get("params", {})
    return Corpus(params.get("source"), bool(params.get("simplify")), dataset)


def simplified_vocabulary(classes: TokenClasses) -> bool:
    """True when more characters of the vocabulary change going to traditional than back."""
    from lm.generation.script import convert

    chars = [t for t in classes.tokens if len(t) == 1 and "\u4e00" <= t <= "\u9fff"]
    to_traditional = sum(convert(c, "traditional") != c for c in chars)
    to_simplified = sum(convert(c, "simplified") != c for c in chars)
    return to_traditional > to_simplified


@dataclass
class Verse:
    """The rules in force: form (None: free text), constraint, rhyme book, ci template."""

    form: Form | None
    constraint: FormConstraint | None
    book: str
    classes: TokenClasses
    template: object | None = None  # a lm.generation.tunes.Template

    @cached_property
    def simplified(self) -> bool:
        """Whether the Pingshui lookups convert the text to traditional first."""
        return simplified_vocabulary(self.classes)


def rhyme_book(request: SampleRequest, corpus: Corpus) -> str:
    if request.rhyme_book is not None:
        return request.rhyme_book
    return "pingshui" if corpus.poetry is not None else "modern"


def verse_for(request: SampleRequest, classes: TokenClasses, corpus: Corpus,
              warnings: list[str]) -> Verse:
    """The form and constraint of a request (None, None when it asks for no rule)."""
    verse = Verse(None, None, rhyme_book(request, corpus), classes)
    spec = request.form or ""
    if spec.startswith("ci:"):
        verse.template = _template(spec[3:], corpus, verse)
        from lm.generation.tunes import template_form

        verse.form = template_form(verse.template)
    elif spec:
        verse.form = parse_form(spec)
    if not (verse.form or request.acrostic or request.rhyme or request.level_tone
            or request.meter):
        return verse
    flag = "--form" if verse.form else "--acrostic" if request.acrostic else "--rhyme"
    classes.check_formable(flag)
    heads = _heads(request, classes, warnings)
    if heads is not None:
        verse.form = with_acrostic(verse.form, len(heads), classes.layout)
    verse.form = verse.form or parse_form("any")
    modern = verse.book == "modern"
    verse.constraint = FormConstraint(classes, verse.form, heads, request.rhyme and modern,
                                      request.level_tone and modern, _rule(request, verse))
    return verse


def _template(tune: str, corpus: Corpus, verse: Verse):
    from lm.generation.tunes import find_template

    if verse.book == "modern":
        raise LMError("--form ci: tunes rhyme by the Pingshui book: drop --rhyme-book modern")
    if corpus.poetry is None:
        raise LMError(f"--form ci:{tune} needs a model prepared from chinese-poetry:songci "
                      "(its tunes come from that corpus)")
    return find_template(corpus.poetry[0], corpus.simplify, tune, verse.simplified)


def _heads(request: SampleRequest, classes: TokenClasses,
           warnings: list[str]) -> list[int] | None:
    if request.acrostic is None:
        return None
    text = request.acrostic
    if classes.level == "char" and text:
        fitted = fit_to_vocabulary(text, classes.index)
        if fitted != text:
            warnings.append(f"--acrostic: read {text!r} as {fitted!r}, the model's script")
        text = fitted
    pieces = text.split() if classes.level == "word" else [c for c in text if not c.isspace()]
    if not pieces:
        raise LMError("--acrostic is empty: give one character (word) per line")
    return [classes.id_of(p, "--acrostic") for p in pieces]


def _rule(request: SampleRequest, verse: Verse):
    """The Pingshui rule of the request: a ci tune's rhymes, the metre, or plain rhymes."""
    from lm.generation import metre

    form = verse.form
    if verse.template is not None:
        from lm.generation.tunes import tune_rule

        return tune_rule(verse.template, metre.TokenTones(verse.classes, verse.simplified))
    if request.meter:
        lengths = form.lengths if form is not None else None
        if not lengths or len(set(lengths)) != 1:
            raise LMError("--meter needs --form wujue, qijue, wulv or qilv (4 or 8 lines of 5 "
                          "or 7 characters)")
        patterns = metre.meter_patterns(lengths[0], len(lengths), request.strict_meter)
        return metre.ToneRule(metre.TokenTones(verse.classes, verse.simplified), patterns,
                              [metre.LEVEL], what=f"--form {form.spec} --meter")
    if verse.book == "pingshui" and (request.rhyme or request.level_tone):
        ends = tuple(form.ends_with_period(i) for i in range(form.max_lines))
        pattern = metre.EndRhymes(ends_with_period=ends, grouped=request.rhyme)
        return metre.ToneRule(metre.TokenTones(verse.classes, verse.simplified), [pattern],
                              [metre.LEVEL], what="--rhyme")
    return None
