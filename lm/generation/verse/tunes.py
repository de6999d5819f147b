"""Song ci tunes (词牌): each tune's template, learnt from the tune's own ci in the corpus.

A tune fixes how long each clause is, the mark that closes it, where the text lines break and
which clause ends rhyme. The template of a tune is the commonest layout among its ci (clause
lengths, marks and line breaks, exactly as written), and its rhymes come from those same ci:
two clause ends rhyme in the template when at least :data:`RHYME_SHARE` of the ci end them in
one Pingshui rhyme category (any reading; unrelated ends share one in under 15% of ci, true
rhymes in 30–99%); linked ends form a rhyme (A, B, …: a tune such as 菩萨蛮 changes rhyme),
whose tone is the one most of its characters have. ``--form ci:TUNE`` holds a sample to the
template: :func:`template_form` for the lengths and marks, :func:`tune_rule` for the rhymes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from lm.errors import LMError
from lm.generation.verse.forms import Form
from lm.generation.verse.metre import (
    EndRhymes,
    TokenTones,
    ToneRule,
    check_poem_layout,
    token_tones,
)
from lm.generation.verse.pingshui import LEVEL, OBLIQUE, book, in_book_script
from lm.settings import named

if TYPE_CHECKING:
    from lm.generation.verse.draft import Draft
    from lm.generation.verse.lexicon import Lexicon

PREFIX = "ci:"
RHYME_SHARE = 0.25
_CLAUSE = re.compile(r"(\w+)([^\w\s])(\n?)")

Layout = tuple[tuple[int, str, bool], ...]  # (length, mark, newline after) per clause


@dataclass(frozen=True)
class Template:
    """A tune's layout and rhymes (see the module's docstring)."""

    tune: str
    clauses: Layout
    letters: tuple[int | None, ...]  # the rhyme of each clause end (None: unrhymed)
    tones: tuple[str, ...]  # each rhyme's tone, 平 or 仄
    poems: int  # ci of the tune in the corpus
    support: int  # of which with this layout

    def describe(self) -> str:
        """E.g. ``7A。7A。7A。7，7A。7A。`` (each clause's length, its rhyme, its mark)."""
        names = "ABCDEFGHIJ"
        return "".join(f"{length}{names[letter] if letter is not None else ''}{mark}"
                       + ("/" if newline else "")
                       for (length, mark, newline), letter in zip(self.clauses, self.letters,
                                                                  strict=True))


def layout(document: str) -> Layout | None:
    """The clauses of a ci, or None when its text is not clauses closed by single marks."""
    found = _CLAUSE.findall(document)
    if "".join(a + b + c for a, b, c in found) != document or not found:
        return None
    return tuple((len(text), mark, bool(newline)) for text, mark, newline in found)


def build_template(tune: str, documents: Iterable[str], simplified: bool) -> Template:
    """The commonest layout of ``documents`` (all of one tune) and the rhymes among them."""
    documents = list(documents)
    layouts = [layout(d) for d in documents]
    counts = Counter(lay for lay in layouts if lay is not None)
    if not counts:
        raise LMError(f"{named('form')} ci:{tune}: none of its {len(documents)} ci is laid out "
                      "in clauses closed by punctuation: choose another tune")
    best, support = counts.most_common(1)[0]
    ends = [[in_book_script(clause[-1], simplified) for clause in _clauses(d)]
            for d, lay in zip(documents, layouts, strict=True) if lay == best]
    letters, tones = _rhymes(ends)
    return Template(tune, best, letters, tones, len(documents), support)


def _clauses(document: str) -> list[str]:
    return [text for text, _, _ in _CLAUSE.findall(document)]


def _rhymes(ends: list[list[str]]) -> tuple[tuple[int | None, ...], tuple[str, ...]]:
    """Rhyme letters of the clause ends (linked when they share a category often enough)."""
    source = book()
    n = len(ends[0])
    cats = [[source.categories(e[i]) for i in range(n)] for e in ends]
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            shared = sum(bool(c[i] & c[j]) for c in cats)
            if shared >= RHYME_SHARE * len(ends):
                parent[root(j)] = root(i)
    members: dict[int, list[int]] = {}
    for i in range(n):
        members.setdefault(root(i), []).append(i)
    letters: list[int | None] = [None] * n
    tones: list[str] = []
    for group in sorted((g for g in members.values() if len(g) > 1), key=min):
        for i in group:
            letters[i] = len(tones)
        votes = Counter(t for e in ends for i in group
                        if len(tt := source.tones(e[i])) == 1 for t in tt)
        tones.append(LEVEL if votes[LEVEL] >= votes[OBLIQUE] else OBLIQUE)
    return tuple(letters), tuple(tones)


def template_form(template: Template) -> Form:
    lengths = tuple(length for length, _, _ in template.clauses)
    return Form(frozenset({len(lengths)}), lengths=lengths, spec=PREFIX + template.tune,
                marks=tuple(m for _, m, _ in template.clauses),
                newlines=tuple(n for _, _, n in template.clauses), template=template)


def tune_rule(template: Template, tones: TokenTones) -> ToneRule:
    """The rule that rhymes the template's clause ends, each rhyme in one Pingshui group."""
    pattern = EndRhymes(letters=template.letters, name=PREFIX + template.tune)
    return ToneRule(tones, [pattern], template.tones,
                    what=f"{named('form')} {PREFIX}{template.tune}")


@cache
def corpus_tunes(corpus: str, simplified: bool) -> dict[str, tuple[str, ...]]:
    """Tune → its ci, in the script of the dataset (``simplified``: converted by OpenCC)."""
    from lm.data.chinese_poetry import iter_tunes
    from lm.generation.verse.script import convert

    by_tune: dict[str, list[str]] = {}
    for tune, document in iter_tunes(corpus):
        if simplified:
            tune, document = convert(tune, "simplified"), convert(document, "simplified")
        by_tune.setdefault(tune, []).append(document)
    return {t: tuple(d) for t, d in sorted(by_tune.items(), key=lambda kv: -len(kv[1]))}


def find_template(corpus: str, simplified: bool, tune: str, book_simplified: bool) -> Template:
    """The template of ``tune`` in the corpus a model was prepared from."""
    tunes = corpus_tunes(corpus, simplified)
    if not tunes:
        raise LMError(f"{named('form')} ci:{tune}: the model's corpus chinese-poetry:{corpus} "
                      "has no tunes: use a model of chinese-poetry:songci")
    if tune not in tunes:
        from lm.generation.verse.script import convert

        tune = next((t for t in (convert(tune, s) for s in ("simplified", "traditional"))
                     if t in tunes), tune)
    if tune not in tunes:
        common = "、".join(list(tunes)[:5])
        raise LMError(f"{named('form')} ci:{tune}: no such tune in chinese-poetry:{corpus} "
                      f"(the commonest: {common}; `lm sample MODEL --list-forms` lists them "
                      "all)")
    return build_template(tune, tunes[tune], book_simplified)


def fits(text: str, template: Template) -> bool:
    """Whether a text has the template's layout exactly."""
    return layout(text) == template.clauses


def rhymes_hold(text: str, template: Template, simplified: bool) -> bool:
    """Whether each rhyme of the template is kept: its clause ends take its tone and share
    one Pingshui group of that tone (what ``--form ci:TUNE`` enforces)."""
    if not fits(text, template):
        return False
    source = book()
    ends = [in_book_script(clause[-1], simplified) for clause in _clauses(text)]
    for letter, t in enumerate(template.tones):
        shared: frozenset[str] | None = None
        for end, mine in zip(ends, template.letters, strict=True):
            if mine != letter:
                continue
            groups = source.rhyme_groups(end, t)
            shared = groups if shared is None else shared & groups
            if not shared:
                return False
    return True


# ------------------------------------------------------------------ the rules, as registered
def lexicon_tunes(lexicon: Lexicon | None) -> dict[str, tuple[str, ...]]:
    """The tunes of a model's corpus (none for other corpora)."""
    poetry = lexicon.corpus.poetry if lexicon is not None else None
    return corpus_tunes(poetry[0], lexicon.corpus.simplify) if poetry is not None else {}


class TuneForms:
    """``ci:TUNE``: the tune's commonest layout in the model's corpus (a form family)."""

    def pattern(self, lexicon: Lexicon | None) -> str | None:
        if lexicon is None:
            return f"{PREFIX}.+"
        tunes = lexicon_tunes(lexicon)
        return f"{PREFIX}(?:{'|'.join(map(re.escape, tunes))})" if tunes else None

    def parse(self, spec: str, lexicon: Lexicon | None) -> Form | None:
        if not spec.startswith(PREFIX):
            return None
        tune = spec[len(PREFIX):]
        poetry = lexicon.corpus.poetry if lexicon is not None else None
        if lexicon is None or poetry is None:
            raise LMError(f"{named('form')} {spec} needs a model prepared from "
                          "chinese-poetry:songci (its tunes come from that corpus)")
        template = lexicon.cached(("tune", tune), lambda: find_template(
            poetry[0], lexicon.corpus.simplify, tune, lexicon.simplified))
        return template_form(template)

    def listing(self, lexicon: Lexicon) -> list[tuple[str, str]]:
        if not lexicon_tunes(lexicon):
            return []
        return [(f"{PREFIX}TUNE", "the tune's commonest layout in the corpus")]


class TuneRhymes:
    """A ci tune's rhymes, each in one Pingshui group, as its corpus rhymes them."""

    def apply(self, draft: Draft) -> None:
        if draft.template is None:
            return
        rule = tune_rule(draft.template, token_tones(draft))
        check_poem_layout(draft, rule.what)
        draft.rules.append(rule)
