"""Interpolated modified Kneser-Ney n-gram language models, exact to KenLM lmplz.

Why a numpy implementation: the toolkit needs a strong count-based baseline
whose numbers match the reference tool (KenLM ``lmplz``) without making KenLM a
runtime dependency. Modules:

* ``counting``  - n-gram counting and lmplz's adjusted counts (numpy sorts);
* ``estimate``  - discounts, interpolation and ``estimate()``;
* ``model``     - ``NgramModel``: scoring, next-token distributions, save/load;
* ``arpa``      - ARPA export/import;
* ``errors``    - ``NgramError`` and input checks.

Token conventions: ids ``0..vocab_size-1``; id 0 (``<unk>``) is an ordinary word;
``eos_id`` closes every sentence and is predicted; ``<s>`` is the pseudo-id
``vocab_size``, used only as context.
"""

from .errors import NgramError
from .estimate import compute_discounts, estimate
from .model import NgramModel

__all__ = ["NgramError", "NgramModel", "compute_discounts", "estimate"]
