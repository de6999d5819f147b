"""Train and use a Hugging Face ``tokenizers`` tokenizer at char, word or BPE level.

Ids 0 and 1 are always ``<unk>`` and ``<eos>``. The post-processor appends ``<eos>`` to every
encoded document, so the saved ``tokenizer.json`` gives any Hugging Face tool exactly the
token stream the models were trained on. A dataset whose documents have titles writes each
as ``title<sep>body``: ``<sep>`` is a special token of its tokenizer, id 2. At word level,
Chinese is cut into words before the tokenizer sees it (:mod:`lm.segmentation`), here as in
``lm prepare``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path

import numpy as np
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    pre_tokenizers,
    processors,
    trainers,
)

from lm.errors import LMError
from lm.segmentation import segment

UNK, EOS = "<unk>", "<eos>"
UNK_ID, EOS_ID = 0, 1
# Between a document's title and its body, in datasets whose documents have titles: id 2.
SEP, SEP_ID = "<sep>", 2
LEVELS = ("char", "word", "bpe")
_UNCAPPED = 2**31 - 1


def train_tokenizer(
    texts: Iterable[str] | Iterator[list[str]],
    level: str,
    vocab_size: int | None = None,
    min_freq: int = 1,
    length: int | None = None,
    titled: bool = False,
) -> Tokenizer:
    """Learn a vocabulary from training text; rarer types than the cap or ``min_freq`` → <unk>.

    ``titled``: the texts are ``title<sep>body``, and ``<sep>`` is a special token (id 2)."""
    specials = [UNK, EOS, SEP] if titled else [UNK, EOS]
    if level not in LEVELS:
        raise LMError(f"--level must be one of {', '.join(LEVELS)}, not {level!r}")
    if vocab_size is not None and vocab_size < 3:
        raise LMError(f"--vocab-size must be at least 3 (<unk>, <eos> and one token), "
                      f"not {vocab_size}")
    if min_freq < 1:
        raise LMError(f"--min-freq must be at least 1, not {min_freq}")
    cap = vocab_size or _UNCAPPED
    if level == "bpe":
        if vocab_size is None:
            raise LMError("--level bpe needs --vocab-size (the number of merges to learn)")
        tokenizer = Tokenizer(models.BPE(unk_token=UNK))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(
            vocab_size=cap, min_frequency=min_freq, special_tokens=specials
        )
    else:
        tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
        if level == "char":
            tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
            tokenizer.decoder = decoders.Fuse()
        else:
            tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        trainer = trainers.WordLevelTrainer(
            vocab_size=cap, min_frequency=min_freq, special_tokens=specials
        )
    if titled:  # the trainer learns titles and bodies apart: <sep> is never split
        texts = _without_sep(texts)
    tokenizer.train_from_iterator(texts, trainer=trainer, length=length)
    if level != "bpe":
        tokenizer = _renumbered_word_level(tokenizer, specials)
    elif titled:
        tokenizer.add_special_tokens([AddedToken(SEP, special=True)])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", special_tokens=[(EOS, EOS_ID)]
    )
    assert tokenizer.token_to_id(UNK) == UNK_ID and tokenizer.token_to_id(EOS) == EOS_ID
    assert not titled or tokenizer.token_to_id(SEP) == SEP_ID
    return tokenizer


def _without_sep(texts: Iterable[str] | Iterator[list[str]]) -> Iterator[list[str]]:
    """Training items with each ``title<sep>body`` cut into its title and its body."""
    for item in texts:
        yield [part for text in ([item] if isinstance(item, str) else item)
               for part in text.split(SEP)]


def _renumbered_word_level(tokenizer: Tokenizer, specials: list[str]) -> Tokenizer:
    """Give the special tokens the first ids (<unk> 0, <eos> 1, <sep> 2) and close gaps.

    ``WordLevelTrainer`` counts a literal ``<unk>`` in the text (PTB has thousands) as a word and
    gives it a second id that overwrites the special one; the text's ``<unk>`` *is* the unknown
    word, so both must share id 0.
    """
    by_id = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    ordered = specials + [token for token, _ in by_id if token not in specials]
    fresh = Tokenizer(models.WordLevel({t: i for i, t in enumerate(ordered)}, unk_token=UNK))
    fresh.pre_tokenizer = tokenizer.pre_tokenizer
    if tokenizer.decoder is not None:
        fresh.decoder = tokenizer.decoder
    fresh.add_special_tokens([AddedToken(token, special=True) for token in specials])
    return fresh


def title_positions(ids: np.ndarray, sep: int) -> np.ndarray:
    """True at each token of a title, its ``<sep>`` included, in a stream of
    ``title<sep>body<eos>`` documents; a document without ``<sep>`` has no title."""
    ids = np.asarray(ids)
    is_sep = (ids == sep).astype(np.int64)
    starts = np.concatenate([[0], np.flatnonzero(ids[:-1] == EOS_ID) + 1]) if ids.size else \
        np.zeros(0, dtype=np.int64)
    document = np.cumsum(np.isin(np.arange(ids.size), starts)) - 1
    before = np.cumsum(is_sep) - is_sep  # <sep>s strictly before each token
    has_sep = np.add.reduceat(is_sep, starts) > 0 if ids.size else np.zeros(0, dtype=bool)
    return (before - before[starts][document] == 0) & has_sep[document]


def title_id(tokenizer: Tokenizer) -> int | None:
    """``<sep>``'s id in a tokenizer of titled documents, else None."""
    return tokenizer.token_to_id(SEP)


def load_tokenizer(path: Path) -> Tokenizer:
    return Tokenizer.from_file(str(path))


