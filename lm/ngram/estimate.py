"""Interpolated modified Kneser-Ney estimation, matching KenLM ``lmplz``.

Why mirror lmplz: its numbers are the reference the toolkit reports against, so
every step follows ``lm/builder`` (adjust_counts.cc, initial_probabilities.cc,
interpolate.cc) rather than a textbook variant.

Discounts (Chen & Goodman eq. 26), per order, from the counts-of-counts
``n_1..n_4`` of the adjusted counts of that order::

    Y = n1 / (n1 + 2 n2),   D_k = k - (k + 1) Y n_{k+1} / n_k   (k = 1, 2, 3+)

computed in float32 exactly as lmplz does. If an order has ``n_1``, ``n_2`` or
``n_3`` equal to zero, or a discount falls outside ``[0, k]`` (tiny, artificial
or character-level data), lmplz's ``--discount_fallback`` is used: the
``discount_fallback`` triple (default 0.5, 1, 1.5, lmplz's defaults) replaces
that order's discounts; with ``discount_fallback=None`` an ``NgramError`` is
raised instead (lmplz's behaviour without the flag).

Probabilities, for an n-gram ``h w`` with adjusted count ``a`` and discount
``D(a)`` (``D(0) = 0``)::

    p(w | h) = (a - D(a)) / sum_x a(h x)  +  gamma(h) * p(w | h')
    gamma(h) = (D1 N1(h) + D2 N2(h) + D3+ N3+(h)) / sum_x a(h x)

where ``h'`` drops the first word of ``h`` and ``N_i(h)`` counts the words
following ``h`` with adjusted count i (3+). ``gamma(h)`` is also the backoff
weight of ``h``. The unigram level is interpolated with a uniform distribution
over ``uniform_size`` outcomes. ``<s>`` is never predicted: it has adjusted
count 0 and unigram probability 1 (log 0), as in lmplz's ARPA output.

``uniform_size`` defaults to ``vocab_size``: every id of the vocabulary (``<unk>``
= id 0 included, whether or not it occurs in training) is one outcome, so each
next-token distribution sums to exactly 1. lmplz uses the number of distinct
training words plus one for its own ``<unk>``, which it never counts; that is
the same number whenever id 0 does not occur in training and every other
vocabulary word does. When the training text contains a literal ``<unk>``
treated as an ordinary word (PTB, WikiText-2) lmplz has one extra, never-seen
outcome; ``vocab_pad=vocab_size + 1`` (lmplz's ``--vocab_pad`` semantics:
uniform over ``max(vocab_pad, vocab_size)``) reproduces lmplz to float
precision, at the price of distributions summing to slightly less than 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .counting import NgramCounts, count_ngrams
from .errors import NgramError, validate_ids
from .external import CountingReport, count_ngrams_external
from .tables import Discounts, NgramTables

FALLBACK_DISCOUNTS: Discounts = (0.5, 1.0, 1.5)  # lmplz --discount_fallback defaults


def compute_discounts(
    counts_of_counts: np.ndarray, fallback: Discounts | None = FALLBACK_DISCOUNTS, order: int = 0
) -> tuple[Discounts, bool]:
    """Return the (D1, D2, D3+) discounts of one order and whether the fallback was used.

    ``counts_of_counts[j]`` is the number of n-grams with adjusted count j
    (j = 1..4; index 0 ignored); ``order`` only names the order in messages.
    """
    n = np.asarray(counts_of_counts, dtype=np.int64)
    problem = None
    for j in (1, 2, 3):
        if n[j] == 0:
            problem = (
                f"no {order}-grams with adjusted count {j}, "
                "so modified Kneser-Ney discounts are undefined"
            )
            break
    if problem is None:
        f32 = np.float32
        y = f32(n[1]) / f32(n[1] + 2.0 * n[2])
        amounts = []
        for j in (1, 2, 3):
            d = f32(j) - f32(j + 1) * y * f32(n[j + 1]) / f32(n[j])
            if d < 0.0 or d > j:
                problem = f"{order}-gram discount D{j}={float(d):.4g} is outside [0, {j}]"
                break
            amounts.append(float(d))
        if problem is None:
            return (amounts[0], amounts[1], amounts[2]), False
    if fallback is None:
        raise NgramError(
            f"{problem} (tiny or artificial data); "
            "pass discount_fallback=(0.5, 1.0, 1.5) or use more training data"
        )
    return (float(fallback[0]), float(fallback[1]), float(fallback[2])), True


def _log10(p: np.ndarray) -> np.ndarray:
    """log10 as float32, clipped at 0 like lmplz (rounding can push p above 1)."""
    with np.errstate(divide="ignore"):
        return np.minimum(np.log10(p), 0.0).astype(np.float32)


def interpolate(
    counts: NgramCounts, discounts: list[Discounts], uniform_size: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Turn adjusted counts into interpolated log10 probabilities and backoffs.

    Returns ``(log10_probs, log10_backoffs)``: ``log10_probs[k - 1]`` aligned
    with ``counts.keys[k - 1]``; ``log10_backoffs[k - 1]`` (k < order) gives the
    backoff of each k-gram as a context (0 when nothing follows it).
    """
    base = counts.vocab_size + 1
    bos = counts.vocab_size
    tables = [np.array([0.0, d1, d2, d3]) for d1, d2, d3 in discounts]

    a1 = counts.adjusted[0].astype(np.float64)
    d_a1 = tables[0][np.minimum(counts.adjusted[0], 3)]
    total = a1.sum()
    gamma_uni = d_a1.sum() / total
    p_lower = (a1 - d_a1) / total + gamma_uni / uniform_size
    p_lower[bos] = 1.0
    log10_probs = [_log10(p_lower)]
    log10_backoffs: list[np.ndarray] = []

    for k in range(2, counts.order + 1):
        keys = counts.keys[k - 1]
        n_context = counts.keys[k - 2].size
        adj = counts.adjusted[k - 1]
        parent = keys // base
        a = adj.astype(np.float64)
        d_a = tables[k - 1][np.minimum(adj, 3)]
        denominator = np.bincount(parent, weights=a, minlength=n_context)
        numerator = np.bincount(parent, weights=d_a, minlength=n_context)
        has_ext = denominator > 0
        gamma = np.ones(n_context)
        gamma[has_ext] = numerator[has_ext] / denominator[has_ext]
        p = (a - d_a) / denominator[parent] + gamma[parent] * p_lower[counts.suffix[k - 1]]
        log10_backoffs.append(_log10(gamma))
        log10_probs.append(_log10(p))
        p_lower = p
    return log10_probs, log10_backoffs


