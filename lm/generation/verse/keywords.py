"""``--keywords 明月,故鄉``: every keyword appears in every poem, as written.

A keyword of several characters stands unbroken within one line; at word level a keyword is
one word. Each sample gets its own places for its keywords, drawn (seeded) among the places
the form, the metre and the rhymes allow: every rule of the draft is asked, through its
``fix``, whether it takes the keywords' characters there together with the slots fixed
already (an acrostic's heads, a template's characters). The places become that row's own
fixed slots (``FormConstraint`` variants), so the poem is written around them and the metre
and rhymes hold. A set that cannot fit anywhere is a one-line error naming the keyword.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lm.errors import LMError
from lm.generation.verse.script import fit_to_vocabulary
from lm.settings import named

if TYPE_CHECKING:
    from lm.generation.verse.draft import Draft

Place = tuple[int, int]  # (line, first position)
TRIES = 64  # places tried per keyword and row before giving up on a row's draw
MOST = 4  # keywords in one poem


def keyword_tokens(text: str, draft: Draft) -> list[tuple[str, tuple[int, ...]]]:
    """Each keyword and its tokens: its characters (char level) or itself as a word."""
    classes, flag = draft.classes, named("keywords")
    words = [w.strip() for w in re.split(r"[,，、]", text) if w.strip()]
    if not words:
        raise LMError(f"{flag} is empty: give words separated by commas, e.g. 明月,故鄉")
    if len(words) > MOST:
        raise LMError(f"{flag} gives {len(words)} keywords: a poem holds {MOST} at most")
    found = []
    for word in words:
        if classes.level == "char":
            word = fit_to_vocabulary(word, classes.index)
            pieces = [c for c in word if not c.isspace()]
        else:
            pieces = [word]
        found.append((word, tuple(classes.id_of(p, f"{flag} {word!r}") for p in pieces)))
    return found


class Keywords:
    def apply(self, draft: Draft, *, keywords: str | None, seed: int, num: int, best_of: int,
              beam: int | None) -> None:
        if keywords is None:
            return
        flag = named("keywords")
        draft.ask(flag)
        words = keyword_tokens(keywords, draft)
        placer = Placer(draft, words)
        placer.check_each()
        rows = 1 if beam is not None else num * best_of
        rng = random.Random(seed)
        draft.variants = [placer.draw(rng) for _ in range(rows)]


class Placer:
    """Places for a set of keywords that every rule of a draft takes."""

    def __init__(self, draft: Draft, words: list[tuple[str, tuple[int, ...]]]) -> None:
        self.draft, self.words = draft, sorted(words, key=lambda w: -len(w[1]))
        self.form = draft.settled_form()
        self.lines = min(self.form.counts)  # lines every poem of the form has
        self.taken = dict(draft.fixed)
        self._verdicts: dict[frozenset, bool] = {}

    def _length(self, line: int) -> int | None:
        lengths = self.form.lengths
        return lengths[line] if lengths is not None and line < len(lengths) else None

    def places(self, tokens: Sequence[int]) -> list[Place]:
        """Where a keyword of these tokens fits in a line (within every width the form has)."""
        found = []
        for line in range(self.lines):
            width = self._length(line) or min(self.form.allowed_lengths(line, None))
            found += [(line, pos) for pos in range(width - len(tokens) + 1)]
        return found

    def slots(self, word: str, tokens: Sequence[int], place: Place) -> dict:
        line, first = place
        return {(line, first + i): (token, f"{named('keywords')} {word!r}")
                for i, token in enumerate(tokens)}

    def takes(self, fixed: dict) -> bool:
        """Whether every rule of the draft takes these fixed slots together."""
        key = frozenset((k, v[0]) for k, v in fixed.items())
        if key not in self._verdicts:
            slots = sorted((line, pos, self._length(line), token, what)
                           for (line, pos), (token, what) in fixed.items())
            try:
                for rule in self.draft.rules:
                    rule.fix(slots)
                self._verdicts[key] = True
            except LMError:
                self._verdicts[key] = False
        return self._verdicts[key]

    def _free(self, fixed: dict, extra: dict) -> bool:
        return all(fixed.get(slot, value)[0] == value[0] for slot, value in extra.items())

    def check_each(self) -> None:
        """One line naming the first keyword that cannot stand anywhere, alone or with those
        before it."""
        for count in range(1, len(self.words) + 1):
            if self._search(self.words[:count], dict(self.taken), None) is None:
                word = self.words[count - 1][0]
                company = "" if count == 1 else " beside " + ", ".join(
                    repr(w) for w, _ in self.words[:count - 1])
                raise LMError(f"{named('keywords')}: {word!r} fits nowhere{company} that "
                              f"{named('form')} {self.form.spec} and its rules allow: change "
                              "the keyword or loosen the form")

    def draw(self, rng: random.Random) -> dict:
        """One row's places, drawn at random among those every rule takes."""
        found = self._search(self.words, dict(self.taken), rng)
        assert found is not None, "check_each found a placement"
        return {k: v for k, v in found.items() if k not in self.taken}

    def _search(self, words: list, fixed: dict, rng: random.Random | None) -> dict | None:
        if not words:
            return fixed
        (word, tokens), rest = words[0], words[1:]
        places = self.places(tokens)
        if rng is not None:
            rng.shuffle(places)
        for place in places[:TRIES] if rng is not None else places:
            extra = self.slots(word, tokens, place)
            if not self._free(fixed, extra) or not self.takes({**fixed, **extra}):
                continue
            found = self._search(rest, {**fixed, **extra}, rng)
            if found is not None:
                return found
        return None
