"""Decoding: models seen one token at a time (``steppers``), the logits processors, and the two
loops that read a :class:`~lm.generation.decoding.plan.Plan` (``sampling``, ``beam``).

Nothing here knows a verse rule by name: a form reaches the loops as the constraint its
:class:`~lm.generation.decoding.processors.FormMask` holds.
"""
