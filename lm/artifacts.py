"""The versioned artifact store every stage reads from and writes to.

Layout: ``ROOT/<kind>/<name>/v<N>/`` holds a stage's files and ``manifest.json``. The
manifest records the kind, the inputs (reference and content hash), the parameters, the
SHA-256 of every file, the metrics, the package version and the creation time, so every
output knows where it came from (as DVC and wandb Artifacts do).

Writes are atomic: a stage writes into a hidden temporary folder beside the versions and
renames it into place under a file lock, so a crash leaves nothing that looks valid and two
processes never get the same version. Loading re-hashes the files and refuses tampering.
With wandb tracking on (``lm --wandb`` or ``LM_WANDB=1``), each new version is also logged as a
wandb Artifact whose inputs are declared as used (``lm.tracking``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from lm import __version__
from lm.errors import LMError

KINDS = ("dataset", "model", "ngram", "comparison", "mixture")
WRITTEN_BY = {"dataset": "prepare", "model": "train", "ngram": "ngram", "comparison": "compare",
              "mixture": "perplexity"}
MANIFEST = "manifest.json"
_REF = re.compile(r"^(?:(?P<kind>[a-z]+):)?(?P<name>[^@:/\\]+)(?:@(?P<version>v\d+|latest))?$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def default_root() -> Path:
    """``LM_HOME`` if set, else ``artifacts/`` in the working directory."""
    return Path(os.environ.get("LM_HOME", "artifacts"))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(kind: str, inputs: list[Artifact], params: dict[str, Any]) -> str:
    """What makes two runs of a stage the same: its kind, its inputs' content and its params."""
    payload = {
        "kind": kind,
        "inputs": [a.content_hash for a in inputs],
        "params": params,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise LMError(
            f"invalid artifact name {name!r}: use letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit)"
        )
    return name


@dataclass
class Artifact:
    """One committed version of a stage's output."""

    path: Path
    manifest: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> int:
        return int(self.manifest["version"])

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.name}@v{self.version}"

    @property
    def content_hash(self) -> str:
        return self.manifest["content_hash"]

    @property
    def params(self) -> dict[str, Any]:
        return self.manifest.get("params", {})

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest.get("metrics", {})

    def file(self, name: str) -> Path:
        return self.path / name

    def verify(self) -> None:
        """Re-hash every file; refuse a missing, truncated or altered one."""
        for name, info in self.manifest["files"].items():
            path = self.path / name
            if not path.is_file():
                raise LMError(
                    f"{self.ref} is damaged: file {name} is missing; "
                    "re-run the stage that made it"
                )
            if path.stat().st_size != info["bytes"] or sha256_file(path) != info["sha256"]:
                raise LMError(
                    f"{self.ref} is damaged: {name} does not match its recorded hash; "
                    "re-run the stage that made it"
                )


