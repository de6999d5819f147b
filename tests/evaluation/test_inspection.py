"""``find``: every unit of a stored model ranked against the features of its valid split."""

from __future__ import annotations

import json

import pytest

from lm.artifacts import Store
from lm.errors import LMError
from lm.evaluation.inspection import InspectConfig, Loaded, best_for, find
from lm.evaluation.text_features import FEATURES


@pytest.fixture(scope="module")
def found(counter_store, tmp_path_factory):
    plot = tmp_path_factory.mktemp("plots") / "counter.png"
    return find(Store(counter_store), "counter", InspectConfig(top=3, plot=plot))


def test_the_counting_units_are_the_best_ones_on_held_out_text_too(found):
    assert found["model"] == "model:counter@v1" and found["cell"] == "rnn-relu"
    assert found["units"] == 4 and found["split"] == "valid" and found["heldout"] == "test"
    line = found["features"]["line_position"]
    assert line["best"][0]["unit"] == "0:h:0"
    assert line["best"][0]["r"] == pytest.approx(1.0)
    assert line["best"][0]["r2"] == pytest.approx(1.0)  # the fit on valid, scored on test
    assert len(line["best"]) == 3
    assert line["probe"]["held_out"] == pytest.approx(1.0, abs=1e-3)
    brackets = found["features"]["in_brackets"]
    assert brackets["best"][0]["unit"] == "0:h:2" and brackets["best"][0]["r"] > 0.999
    assert brackets["probe"]["metric"] == "accuracy" and brackets["probe"]["held_out"] == 1.0


def test_the_json_has_the_issue_s_shape_and_lies_beside_the_png(found):
    assert set(found["features"]) == set(FEATURES)
    for item in found["features"].values():
        assert set(item) == {"best", "probe"}
        for best in item["best"]:
            assert set(best) == {"unit", "r", "r2"}
    assert found["constant"] == []
    with open(found["plot"].removesuffix(".png") + ".json", encoding="utf-8") as saved:
        assert json.load(saved) == found
    with open(found["plot"], "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_feature_constant_on_the_text_has_no_best_unit(counter_store, tmp_path):
    # the test split begins "ba(ab" within its first line: one line, so one line index
    config = InspectConfig(split="test", heldout="valid", tokens=5, plot=tmp_path / "p.png",
                           probe=False)
    result = find(Store(counter_store), "counter", config)
    assert result["tokens"] == 5
    assert result["constant"] == ["line_index", "line_parity"]
    for name in result["constant"]:
        assert result["features"][name] == {"best": [], "probe": None}
    assert all(item["probe"] is None for item in result["features"].values())
    with pytest.raises(LMError, match="--heldout valid is --split too"):
        find(Store(counter_store), "counter", InspectConfig(split="valid", heldout="valid"))


def test_a_feature_s_best_unit_is_found_for_tinting(counter_store):
    store = Store(counter_store)
    loaded = Loaded.of(store, "counter", "cpu")
    best = best_for(store, loaded, InspectConfig(feature="line_position"))
    assert best["unit"] == "0:h:0"


def test_a_missing_split_is_refused(counter_store):
    loaded = Loaded.of(Store(counter_store), "counter", "cpu")
    with pytest.raises(LMError, match="has no split 'train2'"):
        loaded.split(Store(counter_store), "train2", 10)
