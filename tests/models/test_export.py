"""`lm export`: the ONNX decoding step agrees with PyTorch, and its files are all-or-nothing."""

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
import pytest
import torch
from tests_support import assert_clean_error

from lm.errors import LMError
from lm.models import rnn
from lm.models.export import (
    ExportResult,
    _check_target,
    export_graph,
    export_model,
    max_difference,
    sidecar,
    state_names,
)

STEPS = 50
CONFIGS = {
    "lstm-full": dict(cell="lstm"),
    "gru-adaptive": dict(cell="gru", softmax="adaptive", cutoffs=[8, 20]),
    "rnn-tanh-tied": dict(cell="rnn-tanh", tied=True),
    "lstm-tied-projected": dict(cell="lstm", tied=True, emb_size=12),
    "lstm-per-layer-tied": dict(cell="lstm", tied=True, locked_dropout=True),
    "indrnn-explicit": dict(cell="indrnn"),
    "gru-explicit-adaptive": dict(cell="gru", impl="explicit", softmax="adaptive",
                                  cutoffs=[10]),
    "lstm-tied-adaptive-projected": dict(cell="lstm", tied=True, emb_size=12, softmax="adaptive",
                                         cutoffs=[8, 20]),
}


def _model(**options) -> rnn.RNNLM:
    torch.manual_seed(0)
    settings = dict(vocab_size=40, layers=2, emb_size=16, hidden_size=16, dropout=0.3)
    model = rnn.RNNLM(rnn.ModelConfig(**{**settings, **options}))
    with torch.no_grad():  # sharper distributions than the initialisation's near-uniform ones
        for name, parameter in model.named_parameters():
            if not name.startswith("rnn"):  # a scaled recurrence would be chaotic
                parameter.mul_(4.0)
    return model.eval()


def _torch_decode(model, batch: int, forget_at: int | None = None):
    """Reference: the model's own forward, one token at a time, fed back its argmax (every
    third step another token); ``forget_at``: the state restarts from zeros at that step."""
    hidden = model.init_hidden(batch)
    tokens = torch.full((batch,), 1, dtype=torch.long)
    fed, out = [], []
    with torch.no_grad():
        for step in range(STEPS):
            if step == forget_at:
                hidden = model.init_hidden(batch)
            scores, hidden = model(tokens[:, None], hidden)
            log_probs = torch.log_softmax(scores[:, 0], dim=-1)
            fed.append(tokens.numpy().copy())
            out.append(log_probs.numpy())
            tokens = log_probs.argmax(-1) if step % 3 else (tokens * 7 + 3) % 40
    return fed, out


def _onnx_decode(path: Path, model, fed: list[np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = state_names(model)
    state = {n: p.numpy() for n, p in zip(names, model.init_hidden(len(fed[0])).parts,
                                          strict=True)}
    out = []
    for tokens in fed:
        log_probs, *parts = session.run(["log_probs", *(f"{n}_out" for n in names)],
                                        {"tokens": tokens.astype(np.int64), **state})
        state = dict(zip(names, parts, strict=True))
        out.append(log_probs)
    return out


@pytest.mark.parametrize("name", CONFIGS)
def test_onnx_step_matches_pytorch_for_50_steps(tmp_path, name):
    model = _model(**CONFIGS[name])
    path = tmp_path / "m.onnx"
    export_graph(model, path)
    for batch in (1, 5):
        fed, want = _torch_decode(model, batch)
        got = _onnx_decode(path, model, fed)
        difference = max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True))
        assert difference <= 1e-4, (name, batch, difference)
        assert got[-1].shape == (batch, 40)
        # The comparison can fail: forgetting the state halfway is seen at this tolerance.
        _, forgetful = _torch_decode(model, batch, forget_at=25)
        assert max(float(np.abs(g - w).max()) for g, w in zip(got, forgetful, strict=True)) > 1e-2


def test_state_inputs_follow_the_cell_and_layout():
    assert state_names(_model(cell="lstm")) == ["h", "c"]
    assert state_names(_model(cell="gru")) == ["h"]
    assert state_names(_model(cell="lstm", locked_dropout=True)) == ["h_l0", "c_l0", "h_l1",
                                                                       "c_l1"]


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    """A store with dataset p (char-level poems), GRU model p and bigram p-2gram, made once."""
    from tests_support import make_poem_corpus

    from lm.artifacts import Store
    from lm.data.prepare import PrepareConfig, prepare
    from lm.ngram.stage import NgramConfig, build_ngram
    from lm.training.loop import TrainConfig, train

    folder = tmp_path_factory.mktemp("export-store")
    corpus = make_poem_corpus(folder / "poems.txt")
    store = Store(folder / "artifacts")
    data, _ = prepare(store, PrepareConfig(str(corpus), level="char", doc_sep="blank"), "p")
    config = TrainConfig.of(cell="gru", emb_size=16, hidden_size=16, max_steps=25,
                            eval_tokens=200, device="cpu")
    train(store, data, config, "p", use_wandb=False, progress=False, log=lambda *_: None)
    build_ngram(store, data, "p-2gram", NgramConfig(order=2, arpa=False))
    return folder / "artifacts"


