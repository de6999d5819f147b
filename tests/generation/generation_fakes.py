"""Tiny models for the generation tests: vocabularies and steppers whose answers are known."""

from __future__ import annotations

import math

import torch

from lm.generation.verse.vocab import TokenClasses

# <unk>, <eos>, the corpus' punctuation, a stray mark, then 25 characters of known rhymes:
# 山間天年 寒, 花家 麻, 流樓秋 尤, 風東中 庚, 人春雲 文, the rest mixed.
POEM_TOKENS = ["<unk>", "<eos>", "，", "。", "\n", "、"] + list(
    "春夏秋冬山水花月風雨江天人日雲白青松間年家流樓東中")
BAD = [0, 1, 2, 3, 4, 5]  # everything a poem must not hold where the loud model puts it
WORD_TOKENS = ["<unk>", "<eos>", ",", "the", "cat", "sat", "on", "a", "mat", "dog", "ran"]


def poem_classes() -> TokenClasses:
    return TokenClasses.from_tokens(POEM_TOKENS, "char")


def text_of(ids: list[int], tokens: list[str] = POEM_TOKENS, joiner: str = "") -> str:
    """Ids as text, <eos> as a line break (like ``lm.tokenization.decode``)."""
    return joiner.join("\n" if i == 1 else tokens[i] for i in ids).replace(" \n ", "\n")