def _check_order(order: object) -> int:
    if not isinstance(order, (int, np.integer)) or isinstance(order, bool) or order < 1:
        raise NgramError(f"order must be an integer >= 1 (got {order!r}); pass order=1 or more")
    return int(order)


def _check_arguments(discount_fallback: Discounts | None, vocab_pad: object) -> None:
    """The checks both estimation paths make after the order and the data."""
    if discount_fallback is not None and (
        len(discount_fallback) != 3
        or not all(0.0 <= float(d) <= j for j, d in enumerate(discount_fallback, start=1))
    ):
        raise NgramError(
            "discount_fallback must be (D1, D2, D3+) with 0 <= Dj <= j, "
            f"got {discount_fallback!r}; "
            "pass e.g. (0.5, 1.0, 1.5)"
        )
    if not isinstance(vocab_pad, (int, np.integer)) or vocab_pad < 0:
        raise NgramError(f"vocab_pad must be an integer >= 0, got {vocab_pad!r}; pass 0 for none")


def _tables(counts: NgramCounts, eos_id: int, discount_fallback: Discounts | None,
            vocab_pad: int) -> NgramTables:
    """Discounts and interpolation of counted n-grams, as ``NgramTables``."""
    discounts: list[Discounts] = []
    fallback_orders: list[int] = []
    for k in range(1, counts.order + 1):
        d, used = compute_discounts(counts.count_stats[k - 1], discount_fallback, k)
        discounts.append(d)
        if used:
            fallback_orders.append(k)
    vocab_size = counts.vocab_size
    log10_probs, log10_backoffs = interpolate(counts, discounts, max(vocab_pad, vocab_size))
    return NgramTables(
        order=counts.order,
        vocab_size=vocab_size,
        eos_id=eos_id,
        keys=counts.keys[1:],
        log10_probs=log10_probs,
        log10_backoffs=log10_backoffs,
        discounts=tuple(discounts),
        fallback_orders=tuple(fallback_orders),
    )


def estimate_tables(
    train_ids: np.ndarray,
    vocab_size: int,
    order: int,
    eos_id: int = 1,
    discount_fallback: Discounts | None = FALLBACK_DISCOUNTS,
    *,
    vocab_pad: int = 0,
) -> NgramTables:
    """Estimate the tables of an interpolated modified Kneser-Ney model like ``lmplz -o order``.

    ``train_ids`` is the token stream, every sentence closed by ``eos_id`` (a
    trailing unclosed sentence is closed for you). No pruning.
    ``discount_fallback`` replaces the discounts of any order where the closed
    form is undefined or out of range (lmplz ``--discount_fallback``); ``None``
    raises ``NgramError`` there instead. ``vocab_pad``: see the module docstring
    (0 = uniform over exactly ``vocab_size`` ids).
    """
    ids = validate_ids(train_ids, vocab_size, eos_id)
    order = _check_order(order)
    if ids.size == 0:
        raise NgramError("training data is empty; pass a non-empty array of token ids")
    _check_arguments(discount_fallback, vocab_pad)
    if ids[-1] != eos_id:
        ids = np.append(ids, eos_id)
    counts = count_ngrams(ids, vocab_size, order, eos_id)
    return _tables(counts, eos_id, discount_fallback, vocab_pad)


def estimate_tables_external(
    train_ids: np.ndarray,
    vocab_size: int,
    order: int,
    eos_id: int = 1,
    discount_fallback: Discounts | None = FALLBACK_DISCOUNTS,
    *,
    vocab_pad: int = 0,
    memory: int,
    folder: Path,
) -> tuple[NgramTables, CountingReport]:
    """``estimate_tables`` counting out of core: blocks under ``memory`` bytes, runs spilled
    to ``folder`` (created, then removed) and merged. The same tables, bit for bit.

    ``train_ids`` may be a memory-mapped split: it is read block by block, never whole.
    """
    if np.ndim(train_ids) != 1:
        validate_ids(train_ids, vocab_size, eos_id)  # raises the shape message
    validate_ids(np.empty(0, dtype=np.int64), vocab_size, eos_id)  # the vocabulary and eos
    order = _check_order(order)
    if np.shape(train_ids)[0] == 0:
        raise NgramError("training data is empty; pass a non-empty array of token ids")
    _check_arguments(discount_fallback, vocab_pad)
    if not isinstance(memory, (int, np.integer)) or memory < 1:
        raise NgramError(f"memory must be a number of bytes >= 1, got {memory!r}; pass e.g. 2**31")
    counts, report = count_ngrams_external(train_ids, vocab_size, order, eos_id, int(memory),
                                           Path(folder))
    return _tables(counts, eos_id, discount_fallback, vocab_pad), report
