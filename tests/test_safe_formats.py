"""Nothing loads pickles: a crafted checkpoint cannot run code, whatever its manifest says."""

from __future__ import annotations

import json
import pickle
import subprocess
from pathlib import Path

from tests_support import assert_clean_error

from lm.artifacts import sha256_file


class Exploit:
    """Unpickling this creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (subprocess.call, (["touch", str(self.marker)],))


def test_the_exploit_is_live(tmp_path):
    """The payload does run code when unpickled, so the tests below can fail."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(Exploit(marker)))
    assert marker.exists()


def _forge(artifact_dir: Path, file: str, payload: bytes) -> None:
    """Replace a file and re-sign the manifest, as an attacker who controls the folder could."""
    (artifact_dir / file).write_bytes(payload)
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    manifest["files"][file] = {"sha256": sha256_file(artifact_dir / file),
                               "bytes": len(payload)}
    (artifact_dir / "manifest.json").write_text(json.dumps(manifest))


def test_pickled_weights_are_refused_without_running_code(cli, word_corpus, tmp_path):
    marker = tmp_path / "pwned"
    cli("prepare", word_corpus, "--level", "word", "--name", "x")
    cli("train", "x", "--max-steps", "3", "--no-wandb", "--no-progress", "--emb-size", "8",
        "--hidden-size", "8")
    model_dir = Path("artifacts/model/x/v1")
    _forge(model_dir, "model.safetensors", pickle.dumps(Exploit(marker)))
    for args in (["sample", "x"], ["perplexity", "x"]):
        assert_clean_error(cli(*args), "not valid safetensors")
    assert not marker.exists()


def test_checkpoint_resume_reads_no_pickle(cli, word_corpus, tmp_path):
    marker = tmp_path / "pwned"
    cli("prepare", word_corpus, "--level", "word", "--name", "x")
    args = ["train", "x", "--max-steps", "4", "--checkpoint-every", "2", "--no-wandb",
            "--no-progress", "--emb-size", "8", "--hidden-size", "8"]
    cli(*args)
    state = Path("artifacts/runs/x/checkpoint")
    (state / "optimizer.safetensors").write_bytes(pickle.dumps(Exploit(marker)))
    result = cli(*args, "--resume", "--max-steps", "6")
    assert result.code == 2 and "Traceback" not in result.err
    assert not marker.exists()


def test_no_torch_load_in_the_package():
    root = Path(__file__).resolve().parents[1] / "lm"
    offenders = [str(p) for p in root.rglob("*.py")
                 if "torch.load(" in p.read_text() or "pickle.load" in p.read_text()]
    assert offenders == []
