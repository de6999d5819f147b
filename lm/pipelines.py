"""``lm run SPEC.yaml``: chain stages as written in a pipeline spec.

A spec maps stage keys to flag values, in order::

    stages:
      prepare: {source: "chinese-poetry:tang", name: tang, level: char}
      train:   {dataset: tang, max_time: 600}
      sample:  {model: tang, num: 8}

A key is a command name, optionally with a label (``sample/greedy``) so a command can run
twice. Each stage runs exactly as the command line would, so a spec is a recorded set of
commands. ``--set train.max_time=60`` overrides a value (parsed as YAML). A stage's keys are
its command's parameters (read from the command itself, never listed here): the positional
argument by its name, every option by its name; any other key is an error naming the valid
ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from rich.markup import escape

from lm.errors import LMError


def load_spec(path: Path, overrides: list[str]) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        raise LMError(f"no such pipeline spec: {path}: see pipelines/ for examples")
    try:
        spec = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as exc:
        raise LMError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}): fix the spec") \
            from None
    stages = spec.get("stages") if isinstance(spec, dict) else None
    if not isinstance(stages, dict) or not stages:
        raise LMError(f"{path} has no 'stages' mapping: see pipelines/tang.yaml")
    for item in overrides:
        key, eq, value = item.partition("=")
        stage, dot, field = key.partition(".")
        if not eq or not dot or not field:
            raise LMError(f"--set {item!r} must look like stage.key=value, e.g. train.max_time=60")
        if stage not in stages:
            raise LMError(f"--set {item!r}: no stage {stage!r} (stages: {', '.join(stages)})")
        stages[stage] = dict(stages[stage] or {})
        stages[stage][field.replace("-", "_")] = yaml.safe_load(value)
    return stages


def stage_argv(key: str, params: dict[str, Any], commands: Mapping[str, Any]
               ) -> list[str]:
    """The command line that a stage's mapping stands for."""
    name = key.split("/", 1)[0]
    if name not in commands:
        raise LMError(f"unknown stage {key!r}: stages are {', '.join(commands)}")
    command = commands[name]
    # Click's parameter classes (Typer vendors its own Click), told apart by their kind.
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    options = {p.name: p for p in command.params
               if p.param_type_name == "option" and p.name != "help"}
    params = dict(params or {})
    unknown = [k for k in params if k not in options and k not in {a.name for a in arguments}]
    if unknown:
        raise LMError(f"stage {key!r} has no key {unknown[0]!r}: valid keys are "
                      f"{', '.join([a.name for a in arguments] + list(options))}")
    argv = [name]
    for argument in arguments:
        value = params.pop(argument.name, None)
        if value is None:
            raise LMError(f"stage {key!r} needs '{argument.name}'")
        argv += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    for field, value in params.items():
        argv += _option_argv(options[field], value)
    return argv


def _option_argv(option: Any, value: Any) -> list[str]:
    flag = option.opts[0]
    if value is None:
        return []
    if option.is_flag:
        if value:
            return [flag]
        return [option.secondary_opts[0]] if option.secondary_opts else []
    if isinstance(value, list):
        return [flag, ",".join(str(v) for v in value)]
    return [flag, str(value)]


def run_pipeline(path: Path, overrides: list[str], commands: Mapping[str, Any],
                 invoke: Callable[[list[str]], None], log: Callable[[str], None] = print
                 ) -> None:
    """Check every stage of the spec first (a typo fails before any work), then run them."""
    stages = load_spec(path, overrides)
    argvs = [stage_argv(key, params, commands) for key, params in stages.items()]
    for argv in argvs:
        log(f"[bold cyan]» lm {escape(' '.join(argv))}[/bold cyan]")
        invoke(argv)
