"""Train and use a Hugging Face ``tokenizers`` tokenizer at char, word or BPE level.

Ids 0 and 1 are always ``<unk>`` and ``<eos>``. The post-processor appends ``<eos>`` to every
encoded document, so the saved ``tokenizer.json`` gives any Hugging Face tool exactly the
token stream the models were trained on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

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

UNK, EOS = "<unk>", "<eos>"
UNK_ID, EOS_ID = 0, 1
LEVELS = ("char", "word", "bpe")
_UNCAPPED = 2**31 - 1


def train_tokenizer(
    texts: Iterable[str] | Iterator[list[str]],
    level: str,
    vocab_size: int | None = None,
    min_freq: int = 1,
    length: int | None = None,
) -> Tokenizer:
    """Learn a vocabulary from training text; rarer types than the cap or ``min_freq`` → <unk>."""
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
            vocab_size=cap, min_frequency=min_freq, special_tokens=[UNK, EOS]
        )
    else:
        tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
        if level == "char":
            tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
            tokenizer.decoder = decoders.Fuse()
        else:
            tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        trainer = trainers.WordLevelTrainer(
            vocab_size=cap, min_frequency=min_freq, special_tokens=[UNK, EOS]
        )
    tokenizer.train_from_iterator(texts, trainer=trainer, length=length)
    if level != "bpe":
        tokenizer = _renumbered_word_level(tokenizer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", special_tokens=[(EOS, EOS_ID)]
    )
    assert tokenizer.token_to_id(UNK) == UNK_ID and tokenizer.token_to_id(EOS) == EOS_ID
    return tokenizer


def _renumbered_word_level(tokenizer: Tokenizer) -> Tokenizer:
    """Give <unk>/<eos> ids 0/1 and close gaps.

    ``WordLevelTrainer`` counts a literal ``<unk>`` in the text (PTB has thousands) as a word and
    gives it a second id that overwrites the special one; the text's ``<unk>`` *is* the unknown
    word, so both must share id 0.
    """
    by_id = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    ordered = [UNK, EOS] + [token for token, _ in by_id if token not in (UNK, EOS)]
    fresh = Tokenizer(models.WordLevel({t: i for i, t in enumerate(ordered)}, unk_token=UNK))
    fresh.pre_tokenizer = tokenizer.pre_tokenizer
    if tokenizer.decoder is not None:
        fresh.decoder = tokenizer.decoder
    fresh.add_special_tokens([AddedToken(UNK, special=True), AddedToken(EOS, special=True)])
    return fresh


def load_tokenizer(path: Path) -> Tokenizer:
    return Tokenizer.from_file(str(path))


def encode_documents(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each document, each closed by <eos> (batch-encoded in Rust)."""
    return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=True)]


def encode_text(tokenizer: Tokenizer, text: str) -> list[int]:
    """Token ids of a fragment (a prime or style text): no closing <eos>."""
    return tokenizer.encode(text, add_special_tokens=False).ids


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
    return joiner.join(pieces).replace(" \n ", "\n").replace(" \n", "\n")


def vocabulary(tokenizer: Tokenizer) -> list[str]:
    """Tokens ordered by id."""
    vocab = tokenizer.get_vocab()
    tokens = [""] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    return tokens
