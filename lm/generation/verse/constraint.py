"""Form-constrained decoding: which tokens may come next, so that every output has the form.

:class:`FormConstraint` is a small automaton over the tokens of one poem. Its state says which
verse line is being written and how far; :meth:`FormConstraint.mask` turns states into a
boolean ``[B, V]`` mask of the allowed next tokens. Sampling and beam search keep one state per
row, set every disallowed log-probability to −∞ and draw as usual, so the form holds at any
temperature: content tokens only inside a line, the line end (，/。, a newline, or ``<eos>``
by layout) forced after the line's length, ``<eos>`` only after the last line, ``<unk>`` never.

Two things restrict content slots further, both given by the verse rules
(:mod:`lm.generation.verse.registry`):

* fixed slots — ``(line, position) → token``, e.g. an acrostic's heads: only that token;
  ``variants`` add fixed slots of their own, one set per row (the places each sample's
  keywords take), and a row's state says which set is its own;
* slot rules (:class:`SlotRule`: rhymes, regulated tones, a ci tune's rhymes) — each keeps its
  own state in ``State.rules`` and names, per slot, a key whose mask the content tokens are
  intersected with. At build time every rule is shown the fixed slots, so that it keeps only
  what agrees with them (or refuses them in one line naming the place).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import NamedTuple, Protocol

import torch

from lm.errors import LMError
from lm.generation.verse.forms import Form
from lm.generation.verse.vocab import TokenClasses
from lm.tokenization import EOS_ID

CONTENT, BREAK, DONE, TITLE = 0, 1, 2, 3
MAX_TITLE = 16  # tokens of a title the model writes itself

Fixed = Mapping[tuple[int, int], tuple[int, str]]  # (line, position) → (token, flag)


class SlotRule(Protocol):
    """A restriction of content slots that keeps its own state (one per row)."""

    start: Hashable
    what: str  # the flag that asked for it, for errors

    def key(self, state: Hashable, line: int, pos: int, length: int | None) -> Hashable | None:
        """What slot (line, pos) allows in this state (None: any content token)."""

    def mask(self, key: Hashable) -> torch.Tensor:
        """The tokens a key allows, bool [V]."""

    def advance(self, state: Hashable, line: int, pos: int, length: int | None,
                token: int) -> Hashable:
        """The state after ``token`` fills the slot."""

    def fix(self, slots: Sequence[tuple[int, int, int | None, int, str]]) -> Hashable:
        """The start state given tokens fixed in advance: (line, pos, length, token, flag)."""


class State(NamedTuple):
    """Where a row stands in its poem."""

    line: int  # verse lines finished
    count: int  # content tokens so far in the current line
    phase: int  # CONTENT (inside a line), BREAK (after a 。: newline or end), DONE, or TITLE
    # (writing the poem's own title, until <sep>; ``count`` counts its tokens)
    width: int | None  # length of the first line, which uniform forms repeat
    rules: tuple = ()  # each slot rule's state, in order
    variant: int = 0  # which set of the constraint's fixed slots is this row's


START = State(0, 0, CONTENT, None)  # a poem not begun, under a constraint with no slot rule


class FormConstraint:
    """Masks for one form, with fixed slots and slot rules."""

    def __init__(self, classes: TokenClasses, form: Form, fixed: Fixed | None = None,
                 rules: Sequence[SlotRule] = (), variants: Sequence[Fixed] = (),
                 title: bool = False) -> None:
        classes.check_formable("--form")
        self.classes = classes
        self.form = form
        self.layout = classes.layout
        self.fixed = dict(fixed or {})
        self.rules = tuple(rules)
        if self.layout == "eos" and len(form.counts) > 1:
            raise LMError(f"--form {form.spec} leaves the number of lines open, which a "
                          "vocabulary without a newline cannot mark: give each line's length")
        self._masks: dict[tuple, torch.Tensor] = {}
        self.title = title and classes.sep is not None  # the model writes a title first
        self.variants = [{**self.fixed, **extra} for extra in variants] or [self.fixed]
        self.starts = tuple(self._start(i) for i in range(len(self.variants)))
        self.start = self.starts[0]

    def _start(self, variant: int) -> State:
        slots = sorted((line, pos, self._slot_length(line), token, what)
                       for (line, pos), (token, what) in self.variants[variant].items())
        return START._replace(rules=tuple(rule.fix(slots) for rule in self.rules),
                              variant=variant, phase=TITLE if self.title else CONTENT)

    def _slot_length(self, line: int) -> int | None:
        lengths = self.form.lengths
        return lengths[line] if lengths is not None and line < len(lengths) else None

    # -- the automaton -------------------------------------------------------------------
    def initial(self, prefix: list[int], what: str = "--prime", variant: int = 0) -> State:
        """The state after a prefix (the prime), which must itself fit the form."""
        state = self.starts[variant]
        for position, token in enumerate(prefix):
            if not bool(self.allowed(state)[token]):
                raise LMError(f"{what} does not fit the form ({self.form.spec}): "
                              f"{self.classes.tokens[token]!r} cannot stand at position "
                              f"{position + 1}: shorten or change it")
            state = self.step(state, token)
        return state

    def done(self, state: State) -> bool:
        return state.phase == DONE

    def step(self, state: State, token: int) -> State:
        """The state after an allowed token."""
        c = self.classes
        if state.phase == DONE:
            return state
        if state.phase == TITLE:
            if token == c.sep:
                return state._replace(phase=CONTENT, count=0)
            return state._replace(count=state.count + 1)
        if state.phase == BREAK:
            if token == EOS_ID:
                return state._replace(phase=DONE)
            if token == c.newline:
                return state._replace(count=0, phase=CONTENT)
            state = state._replace(count=0, phase=CONTENT)  # no newline token
        if bool(c.content[token]):
            return state._replace(count=state.count + 1, rules=self._advance(state, token))
        width = state.count if state.width is None else state.width
        ended = state._replace(line=state.line + 1, count=0, width=width)
        if self.layout == "poem":
            return ended._replace(phase=BREAK) if self.form.breaks(state.line) else ended
        if token == EOS_ID and (self.layout == "lines" or ended.line >= self.form.max_lines):
            return ended._replace(phase=DONE)
        return ended

    def _advance(self, state: State, token: int) -> tuple:
        length = self._length(state)
        return tuple(rule.advance(s, state.line, state.count, length, token)
                     for rule, s in zip(self.rules, state.rules, strict=True))

    def _length(self, state: State) -> int | None:
        lengths = self.form.allowed_lengths(state.line, state.width)
        return next(iter(lengths)) if len(lengths) == 1 else None

    # -- masks ---------------------------------------------------------------------------
    def mask(self, states: list[State]) -> torch.Tensor:
        """Allowed next tokens, bool ``[B, V]``."""
        return torch.stack([self.allowed(s) for s in states])

    def allowed(self, state: State) -> torch.Tensor:
        key = self._key(state)
        found = self._masks.get(key)
        if found is None:
            found = self._masks[key] = self._build(key, state)
        return found

    def _key(self, state: State) -> tuple:
        """What the allowed set depends on: (content restriction, line-end tokens)."""
        form, c = self.form, self.classes
        if state.phase == DONE:
            return (None, (EOS_ID,))
        if state.phase == TITLE:
            return (("content",) if state.count < MAX_TITLE else None, (c.sep,))
        if state.phase == BREAK:
            ends = ((EOS_ID,) if state.line in form.counts else ()) + \
                ((c.newline,) if c.newline is not None and state.line < form.max_lines else ())
            first = None
            if c.newline is None and state.line < form.max_lines:
                first = self._content_key(state._replace(count=0, phase=CONTENT))
            return (first, ends)
        return (self._content_key(state), self._ends(state))

    def _content_key(self, state: State) -> tuple | None:
        lengths = self.form.allowed_lengths(state.line, state.width)
        if not lengths or state.count >= max(lengths):
            return None
        fixed = self.variants[state.variant].get((state.line, state.count))
        if fixed is not None:
            return ("fixed", fixed[0])
        length = self._length(state)
        keys = tuple(rule.key(s, state.line, state.count, length)
                     for rule, s in zip(self.rules, state.rules, strict=True))
        if all(k is None for k in keys):
            return ("content",)
        return ("rules", keys)

    def _ends(self, state: State) -> tuple[int, ...]:
        form, c = self.form, self.classes
        if state.count == 0 or state.count not in form.allowed_lengths(state.line, state.width):
            return ()
        if self.layout == "poem":
            return (c.index[form.mark(state.line)],)
        if self.layout == "eos":
            return (EOS_ID,)
        more = (c.newline,) if state.line + 1 < form.max_lines else ()
        return more + ((EOS_ID,) if state.line + 1 in form.counts else ())

    def _build(self, key: tuple, state: State) -> torch.Tensor:
        content, ends = key
        allowed = torch.zeros(self.classes.vocab_size, dtype=torch.bool)
        if content is not None:
            if content[0] == "fixed":
                allowed[content[1]] = True
            elif content[0] == "rules":
                allowed |= self._rules_mask(content[1], state)
            else:
                allowed |= self.classes.content
        for token in ends:
            allowed[token] = True
        return allowed

    def _rules_mask(self, keys: tuple, state: State) -> torch.Tensor:
        """Content tokens every restricting rule allows; none left is a one-line error."""
        allowed = self.classes.content.clone()
        for rule, key in zip(self.rules, keys, strict=True):
            if key is not None:
                allowed &= rule.mask(key)
        if not bool(allowed.any()):
            asked = " and ".join(dict.fromkeys(r.what for r, k in zip(self.rules, keys,
                                                                      strict=True) if k))
            raise LMError(f"{asked} leave no character for line {state.line + 1}, position "
                          f"{state.count + 1}: drop one of them")
        return allowed

    @property
    def max_tokens(self) -> int:
        return self.form.max_tokens() + (MAX_TITLE + 1 if self.title else 0)
