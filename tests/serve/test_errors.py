"""Every refusal is one line under ``detail``, with its status and, for 429 and 503, the
seconds to wait: each kind of error, raised by a bare app, compared whole."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict

from lm.errors import LMError
from lm.serve import errors
from lm.serve.gate import Busy, Overrun


def _invalid(*problems: dict) -> RequestValidationError:
    return RequestValidationError(list(problems))


def test_describe_names_the_first_bad_field_and_counts_the_others():
    first = {"loc": ("body", "temperature"), "msg": "Input should be greater than or equal "
             "to 0", "type": "greater_than_equal"}
    other = {"loc": ("body", "num"), "msg": "Input should be a valid integer", "type": "x"}
    assert errors.describe(_invalid(first)) == \
        "temperature: Input should be greater than or equal to 0"
    assert errors.describe(_invalid(first, other)) == \
        "temperature: Input should be greater than or equal to 0 (and 1 more problem)"
    assert errors.describe(_invalid(first, other, other)) == \
        "temperature: Input should be greater than or equal to 0 (and 2 more problems)"
    assert errors.describe(_invalid({"loc": ("body", "texts", 0), "msg": "too short"})) == \
        "texts.0: too short"
    assert errors.describe(_invalid()) == "invalid request"
    assert errors.describe(_invalid({})) == "invalid"  # neither a place nor a message


def test_describe_drops_pydantic_s_prefix_of_a_rule_between_fields():
    problem = {"loc": ("body",), "msg": "Value error, strict_meter tightens meter: add meter",
               "type": "value_error"}
    assert errors.describe(_invalid(problem)) == "strict_meter tightens meter: add meter"


def test_describe_tells_a_pattern_in_words_when_it_has_them():
    mismatch = {"loc": ("body", "form"), "msg": "String should match pattern '^(?:wujue)$'",
                "type": "string_pattern_mismatch", "input": "sonnet"}
    rules = {"form": "is not a form of this model: use one of wujue (GET /model)"}
    assert errors.describe(_invalid(mismatch), rules) == \
        "form: 'sonnet' is not a form of this model: use one of wujue (GET /model)"
    assert errors.describe(_invalid(mismatch)) == \
        "form: String should match pattern '^(?:wujue)$'"  # no words for it: the pattern
    too_long = {**mismatch, "type": "string_too_long", "msg": "String should have at most 64 "
                "characters"}
    assert errors.describe(_invalid(too_long), rules) == \
        "form: String should have at most 64 characters"  # only a missed pattern is reworded


def test_describe_a_body_that_is_not_json():
    broken = {"loc": ("body", 1), "msg": "JSON decode error", "type": "json_invalid",
              "ctx": {"error": "Expecting value"}}
    assert errors.describe(_invalid(broken)) == "the body is not valid JSON (Expecting value)"
    assert errors.describe(_invalid({**broken, "ctx": {}})) == \
        "the body is not valid JSON (parse error)"
    assert errors.describe(_invalid({"loc": ("body", 1), "type": "json_invalid"})) == \
        "the body is not valid JSON (parse error)"


def test_one_line_joins_every_line_and_space():
    assert errors.one_line("a  problem\n  and\tits fix ") == "a problem and its fix"
    assert errors.one_line(ValueError("x\ny")) == "x y"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    num: int


@pytest.fixture(scope="module")
def client():
    app = FastAPI(max_body_size=1000)
    errors.install(app, 1000, {"form": "is not a form"})

    @app.post("/body")
    async def body(value: Body) -> dict:
        return {"num": value.num}

    @app.get("/refused")
    async def refused() -> None:
        raise LMError("--form 'x' is not\na form")

    @app.get("/busy")
    async def busy() -> None:
        raise Busy("the queue is full")

    @app.get("/overrun")
    async def overrun() -> None:
        raise Overrun("too long:\n ask for less", 7)

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom\nhere")

    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_each_refusal_has_its_status_one_line_and_retry_after(client):
    def answer(method: str, path: str, **kwargs):
        response = client.request(method, path, **kwargs)
        return response.status_code, response.json(), response.headers.get("retry-after")

    assert answer("GET", "/refused") == (422, {"detail": "--form 'x' is not a form"}, None)
    assert answer("GET", "/busy") == (429, {"detail": "the queue is full"}, "1")
    assert answer("GET", "/overrun") == (503, {"detail": "too long: ask for less"}, "7")
    assert answer("GET", "/crash") == (500, {"detail": "internal error: RuntimeError: boom "
                                                       "here"}, None)
    assert answer("POST", "/body", json={"num": "1"}) == (
        422, {"detail": "num: Input should be a valid integer"}, None)
    assert answer("POST", "/body", content=b"{", headers={"content-type": "application/json"}
                  )[:2] == (400, {"detail": "the body is not valid JSON (Expecting property "
                                            "name enclosed in double quotes)"})
    # a body sent in chunks, its size unannounced, is cut once it passes the limit
    assert answer("POST", "/body", content=iter([b"1" * 600, b"1" * 600]),
                  headers={"content-type": "application/json"}) == (
        413, {"detail": "request body over 1,000 bytes: send less (lm serve --limit-body raises "
                        "the cap)"}, None)
    assert answer("GET", "/nowhere") == (404, {"detail": "Not Found"}, None)
    assert answer("DELETE", "/busy") == (405, {"detail": "Method Not Allowed"}, None)


def test_every_operation_documents_its_refusals():
    assert set(errors.RESPONSES) == {400, 413, 422, 429, 503}
    assert all(r["model"].model_json_schema()["required"] == ["detail"]
               for r in errors.RESPONSES.values())
    assert "Retry-After" in errors.RESPONSES[429]["headers"]
    assert "headers" not in errors.RESPONSES[422]
