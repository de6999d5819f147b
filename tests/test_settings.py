"""One declaration per setting: the options, checks and fingerprints all come from it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import typer
from typer.testing import CliRunner

from lm.errors import LMError
from lm.settings import (
    build,
    check_settings,
    comma_ints,
    fingerprint_params,
    names,
    nested,
    resumable_names,
    setting,
    with_settings,
)


@dataclass
class Inner:
    width: int = setting(8, "How wide.", at_least=1)
    kind: str = setting("a", "Which kind.", choices=("a", "b"))
    size: int = setting(0, "Set by the program.", cli=False)


@dataclass
class Outer:
    inner: Inner = nested(Inner)
    rate: float = setting(0.5, "A rate.", valid=lambda v: 0 < v < 1, rule="in (0, 1)")
    bounds: list[int] | None = setting(None, "Bounds.", parse=comma_ints, later=True)
    steps: int | None = setting(None, "Steps.", at_least=1, resumable=True)
    fast: bool = setting(False, "Go fast.", later=True)


def _app(seen: list) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @with_settings(Outer)
    def run(name: str = typer.Argument(...), *, config: Outer) -> None:
        seen.append((name, config))

    @app.command()
    def other() -> None:  # two commands, so Typer keeps the command names
        pass

    return app


def test_every_setting_becomes_an_option_with_its_default_and_help():
    help_text = CliRunner().invoke(_app([]), ["run", "--help"], env={"COLUMNS": "200"}).output
    for flag, text in (("--width", "How wide."), ("--kind", "One of: a, b."),
                       ("--rate", "A rate."), ("--bounds", "Bounds."), ("--fast", "Go fast.")):
        assert flag in help_text and text in help_text
    assert "--no-fast" in help_text and "--size" not in help_text


def test_the_command_receives_one_checked_config():
    seen: list = []
    result = CliRunner().invoke(_app(seen), ["run", "x", "--width", "3", "--bounds", "4,9",
                                             "--fast"])
    assert result.exit_code == 0, result.output
    name, config = seen[0]
    assert name == "x" and config.inner.width == 3 and config.bounds == [4, 9] and config.fast
    assert config.inner.kind == "a" and config.rate == 0.5 and config.steps is None


@pytest.mark.parametrize("values, message", [
    ({"width": 0}, "--width must be at least 1, not 0"),
    ({"kind": "c"}, "--kind must be one of a, b, not 'c'"),
    ({"rate": 1.5}, "--rate must be in (0, 1), not 1.5"),
    ({"rate": float("nan")}, "--rate must be in (0, 1), not nan"),
    ({"steps": 0}, "--steps must be at least 1, not 0"),
])
def test_rules_give_one_line_errors_naming_the_flag(values, message):
    with pytest.raises(LMError) as caught:
        check_settings(build(Outer, values))
    assert str(caught.value) == message


def test_parse_errors_and_unknown_settings_name_the_fix():
    with pytest.raises(LMError, match=r"--bounds takes comma-separated integers, e.g. "
                                      r"2000,10000, not '4,x'"):
        build(Outer, {"bounds": "4,x"})
    with pytest.raises(LMError, match="unknown setting widht for Outer: valid ones are width, "
                                      "kind, rate, bounds, steps, fast"):
        build(Outer, {"widht": 3})
    assert names(Outer) == ["width", "kind", "rate", "bounds", "steps", "fast"]


def test_fingerprints_leave_out_later_settings_at_their_defaults():
    plain = fingerprint_params(Outer())
    assert plain == {"width": 8, "kind": "a", "rate": 0.5, "steps": None}
    changed = fingerprint_params(build(Outer, {"fast": True, "bounds": [3]}))
    assert changed == {**plain, "fast": True, "bounds": [3]}
    assert resumable_names(Outer) == {"steps"}
