"""Every new artifact version as a wandb Artifact, so wandb's lineage graph is the store's.

Off unless asked for: ``lm --wandb STAGE ...`` (for that command, and every stage of an
``lm run``), or ``LM_WANDB=1`` in the environment; ``WANDB_MODE=disabled`` turns it off
whatever else says. A stage's own wandb flag wins over both inside :func:`switched` (so
``lm train --no-wandb`` can mean no wandb at all). Runs are online when the user is logged in
to wandb and offline (local files, ``wandb sync`` later) otherwise, as ``lm train``'s are.

When the store commits a new version (:meth:`lm.artifacts.Store.create`), :func:`on_commit`
opens a short wandb run whose job type is the stage that writes that kind (``prepare``,
``train``, ``ngram``, ``compare``), declares each input version as used, logs the output and
finishes. The wandb artifact's type is the kind and its metadata holds the store's reference,
name, version, content hash and the whole manifest; its files are the version's files, added
by reference to the store (``policy="immutable"``: a store version never changes, so wandb
does not copy it before uploading). An input is the same wandb artifact as when it was logged
(same name and files, so the same digest), which is how wandb links the two runs.

Names: wandb ties an artifact name to a single type in a project, while the store keys by kind
and name (``dataset:tang`` and ``model:tang`` both exist in the Tang pipeline), so the wandb
name is the reference with its ``:`` spelt ``-``: ``dataset-tang``, ``model-tang``; the
store's own name is ``metadata["name"]``, and the alias ``lm-vN`` is the store's version.

Offline, wandb refuses ``run.use_artifact`` ("Cannot use artifact when in offline mode"): for a
new artifact object it only logs it with ``use_after_commit`` and then waits for the server.
Offline the same logging call is made without the wait, so ``wandb sync`` records the use.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lm.artifacts import KINDS, MANIFEST, WRITTEN_BY, Artifact, Store
from lm.errors import LMError

PROJECT = "lm"
_TRUE = ("1", "true", "yes", "on")
_switch: dict[str, Any] = {"cli": False, "stage": []}


def enable() -> Callable[[], None]:
    """Turn tracking on (``lm --wandb``); returns the function that restores the old value."""
    before = _switch["cli"]
    _switch["cli"] = True
    return lambda: _switch.__setitem__("cli", before)


@contextlib.contextmanager
def switched(on: bool) -> Iterator[None]:
    """Inside, a stage's own wandb flag decides (``lm train --wandb/--no-wandb``)."""
    _switch["stage"].append(on)
    try:
        yield
    finally:
        _switch["stage"].pop()


def mode() -> str:
    """online if the user is logged in to wandb, offline otherwise; ``WANDB_MODE`` wins."""
    chosen = os.environ.get("WANDB_MODE")
    if chosen:
        return chosen
    netrc = Path.home() / ".netrc"
    logged_in = bool(os.environ.get("WANDB_API_KEY")) or (
        netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"))
    return "online" if logged_in else "offline"


def enabled() -> bool:
    if os.environ.get("WANDB_MODE") == "disabled":
        return False
    if _switch["stage"]:
        return _switch["stage"][-1]
    return _switch["cli"] or os.environ.get("LM_WANDB", "").strip().lower() in _TRUE


def wandb_name(artifact: Artifact) -> str:
    return f"{artifact.kind}-{artifact.name}"


def as_wandb(artifact: Artifact):  # -> wandb.Artifact
    """The wandb Artifact for a store version: the same every time it is built."""
    import wandb

    metadata = {"ref": artifact.ref, "name": artifact.name, "version": artifact.version,
                "content_hash": artifact.content_hash, "manifest": artifact.manifest}
    logged = wandb.Artifact(wandb_name(artifact), type=artifact.kind, metadata=metadata,
                            description=f"lm {artifact.ref}")
    for name in sorted([*artifact.manifest["files"], MANIFEST]):
        logged.add_file(str(artifact.path / name), name=name, policy="immutable")
    return logged


def inputs_of(store: Store, artifact: Artifact) -> list[Artifact]:
    """The versions the manifest names, as they were when it was made."""
    found = []
    for item in artifact.manifest.get("inputs", []):
        parent = store.resolve(item["ref"], KINDS, verify=False)
        if parent.content_hash != item["content_hash"]:
            raise LMError(f"{item['ref']} changed since {artifact.ref} was made from it")
        found.append(parent)
    return found


def _use(run, used) -> None:  # noqa: ANN001 (wandb types are imported lazily)
    if run.offline:  # use_artifact's own path for a new artifact, without the server wait
        run._log_artifact(used, is_user_created=True, use_after_commit=True)
    else:
        run.use_artifact(used)


def log_version(store: Store, artifact: Artifact) -> str:
    """One wandb run (job type: the stage) that uses the inputs and logs ``artifact``."""
    import wandb

    stage = WRITTEN_BY[artifact.kind]
    inputs = inputs_of(store, artifact)
    settings = wandb.Settings(console="off", silent=True, x_disable_stats=True,
                              disable_git=True, disable_job_creation=True, save_code=False)
    folder = os.environ.get("WANDB_DIR") or str(store.root / "runs" / "wandb")
    Path(folder).mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=os.environ.get("WANDB_PROJECT", PROJECT), job_type=stage,
                     name=f"{stage} {artifact.ref}", dir=folder, mode=mode(),
                     config={"ref": artifact.ref, "params": artifact.params},
                     reinit="create_new", settings=settings)
    where = f"{'offline ' if run.offline else ''}run {Path(run.dir).parent}"
    try:
        for parent in inputs:
            _use(run, as_wandb(parent))
        run.log_artifact(as_wandb(artifact), aliases=[f"lm-v{artifact.version}"])
    finally:
        run.finish()
    return where


def on_commit(store: Store, artifact: Artifact) -> None:
    """Called by the store after each new version; never fails the stage that made it."""
    if not enabled():
        return
    try:
        where = log_version(store, artifact)
    except Exception as exc:  # noqa: BLE001 (tracking must not undo a committed stage)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        print(f"warning: {artifact.ref} was not logged to wandb ({first})", file=sys.stderr)
        return
    print(f"wandb: logged {artifact.ref} as {wandb_name(artifact)}:lm-v{artifact.version} "
          f"({where})", file=sys.stderr)
