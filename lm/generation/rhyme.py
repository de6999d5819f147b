"""Rhyme groups and level tones of Chinese characters, from their Mandarin reading (pypinyin).

Rhyme groups are the fourteen of 中华新韵: finals that share nucleus and coda rhyme, whatever
their medial (a/ia/ua, an/ian/uan/üan, …), with o/e/uo, eng/ing/ong/iong and i/er/ü merged and
the apical -i of zhi/chi/shi/ri/zi/ci/si a group of its own. A character counts by its most
common reading (pypinyin without heteronyms); a traditional character pypinyin does not know
is read through its OpenCC simplified form. Level tone (平声) is Mandarin tone 1 or 2, which
misfiles the old entering tone (入声) characters: a modern approximation of regulated verse.
"""

from __future__ import annotations

from functools import cache

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
        from lm.generation.script import convert

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
