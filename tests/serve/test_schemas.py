"""The request bodies, built without a model: the server's caps, what it serves, strict types,
and the rules between fields, each seen in the schema and in what a body accepts."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest
from pydantic import ValidationError

from lm.generation.request import SampleRequest
from lm.serve.config import ServeConfig
from lm.serve.schemas import MODEL_HELP, Served, sample_body, score_body

LIMITS = ServeConfig(limit_num=5, limit_tokens=50, limit_beam=3, limit_chars=100,
                     limit_texts=2)
MODELS = ["model:p@v1", "p", "model:p"]
NGRAMS = ["ngram:g@v1", "g", "ngram:g"]


@pytest.fixture
def body():
    return sample_body(LIMITS, Served([*MODELS, *NGRAMS], NGRAMS, "wujue|any"))


@pytest.fixture
def schema(body):
    return body.model_json_schema()


def _refused(model, values: dict) -> str:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(values)
    return refused.value.errors()[0]["msg"]


def test_the_server_caps_narrow_the_declared_bounds(schema):
    properties = schema["properties"]
    assert (properties["num"]["minimum"], properties["num"]["maximum"]) == (1, 5)
    assert (properties["max_tokens"]["minimum"], properties["max_tokens"]["maximum"]) == (1, 50)
    assert properties["beam"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 3}
    assert properties["temperature"]["maximum"] == 1000 and "maximum" not in properties["seed"]
    assert properties["top_p"]["anyOf"][0] == {"type": "number", "exclusiveMinimum": 0,
                                               "maximum": 1}
    assert properties["prime"]["maxLength"] == 100 == properties["style"]["maxLength"]
    assert properties["form"]["anyOf"][0]["maxLength"] == 64  # each line asked costs a line
    assert properties["acrostic"]["anyOf"][0]["maxLength"] == 64


def test_patterns_and_choices_come_from_the_declarations_and_the_served_forms(schema):
    properties = schema["properties"]
    assert properties["form"]["anyOf"][0]["pattern"] == "^(?:wujue|any)$"
    assert properties["weight"]["pattern"] == \
        r"^(?:auto|0*[01](?:\.0*)?|0*0?\.[0-9]+)$"
    assert properties["rhyme_book"]["anyOf"][0]["enum"] == ["pingshui", "modern"]
    assert properties["rhyme_book"]["anyOf"][1] == {"type": "null"}
    assert properties["script"]["anyOf"][0]["enum"] == ["simplified", "traditional"]
    assert properties["model"]["anyOf"][0]["enum"] == [*MODELS, *NGRAMS]
    assert properties["mix"]["anyOf"][0]["enum"] == NGRAMS
    assert "device" not in properties  # the server's, chosen when it starts


def test_every_field_keeps_its_default_and_help(body, schema):
    declared = {f.name: f for f in fields(SampleRequest) if f.name != "device"}
    defaults = body().model_dump()
    assert defaults == {**{n: f.default for n, f in declared.items()}, "model": None}
    for name, f in declared.items():
        assert schema["properties"][name]["description"] == f.metadata["help"], name
    assert schema["properties"]["model"]["description"] == MODEL_HELP
    assert schema["title"] == "SampleBody"


def test_values_are_strict_and_whole_numbers_may_be_spelled_as_floats(body):
    assert body.model_validate({"num": 5.0, "seed": 3.0, "beam": 2.0}).num == 5
    assert body.model_validate({"beam": 2.0}).beam == 2
    assert body.model_validate({"beam": None, "top_k": None, "rhyme_book": None}).beam is None
    for values in ({"num": 2.5}, {"num": "2"}, {"top_k": 1.5}, {"rhyme": "true"},
                   {"num": None}, {"temperature": math.nan}, {"temperature": math.inf},
                   {"top_p": math.nan}, {"num": 6}, {"beam": 4}, {"max_tokens": 51},
                   {"prime": "x" * 101}, {"acrostic": "春" * 65}, {"weight": "1.5"},
                   {"form": "qijue"}, {"rhyme_book": "other"}, {"mix": "p"},
                   {"model": "nope"}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            body.model_validate(values)
    assert body.model_validate({"prime": "x" * 100, "acrostic": "春" * 64, "weight": "0.25",
                                "form": "any", "mix": "g", "model": "p"}).mix == "g"


def test_rules_between_fields_are_checked_and_published(body, schema):
    assert _refused(body, {"strict_meter": True}) == \
        "Value error, strict_meter tightens meter: add meter"  # fields, not flags
    assert _refused(body, {"beam": 2, "top_k": 5}) == (
        "Value error, top_k and top_p (and min_p) shape sampling, not beam: drop one or the "
        "other")
    assert {"anyOf": [{"properties": {"strict_meter": {"const": False}}},
                      {"properties": {"meter": {"const": True}}, "required": ["meter"]}]} \
        in schema["allOf"]
    assert {"anyOf": [{"properties": {"beam": {"type": "null"}}},
                      {"properties": {"top_k": {"type": "null"}}}]} in schema["allOf"]
    assert len(schema["allOf"]) == len(SampleRequest.BETWEEN)


def test_nothing_to_mix_with_leaves_only_null():
    alone = sample_body(LIMITS, Served(MODELS, [], "wujue"))
    assert alone.model_validate({"mix": None}).mix is None
    assert "enum" not in str(alone.model_json_schema()["properties"]["mix"])
    with pytest.raises(ValidationError):
        alone.model_validate({"mix": "g"})


def test_score_body_bounds_the_texts_and_their_length():
    body = score_body(LIMITS, Served(MODELS, [], "wujue"))
    properties = body.model_json_schema()["properties"]
    assert properties["texts"]["description"] == "Texts to score, each as its own document."
    assert properties["per_token"]["description"] == "Each token's surprisal and characters."
    assert properties["model"]["description"] == MODEL_HELP
    accepted = body.model_validate({"texts": ["a", "x" * 100]})
    assert accepted.per_token is True and accepted.model is None
    assert body.model_validate({"texts": ["a"], "model": "p"}).model == "p"
    for values in ({"texts": []}, {"texts": ["a", "b", "c"]}, {"texts": [""]},
                   {"texts": ["x" * 101]}, {"texts": "a"}, {"texts": ["a"], "per_token": 1},
                   {"texts": ["a"], "model": "g"}, {"texts": ["a"], "other": 1}, {}):
        with pytest.raises(ValidationError):
            body.model_validate(values)
