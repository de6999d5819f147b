"""Rhyme groups and level tones of Chinese characters, from their Mandarin reading (pypinyin).

Rhyme groups are the fourteen of 中华新韵: finals that share nucleus and coda rhyme, whatever
their medial (a/ia/ua, an/ian/uan/üan, …), with o/e/uo, eng/ing/ong/iong and i/er/ü merged and
the apical -i of zhi/chi/shi/ri/zi/ci/si a group of its own. A character counts by its most
common reading (pypinyin without heteronyms); a traditional character pypinyin does not know
is read through its OpenCC simplified form. Level tone (平声) is Mandarin tone 1 or 2, which
misfiles the old entering tone (入声) characters: a modern approximation of regulated verse.

Under ``--rhyme-book modern``, ``--rhyme`` and ``--level-tone`` are a slot rule
(:class:`ModernRhyme`): the last character of every line closed by 。 has a known group and,
once the first such line is written, that group (level, with ``--level-tone``). A restriction
that would leave nothing to choose (a vocabulary without such a character) is dropped for
that slot rather than stopping the poem.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import torch

from lm.errors import LMError
from lm.settings import named

if TYPE_CHECKING:
    from lm.generation.verse.draft import Draft
    from lm.generation.verse.forms import Form
    from lm.generation.verse.vocab import TokenClasses

GROUPS: dict[str, str] = {}
for _group, _finals in {
    "麻": "a ia ua", "波": "o e uo", "皆": "ie ve", "开": "ai uai", "微": "ei uei",
    "豪": "ao iao", "尤": "ou iou", "寒": "an ian uan van", "文": "en in uen vn",
    "唐": "ang iang uang", "庚": "eng ing ueng ong iong", "齐": "i er v", "姑": "u",
}.items():
    for _final in _finals.split():
        GROUPS[_final] = _group
APICAL_INITIALS = frozenset({"zh", "ch", "sh", "r", "z", "c", "s"})


@cache
def reading(char: str) -> tuple[str, int] | None:
    """(rhyme group, tone 1–5) of a character, or None when it has no Mandarin reading."""
    from pypinyin import Style, lazy_pinyin

    found = _reading(char, lazy_pinyin, Style)
    if found is None:
        from lm.generation.verse.script import convert

        simplified = convert(char, "simplified")
        if simplified != char:
            found = _reading(simplified, lazy_pinyin, Style)
    return found


def _reading(char, lazy_pinyin, style) -> tuple[str, int] | None:
    if len(char) != 1:
        return None
    finals = lazy_pinyin(char, style=style.FINALS_TONE3, strict=True, errors="ignore",
                         neutral_tone_with_five=True)
    initials = lazy_pinyin(char, style=style.INITIALS, strict=True, errors="ignore")
    if not finals or not finals[0] or not finals[0][-1].isdigit():
        return None
    final, tone = finals[0][:-1], int(finals[0][-1])
    if final == "i" and initials and initials[0] in APICAL_INITIALS:
        return "支", tone
    group = GROUPS.get(final)
    return (group, tone) if group else None


def rhyme_group(char: str) -> str | None:
    found = reading(char)
    return found[0] if found else None


def is_level(char: str) -> bool:
    """平声: Mandarin tone 1 or 2."""
    found = reading(char)
    return found is not None and found[1] in (1, 2)


def rhymes(chars: list[str]) -> bool:
    """True when there are at least two rhyme characters and all share one rhyme group."""
    groups = [rhyme_group(c) for c in chars]
    return len(groups) >= 2 and groups[0] is not None and all(g == groups[0] for g in groups)


class ModernRhyme:
    """The 中华新韵 rhyme positions as a slot rule. Its state: the poem's rhyme group (set by
    the first rhyme position) and, with ``distinct``, the (line, token) of each rhyme so far,
    so that no character rhymes with itself (重韵)."""

    def __init__(self, classes: TokenClasses, form: Form, rhyme: bool, level_tone: bool,
                 distinct: bool = False) -> None:
        self.classes, self.form = classes, form
        self.rhyme, self.level_tone = rhyme, level_tone
        self.distinct = distinct and rhyme
        self.what = named("rhyme") if rhyme else named("level_tone")
        self.start: tuple = (None, frozenset())
        self.groups: list[str | None] = [None] * classes.vocab_size
        self.level = torch.zeros(classes.vocab_size, dtype=torch.bool)
        for token_id in torch.nonzero(classes.content).view(-1).tolist():
            found = reading(classes.tokens[token_id])
            if found is not None:
                self.groups[token_id] = found[0]
                self.level[token_id] = found[1] in (1, 2)
        self.known = torch.tensor([g is not None for g in self.groups], dtype=torch.bool)

    def _rhymes(self, line: int, pos: int, length: int | None) -> bool:
        return length is not None and pos == length - 1 and self.form.ends_with_period(line)

    def key(self, state: tuple, line: int, pos: int, length: int | None) -> tuple | None:
        if not self._rhymes(line, pos, length):
            return None
        group, rhymed = state
        used = frozenset(t for at, t in rhymed if at != line)
        return ("rhyme", group if self.rhyme else None, used)

    def mask(self, key: tuple) -> torch.Tensor:
        """Rhyme-position candidates, loosening a restriction that would leave none: first the
        ban on repeats, then the level tone, then the group."""
        _, group, used = key
        candidates = self.classes.content & self.known
        if group is not None:
            candidates = candidates & torch.tensor([g == group for g in self.groups])
        fresh = candidates.clone()
        if used:
            fresh[list(used)] = False
        candidates = fresh if bool(fresh.any()) else candidates
        if self.level_tone and bool((candidates & self.level).any()):
            candidates = candidates & self.level
        return candidates if bool(candidates.any()) else self.classes.content

    def advance(self, state: tuple, line: int, pos: int, length: int | None,
                token: int) -> tuple:
        """The first rhyme position sets the group the others follow."""
        if not self._rhymes(line, pos, length):
            return state
        group, rhymed = state
        if self.rhyme and group is None:
            group = self.groups[token]
        return (group, rhymed | {(line, token)} if self.distinct else rhymed)

    def fix(self, slots: list[tuple[int, int, int | None, int, str]]) -> tuple:
        """A rhyme position fixed in advance sets the group from the start."""
        state = self.start
        for line, pos, length, token, _ in slots:
            state = self.advance(state, line, pos, length, token)
        return state


class ModernRhymes:
    """``--rhyme``/``--level-tone`` under ``--rhyme-book modern``."""

    def apply(self, draft: Draft, *, rhyme: bool, level_tone: bool,
              allow_repeat_rhyme: bool) -> None:
        if draft.book != "modern" or not (rhyme or level_tone):
            return
        what = named("rhyme") if rhyme else named("level_tone")
        draft.ask(what)
        if draft.classes.layout != "poem":
            raise LMError(f"{named('rhyme')} and {named('level_tone')} need a char-level Chinese "
                          "model whose vocabulary has ， and 。: sample this one without them")
        form, distinct = draft.settled_form(), not allow_repeat_rhyme
        key = ("modern", form, rhyme, level_tone, distinct)
        draft.rules.append(draft.lexicon.cached(key, lambda: ModernRhyme(
            draft.classes, form, rhyme, level_tone, distinct)))
