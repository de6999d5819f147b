"""Form-constrained decoding: which tokens may come next, so that every output has the form.

:class:`FormConstraint` is a small automaton over the tokens of one poem. Its state says which
verse line is being written and how far; :meth:`FormConstraint.mask` turns states into a
boolean ``[B, V]`` mask of the allowed next tokens. Sampling and beam search keep one state per
row, set every disallowed log-probability to −∞ and draw as usual, so the form holds at any
temperature: content tokens only inside a line, the line end (，/。, a newline, or ``<eos>``
by layout) forced after the line's length, ``<eos>`` only after the last line, ``<unk>`` never.

An acrostic fixes the first token of each line. Rhyme is a constraint too: the last character
of every line closed by 。 must have a known rhyme group (:mod:`lm.generation.rhyme`), and once
the first such line is written, the same group as it; with ``level_tone`` it must also be
level (平). If a restriction would leave nothing to choose (a vocabulary without such a
character), it is dropped for that slot rather than stopping the poem.

A ``rule`` (:class:`lm.generation.metre.ToneRule`: the regulated tone patterns, Pingshui
rhymes, a ci tune's rhymes) restricts content slots further; it keeps its own state in
``State.rule`` and never loosens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch

from lm.errors import LMError
from lm.generation.forms import Form
from lm.generation.vocab import TokenClasses
from lm.tokenization import EOS_ID

if TYPE_CHECKING:
    from lm.generation.metre import ToneRule

CONTENT, BREAK, DONE = 0, 1, 2


class State(NamedTuple):
    """Where a row stands in its poem."""

    line: int  # verse lines finished
    count: int  # content tokens so far in the current line
    phase: int  # CONTENT (inside a line), BREAK (after a 。: newline or end), DONE
    width: int | None  # length of the first line, which uniform forms repeat
    rhyme: str | None  # rhyme group set by the first line closed by 。
    last: int  # the previous token
    rule: frozenset | None = None  # the rule's state (patterns still possible)


START = State(0, 0, CONTENT, None, None, EOS_ID)


class FormConstraint:
    """Masks for one form, optionally acrostic, rhymed and level-toned at rhyme positions."""

    def __init__(self, classes: TokenClasses, form: Form, acrostic: list[int] | None = None,
                 rhyme: bool = False, level_tone: bool = False,
                 rule: ToneRule | None = None) -> None:
        classes.check_formable("--form")
        self.classes = classes
        self.form = form
        self.layout = classes.layout
        self.acrostic = acrostic
        self.rhyme = rhyme
        self.level_tone = level_tone
        if (rhyme or level_tone) and self.layout != "poem":
            raise LMError("--rhyme and --level-tone need a char-level Chinese model whose "
                          "vocabulary has ， and 。: sample this one without them")
        if self.layout == "eos" and len(form.counts) > 1:
            raise LMError(f"--form {form.spec} leaves the number of lines open, which a "
                          "vocabulary without a newline cannot mark: give each line's length")
        if acrostic is not None and len(acrostic) < form.max_lines:
            raise LMError(f"--acrostic has {len(acrostic)} heads for up to {form.max_lines} "
                          "lines: give one per line")
        self._masks: dict[tuple, torch.Tensor] = {}
        self._groups: list[str | None] = []
        if rhyme or level_tone:
            self._rhyme_table()
        self.rule = rule
        self.start = START
        if rule is not None:
            self._check_rule(rule)

    def _check_rule(self, rule: ToneRule) -> None:
        """A rule needs the poem layout and the form's marks; acrostic heads narrow it."""
        if self.layout != "poem":
            raise LMError(f"{rule.what} needs a char-level Chinese model whose vocabulary has "
                          "， and 。: sample this one without it")
        marks = [m for m in self.form.all_marks if m not in self.classes.index]
        if marks:
            raise LMError(f"--form {self.form.spec}: the model's vocabulary lacks "
                          f"{''.join(marks)!r}: use a model of that corpus")
        begin = rule.start
        if self.acrostic is not None:
            lengths = self.form.lengths or (None,) * len(self.acrostic)
            begin = rule.with_heads(self.acrostic, lengths, self.classes.tokens)
        self.start = START._replace(rule=begin)

    # -- the automaton -------------------------------------------------------------------
    def initial(self, prefix: list[int], what: str = "--prime") -> State:
        """The state after a prefix (the prime), which must itself fit the form."""
        state = self.start
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
        if state.phase == BREAK:
            if token == EOS_ID:
                return state._replace(phase=DONE, last=token)
            if token == c.newline:
                return state._replace(count=0, phase=CONTENT, last=token)
            state = state._replace(count=0, phase=CONTENT)  # no newline token
        if bool(c.content[token]):
            return state._replace(count=state.count + 1, last=token,
                                  rule=self._advance(state, token))
        width = state.count if state.width is None else state.width
        ended = state._replace(line=state.line + 1, count=0, width=width, last=token)
        if self.layout == "poem":
            if self.form.breaks(state.line):
                rhyme = state.rhyme
                if self.rhyme and rhyme is None:
                    rhyme = self._groups[state.last]
                return ended._replace(phase=BREAK, rhyme=rhyme)
            return ended
        if token == EOS_ID and (self.layout == "lines" or ended.line >= self.form.max_lines):
            return ended._replace(phase=DONE)
        return ended

    def _advance(self, state: State, token: int) -> frozenset | None:
        if self.rule is None:
            return state.rule
        return self.rule.advance(state.rule, state.line, state.count,
                                 self._length(state), token)

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
            found = self._masks[key] = self._build(key)
        return found

    def _key(self, state: State) -> tuple:
        """What the allowed set depends on: (content restriction, line-end tokens)."""
        form, c = self.form, self.classes
        if state.phase == DONE:
            return (None, (EOS_ID,))
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
        if state.count == 0 and self.acrostic is not None:
            return ("head", self.acrostic[state.line])
        if self.rule is not None:
            key = self.rule.key(state.rule, state.line, state.count, self._length(state))
            return ("content",) if key is None else ("rule", key)
        rhyme_slot = (len(lengths) == 1 and state.count == max(lengths) - 1
                      and self.layout == "poem" and self.form.ends_with_period(state.line))
        if rhyme_slot and (self.rhyme or self.level_tone):
            return ("rhyme", state.rhyme if self.rhyme else None)
        return ("content",)

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

    def _build(self, key: tuple) -> torch.Tensor:
        content, ends = key
        allowed = torch.zeros(self.classes.vocab_size, dtype=torch.bool)
        if content is not None:
            if content[0] == "head":
                allowed[content[1]] = True
            elif content[0] == "rhyme":
                allowed |= self._rhyme_mask(content[1])
            elif content[0] == "rule":
                allowed |= self.rule.mask(content[1]) & self.classes.content
            else:
                allowed |= self.classes.content
        for token in ends:
            allowed[token] = True
        return allowed

    # -- rhyme ---------------------------------------------------------------------------
    def _rhyme_table(self) -> None:
        from lm.generation.rhyme import reading

        c = self.classes
        self._groups = [None] * c.vocab_size
        self._level = torch.zeros(c.vocab_size, dtype=torch.bool)
        for token_id in torch.nonzero(c.content).view(-1).tolist():
            found = reading(c.tokens[token_id])
            if found is not None:
                self._groups[token_id] = found[0]
                self._level[token_id] = found[1] in (1, 2)
        self._known = torch.tensor([g is not None for g in self._groups], dtype=torch.bool)

    def _rhyme_mask(self, group: str | None) -> torch.Tensor:
        """Rhyme-position candidates, loosening a restriction that would leave none."""
        candidates = self.classes.content & self._known
        if group is not None:
            candidates = candidates & torch.tensor([g == group for g in self._groups])
        if self.level_tone and bool((candidates & self._level).any()):
            candidates = candidates & self._level
        return candidates if bool(candidates.any()) else self.classes.content

    @property
    def max_tokens(self) -> int:
        return self.form.max_tokens()