@pytest.fixture
def lm(cli, store_dir):
    """``lm --artifacts STORE ARGS``."""
    return lambda *args: cli("--artifacts", store_dir, *args)


def test_export_command_writes_graph_tokenizer_and_sidecar(lm, store_dir, tmp_path):
    result = lm("export", "p", "--onnx", tmp_path / "out" / "p.onnx")
    assert_clean_error(result, "the folder")
    (tmp_path / "out").mkdir()
    result = lm("export", "p", "--onnx", tmp_path / "out" / "p.onnx")
    assert result.code == 0, result.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "p.onnx", "p.onnx.json", "tokenizer.json"]
    meta = json.loads((tmp_path / "out" / "p.onnx.json").read_text())
    model_dir = next((store_dir / "model" / "p").glob("v*"))
    assert (tmp_path / "out" / "tokenizer.json").read_bytes() == (
        model_dir / "tokenizer.json").read_bytes()
    session = ort.InferenceSession(str(tmp_path / "out" / "p.onnx"))
    assert [i.name for i in session.get_inputs()] == [i["name"] for i in meta["inputs"]]
    assert [o.name for o in session.get_outputs()] == [o["name"] for o in meta["outputs"]]
    assert [i["name"] for i in meta["inputs"]] == ["tokens", "h"]
    assert meta["start"]["token"] == meta["special_tokens"]["<eos>"] == 1
    assert meta["model"] == "model:p@v1"


def test_onnx_alone_samples_what_lm_sample_samples(lm, tmp_path):
    assert lm("export", "p", "--onnx", tmp_path / "p.onnx").code == 0
    greedy = lm("sample", "p", "--temperature", "0", "--num", "1", "--max-tokens", "40",
             "--json")
    script = Path(__file__).resolve().parents[2] / "bench" / "onnx_sample.py"
    alone = subprocess.run([sys.executable, str(script), str(tmp_path / "p.onnx"),
                            "--temperature", "0", "--num", "3", "--max-tokens", "40", "--json"],
                           capture_output=True, text=True, check=True)
    texts = json.loads(alone.stdout)
    assert texts == json.loads(greedy.out)["samples"] * 3
    drawn = subprocess.run([sys.executable, str(script), str(tmp_path / "p.onnx"), "--num", "3",
                            "--max-tokens", "40", "--json", "--seed", "1"],
                           capture_output=True, text=True, check=True)
    assert len(set(json.loads(drawn.stdout))) > 1  # sampling, not the greedy text again


def test_bad_exports_are_one_line_and_leave_nothing(lm, tmp_path, monkeypatch):
    assert_clean_error(lm("export", "p", "--onnx", tmp_path / "p.txt"), "must end in .onnx")
    assert_clean_error(lm("export", "p-2gram", "--onnx", tmp_path / "p.onnx"),
                       "needs a model")

    def broken(model, path):
        path.write_bytes(b"half a graph")
        raise RuntimeError("Unsupported: ONNX export of operator foo\nsecond line")

    monkeypatch.setattr("lm.models.export.export_graph", broken)
    out = tmp_path / "out"
    out.mkdir()
    result = lm("export", "p", "--onnx", out / "p.onnx")
    assert_clean_error(result, "cannot export model:p@v1 to ONNX (RuntimeError: Unsupported")
    assert list(out.iterdir()) == []


def test_a_cell_with_more_state_parts_names_them_in_order():
    cell = SimpleNamespace(spec=SimpleNamespace(state_parts=3),
                           config=SimpleNamespace(per_layer=False, layers=2))
    assert state_names(cell) == ["h", "c", "s2"]
    cell.config.per_layer = True
    assert state_names(cell) == ["h_l0", "c_l0", "s2_l0", "h_l1", "c_l1", "s2_l1"]


def _perturbed(model: rnn.RNNLM) -> rnn.RNNLM:
    """The same network with every weight moved: another model of the same shape."""
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in twin.parameters():
            parameter.add_(0.5)
    return twin.eval()


def test_max_difference_compares_log_probs_step_by_step_with_the_state_fed_back(tmp_path):
    model = _model(cell="lstm")
    path = tmp_path / "m.onnx"
    export_graph(model, path)
    tokens = [[1, 1, 1], [7, 3, 39], [2, 5, 11], [0, 8, 20]]
    assert max_difference(model, path, tokens) <= 1e-4
    assert max_difference(_perturbed(model), path, tokens) > 0.1
    # the reference is the model's own forward pass (see _torch_decode), fed back its state
    fed = [np.array(batch) for batch in tokens]
    got = _onnx_decode(path, model, fed)
    hidden, worst = model.init_hidden(3), 0.0
    with torch.no_grad():
        for batch, out in zip(tokens, got, strict=True):
            scores, hidden = model(torch.tensor(batch)[:, None], hidden)
            want = torch.log_softmax(scores[:, 0], dim=-1).numpy()
            worst = max(worst, float(np.abs(out - want).max()))
    assert max_difference(model, path, tokens) == pytest.approx(worst, abs=1e-6)