@dataclass
class PendingArtifact:
    """A version being written: files go into ``path``; ``commit`` publishes them."""

    store: Store
    kind: str
    name: str
    path: Path
    inputs: list[Artifact]
    params: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class Store:
    """Artifacts under one root folder."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        if self.root.exists() and not self.root.is_dir():
            raise LMError(f"the artifact store {self.root} is not a folder: pass --artifacts "
                          "a folder (or set LM_HOME to one)")

    # -- reading -------------------------------------------------------------------------
    def versions(self, kind: str, name: str) -> list[Artifact]:
        folder = self.root / kind / name
        found = []
        if folder.is_dir():
            for entry in folder.iterdir():
                if re.fullmatch(r"v\d+", entry.name) and (entry / MANIFEST).is_file():
                    try:
                        manifest = json.loads((entry / MANIFEST).read_text("utf-8"))
                    except (OSError, json.JSONDecodeError):
                        continue
                    found.append(Artifact(entry, manifest))
        return sorted(found, key=lambda a: a.version)

    def list(self, kind: str | None = None) -> list[Artifact]:
        kinds = [kind] if kind else [k for k in KINDS if (self.root / k).is_dir()]
        result: list[Artifact] = []
        for k in kinds:
            folder = self.root / k
            if folder.is_dir():
                for entry in sorted(folder.iterdir()):
                    if entry.is_dir() and not entry.name.startswith("."):
                        result.extend(self.versions(k, entry.name))
        return result

    def resolve(self, ref: str, kinds: tuple[str, ...] | str, verify: bool = True) -> Artifact:
        """Turn ``name``, ``name@v3``, ``name@latest`` or ``kind:name@v3`` into an artifact.

        A bare name resolves to the first of ``kinds`` that has it; an artifact of another kind
        is refused with a message saying what it is.
        """
        kinds = (kinds,) if isinstance(kinds, str) else kinds
        wanted = " or ".join(kinds)
        path = Path(ref)
        if (path / MANIFEST).is_file():
            artifact = Artifact(path, json.loads((path / MANIFEST).read_text("utf-8")))
        else:
            match = _REF.match(ref)
            if not match:
                raise LMError(
                    f"cannot read artifact reference {ref!r}: write NAME, NAME@v3, NAME@latest "
                    f"or KIND:NAME@v3"
                )
            kind, name, version = match["kind"], match["name"], match["version"]
            if kind and kind not in KINDS:
                raise LMError(f"unknown artifact kind {kind!r} in {ref!r}: kinds are "
                              f"{', '.join(KINDS)}")
            search = (kind,) if kind else kinds
            artifact = None
            for k in search:
                found = self.versions(k, name)
                if found:
                    if version in (None, "latest"):
                        artifact = found[-1]
                    else:
                        matches = [a for a in found if a.version == int(version[1:])]
                        if not matches:
                            have = ", ".join(f"v{a.version}" for a in found)
                            raise LMError(f"{k}:{name} has no version {version} (it has {have})")
                        artifact = matches[0]
                    break
            if artifact is None:
                others = [k for k in KINDS if k not in search and self.versions(k, name)]
                if others:
                    raise LMError(
                        f"{ref!r} is a {others[0]} artifact, but this command needs a {wanted}: "
                        f"pass a {wanted} name (see `lm artifacts list`)"
                    )
                raise LMError(
                    f"no {wanted} artifact named {name!r} in {self.root}: "
                    f"see `lm artifacts list`, or create it first"
                )
        if artifact.kind not in kinds:
            raise LMError(
                f"{artifact.ref} is a {artifact.kind} artifact, but this command needs a {wanted}"
            )
        if verify:
            artifact.verify()
        return artifact

    def find_cached(self, kind: str, name: str, print_: str) -> Artifact | None:
        """The newest intact version of ``kind:name`` made from the same inputs and params."""
        for artifact in reversed(self.versions(kind, name)):
            if artifact.manifest.get("fingerprint") == print_:
                try:
                    artifact.verify()
                except LMError:
                    continue
                return artifact
        return None

    # -- writing -------------------------------------------------------------------------
    @contextlib.contextmanager
    def create(
        self, kind: str, name: str, inputs: list[Artifact], params: dict[str, Any]
    ) -> Iterator[PendingArtifact]:
        """Yield a temporary folder for a new version; publish it atomically on success."""
        check_name(name)
        folder = self.root / kind / name
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        pending = PendingArtifact(self, kind, name, tmp, inputs, params)
        try:
            yield pending
            committed = self._commit(pending)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        _announce_commit(self, committed)

    def _commit(self, pending: PendingArtifact) -> Artifact:
        files = {}
        for path in sorted(p for p in pending.path.rglob("*") if p.is_file()):
            rel = path.relative_to(pending.path).as_posix()
            if rel == MANIFEST:
                continue
            files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        content = hashlib.sha256(
            json.dumps({k: v["sha256"] for k, v in files.items()}, sort_keys=True).encode()
        ).hexdigest()
        folder = pending.path.parent
        with FileLock(str(folder / ".lock")):
            existing = self.versions(pending.kind, pending.name)
            version = (existing[-1].version if existing else 0) + 1
            manifest = {
                "format": 1,
                "kind": pending.kind,
                "name": pending.name,
                "version": version,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "lm_version": __version__,
                "inputs": [{"ref": a.ref, "content_hash": a.content_hash} for a in pending.inputs],
                "params": pending.params,
                "fingerprint": fingerprint(pending.kind, pending.inputs, pending.params),
                "files": files,
                "content_hash": content,
                "metrics": pending.metrics,
                **pending.extra,
            }
            write_json(pending.path / MANIFEST, manifest)
            _fsync_dir(pending.path)
            target = folder / f"v{version}"
            os.rename(pending.path, target)
            _fsync_dir(folder)
        pending.path = target
        pending.extra["ref"] = f"{pending.kind}:{pending.name}@v{version}"
        return Artifact(target, manifest)

    def lineage(self, artifact: Artifact) -> list[tuple[int, str, str]]:
        """(depth, ref, status) for the artifact and, recursively, everything it was made from."""
        rows: list[tuple[int, str, str]] = []

        def walk(a: Artifact, depth: int) -> None:
            rows.append((depth, a.ref, a.content_hash[:12]))
            for item in a.manifest.get("inputs", []):
                try:
                    parent = self.resolve(item["ref"], KINDS, verify=False)
                except LMError:
                    rows.append((depth + 1, item["ref"], "missing"))
                    continue
                if parent.content_hash != item["content_hash"]:
                    rows.append((depth + 1, item["ref"], "changed since"))
                    continue
                walk(parent, depth + 1)

        walk(artifact, 0)
        return rows


def _announce_commit(store: Store, artifact: Artifact) -> None:
    """Trackers hear of each new version: wandb logs it when enabled (``lm.tracking``)."""
    from lm import tracking  # wandb itself is imported only when tracking is on

    tracking.on_commit(store, artifact)


def write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False, default=str)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)



def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
