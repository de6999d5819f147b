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

import functools
import inspect
import math
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import MISSING, Field, field, fields, is_dataclass
from typing import Any

from lm.errors import LMError

Choices = Iterable[str] | Callable[[], Iterable[str]]


def setting(default: Any = MISSING, help: str = "", *, factory: Callable[[], Any] | None = None,
            flag: str | None = None, at_least: float | None = None,
            valid: Callable[[Any], bool] | None = None, rule: str = "",
            choices: Choices | None = None, parse: Callable[[str], Any] | None = None,
            cli: bool = True, later: bool = False, was: Any = MISSING,
            resumable: bool = False) -> Any:
    """A dataclass field that is also a command-line option.

    ``at_least``/``choices``/``valid`` with ``rule`` are checked by :func:`check_settings`
    (``None`` always passes: it means "not set"). ``parse`` turns the option's text into the
    value (the option is then a string). ``cli=False``: not an option (set by the program).
    ``later``: added after the first release, so left out of the fingerprint while at its
    default and earlier artifacts are still found; ``was``: the default it had then, when that
    changed (at that value it is left out too, so a new default does not orphan old
    artifacts). ``resumable``: may change when a run is
    resumed (how long it runs, where, how fast), unlike what is learnt.
    """
    meta = {"help": help, "flag": flag, "at_least": at_least, "valid": valid, "rule": rule,
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
        if value is None:
            continue
        meta, flag = f.metadata, flag_of(f)
        if meta.get("at_least") is not None and value < meta["at_least"]:
            raise LMError(f"{flag} must be at least {meta['at_least']}, not {value}")
        choices = _choices(f)
        if choices is not None and value not in choices:
            raise LMError(f"{flag} must be one of {', '.join(choices)}, not {value!r}")
        valid = meta.get("valid")
        if valid is not None and (_is_nan(value) or not valid(value)):
            raise LMError(f"{flag} must be {meta['rule']}, not {value}")


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


def with_settings(cls: type, into: str = "config") -> Callable[[Callable], Callable]:
    """Give a Typer command one option per setting of ``cls``; it receives ``into=cls(...)``.

    The command's own parameters (its argument, output flags) come first, then the settings
    in declaration order. Values given on the command line are parsed with each field's
    ``parse`` and checked with :func:`check_settings` before the command runs.
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
            check = getattr(config, "check", None)
            (check or functools.partial(check_settings, config))()
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