def is_word_level(tokenizer: Tokenizer) -> bool:
    """Whether the tokenizer splits words on whitespace (``--level word``), so that Chinese
    text must be segmented before it (:func:`segmented_for`)."""
    return isinstance(tokenizer.pre_tokenizer, pre_tokenizers.WhitespaceSplit)


def segmented_for(tokenizer: Tokenizer, texts: list[str]) -> list[str]:
    """The texts as the tokenizer was trained on them: Han chunks cut into words at word
    level (:func:`lm.segmentation.segment`), unchanged at char and BPE level."""
    return [segment(t) for t in texts] if is_word_level(tokenizer) else texts


def encode_documents(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each document, each closed by <eos> (batch-encoded in Rust)."""
    texts = segmented_for(tokenizer, texts)
    return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=True)]


_SENTENCE_END = re.compile(r"[.!?。！？…]")
_WHITESPACE = re.compile(r"\s")
# Characters encoded by one ``encode_batch`` call at most: its Encodings (about 100 bytes a
# token) are the largest thing alive while a corpus is encoded.
ENCODE_GROUP_CHARS = 1 << 18


def _last(pattern: re.Pattern[str], text: str, start: int, end: int) -> int | None:
    """Index of the last match of ``pattern`` in ``text[start:end]``, or None."""
    found = None
    for match in pattern.finditer(text, start, end):
        found = match.start()
    return found


def cut_pieces(text: str, limit: int) -> Iterator[str]:
    """``text`` in pieces of at most ``limit`` characters that join back to ``text``.

    A cut goes before a whitespace character, so every level tokenizes the pieces exactly as
    the whole (word level splits on whitespace; BPE's Metaspace prepends no second ``▁`` to a
    piece that starts with one; char level isolates every character). Only a stretch of
    ``limit`` characters without whitespace is cut after its last sentence end, or else at the
    limit; at word and BPE level that one cut splits a "word" of that length.
    """
    start, n = 0, len(text)
    while n - start > limit:
        end = start + limit
        cut = text.rfind(" ", start + 1, end + 1)
        if cut < 0:
            found = _last(_WHITESPACE, text, start + 1, end + 1)
            cut = -1 if found is None else found
        if cut < 0:
            found = _last(_SENTENCE_END, text, start, end)
            cut = found + 1 if found is not None else end
        yield text[start:cut]
        start = cut
    yield text[start:]


def encode_flat(tokenizer: Tokenizer, texts: list[str], limit: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of documents as one flat uint32 array (each closed by <eos>) and their lengths.

    Documents longer than ``limit`` characters are encoded piece by piece (:func:`cut_pieces`)
    and at most :data:`ENCODE_GROUP_CHARS` characters at a time, so a single huge document
    needs memory for one group, not for all its tokens' Encodings at once.
    """
    parts: list[list[int]] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    group: list[str] = []
    owners: list[int] = []  # the piece's document, or ~document for its last piece
    size = 0
    for index, text in enumerate(texts):
        pieces = list(cut_pieces(text, limit)) if len(text) > limit else [text]
        for number, piece in enumerate(pieces):
            group.append(piece)
            owners.append(~index if number == len(pieces) - 1 else index)
            size += len(piece)
            if size >= ENCODE_GROUP_CHARS:
                _encode_group(tokenizer, group, owners, parts, lengths)
                size = 0
    _encode_group(tokenizer, group, owners, parts, lengths)
    flat = np.fromiter(chain.from_iterable(parts), dtype=np.uint32, count=int(lengths.sum()))
    return flat, lengths


def _encode_group(tokenizer: Tokenizer, group: list[str], owners: list[int],
                  parts: list[list[int]], lengths: np.ndarray) -> None:
    """Encode the pieces in ``group`` into ``parts``, <eos> after each document's last; empty
    the group."""
    # encode_batch_fast (tokenizers ≥ 0.20) skips the offsets, which are not needed here
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    for owner, encoding in zip(owners, encode(group, add_special_tokens=False), strict=True):
        parts.append(encoding.ids)
        if owner < 0:
            parts.append([EOS_ID])
            lengths[~owner] += len(encoding.ids) + 1
        else:
            lengths[owner] += len(encoding.ids)
    group.clear()
    owners.clear()


def encode_text(tokenizer: Tokenizer, text: str) -> list[int]:
    """Token ids of a fragment (a prime or style text): no closing <eos>."""
    return tokenizer.encode(segmented_for(tokenizer, [text])[0], add_special_tokens=False).ids


def decode(tokenizer: Tokenizer, ids: Iterable[int], level: str) -> str:
    """Text for ids; <unk> stays visible and <eos> ends a line."""
    pieces: list[str] = []
    run: list[int] = []
    for token_id in ids:
        if token_id in (UNK_ID, EOS_ID):
            if run:
                pieces.append(tokenizer.decode(run, skip_special_tokens=False))
                run = []
            pieces.append(UNK if token_id == UNK_ID else "\n")
        else:
            run.append(int(token_id))
    if run:
        pieces.append(tokenizer.decode(run, skip_special_tokens=False))
    joiner = " " if level == "word" else ""
    text = joiner.join(pieces).replace(" \n ", "\n").replace(" \n", "\n")
    # Chinese words were cut apart only for the tokenizer (lm.segmentation): no space between
    return _BETWEEN_HAN.sub("", text) if level == "word" else text


_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef"
_BETWEEN_HAN = re.compile(f"(?<=[{_HAN}]) (?=[{_HAN}])")


def vocabulary(tokenizer: Tokenizer) -> list[str]:
    """Tokens ordered by id."""
    vocab = tokenizer.get_vocab()
    tokens = [""] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    return tokens
