"""``lm diagnose`` as a user meets it: the table, the JSON, the plot, the cell comparison and
one-line errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from tests_support import assert_clean_error

from lm.artifacts import Store
from lm.data.prepare import load_split
from lm.evaluation.gradient_flow import measure
from lm.models import rnn

PNG = b"\x89PNG\r\n\x1a\n"
SMALL = ["--lags", "12", "--windows", "2", "--batch-size", "3", "--warmup", "4"]


@pytest.fixture
def trained(cli, word_corpus):
    assert cli("prepare", word_corpus, "--level", "word", "--name", "x").code == 0
    result = cli("train", "x", "--max-steps", "10", "--no-wandb", "--no-progress", "--emb-size",
                 "8", "--hidden-size", "8", "--layers", "1", "--batch-size", "4", "--bptt", "8")
    assert result.code == 0, result.err
    return cli


def test_json_gives_the_measured_norms_horizon_and_plot(trained):
    result = trained("diagnose", "x", *SMALL, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["model"] == "model:x@v1" and report["cell"] == "lstm"
    assert report["split"] == "valid" and report["lags"] == 12 and report["positions"] == 6
    # the same figures as measuring the model directly
    store = Store("artifacts")
    model = rnn.load(store.resolve("model:x", "model").path)
    expected = measure(model, load_split(store.resolve("x", "dataset"), "valid"), 12, 2, 3, 4)
    np.testing.assert_allclose(report["norms"]["hidden"], expected.norms["hidden"], rtol=1e-6)
    np.testing.assert_allclose(report["norms"]["cell"], expected.norms["cell"], rtol=1e-6)
    assert report["horizon"] == {"hidden": expected.horizon("hidden"),
                                 "cell": expected.horizon("cell")}
    plot = Path(report["plot"])
    assert plot == Path("artifacts/diagnoses/x/gradient-flow.png")
    assert plot.read_bytes()[:8] == PNG
    assert json.loads(plot.with_suffix(".json").read_text())["norms"] == report["norms"]


def test_the_table_shows_chosen_lags_and_the_horizon(trained, tmp_path):
    result = trained("diagnose", "x", *SMALL, "--plot", tmp_path / "flow.png")
    assert result.code == 0, result.err
    rows = [line.split("│")[1].strip() for line in result.out.splitlines()
            if line.startswith("│")]
    assert rows == ["0", "1", "2", "5", "10", "12"]
    assert "gradient horizon (first lag below 1% of lag 0): hidden h " in result.out
    assert "memory cell c " in result.out
    assert f"wrote {tmp_path / 'flow.png'}" in result.out
    assert (tmp_path / "flow.png").read_bytes()[:8] == PNG


def test_compare_cells_trains_each_cell_alike_and_draws_them_together(cli, word_corpus):
    assert cli("prepare", word_corpus, "--level", "word", "--name", "x").code == 0
    result = cli("diagnose", "x", "--compare-cells", "--budget", "1", "--emb-size", "8",
                 "--hidden-size", "8", "--threads", "1", *SMALL, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert [row["cell"] for row in report["cells"]] == ["rnn-tanh", "gru", "lstm"]
    store = Store("artifacts")
    for row in report["cells"]:
        model = store.resolve(row["model"], "model")
        assert model.params["cell"] == row["cell"] and model.params["hidden_size"] == 8
        assert model.params["max_time"] == 1.0 and row["steps"] == model.metrics["steps"] > 0
        assert set(row["norms"]) == ({"hidden", "cell"} if row["cell"] == "lstm"
                                     else {"hidden"})
    assert Path(report["plot"]).read_bytes()[:8] == PNG
    assert "training rnn-tanh for 1 s" in result.err  # progress goes to stderr with --json
    table = cli("diagnose", "x", "--compare-cells", "--budget", "1", "--emb-size", "8",
                "--hidden-size", "8", "--threads", "1", "--cells", "rnn-tanh,lstm", *SMALL)
    assert table.code == 0, table.err
    assert "rnn-tanh: gradient horizon " in table.out
    assert "lstm: gradient horizon " in table.out and "(memory cell c: " in table.out


@pytest.mark.parametrize("args, message", [
    (["--lags", "0"], "--lags must be at least 1, not 0"),
    (["--lags", "100000"], "fewer than --warmup + --lags + 2 = 100052: lower --lags"),
    (["--split", "nope"], "has no split 'nope'"),
    (["--plot", "flow.jpg"], "--plot flow.jpg must name a .png file"),
    (["--compare-cells", "--cells", "rnn-tanh,transformer"], "--cells takes cells from"),
    (["--compare-cells", "--budget", "0"], "--budget must be positive seconds, not 0.0"),
    (["--compare-cells", "--lags", "100000"], "fewer than --warmup + --lags + 2"),  # at once
])
def test_bad_input_is_a_one_line_error(trained, args, message):
    assert_clean_error(trained("diagnose", "x", *args), message)


def test_a_missing_model_is_a_one_line_error(cli, tmp_path):
    assert_clean_error(cli("diagnose", "nothing"), "no model artifact named 'nothing'")
