"""``lm run SPEC.yaml``: chain stages as written in a pipeline spec.

A spec maps stage keys to flag values, in order::

    stages:
      prepare: {source: "chinese-poetry:tang", name: tang, level: char}
      train:   {dataset: tang, max_time: 600}
      sample:  {model: tang, num: 8}

A key is a command name, optionally with a label (``sample/greedy``) so a command can run
twice. Each stage runs exactly as the command line would, so a spec is a recorded set of
commands. ``--set train.max_time=60`` overrides a value (parsed as YAML).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from lm.errors import LMError

# The key in a stage's mapping that fills each command's positional argument.
POSITIONAL = {"prepare": "source", "train": "dataset", "perplexity": "model", "sample": "model",
              "ngram": "dataset", "compare": "refs"}


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


def stage_argv(key: str, params: dict[str, Any]) -> list[str]:
    """The command line that a stage's mapping stands for."""
    command = key.split("/", 1)[0]
    if command not in POSITIONAL:
        raise LMError(f"unknown stage {key!r}: stages are {', '.join(POSITIONAL)}")
    params = dict(params or {})
    argv = [command]
    positional = params.pop(POSITIONAL[command], None)
    if positional is None:
        raise LMError(f"stage {key!r} needs '{POSITIONAL[command]}'")
    argv += [str(p) for p in positional] if isinstance(positional, list) else [str(positional)]
    for field, value in params.items():
        flag = "--" + field.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + field.replace("_", "-"))
        elif isinstance(value, list):
            argv += [flag, ",".join(str(v) for v in value)]
        else:
            argv += [flag, str(value)]
    return argv


def run_pipeline(path: Path, overrides: list[str], invoke: Callable[[list[str]], None],
                 log: Callable[[str], None] = print) -> None:
    stages = load_spec(path, overrides)
    for key, params in stages.items():
        argv = stage_argv(key, params)
        log(f"[bold cyan]» lm {' '.join(argv)}[/bold cyan]")
        invoke(argv)