def test_a_sidecar_says_everything_a_runtime_needs(tmp_path, store_dir):
    from lm.artifacts import Store

    artifact = Store(store_dir).resolve("p", "model")
    (tmp_path / "out").mkdir()
    result = export_model(Store(store_dir), "p", tmp_path / "out" / "p.onnx")
    out = tmp_path / "out"
    assert result == ExportResult(out / "p.onnx", out / "tokenizer.json", out / "p.onnx.json",
                                  result.max_difference)
    assert 0 <= result.max_difference <= 1e-4
    meta = json.loads(result.sidecar.read_text())
    vocab = meta["vocab_size"]
    state = [2, "batch", 16]  # a two-layer GRU of 16 units
    assert meta == {
        "format": "lm-onnx-step/1", "model": "model:p@v1",
        "content_hash": artifact.content_hash, "onnx": "p.onnx", "tokenizer": "tokenizer.json",
        "level": "char", "vocab_size": vocab, "cell": "gru", "softmax": "full", "opset": 17,
        "inputs": [{"name": "tokens", "dtype": "int64", "shape": ["batch"]},
                   {"name": "h", "dtype": "float32", "shape": state}],
        "outputs": [{"name": "log_probs", "dtype": "float32", "shape": ["batch", vocab]},
                    {"name": "h_out", "dtype": "float32", "shape": state}],
        "state": [{"input": "h", "output": "h_out", "shape": state, "initial": "zeros"}],
        "special_tokens": {"<unk>": 0, "<eos>": 1},
        "start": {"token": 1, "state": "zeros",
                  "how": "feed <eos> (1) with zero state, as `lm sample` does: every training "
                         "document follows an <eos>"},
        "stop": {"token": 1, "how": "a sample ends when it draws <eos>"},
        "parity_max_abs_difference": result.max_difference,
    }
    assert vocab == len(json.loads(result.tokenizer.read_text())["model"]["vocab"])
    old = SimpleNamespace(ref="model:old@v1", content_hash="0" * 64, manifest={})
    assert sidecar(old, rnn.load(artifact.path), out / "p.onnx", 0.0)["level"] == "char"


def test_an_export_that_disagrees_with_pytorch_is_refused_and_leaves_nothing(
        lm, tmp_path, monkeypatch):
    """The parity check is what stands between a wrong graph and the user."""
    import lm.models.export as export

    real = export.export_graph
    monkeypatch.setattr(export, "export_graph", lambda model, path: real(_perturbed(model), path))
    out = tmp_path / "out"
    out.mkdir()
    result = lm("export", "p", "--onnx", out / "p.onnx")
    assert_clean_error(result, "the ONNX export of model:p@v1 disagrees with PyTorch")
    assert re.fullmatch(r"error: the ONNX export of model:p@v1 disagrees with PyTorch \(max "
                        r"log-prob difference \d\.\d\de[+-]\d\d\); nothing was written",
                        result.err.strip())
    assert list(out.iterdir()) == []


def test_a_failing_exporter_is_told_in_its_first_line(lm, tmp_path, monkeypatch):
    messages = iter(["x" * 300 + "\nmore", ""])

    def broken(model, path):
        raise RuntimeError(next(messages))

    monkeypatch.setattr("lm.models.export.export_graph", broken)
    long = lm("export", "p", "--onnx", tmp_path / "p.onnx")
    assert long.err.strip() == ("error: cannot export model:p@v1 to ONNX (RuntimeError: "
                                + "x" * 200 + "); export a model with a supported layer")
    empty = lm("export", "p", "--onnx", tmp_path / "p.onnx")
    assert empty.err.strip() == ("error: cannot export model:p@v1 to ONNX (RuntimeError: "
                                 "RuntimeError); export a model with a supported layer")


def test_the_target_must_be_an_onnx_file_in_a_folder_that_exists(tmp_path):
    for target, message in [
        (tmp_path / "p.txt", "must end in .onnx (the sidecar and tokenizer.json are written "
                             "beside it)"),
        (tmp_path / "dir.onnx", f"is a folder: give a file name such as {tmp_path}/dir.onnx/"
                                "model.onnx"),
        (tmp_path / "none" / "p.onnx", f": the folder {tmp_path}/none does not exist; create it "
                                       "first"),
    ]:
        (tmp_path / "dir.onnx").mkdir(exist_ok=True)
        with pytest.raises(LMError) as refused:
            _check_target(target)
        assert str(refused.value) == f"--onnx {target} {message}".replace(" :", ":")
    _check_target(tmp_path / "p.onnx")
