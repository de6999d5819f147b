"""What each token of a vocabulary is to the decoding constraints: content, punctuation, break.

Forms count *content* tokens: a character (char level) or word (word level) that holds at
least one letter, mark or number (Unicode categories L*, M*, N*). Punctuation, whitespace,
symbols, ``<unk>`` and ``<eos>`` are never content, so a masked line can only be filled with
real characters. The layout says how verse lines end in this vocabulary:

* ``poem``  — char level with ``，`` and ``。``: verse lines end with ，/。 and a newline follows
  each 。 but the last (the corpus layout: one couplet per text line);
* ``lines`` — a newline token exists: each verse line ends with it, the last with ``<eos>``;
* ``eos``   — no newline token (word level splits on whitespace): each verse line is a
  document of its own, closed by ``<eos>``; the sample ends after the last one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from tokenizers import Tokenizer

from lm.errors import LMError
from lm.generation.verse.forms import COMMA, NEWLINE, PERIOD, is_content
from lm.tokenization import EOS_ID, SEP, UNK_ID, vocabulary


@dataclass
class TokenClasses:
    """The vocabulary as decoding sees it: tokens by id, the content mask, the line layout."""

    tokens: list[str]
    level: str
    content: torch.Tensor  # bool [V]
    comma: int | None
    period: int | None
    newline: int | None
    sep: int | None = None  # <sep>, in a vocabulary of titled documents

    @classmethod
    def of(cls, tokenizer: Tokenizer, level: str) -> TokenClasses:
        return cls.from_tokens(vocabulary(tokenizer), level)

    @classmethod
    def from_tokens(cls, tokens: list[str], level: str) -> TokenClasses:
        """Classes of a vocabulary given by id; ids 0 and 1 are <unk> and <eos>."""
        content = torch.tensor([is_content(t) for t in tokens], dtype=torch.bool)
        content[UNK_ID] = content[EOS_ID] = False
        index = {t: i for i, t in enumerate(tokens)}
        if SEP in index:  # between a title and its body: never a verse line's token
            content[index[SEP]] = False
        return cls(tokens, level, content, index.get(COMMA), index.get(PERIOD),
                   index.get(NEWLINE), index.get(SEP))

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def layout(self) -> str:
        if self.level == "char" and self.comma is not None and self.period is not None:
            return "poem"
        return "lines" if self.newline is not None else "eos"

    def check_formable(self, what: str) -> None:
        """Forms count characters or words; BPE pieces are neither."""
        if self.level not in ("char", "word"):
            raise LMError(f"{what} needs a char- or word-level model (this one is "
                          f"{self.level}-level): sample it without {what}")

    def id_of(self, piece: str, what: str) -> int:
        """The id of one character or word of a user's text; an unknown one is an error."""
        token_id = self.index.get(piece)
        if token_id is None or not bool(self.content[token_id]):
            raise LMError(f"{what}: {piece!r} is not in the model's vocabulary: "
                          "use another character or word")
        return token_id

    @cached_property
    def index(self) -> dict[str, int]:
        """Token → id."""
        return {t: i for i, t in enumerate(self.tokens)}

    def structural(self) -> torch.Tensor:
        """Tokens exempt from repetition rules: everything that is not content."""
        return ~self.content
