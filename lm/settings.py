"""Each setting declared once: a dataclass field carries its default, its help and its rule.

A stage's configuration is a dataclass whose fields are made with :func:`setting`. From those
declarations alone come the stage's command-line options (:func:`with_settings`), the keys a
pipeline stage accepts (they are the options), the checks with their one-line errors
(:func:`check_settings`) and the parameters that fingerprint an artifact
(:func:`fingerprint_params`), as KenLM's ``lmplz`` binds each option straight into its config
struct. A field whose default is another such dataclass is nested: its settings are flags of
the same command (``--hidden-size`` fills ``TrainConfig.model.hidden_size``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import re
import typing
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from typing import Any

from lm.errors import LMError

Choices = Iterable[str] | Callable[[], Iterable[str]]

# How a message names a setting: "flag" on the command line (--max-tokens), "field" in the
# JSON API (max_tokens). The server sets it for each request it handles.
SPELLING: ContextVar[str] = ContextVar("lm_spelling", default="flag")


@contextlib.contextmanager
def spelled_as_fields() -> Iterator[None]:
    """Within this block, errors name settings as JSON fields (the API's spelling)."""
    token = SPELLING.set("field")
    try:
        yield
    finally:
        SPELLING.reset(token)


def named(name: str, flag: str | None = None) -> str:
    """A setting as the user wrote it: ``--max-tokens`` on the command line, ``max_tokens`` in
    JSON. ``flag``: the option's own spelling when it is not ``--`` + the name."""
    if SPELLING.get() == "field":
        return name
    return flag or "--" + name.replace("_", "-")


def setting(default: Any = MISSING, help: str = "", *, factory: Callable[[], Any] | None = None,
            flag: str | None = None, at_least: float | None = None, above: float | None = None,
            at_most: float | None = None, below: float | None = None, pattern: str | None = None,
            valid: Callable[[Any], bool] | None = None, rule: str = "",
            choices: Choices | None = None, parse: Callable[[str], Any] | None = None,
            cli: bool = True, later: bool = False, was: Any = MISSING,
            resumable: bool = False) -> Any:
    """A dataclass field that is also a command-line option.

    ``at_least``/``above``/``at_most``/``below`` (bounds), ``pattern`` (a regular expression
    the whole text matches), ``choices`` and ``valid`` (a function) with ``rule`` (its words)
    are checked by :func:`check_settings` (``None`` always passes: it means "not set"). All but
    ``valid`` are declarative, so an API schema carries them too
    (:mod:`lm.serve.schemas`). ``parse`` turns the option's text into the
    value (the option is then a string). ``cli=False``: not an option (set by the program).
    ``later``: added after the first release, so left out of the fingerprint while at its
    default and earlier artifacts are still found; ``was``: the default it had then, when that
    changed (at that value it is left out too, so a new default does not orphan old
    artifacts). ``resumable``: may change when a run is
    resumed (how long it runs, where, how fast), unlike what is learnt.
    """
    meta = {"help": help, "flag": flag, "at_least": at_least, "above": above,
            "at_most": at_most, "below": below, "pattern": pattern, "valid": valid, "rule": rule,
            "choices": choices, "parse": parse, "cli": cli, "later": later, "was": was,
            "resumable": resumable}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def nested(cls: type) -> Any:
    """A field holding another settings dataclass, whose settings join this one's."""
    return field(default_factory=cls, metadata={"nested": True})


def flag_of(f: Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _choices(f: Field) -> list[str] | None:
    choices = f.metadata.get("choices")
    if choices is None:
        return None
    return list(choices() if callable(choices) else choices)


def walk(config: Any) -> Iterator[tuple[Any, Field]]:
    """(owner, field) for every declared setting of a config, nested ones included, in order."""
    for f in fields(config):
        if f.metadata.get("nested"):
            yield from walk(getattr(config, f.name))
        elif "cli" in f.metadata:
            yield config, f


def declared(cls: type) -> Iterator[tuple[Field, Any]]:
    """(field, resolved type) for every command-line setting of a config class."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if f.metadata.get("nested"):
            yield from declared(hints[f.name])
        elif f.metadata.get("cli", True):
            yield f, hints[f.name]


def check_settings(config: Any) -> None:
    """Apply every declared rule; the first broken one is a one-line error naming the flag."""
    for owner, f in walk(config):
        value = getattr(owner, f.name)
        if value is not None:
            check_value(f, value)
    for rule in getattr(type(config), "BETWEEN", ()):
        rule.check(config)


BOUNDS = (("at_least", "at least", lambda v, b: v >= b), ("above", "more than", lambda v, b: v > b),
          ("at_most", "at most", lambda v, b: v <= b), ("below", "less than", lambda v, b: v < b))


def check_value(f: Field, value: Any) -> None:
    """One setting's own rules: bounds, pattern, choices and ``valid``."""
    meta, flag = f.metadata, named(f.name, f.metadata.get("flag"))
    for key, words, holds in BOUNDS:
        bound = meta.get(key)
        if bound is not None and (_is_nan(value) or not holds(value, bound)):
            raise LMError(f"{flag} must be {meta['rule'] or f'{words} {bound}'}, not {value}")
    pattern = meta.get("pattern")
    if pattern is not None and not re.fullmatch(pattern, str(value)):
        raise LMError(f"{flag} must be {meta['rule']}, not {value!r}")
    choices = _choices(f)
    if choices is not None and value not in choices:
        raise LMError(f"{flag} must be one of {', '.join(choices)}, not {value!r}")
    valid = meta.get("valid")
    if valid is not None and (_is_nan(value) or not valid(value)):
        raise LMError(f"{flag} must be {meta['rule']}, not {value}")
    if isinstance(value, float) and not math.isfinite(value):
        raise LMError(f"{flag} must be a finite number, not {value}")


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def flat(config: Any) -> dict[str, Any]:
    """Every setting's value by name, nested settings lifted to the top."""
    return {f.name: getattr(owner, f.name) for owner, f in walk(config)
            if f.metadata.get("cli", True)}


def fingerprint_params(config: Any) -> dict[str, Any]:
    """The settings that identify what a run makes (``later`` ones only when changed)."""
    fields = [f for f, _ in declared(type(config))]
    unmarked = {f.name: [f.default, f.metadata.get("was", MISSING)] for f in fields
                if f.metadata.get("later")}
    return {k: v for k, v in flat(config).items() if k not in unmarked or v not in unmarked[k]}


def resumable_names(cls: type) -> set[str]:
    return {f.name for f, _ in declared(cls) if f.metadata.get("resumable")}


def names(cls: type) -> list[str]:
    """The command-line settings of a config class, by field name, in declaration order."""
    return [f.name for f, _ in declared(cls)]


def build(cls: type, values: dict[str, Any]) -> Any:
    """A config of ``cls`` from flat setting values (missing ones keep their defaults)."""
    unknown = set(values) - set(names(cls))
    if unknown:
        raise LMError(f"unknown setting {', '.join(sorted(unknown))} for {cls.__name__}: "
                      f"valid ones are {', '.join(names(cls))}")
    return _build(cls, values)


def _build(cls: type, values: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        if f.metadata.get("nested"):
            kwargs[f.name] = _build(hints[f.name], values)
        elif f.name in values and f.metadata.get("cli", True):
            kwargs[f.name] = _parse(f, values[f.name])
    return cls(**kwargs)


def _parse(f: Field, value: Any) -> Any:
    parse = f.metadata.get("parse")
    if parse is None or not isinstance(value, str):
        return value
    try:
        return parse(value)
    except ValueError as exc:
        raise LMError(f"{flag_of(f)} takes {exc}, not {value!r}") from None


def _option(f: Field, kind: Any) -> inspect.Parameter:
    import typer

    meta = f.metadata
    default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
    help_text = meta.get("help", "")
    choices = _choices(f)
    if choices and "one of" not in help_text:
        help_text = f"{help_text} One of: {', '.join(choices)}.".strip()
    if meta.get("parse"):
        kind = str | None
        default = None if default is None else ",".join(map(str, default))
    names = [flag_of(f)] if meta.get("flag") else []
    if kind is bool and not names:
        names = [f"{flag_of(f)}/--no-{flag_of(f)[2:]}"]
    option = typer.Option(default, *names, help=help_text)
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                             annotation=kind)


def with_settings(cls: type, into: str = "config",
                  check: bool = True) -> Callable[[Callable], Callable]:
    """Give a Typer command one option per setting of ``cls``; it receives ``into=cls(...)``.

    The command's own parameters (its argument, output flags) come first, then the settings
    in declaration order. Values given on the command line are parsed with each field's
    ``parse`` and, unless ``check=False`` (the command checks them itself, once), checked
    with the config's ``check`` (or :func:`check_settings`) before the command runs.
    """
    if not is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    specs = list(declared(cls))

    def wrap(func: Callable) -> Callable:
        own = [p for p in inspect.signature(func, eval_str=True).parameters.values()
               if p.name != into]
        taken = {p.name for p in own}
        clash = taken & {f.name for f, _ in specs}
        if clash:
            raise TypeError(f"{func.__name__} declares settings of {cls.__name__}: {clash}")
        generated = [_option(f, kind) for f, kind in specs]

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            values = {f.name: kwargs.pop(f.name) for f, _ in specs if f.name in kwargs}
            config = _build(cls, values)
            if check:
                own = getattr(config, "check", None)
                (own or functools.partial(check_settings, config))()
            return func(**kwargs, **{into: config})

        parameters = own + generated
        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        del command.__wrapped__  # type: ignore[attr-defined]
        return command

    return wrap


def comma_ints(text: str) -> list[int]:
    """``2000,10000`` → ``[2000, 10000]`` (a ``parse`` for list settings)."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError("comma-separated integers, e.g. 2000,10000") from None


def comma_floats(text: str) -> tuple[float, ...]:
    """``0.9,0.05,0.05`` → ``(0.9, 0.05, 0.05)`` (a ``parse`` for list settings)."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError("comma-separated numbers, e.g. 0.9,0.05,0.05") from None


def unit_or_auto(value: str) -> bool:
    """A mixture weight: ``auto`` or a number in [0, 1] (``--weight`` of perplexity and sample)."""
    if value == "auto":
        return True
    try:
        return 0 <= float(value) <= 1
    except ValueError:
        return False


# ------------------------------------------------------------------ rules between settings
@dataclass(frozen=True)
class Cond:
    """A condition on one setting's value, and the JSON Schemas of the values for which it
    holds and of those for which it does not (both spelled out: no ``not``, which schema-based
    fuzzers cannot draw from)."""

    holds: Callable[[Any], bool]
    schema: dict[str, Any]
    complement: dict[str, Any] | None = None


TRUE = Cond(lambda v: v is True, {"const": True}, {"const": False})  # a switch that is on
GIVEN = Cond(lambda v: v is not None, {"not": {"type": "null"}}, {"type": "null"})
LEFT_OUT = Cond(lambda v: v is None, {"type": "null"}, {"not": {"type": "null"}})


def more_than(bound: int) -> Cond:
    """An integer setting above ``bound`` (its default is at most that)."""
    return Cond(lambda v: v is not None and v > bound, {"minimum": bound + 1},
                {"maximum": bound})


def one_of(values: Iterable[Any]) -> Cond:
    """The setting is one of these values (``null`` for one left out)."""
    allowed = list(values)
    return Cond(lambda v: v in allowed, {"enum": allowed})


def matching(regex: str, otherwise: str | None = None) -> Cond:
    """A text that the regular expression matches whole; ``otherwise``: a regular expression
    for every other text the setting takes (its complement, for the schema)."""
    complement = None
    if otherwise is not None:  # null, or a text that the other expression matches
        complement = {"type": ["string", "null"], "pattern": f"^(?:{otherwise})$"}
    return Cond(lambda v: isinstance(v, str) and re.fullmatch(regex, v) is not None,
                {"type": "string", "pattern": f"^(?:{regex})$"}, complement)


@dataclass(frozen=True)
class Between:
    """A rule between two settings: when ``when`` holds of the first, ``then`` must hold of
    the second. ``message`` builds the one-line error at the moment it is raised, so that it
    names the settings as the user spelled them (:func:`named`)."""

    first: str
    when: Cond
    second: str
    then: Cond
    message: Callable[[Any], str]
    unless: str | None = None  # a third setting that, given, does instead of ``then``

    def check(self, config: Any) -> None:
        if self.unless is not None and getattr(config, self.unless) is not None:
            return
        if self.when.holds(getattr(config, self.first)) and \
                not self.then.holds(getattr(config, self.second)):
            raise LMError(self.message(config))

    def clauses(self, defaults: dict[str, Any], caps: dict[str, int]) -> list[dict[str, Any]]:
        """The rule in JSON Schema: the first does not meet ``when``, or the second meets
        ``then``. The second must then be given outright when its default fails ``then`` (the
        schema sees the body, not defaults); a first left out is its default, which never
        meets ``when``."""
        then: dict[str, Any] = {"properties": {self.second: self.then.schema}}
        if not self.then.holds(defaults.get(self.second)):
            then["required"] = [self.second]
        branches = [{"properties": {self.first: self.when.complement}}, then]
        if self.unless is not None:
            branches.append({"properties": {self.unless: {"type": "string"}},
                             "required": [self.unless]})
        return [{"anyOf": branches}]
