"""Resumable training state without pickle: tensors in safetensors, the rest in JSON.

A checkpoint is a folder written beside the previous one and swapped in with renames, so a
kill at any moment leaves either the old or the new checkpoint whole. It holds the weights,
the optimizer's tensors, the carried hidden state, the RNG states and a JSON record of the
step, the scheduler and the history: everything needed to continue bit for bit.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lm.errors import LMError
from lm.models.state import RecurrentState
from lm.training.state import TrainState

STATE = "state.json"


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for index, slots in state["state"].items():
        for key, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "plain": plain}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, slot = key.split(".", 1)
        state.setdefault(int(index), {})[slot] = value
    for index, slots in meta["plain"].items():
        state.setdefault(int(index), {}).update(slots)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    hidden: RecurrentState,
    state: TrainState,
    extra: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write a complete checkpoint to ``folder`` atomically.

    ``extra`` holds any further tensors of the run (the running average of the weights under
    NT-ASGD); ``load_extra`` reads them back.
    """
    tmp = folder.with_name(folder.name + ".tmp")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(weights, str(tmp / "model.safetensors"))  # each cloned: tied weights stored apart
    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    save_file(
        {**{f"hidden.{i}": h.detach().cpu().contiguous() for i, h in enumerate(hidden.parts)},
         **{f"rng.{k}": v for k, v in rng.items()}},
        str(tmp / "runtime.safetensors"),
    )
    if extra:
        save_file({k: v.detach().cpu().contiguous() for k, v in extra.items()},
                  str(tmp / "extra.safetensors"))
    with open(tmp / STATE, "w") as handle:
        json.dump({**state.to_json(), "optimizer": opt_meta}, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.rename(folder, old)
    os.rename(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(folder: Path) -> Path | None:
    """The intact checkpoint, also when a kill fell between the two renames."""
    for candidate in (folder, folder.with_name(folder.name + ".old")):
        if (candidate / STATE).is_file():
            return candidate
    return None


def load_checkpoint(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
) -> tuple[TrainState, RecurrentState]:
    """Restore model, optimizer and RNG; return the run's state and the hidden state."""
    try:
        record = json.loads((folder / STATE).read_text())
        weights = load_file(str(folder / "model.safetensors"), device=str(device))
        opt_tensors = load_file(str(folder / "optimizer.safetensors"), device=str(device))
        runtime = load_file(str(folder / "runtime.safetensors"))
    except (OSError, ValueError, SafetensorError) as exc:  # JSONDecodeError is a ValueError
        raise LMError(f"the checkpoint in {folder} is damaged ({exc}): "
                      "start again without --resume") from None
    model.load_state_dict(weights, strict=True)
    _restore_optimizer(optimizer, opt_tensors, record.pop("optimizer"))
    torch.set_rng_state(runtime["rng.torch"])
    if "rng.cuda" in runtime and torch.cuda.is_available():
        torch.cuda.set_rng_state(runtime["rng.cuda"])
    keys = sorted((k for k in runtime if k.startswith("hidden.")), key=lambda k: int(k[7:]))
    hidden = RecurrentState(tuple(runtime[k].to(device) for k in keys))
    return TrainState.from_json(record), hidden


def saved_fingerprint(folder: Path) -> str | None:
    """The fingerprint of the run a checkpoint belongs to (None if unreadable)."""
    try:
        return json.loads((folder / STATE).read_text()).get("fingerprint")
    except (OSError, ValueError):
        return None


def load_extra(folder: Path, device: torch.device) -> dict[str, torch.Tensor]:
    """The extra tensors saved with a checkpoint (empty if there were none)."""
    path = folder / "extra.safetensors"
    return load_file(str(path), device=str(device)) if path.is_file() else {}
