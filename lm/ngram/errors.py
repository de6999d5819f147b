"""Exception type and input checks for the n-gram subpackage.

``NgramError`` is both the toolkit's ``LMError`` (which the CLI turns into a
one-line message) and a ``ValueError`` (what argument checking conventionally
raises), so callers can catch it either way or specifically.
"""

from __future__ import annotations

import numpy as np

from ..errors import LMError


class NgramError(LMError, ValueError):
    """Bad input to n-gram estimation, scoring or ARPA import.

    The message is one line: what is wrong, then how to fix it.
    """


def validate_ids(ids: np.ndarray, vocab_size: int, eos_id: int) -> np.ndarray:
    """Check a token-id stream and return it as int64 (shared by estimation and scoring)."""
    if not isinstance(vocab_size, (int, np.integer)) or vocab_size < 2:
        raise NgramError(
            f"vocab_size must be an integer >= 2 (<unk> and eos), got {vocab_size!r}; "
            "pass the tokenizer's vocabulary size"
        )
    if not 0 <= eos_id < vocab_size:
        raise NgramError(
            f"eos_id={eos_id} is outside [0, {vocab_size}); pass the tokenizer's eos id"
        )
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise NgramError(
            f"token ids must be a 1-D array, got shape {arr.shape}; flatten the split first"
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise NgramError(
            f"token ids must be integers, got dtype {arr.dtype}; convert with .astype(np.int64)"
        )
    arr = arr.astype(np.int64, copy=False)
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= vocab_size:
            bad = lo if lo < 0 else hi
            raise NgramError(
                f"token id {bad} is outside [0, {vocab_size}); "
                "map unknown words to <unk> (id 0) or raise vocab_size"
            )
    return arr
