"""wandb Artifacts: each stage's output logged offline, read back from wandb's own run files.

The runs are read with ``wandb leet inspect --json`` (wandb's reader of its ``.wandb``
transaction logs), never through lm; file digests are recomputed here with hashlib. No test
touches the network (offline mode, and a base URL that refuses connections) or the user's
wandb settings (every wandb folder is under tmp_path).
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests_support import make_poem_corpus

from lm import tracking
from lm.artifacts import MANIFEST, Store

SPEC = """
stages:
  prepare: {source: poems.txt, name: p, level: char, doc_sep: blank}
  train: {dataset: p, max_steps: 3, emb_size: 8, hidden_size: 8, bptt: 16, batch_size: 4,
          eval_tokens: 100, progress: false}
  ngram: {dataset: p, order: 2}
  compare: {refs: [p, p-2gram]}
"""


@pytest.fixture
def offline(monkeypatch, tmp_path) -> Path:
    """wandb offline, every folder it uses under tmp_path; returns the runs' folder."""
    folders = {name: tmp_path / "wandb-home" / name for name in ("dir", "config", "cache",
                                                                 "data", "artifacts")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(folders["dir"]))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(folders["config"]))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(folders["cache"]))
    monkeypatch.setenv("WANDB_DATA_DIR", str(folders["data"]))
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(folders["artifacts"]))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing answers there
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("LM_WANDB", raising=False)
    make_poem_corpus(tmp_path / "poems.txt", poems=60)
    return folders["dir"]


def read_runs(folder: Path) -> list[dict]:
    """Each run's job type and artifact records, as wandb's own reader prints them."""
    runs = []
    for log in sorted(folder.glob("wandb/offline-run-*/run-*.wandb")):
        printed = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json",
                                  str(log)], capture_output=True, text=True, check=True).stdout
        records = [json.loads(line) for line in printed.splitlines() if line.strip()]
        run = next(r["run"] for r in records if r["type"] == "run")
        artifacts = [r["artifact"] for r in records if r["type"] == "artifact"]
        for artifact in artifacts:
            artifact["metadata"] = json.loads(artifact["metadata"])
        runs.append({"job_type": run["job_type"],
                     "used": [a for a in artifacts if a.get("use_after_commit")],
                     "logged": [a for a in artifacts if not a.get("use_after_commit")]})
    return runs


def md5_base64(path: Path) -> str:
    return base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode()


def shown_lineage(cli, ref: str) -> list[tuple[int, str]]:
    """(depth, reference) rows of ``lm artifacts show``'s lineage."""
    printed = cli("artifacts", "show", ref).out
    rows = printed[printed.index("lineage:\n") + len("lineage:\n"):].splitlines()
    return [((len(row) - len(row.lstrip(" "))) // 2 - 1, row.split()[0]) for row in rows if row]


def test_pipeline_lineage_in_wandb_equals_the_store(cli, offline, tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    result = cli("--wandb", "run", tmp_path / "spec.yaml")
    assert result.code == 0, result.err
    store = Store(tmp_path / "artifacts")
    runs = read_runs(offline)
    assert sorted(r["job_type"] for r in runs) == ["compare", "ngram", "prepare", "train"]
    produced = {}
    for run in runs:
        (logged,) = run["logged"]
        ref = logged["metadata"]["ref"]
        stored = store.resolve(ref, logged["type"])
        assert ref == stored.ref and logged["type"] == stored.kind
        assert logged["name"] == f"{stored.kind}-{stored.name}"
        assert logged["metadata"]["name"] == stored.name
        assert logged["metadata"]["content_hash"] == stored.content_hash
        assert logged["metadata"]["manifest"] == stored.manifest
        assert f"lm-v{stored.version}" in logged["aliases"]
        files = {c["path"]: c["digest"] for c in logged["manifest"]["contents"]}
        assert files == {name: md5_base64(stored.path / name)
                         for name in [*stored.manifest["files"], MANIFEST]}
        assert run["job_type"] == {"dataset": "prepare", "model": "train", "ngram": "ngram",
                                   "comparison": "compare"}[stored.kind]
        used = sorted(u["metadata"]["ref"] for u in run["used"])
        assert used == sorted(i["ref"] for i in stored.manifest["inputs"])
        produced[ref] = (logged["name"], logged["digest"], run["used"])
    for _, _, used in produced.values():  # a use names the very version a run logged
        for u in used:
            assert (u["name"], u["digest"]) == produced[u["metadata"]["ref"]][:2]

    def walk(ref: str, depth: int) -> list[tuple[int, str]]:
        rows = [(depth, ref)]
        for u in produced[ref][2]:
            rows += walk(u["metadata"]["ref"], depth + 1)
        return rows

    (final,) = [ref for ref in produced if ref.startswith("comparison:")]
    lineage = shown_lineage(cli, final)
    assert [ref for _, ref in lineage] == [
        "comparison:p-vs-p-2gram@v1", "model:p@v1", "dataset:p@v1", "ngram:p-2gram@v1",
        "dataset:p@v1"]
    assert walk(final, 0) == lineage


def test_off_unless_asked(cli, offline, tmp_path, monkeypatch):
    prepare = ["prepare", tmp_path / "poems.txt", "--level", "char", "--doc-sep", "blank"]
    assert cli(*prepare, "--name", "a").code == 0
    assert read_runs(offline) == []
    monkeypatch.setenv("LM_WANDB", "1")
    with tracking.switched(False):  # a stage's own --no-wandb wins over LM_WANDB
        assert cli(*prepare, "--name", "b").code == 0
    assert read_runs(offline) == []
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert cli(*prepare, "--name", "c").code == 0
    assert read_runs(offline) == []
    monkeypatch.setenv("WANDB_MODE", "offline")
    result = cli(*prepare, "--name", "d")
    assert "wandb: logged dataset:d@v1 as dataset-d:lm-v1" in result.err
    assert [r["logged"][0]["metadata"]["ref"] for r in read_runs(offline)] == ["dataset:d@v1"]


def test_a_tracking_failure_keeps_the_stage(cli, offline, tmp_path, monkeypatch):
    def broken(*_args):
        raise RuntimeError("no space left for wandb\nmore")

    monkeypatch.setattr(tracking, "log_version", broken)
    result = cli("--wandb", "prepare", tmp_path / "poems.txt", "--name", "p", "--level", "char",
                 "--doc-sep", "blank")
    assert result.code == 0
    assert "warning: dataset:p@v1 was not logged to wandb (no space left for wandb)" in result.err
    assert "wrote dataset:p@v1" in result.out
    assert not tracking.enabled()  # --wandb held for that command only


def test_train_no_wandb_logs_no_artifact(cli, offline, tmp_path):
    """``lm --wandb train --no-wandb``: the stage's own flag wins, nothing reaches wandb."""
    assert cli("prepare", tmp_path / "poems.txt", "--name", "p", "--level", "char",
               "--doc-sep", "blank").code == 0
    small = ["--max-steps", "2", "--emb-size", "8", "--hidden-size", "8", "--bptt", "16",
             "--batch-size", "4", "--eval-tokens", "100", "--no-progress"]
    assert cli("--wandb", "train", "p", "--no-wandb", *small).code == 0
    assert read_runs(offline) == []
    result = cli("--wandb", "train", "p", "--name", "q", "--no-wandb", "--wandb", *small)
    assert "wandb: logged model:q@v1 as model-q:lm-v1" in result.err
