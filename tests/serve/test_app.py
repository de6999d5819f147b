"""The app as ``create_app`` builds it: the limits it is given, what it serves and publishes,
the mixture it fits once. Each test builds its own app on the shared tiny store."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from lm.artifacts import Store
from lm.errors import LMError
from lm.serve import server
from lm.serve.app import create_app
from lm.serve.config import ServeConfig

MODEL, NGRAM = "model:p@v1", "ngram:p-3gram@v1"
LIMITS = dict(limit_body=5000, limit_num=3, limit_tokens=40, limit_beam=2, limit_texts=2,
              limit_chars=30, limit_queue=5, limit_seconds=7.5)


def test_the_app_keeps_every_limit_it_is_given(poem_store):
    app = create_app(Store(poem_store), "p", ServeConfig(**LIMITS))
    assert (app.state.gate.queue, app.state.gate.seconds) == (5, 7.5)
    with TestClient(app) as client:
        assert client.get("/model").json()["limits"] == LIMITS

        def detail(path: str, **kwargs) -> tuple[int, str]:
            answer = client.post(path, **kwargs)
            return answer.status_code, answer.json()["detail"]

        assert detail("/sample", json={"num": 4}) == (
            422, "num: Input should be less than or equal to 3")
        assert detail("/sample", json={"beam": 3, "num": 1}) == (
            422, "beam: Input should be less than or equal to 2")
        assert detail("/sample", json={"max_tokens": 41}) == (
            422, "max_tokens: Input should be less than or equal to 40")
        assert detail("/sample", json={"prime": "春" * 31}) == (
            422, "prime: String should have at most 30 characters")
        assert detail("/score", json={"texts": ["春", "秋", "山"]}) == (
            422, "texts: List should have at most 2 items after validation, not 3")
        assert detail("/score", content=iter([b'{"texts": ["' + b"x" * 3000, b"x" * 3000 + b'"]}']),
                      headers={"content-type": "application/json"}) == (
            413, "request body over 5,000 bytes: send less (lm serve --limit-body raises the cap)")


def test_the_default_limits_without_a_config(poem_store):
    with TestClient(create_app(Store(poem_store), "p")) as client:
        described = client.get("/model").json()
    assert described["limits"] == {
        "limit_body": 1_000_000, "limit_num": 64, "limit_tokens": 1000, "limit_beam": 16,
        "limit_texts": 256, "limit_chars": 4000, "limit_queue": 32, "limit_seconds": 30.0}
    assert described["mix"] == [] and [s["ref"] for s in described["served"]] == [MODEL]


def test_lm_serve_builds_the_app_with_its_own_limits(cli, poem_store, monkeypatch):
    """``lm serve --limit-*`` reaches the app: never the defaults whatever the flags say."""
    apps = []
    monkeypatch.setattr(server, "serve_forever", lambda app, host, port: apps.append(app))
    result = cli("--artifacts", poem_store, "serve", "p", "--limit-num", "3", "--limit-seconds",
                 "7.5", "--limit-body", "5000", "--limit-queue", "5", "--limit-beam", "2",
                 "--limit-tokens", "40", "--limit-texts", "2", "--limit-chars", "30",
                 "--host", "::1")
    assert result.code == 0, result.err
    assert result.err.strip() == f"serving {MODEL} at http://[::1]:8000/ (API docs at /docs)"
    with TestClient(apps[0]) as client:
        assert client.get("/model").json()["limits"] == LIMITS


def test_the_served_n_gram_is_named_mixed_and_weighed_once(poem_store, cli):
    app = create_app(Store(poem_store), "p", ServeConfig(ngram="p-3gram"))
    bench = app.state.workbench
    weight = bench.decoders[0].partners[NGRAM].auto  # fitted when the app was built
    assert isinstance(weight, float) and 0 <= weight <= 1
    with TestClient(app) as client:
        assert client.get("/model").json()["mix"] == [NGRAM]
        body = client.get("/openapi.json").json()["components"]["schemas"]["SampleBody"]
        answer = client.post("/sample", json={"mix": "p-3gram", "seed": 3, "num": 2,
                                              "max_tokens": 20}).json()
    served = body["properties"]
    assert served["model"]["anyOf"][0]["enum"] == [MODEL, "p", "model:p", NGRAM, "p-3gram",
                                                   "ngram:p-3gram"]
    assert served["mix"]["anyOf"][0]["enum"] == [NGRAM, "p-3gram", "ngram:p-3gram"]
    expected = json.loads(cli("--artifacts", poem_store, "sample", "p", "--mix", "p-3gram",
                              "--seed", "3", "--num", "2", "--max-tokens", "20", "--json").out)
    assert answer["weight"] == weight == expected["weight"]
    assert answer["samples"] == expected["samples"] and answer["model"] == MODEL


def test_requests_pick_a_served_artifact_by_any_of_its_names(poem_store):
    app = create_app(Store(poem_store), "p", ServeConfig(ngram="p-3gram"))
    bench = app.state.workbench
    model, ngram = bench.decoders
    assert bench.pick(None) is model and bench.pick("model:p") is model
    assert bench.pick("p-3gram") is ngram and bench.pick(NGRAM) is ngram
    assert bench.index("ngram:p-3gram") == 1 and bench.index(None) == 0
    with pytest.raises(LMError) as unknown:
        bench.pick("nope")
    assert str(unknown.value) == f"model 'nope' is not served here: use one of {MODEL}, {NGRAM}"


def test_model_describes_the_artifacts_and_the_forms_a_request_may_name(poem_store):
    store = Store(poem_store)
    app = create_app(store, "p", ServeConfig(ngram="p-3gram"))
    with TestClient(app) as client:
        described = client.get("/model").json()
    for summary, (name, kind) in zip(described["served"], [("p", "model"), ("p-3gram", "ngram")],
                                     strict=True):
        artifact = store.resolve(name, kind)
        assert summary == {
            "ref": artifact.ref, "kind": kind, "name": name, "version": 1,
            "created": artifact.manifest["created"], "level": "char",
            "content_hash": artifact.content_hash, "inputs": artifact.manifest["inputs"],
            "params": artifact.params, "metrics": json.loads(json.dumps(artifact.metrics))}
    assert described["model"] == described["served"][0]
    assert described["forms"] == ["wujue", "qijue", "wulv", "qilv", "liujue", "any"]
    assert app.state.workbench.pattern_rules() == {
        "weight": "is not a number in [0, 1] or auto",
        "form": "is not a form of this model: use one of wujue, qijue, wulv, qilv, liujue, any, "
                "5,5,7,7 (GET /model)"}


def test_a_pattern_missed_is_told_in_words(poem_store):
    with TestClient(create_app(Store(poem_store), "p")) as client:
        answer = client.post("/sample", json={"weight": "2"})
    assert answer.status_code == 422
    assert answer.json()["detail"] == "weight: '2' is not a number in [0, 1] or auto"


def test_every_model_operation_documents_its_refusals(poem_store):
    with TestClient(create_app(Store(poem_store), "p")) as client:
        spec = client.get("/openapi.json").json()
    assert (spec["info"]["title"], spec["info"]["version"]) == ("lm serve", "1")
    assert spec["info"]["description"] == f"Sampling and scoring with {MODEL}."
    for path in ("/sample", "/score"):
        responses = spec["paths"][path]["post"]["responses"]
        assert set(responses) == {"200", "400", "413", "422", "429", "503"}
        assert responses["503"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"}


def test_an_n_gram_alone_is_served_and_scores(poem_store):
    app = create_app(Store(poem_store), "p-3gram")
    with TestClient(app) as client:
        described = client.get("/model").json()
        scored = client.post("/score", json={"texts": ["春風山水月"], "per_token": False}).json()
    assert described["model"]["ref"] == NGRAM and described["mix"] == []
    assert scored["model"] == NGRAM and scored["results"][0]["per_token"] is None


def test_without_an_n_gram_a_null_mix_is_plain_sampling(poem_store):
    """The schema allows ``"mix": null``; it used to be a 500 when no n-gram was served."""
    with TestClient(create_app(Store(poem_store), "p")) as client:
        plain = client.post("/sample", json={"seed": 2, "num": 1, "max_tokens": 8})
        null = client.post("/sample", json={"seed": 2, "num": 1, "max_tokens": 8, "mix": None})
    assert null.status_code == 200, null.text
    assert null.json()["samples"] == plain.json()["samples"] and null.json()["weight"] is None
