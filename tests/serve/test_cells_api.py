"""The Cells endpoints: the units of the served model, each feature's best, a text tinted."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from lm.artifacts import Store
from lm.evaluation.cells import tint
from lm.evaluation.inspection import InspectConfig, Loaded, observe, rank_features
from lm.evaluation.text_features import FEATURES
from lm.serve.cells import FIND_TOKENS, TOP_LIMIT

POEM = "春風山水月，花雨白雲天。\n天雲白雨花，月水山風春。"


@pytest.fixture(scope="module")
def client(poem_app):
    with TestClient(poem_app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def loaded(poem_store):
    return Loaded.of(Store(poem_store), "p", "cpu")


def test_the_units_and_features_are_listed(client):
    info = client.get("/cells").json()
    assert info["model"] == "model:p@v1" and info["cell"] == "lstm"
    assert info["parts"] == [{"layer": layer, "part": part, "size": 16}
                             for layer in (0, 1) for part in ("h", "c")]
    assert list(info["features"]) == list(FEATURES)


def test_find_ranks_the_units_as_lm_inspect_does(client, loaded, poem_store):
    found = client.post("/cells/find", json={"top": 3}).json()
    seen = observe(loaded, loaded.split(Store(poem_store), "valid", FIND_TOKENS),
                   InspectConfig())
    expected = rank_features(seen, 3)
    assert found["tokens"] == len(seen.recording.ids) and found["split"] == "valid"
    for name, item in found["features"].items():
        assert [b["unit"] for b in item["best"]] == [b["unit"] for b in expected[name]["best"]]
        assert [b["r"] for b in item["best"]] == pytest.approx(
            [b["r"] for b in expected[name]["best"]])
    again = client.post("/cells/find", json={"top": 1}).json()
    assert again["features"]["line_position"]["best"] == \
        found["features"]["line_position"]["best"][:1]


def test_a_text_is_tinted_by_a_unit_as_lm_inspect_tints_it(client, loaded):
    answer = client.post("/cells/tint", json={"text": POEM, "unit": "1:c:5"})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    expected = tint(loaded.model, loaded.tokenizer, POEM, "1:c:5").to_json()
    assert data["unit"] == "1:c:5" and data["feature"] is None and data["best"] is None
    assert data["found_on"] is None
    assert [t["value"] for t in data["tokens"]] == pytest.approx(
        [t["value"] for t in expected["tokens"]], abs=1e-6)
    assert [(t["start"], t["end"]) for t in data["tokens"]] == \
        [(i, i + 1) for i in range(len(POEM))]


def test_a_feature_tints_by_its_best_unit(client):
    best = client.post("/cells/find", json={"top": 1}).json()["features"]["line_parity"]
    found = client.post("/cells/find", json={"top": 1}).json()
    data = client.post("/cells/tint", json={"text": POEM, "feature": "line_parity"}).json()
    assert data["unit"] == best["best"][0]["unit"] and data["best"] == best["best"][0]
    assert data["found_on"] == {"split": "valid", "tokens": found["tokens"]}


@pytest.mark.parametrize(("method", "path", "body", "status", "detail"), [
    ("post", "/cells/tint", {"text": "春", "unit": "2:h:0"}, 422, "no unit 2:h:0"),
    ("post", "/cells/tint", {"text": "春", "unit": "0:x:0"}, 422, "unit: String should match"),
    ("post", "/cells/tint", {"text": "春"}, 422, "give a unit"),
    ("post", "/cells/tint", {"text": "春", "unit": "0:h:0", "feature": "line_index"}, 422,
     "one of the two"),
    ("post", "/cells/tint", {"text": "", "unit": "0:h:0"}, 422, "text: String should have"),
    ("post", "/cells/tint", {"text": "春" * 4001, "unit": "0:h:0"}, 422, "at most 4000"),
    ("post", "/cells/tint", {"text": "春", "unit": "0:h:0", "extra": 1}, 422, "extra"),
    ("post", "/cells/tint", {"text": "春", "feature": "rhyme"}, 422, "feature: Input should"),
    # an n-gram has no cells: the schema names only the recurrent models
    ("post", "/cells/tint", {"text": "春", "unit": "0:h:0", "model": "p-3gram"}, 422,
     "model: Input should be 'model:p@v1', 'p' or 'model:p'"),
    ("post", "/cells/find", {"top": TOP_LIMIT + 1}, 422, "top: Input should be less"),
    ("post", "/cells/find", {"model": "nope"}, 422, "model: Input should be 'model:p@v1'"),
    ("post", "/cells/find", {"top": "5"}, 422, "top: Input should be a valid integer"),
    ("post", "/cells/find", {"top": 2.5}, 422, "top: Input should be a valid integer"),
    ("get", "/cells?model=" + "x" * 201, None, 422, "model: Input should be 'model:p@v1'"),
])
def test_bad_requests_get_a_4xx_and_one_line(client, method, path, body, status, detail):
    answer = getattr(client, method)(path, **({} if body is None else {"json": body}))
    assert answer.status_code == status, answer.text
    assert detail in answer.json()["detail"] and "\n" not in answer.json()["detail"]


def test_a_malformed_body_is_a_400(client):
    answer = client.post("/cells/tint", content=b"{not json",
                         headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["detail"]
    assert json.loads(answer.text)["detail"].count("\n") == 0


def test_the_schema_says_what_the_cells_endpoints_take_and_answer(client):
    schema = client.get("/openapi.json").json()
    tint = schema["components"]["schemas"]["TintBody"]
    assert tint["oneOf"] == [
        {"required": ["unit"], "properties": {"unit": {"type": "string"},
                                              "feature": {"type": "null"}}},
        {"required": ["feature"], "properties": {"feature": {"type": "string"},
                                                 "unit": {"type": "null"}}}]
    for path, method in [("/cells", "get"), ("/cells/find", "post"), ("/cells/tint", "post")]:
        answers = schema["paths"][path][method]["responses"]
        assert {"400", "413", "422", "429", "503"} <= set(answers), path
        assert answers["422"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"}
    query = schema["paths"]["/cells"]["get"]["parameters"][0]["schema"]
    assert query["anyOf"][0]["enum"] == ["model:p@v1", "p", "model:p"]


def test_find_takes_a_whole_number_json_spells_with_a_point(client):
    assert [u["unit"] for u in client.post("/cells/find", json={"top": 2.0}).json()[
        "features"]["line_position"]["best"]] == [u["unit"] for u in client.post(
            "/cells/find", json={"top": 2}).json()["features"]["line_position"]["best"]]
    assert len(client.post("/cells/find", json={"top": 2.0}).json()[
        "features"]["line_position"]["best"]) == 2
