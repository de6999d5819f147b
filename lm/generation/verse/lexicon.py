"""What a model brings to every request: its vocabulary as verse sees it, and its corpus.

A :class:`Lexicon` is made once per model (the decoder holds it) and keeps what verse rules
build from it once (tone tables, tune templates) for every later request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from lm.generation.verse.vocab import TokenClasses

if TYPE_CHECKING:
    from lm.artifacts import Artifact


@dataclass(frozen=True)
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


def simplified_vocabulary(classes: TokenClasses) -> bool:
    """True when more characters of the vocabulary change going to traditional than back."""
    from lm.generation.verse.script import convert

    chars = [t for t in classes.tokens if len(t) == 1 and "\u4e00" <= t <= "\u9fff"]
    to_traditional = sum(convert(c, "traditional") != c for c in chars)
    to_simplified = sum(convert(c, "simplified") != c for c in chars)
    return to_traditional > to_simplified


@dataclass
class Lexicon:
    """A model's vocabulary and corpus, read once per model and shared by every request."""

    classes: TokenClasses
    corpus: Corpus = field(default_factory=Corpus)
    cache: dict[Any, Any] = field(default_factory=dict)  # tone tables, tune templates

    @cached_property
    def simplified(self) -> bool:
        """Whether the Pingshui lookups read the text through its traditional forms."""
        return simplified_vocabulary(self.classes)

    def cached(self, key: Any, make: Any) -> Any:
        """``make()`` once per key for this model (a tone table, a tune's template)."""
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]
