"""Interpolated modified Kneser-Ney n-gram language models, exact to KenLM lmplz.

Why a numpy implementation: the toolkit needs a strong count-based baseline
whose numbers match the reference tool (KenLM ``lmplz``) without making KenLM a
runtime dependency. Modules, with dependencies one way as in KenLM (estimation
and query meet only in the shared tables)::

    counting/external -> estimate --> tables <-- arpa <-- model

* ``tables``    - ``NgramTables``: keys, log10 probs and backoffs, save/load;
  the sentence-start and key-lookup conventions both sides share;
* ``counting``  - n-gram counting and lmplz's adjusted counts (numpy sorts);
* ``external``  - the same counts out of core, in blocks under a memory budget (lmplz ``-S``),
  with ``spill`` (disk columns, the k-way merge of sorted runs);
* ``estimate``  - discounts, interpolation and ``estimate_tables()``;
* ``model``     - ``NgramModel``: the tables plus scoring and next-token distributions;
* ``arpa``      - ARPA export/import of tables and the ARPA spelling of tokens;
* ``errors``    - ``NgramError`` and input checks;
* ``stage``/``command`` - the ``lm ngram`` artifact stage and its command line.

Token conventions: ids ``0..vocab_size-1``; id 0 (``<unk>``) is an ordinary word;
``eos_id`` closes every sentence and is predicted; ``<s>`` is the pseudo-id
``vocab_size``, used only as context.
"""

from __future__ import annotations

import numpy as np

from .errors import NgramError
from .estimate import FALLBACK_DISCOUNTS, compute_discounts, estimate_tables
from .model import NgramModel
from .tables import Discounts

__all__ = ["NgramError", "NgramModel", "compute_discounts", "estimate"]


def estimate(train_ids: np.ndarray, vocab_size: int, order: int, eos_id: int = 1,
             discount_fallback: Discounts | None = FALLBACK_DISCOUNTS, *,
             vocab_pad: int = 0) -> NgramModel:
    """Estimate a model like ``lmplz -o order``: ``estimate_tables`` (see there), ready to query."""
    return NgramModel.from_tables(estimate_tables(
        train_ids, vocab_size, order, eos_id, discount_fallback, vocab_pad=vocab_pad))
