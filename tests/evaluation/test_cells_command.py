"""``lm inspect``: --find (one model or several), --text with --unit or --feature, errors."""

from __future__ import annotations

import json

import pytest
from tests_support import assert_clean_error


@pytest.fixture
def inspect(cli, counter_store):
    return lambda *args: cli("--artifacts", counter_store, "inspect", *args)


def test_find_prints_the_best_units_and_json_gives_the_issue_s_shape(inspect, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("COLUMNS", "20")
    plot = tmp_path / "deep" / "folder" / "cells.png"
    shown = inspect("counter", "--find", "--top", "2", "--plot", plot)
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    assert f"wrote {plot}" in lines  # a path is never wrapped, at any width
    assert any(line.startswith("model:counter@v1: 4 units on valid (") for line in lines)
    row = next(line for line in lines if "line_position" in line)
    assert "0:h:0" in row and "+1.000" in row and "R² 1.000" in row
    parity = next(line for line in lines if "line_parity" in line)
    assert "acc. " in parity and "% (baseline " in parity
    data = json.loads(inspect("counter", "--find", "--json", "--top", "1", "--plot",
                              plot).out)
    best = data["features"]["line_position"]["best"]
    assert best == [{"unit": "0:h:0", "r": pytest.approx(1.0), "r2": pytest.approx(1.0)}]
    assert data["features"]["in_brackets"]["probe"]["metric"] == "accuracy"


def test_several_models_are_shown_side_by_side(inspect, counter_store):
    import shutil

    from lm.artifacts import Store

    copy = Store(counter_store).root / "model" / "counter2"
    if not copy.exists():
        shutil.copytree(Store(counter_store).root / "model" / "counter", copy)
        manifest = copy / "v1" / "manifest.json"
        manifest.write_text(manifest.read_text().replace('"name": "counter"',
                                                         '"name": "counter2"'))
    shown = inspect("counter", "counter2", "--find", "--no-probe")
    assert shown.code == 0, shown.err
    header = next(line for line in shown.out.splitlines() if line.startswith("┃ feature"))
    # two models of one cell are told apart by their references
    assert "model:counter@v1 best unit" in header and "model:counter2@v1 best unit" in header
    row = next(line for line in shown.out.splitlines() if line.startswith("│ line_position"))
    assert row.count("0:h:0 r +1.000") == 2
    data = json.loads(inspect("counter", "counter2", "--find", "--no-probe", "--json").out)
    assert [m["model"] for m in data["models"]] == ["model:counter@v1", "model:counter2@v1"]


def test_text_is_tinted_by_a_unit_or_by_a_feature_s_best_unit(inspect, tmp_path):
    data = json.loads(inspect("counter", "--text", "abc\nde", "--unit", "0:h:0,0:h:1",
                              "--json").out)
    first, second = data["tinted"]
    assert [t["value"] for t in first["tokens"]] == [0.0, 1.0, 2.0, 3.0, 0.0, 1.0]
    assert [t["value"] for t in second["tokens"]] == [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    page = tmp_path / "tint.html"
    shown = inspect("counter", "--text", "ab(a)b", "--feature", "in_brackets", "--html", page)
    assert shown.code == 0, shown.err
    assert "unit 0:h:2 of model:counter@v1" in shown.out and f"wrote {page}" in shown.out
    assert "ab(a)b" in shown.out
    assert page.read_text("utf-8").count("<span style=") == 6 + 2  # + the scale's two ends


@pytest.mark.parametrize(("args", "message"), [
    (["counter"], "lm inspect needs --find, or --text with --unit or --feature"),
    (["counter", "--find", "--text", "ab"], "needs --find, or --text"),
    (["counter", "--text", "ab"], "give one model and one of the two"),
    (["counter", "--text", "ab", "--unit", "0:h:0", "--feature", "line_index"], "one of the"),
    (["counter", "--text", "ab", "--unit", "0:c:1"], "no unit 0:c:1"),
    (["counter", "--text", "ab", "--unit", "h0"], "is not LAYER:PART:INDEX"),
    (["counter", "--text", "ab", "--feature", "rhyme"], "--feature must be one of"),
    (["counter", "--text", "ab", "--unit", "0:h:0", "--html", "x.txt"], "must name an .html"),
    (["counter", "--find", "--plot", "x.jpg"], "must name a .png"),
    (["counter", "--find", "--split", "test", "--heldout", "test"], "is --split too"),
    (["counter", "counter", "--find", "--plot", "x.png"], "--plot names one file"),
    (["lines", "--find"], "needs a model"),
])
def test_mistakes_get_one_line_and_exit_2(inspect, args, message):
    assert_clean_error(inspect(*args), message)


def test_a_probe_is_shown_with_its_baseline_and_whether_it_converged():
    from lm.evaluation.cells_command import _probe_text

    logistic = {"metric": "accuracy", "held_out": 0.9712, "baseline": 0.5, "converged": False}
    assert _probe_text({"probe": logistic}) == "acc. 97.1% (baseline 50.0%, not converged)"
    assert _probe_text({"probe": {**logistic, "converged": True}}) == \
        "acc. 97.1% (baseline 50.0%)"
    assert _probe_text({"probe": {"metric": "r2", "held_out": -0.0312, "baseline": 0.0}}) == \
        "R² -0.031"
    assert _probe_text({"probe": None}) == "-"
