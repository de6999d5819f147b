import json
import multiprocessing as mp

import pytest

from lm.artifacts import Store
from lm.errors import LMError


def _write(store: Store, name: str, text: str, params: dict | None = None, inputs=()):
    with store.create("dataset", name, list(inputs), params or {"text": text}) as pending:
        (pending.path / "data.txt").write_text(text)
        pending.metrics = {"n": len(text)}
    return store.resolve(pending.extra["ref"], "dataset")


def test_versions_and_references(tmp_path):
    store = Store(tmp_path / "a")
    v1 = _write(store, "brown", "one")
    v2 = _write(store, "brown", "two")
    assert (v1.version, v2.version) == (1, 2)
    assert store.resolve("brown", "dataset").version == 2
    assert store.resolve("brown@latest", "dataset").version == 2
    assert store.resolve("brown@v1", "dataset").file("data.txt").read_text() == "one"
    assert store.resolve("dataset:brown@v1", ("model", "dataset")).version == 1
    manifest = json.loads((v2.path / "manifest.json").read_text())
    assert manifest["files"]["data.txt"]["bytes"] == 3
    assert manifest["metrics"] == {"n": 3} and manifest["kind"] == "dataset"
    with pytest.raises(LMError, match="no version v7"):
        store.resolve("brown@v7", "dataset")


def test_wrong_kind_and_unknown_name(tmp_path):
    store = Store(tmp_path)
    _write(store, "brown", "x")
    with pytest.raises(LMError, match="is a dataset artifact, but this command needs a model"):
        store.resolve("brown", "model")
    with pytest.raises(LMError, match="no model artifact named 'nothing'"):
        store.resolve("nothing", "model")


def test_tampered_and_truncated_files_are_refused(tmp_path):
    store = Store(tmp_path)
    artifact = _write(store, "brown", "hello world")
    artifact.file("data.txt").write_text("hello w0rld")
    with pytest.raises(LMError, match="does not match its recorded hash"):
        store.resolve("brown", "dataset")
    artifact.file("data.txt").write_text("hello")
    with pytest.raises(LMError, match="damaged"):
        store.resolve("brown", "dataset")
    artifact.file("data.txt").unlink()
    with pytest.raises(LMError, match="missing"):
        store.resolve("brown", "dataset")


def test_failed_write_leaves_no_version(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(RuntimeError), store.create("dataset", "half", [], {}) as pending:
        (pending.path / "part.bin").write_bytes(b"123")
        raise RuntimeError("crash mid-write")
    assert store.list() == []
    assert not any((tmp_path / "dataset" / "half").glob(".tmp-*"))


def test_cache_lookup_and_lineage(tmp_path):
    from lm.artifacts import fingerprint

    store = Store(tmp_path)
    data = _write(store, "d", "abc")
    with store.create("model", "m", [data], {"lr": 1}) as pending:
        (pending.path / "w").write_text("weights")
    model = store.resolve("m", "model")
    assert store.find_cached("model", "m", fingerprint("model", [data], {"lr": 1})) == model
    assert store.find_cached("model", "m", fingerprint("model", [data], {"lr": 2})) is None
    rows = store.lineage(model)
    assert [r[1] for r in rows] == ["model:m@v1", "dataset:d@v1"]


def _concurrent_writer(root: str, index: int) -> None:
    _write(Store(root), "shared", f"writer {index}", {"i": index})


def test_concurrent_writers_get_distinct_versions(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_concurrent_writer, args=(str(tmp_path), i)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    versions = Store(tmp_path).versions("dataset", "shared")
    assert [a.version for a in versions] == [1, 2, 3, 4]
    texts = sorted(a.file("data.txt").read_text() for a in versions)
    assert texts == [f"writer {i}" for i in range(4)]
    for artifact in versions:
        artifact.verify()