class LoudStepper:
    """Random scores with a huge bonus on <unk>, <eos> and punctuation, whatever the context.

    Unconstrained, almost every sample is a stray mark or empty: only a constraint makes it
    write a poem.
    """

    def __init__(self, vocab_size: int, loud: list[int], seed: int = 0,
                 bonus: float = 8.0) -> None:
        self.vocab_size = vocab_size
        self.generator = torch.Generator().manual_seed(seed)
        self.bias = torch.zeros(vocab_size)
        self.bias[loud] = bonus
        self.contexts: list[list[int]] = []

    def _next(self, rows: int) -> torch.Tensor:
        noise = torch.randn(rows, self.vocab_size, generator=self.generator) * 2
        return torch.log_softmax(noise + self.bias, dim=-1)

    def start(self, contexts: list[list[int]]) -> torch.Tensor:
        self.contexts = [list(c) for c in contexts]
        return self._next(len(contexts))

    def advance(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._next(len(tokens))

    def select(self, rows: torch.Tensor) -> None:
        pass


class TableStepper:
    """A bigram table: the next-token distribution depends on the previous token only."""

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table.log()
        self.vocab_size = table.shape[1]
        self.last = torch.zeros(0, dtype=torch.long)

    def start(self, contexts: list[list[int]]) -> torch.Tensor:
        self.last = torch.tensor([c[-1] for c in contexts])
        return self.table[self.last]

    def advance(self, tokens: torch.Tensor) -> torch.Tensor:
        self.last = tokens.view(-1).long()
        return self.table[self.last]

    def select(self, rows: torch.Tensor) -> None:
        self.last = self.last[rows]


def random_table(vocab_size: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    table = torch.rand(vocab_size, vocab_size, generator=generator) + 0.05
    return table / table.sum(dim=1, keepdim=True)


class Tracing:
    """Wraps a stepper and keeps, for each sample, the log-probabilities [V] of every step.

    ``seen[i][k]`` is what sample ``i``'s k-th token was chosen from (rows leave the batch as
    samples end, so the row of a sample changes; the sample's index does not).
    """

    def __init__(self, inner) -> None:
        self.inner = inner
        self.vocab_size = inner.vocab_size
        self.rows: list[int] = []
        self.seen: dict[int, list[torch.Tensor]] = {}

    def _keep(self, logprobs: torch.Tensor) -> torch.Tensor:
        for position, sample in enumerate(self.rows):
            self.seen.setdefault(sample, []).append(logprobs[position].detach().clone())
        return logprobs

    def start(self, contexts: list[list[int]]) -> torch.Tensor:
        self.rows, self.seen = list(range(len(contexts))), {}
        return self._keep(self.inner.start(contexts))

    def advance(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._keep(self.inner.advance(tokens))

    def select(self, rows: torch.Tensor) -> None:
        self.rows = [self.rows[r] for r in rows.tolist()]
        self.inner.select(rows)

    def steps(self, outputs: list[list[int]]) -> list[list[tuple[torch.Tensor, int]]]:
        """Each sample's (log-probabilities, token chosen from them), in order."""
        return [list(zip(self.seen[i], ids, strict=False)) for i, ids in enumerate(outputs)]


def sampling_allows(logits: torch.Tensor, token: int, top_k: int | None = None,
                    top_p: float | None = None, min_p: float | None = None,
                    tol: float = 1e-4) -> bool:
    """Whether top-k, then top-p, then min-p, as their definitions read, leave ``token`` a
    candidate of ``logits`` [V] (already divided by the temperature).

    Worked in float64 from the definitions, not the code: top-k keeps the tokens fewer than k
    others beat; top-p then keeps a token while the mass of the ones above it (renormalised
    over what top-k left) is below p; min-p keeps a probability at least min_p times the top
    one. ``tol`` forgives float32 rounding at the edges.
    """
    s = logits.double()
    kept = torch.isfinite(s)
    if top_k is not None:
        kept &= torch.tensor([int((s > value).sum()) < top_k for value in s])
    if not bool(kept[token]):
        return False
    if top_p is not None:
        probs = torch.softmax(s.masked_fill(~kept, -math.inf), dim=-1)
        if float(probs[s > s[token]].sum()) >= top_p + tol:
            return False
    top = float(s[kept].max())
    return min_p is None or float(s[token]) - top >= math.log(min_p) - tol * (1 + abs(top))


class RecordingStepper(TableStepper):
    """A bigram table that keeps its start contexts, counts its steps and logs batch sizes
    and row selections, so tests can check what a decoder asked of the model."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__(table)
        self.contexts: list[list[int]] = []
        self.advances, self.batches, self.selects = 0, [], []

    def start(self, contexts):
        self.contexts = [list(c) for c in contexts]
        return super().start(contexts)

    def advance(self, tokens):
        self.advances += 1
        self.batches.append(len(tokens))
        return super().advance(tokens)

    def select(self, rows):
        self.selects.append(rows.tolist())
        super().select(rows)


def make_plan(prime=(), request=None, *, style=None, processors=None, **settings):
    """The plan a request (``lm sample``'s defaults, with ``settings``) makes for a prime, as
    the decoder makes it; ``processors`` replace the shaping ones the request asks for."""
    import dataclasses

    from lm.generation.decoding.plan import plan_of
    from lm.generation.decoding.processors import form_of
    from lm.generation.request import SampleRequest

    request = dataclasses.replace(request or SampleRequest(), **settings)
    request.check()
    constraint = form_of(processors) if processors is not None else None
    plan = plan_of(request, list(prime), list(style or ()), constraint)
    if processors is not None:
        plan = dataclasses.replace(plan, shaping=tuple(processors))
    return plan


def beam_plan(prime=(), request=None, **settings):
    """:func:`make_plan` for beam search: a 4-wide beam for the one best text by default."""
    from lm.generation.request import SampleRequest

    return make_plan(prime, request or SampleRequest(beam=4, num=1), **settings)


def acrostic_slots(heads, flag="--acrostic"):
    """An acrostic's heads as the fixed slots of a form constraint: line i begins with head i."""
    if heads is None:
        return None
    return {(line, 0): (head, flag) for line, head in enumerate(heads)}


def modern_rhyme(classes, form, rhyme=False, level_tone=False):
    """The slot rules of ``--rhyme``/``--level-tone`` under ``--rhyme-book modern``."""
    from lm.generation.verse.rhyme import ModernRhyme

    return [ModernRhyme(classes, form, rhyme, level_tone)]


def verse_of(classes, corpus=None, **settings):
    """The verse the registered rules compose for a request of ``settings`` on a vocabulary."""
    from lm.generation.request import SampleRequest
    from lm.generation.verse.lexicon import Corpus, Lexicon
    from lm.generation.verse.registry import compose

    request = SampleRequest(**settings)
    request.check()
    return compose(request, Lexicon(classes, corpus or Corpus()), [])
