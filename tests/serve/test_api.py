"""The JSON API on a tiny trained model: the CLI's results, the limits, one-line 4xx answers."""

from __future__ import annotations

import asyncio
import json
import math

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests_support import assert_clean_error, logprobs_one_by_one

from lm.artifacts import Store
from lm.generation.request import SampleRequest
from lm.models import rnn
from lm.serve import annotate
from lm.serve.gate import Busy, Gate
from lm.settings import names
from lm.tokenization import encode_documents, load_tokenizer

VERSES = ["春風山水月，花雨白雲天。", "天雲白雨花，月水山風春。", "江天人日雲"]


@pytest.fixture(scope="module")
def client(poem_app):
    with TestClient(poem_app) as test_client:
        yield test_client


def _cli_json(cli, store, *args):
    result = cli("--artifacts", store, "sample", "p", "--json", *args)
    assert result.code == 0, result.err
    return json.loads(result.out)


@pytest.mark.parametrize("body, flags", [
    ({"seed": 7, "num": 3, "max_tokens": 30}, ["--seed", "7", "--num", "3", "--max-tokens", "30"]),
    ({"seed": 11, "num": 2, "form": "wujue", "acrostic": "春夏秋冬", "temperature": 0.7,
      "top_p": 0.9, "rhyme": True, "report": True},
     ["--seed", "11", "--num", "2", "--form", "wujue", "--acrostic", "春夏秋冬",
      "--temperature", "0.7", "--top-p", "0.9", "--rhyme", "--report"]),
    ({"seed": 3, "num": 2, "beam": 3, "form": "wujue", "repetition_penalty": 1.3},
     ["--seed", "3", "--num", "2", "--beam", "3", "--form", "wujue",
      "--repetition-penalty", "1.3"]),
])
def test_sample_with_a_seed_is_exactly_lm_sample(client, cli, poem_store, body, flags):
    answer = client.post("/sample", json=body)
    assert answer.status_code == 200, answer.text
    expected = _cli_json(cli, poem_store, *flags)
    assert answer.json()["samples"] == expected["samples"]
    assert answer.json()["report"] == expected.get("report")


def test_another_seed_gives_other_samples(client):
    first = client.post("/sample", json={"seed": 1, "num": 4}).json()["samples"]
    second = client.post("/sample", json={"seed": 2, "num": 4}).json()["samples"]
    assert first != second


def test_sample_annotations_tint_every_character_and_mark_the_rhymes(client):
    answer = client.post("/sample", json={"seed": 5, "num": 2, "form": "wujue"}).json()
    for text, note in zip(answer["samples"], answer["annotations"], strict=True):
        assert note["text"] == text
        covered = sorted(i for t in note["per_token"] for i in range(t["start"], t["end"]))
        assert covered == list(range(len(text)))  # every character has its token's bits
        assert [text[line["rhyme"] + 1] for line in note["lines"] if line["rhyme"]] == ["。"] * 2
        bodies = [text[line["start"]:line["end"]].rstrip("，。") for line in note["lines"]]
        assert [line["tones"] for line in note["lines"]] == [
            annotate.pingshui_tones(body) for body in bodies]


def test_score_is_each_text_on_its_own_token_by_token(client, poem_store):
    """Per-token bits equal a one-token-at-a-time loop over the model from a fresh state."""
    answer = client.post("/score", json={"texts": VERSES}).json()
    artifact = Store(poem_store).resolve("p", "model")
    model = rnn.load(artifact.path)
    tokenizer = load_tokenizer(artifact.file("tokenizer.json"))
    for text, ids, result in zip(VERSES, encode_documents(tokenizer, VERSES),
                                 answer["results"], strict=True):
        expected = logprobs_one_by_one(model, ids)
        bits = np.array([t["bits"] for t in result["per_token"]])
        np.testing.assert_allclose(bits, -expected / math.log(2), rtol=1e-5, atol=1e-6)
        assert result["perplexity"] == pytest.approx(math.exp(-expected.mean()), rel=1e-6)
        assert result["bits_per_char"] == pytest.approx(
            -expected.sum() / math.log(2) / (len(text) + 1), rel=1e-6)
        assert result["worst"]["bits"] == pytest.approx(bits[:-1].max(), rel=1e-9)
    order = answer["ranking"]
    ppl = [answer["results"][i]["perplexity"] for i in order]
    assert sorted(order) == [0, 1, 2] and ppl == sorted(ppl)


def test_score_with_the_served_ngram(client, cli, poem_store):
    """Picked by name; the perplexity is `lm perplexity --text` of the 3-gram."""
    answer = client.post("/score", json={"texts": VERSES[:1], "model": "p-3gram"}).json()
    assert answer["model"] == "ngram:p-3gram@v1"
    expected = json.loads(cli("--artifacts", poem_store, "perplexity", "p-3gram", "--text",
                              VERSES[0], "--json").out)
    assert answer["results"][0]["perplexity"] == pytest.approx(expected["perplexity"])


def test_model_gives_the_manifest_summary_and_lineage(client, poem_store):
    info = client.get("/model").json()
    store = Store(poem_store)
    model, data = store.resolve("p", "model"), store.resolve("p", "dataset")
    assert info["model"]["ref"] == model.ref and info["model"]["params"] == model.params
    assert info["model"]["inputs"] == [{"ref": data.ref, "content_hash": data.content_hash}]
    assert info["lineage"] == [{"depth": 0, "ref": model.ref, "status": model.content_hash[:12]},
                               {"depth": 1, "ref": data.ref, "status": data.content_hash[:12]}]
    assert [s["ref"] for s in info["served"]] == [model.ref, "ngram:p-3gram@v1"]
    assert info["layout"] == "poem" and "wujue" in info["forms"]


def test_openapi_publishes_every_per_request_setting_of_lm_sample(client):
    spec = client.get("/openapi.json").json()
    assert {"/sample", "/score", "/model"} <= set(spec["paths"])
    body = spec["components"]["schemas"]["SampleBody"]["properties"]
    assert set(body) == (set(names(SampleRequest)) - {"device"}) | {"model"}
    assert body["num"]["maximum"] == 64 and body["num"]["minimum"] == 1


def test_the_page_is_served(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="generate"' in page.text and "/score" in page.text


def _hostile() -> list[tuple[str, str, object]]:
    """(method, path, JSON body or raw bytes): 50 requests a server must refuse with a 4xx."""
    bad = [{"form": "sonnet"}, {"temperature": -1}, {"num": 10_000}, {"max_tokens": 10**6},
           {"num": 0}, {"top_k": 0}, {"top_p": 0}, {"top_p": 1.5}, {"min_p": -0.1},
           {"temperature": "hot"}, {"num": 2.5}, {"seed": 2**70}, {"seed": "x"},
           {"acrostic": "魑魅魍魉"}, {"acrostic": "春" * 65}, {"acrostic": " "},
           {"beam": 100}, {"meter": True}, {"beam": 2, "num": 2, "top_k": 5},
           {"repetition_penalty": 0}, {"no_repeat_ngram": -1}, {"script": "klingon"},
           {"prime": "春" * 5000}, {"form": "5,0,5"}, {"form": "wujue", "acrostic": "春夏"},
           {"device": "cuda"}, {"unknown": 1}, {"model": "nope"}, {"length_penalty": "inf"},
           {"rhyme": "maybe"}]
    requests: list[tuple[str, str, object]] = [("POST", "/sample", b) for b in bad]
    raw = [b"{", b"not json", b'{"temperature": NaN}', b'{"temperature": Infinity}', b"[]",
           b"null", b'"text"', b"", b"\xff\xfe"]
    requests += [("POST", "/sample", r) for r in raw]
    requests += [("POST", "/score", b) for b in (
        {"texts": []}, {"texts": [""]}, {"texts": ["a"] * 300}, {"texts": "春風"},
        {"texts": ["x" * 5000]}, {"texts": [1, 2]}, {}, {"texts": ["春"], "model": "nope"})]
    requests += [("POST", "/score", b'{"texts": ["' + b"x" * 10_000_000 + b'"]}'),
                 ("GET", "/sample", None), ("DELETE", "/model", None)]
    return requests


def _reason(answer) -> str:
    try:
        return answer.json()["detail"]
    except ValueError:
        return answer.text


def test_fifty_hostile_requests_get_a_4xx_with_a_one_line_reason(client):
    hostile = _hostile()
    assert len(hostile) == 50
    for method, path, body in hostile:
        if isinstance(body, bytes):
            answer = client.request(method, path, content=body,
                                    headers={"content-type": "application/json"})
        else:
            answer = client.request(method, path, json=body)
        reason = _reason(answer)
        assert 400 <= answer.status_code < 500, (path, body if not isinstance(body, bytes)
                                                 else body[:40], answer.status_code, reason)
        assert isinstance(reason, str) and reason.strip() and "\n" not in reason, reason


def test_the_reasons_name_the_problem(client):
    def reason(body):
        return client.post("/sample", json=body).json()["detail"]

    assert reason({"temperature": -1}) == \
        "temperature: Input should be greater than or equal to 0"  # the field, not a flag
    assert reason({"form": "sonnet"}).startswith("form: 'sonnet' is not a form of this model: ")
    assert reason({"num": 10_000}) == "num: Input should be less than or equal to 64"
    assert reason({"model": "nope"}).startswith("model: Input should be 'model:p@v1', 'p', ")
    big = client.post("/score", content=b"x" * 2_000_000,
                      headers={"content-type": "application/json"})
    assert big.status_code == 413


def test_the_gate_runs_one_job_at_a_time_in_order_and_refuses_beyond_its_queue():
    import threading
    import time

    gate, active, peak, done = Gate(queue=3, seconds=10, stopping=threading.Event()), [0], [0], []
    lock = threading.Lock()

    def job(n: int) -> int:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1
            done.append(n)
        return n

    async def burst() -> list[object]:
        tasks = [asyncio.create_task(gate.run(job, n)) for n in range(6)]
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(burst())
    gate.close()
    assert results[:4] == [0, 1, 2, 3] and done == [0, 1, 2, 3] and peak[0] == 1
    assert all(isinstance(r, Busy) for r in results[4:])
    assert asyncio.run(gate.run(job, 9)) == 9  # a closed gate opens again (app restarted)
    gate.close()


def test_verse_lines_mark_rhymes_and_call_the_tone_hook(monkeypatch):
    text = "白日依山盡，黃河入海流。\n欲窮千里目，更上一層樓。"
    lines = annotate.verse_lines(text)
    assert [text[line["start"]:line["end"]] for line in lines] == [
        "白日依山盡，", "黃河入海流。", "欲窮千里目，", "更上一層樓。"]
    assert [text[line["rhyme"]] for line in lines if line["rhyme"] is not None] == ["流", "樓"]
    monkeypatch.setattr(annotate, "TONE_PATTERN", lambda line: "x" * len(line))
    assert [line["tones"] for line in annotate.verse_lines(text)] == ["xxxxx"] * 4


def test_tone_rows_follow_the_pingshui_book():
    """登鸛雀樓 in its 仄起 pattern; 看 reads either way (中); simplified reads the same."""
    assert [annotate.pingshui_tones(line) for line in ["白日依山盡", "黃河入海流", "看"]] == [
        "仄仄平平仄", "平平仄仄平", "中"]
    assert annotate.pingshui_tones("黄河入海流") == "平平仄仄平"


def test_lm_serve_binds_loopback_unless_told(cli, poem_store, monkeypatch):
    from lm.serve import server

    calls = []
    monkeypatch.setattr(server, "serve_forever", lambda app, host, port: calls.append((host, port)))
    assert cli("--artifacts", poem_store, "serve", "p").code == 0
    assert cli("--artifacts", poem_store, "serve", "p", "--host", "0.0.0.0", "--port", "9001",
               "--ngram", "p-3gram").code == 0
    assert calls == [("127.0.0.1", 8000), ("0.0.0.0", 9001)]


def test_lm_serve_refuses_a_missing_model_in_one_line(cli, poem_store):
    assert_clean_error(cli("--artifacts", poem_store, "serve", "nothing"), "nothing")
    assert_clean_error(cli("--artifacts", poem_store, "serve", "p", "--limit-num", "0"),
                       "--limit-num must be at least 1")


def test_a_titled_model_takes_a_title_and_gives_each_poems_title(titled_app):
    client = TestClient(titled_app)
    assert client.get("/model").json()["titled"] is True
    given = client.post("/sample", json={"title": "秋江", "form": "5,5", "num": 2}).json()
    assert given["titles"] == ["秋江", "秋江"] and all(len(s) == 12 for s in given["samples"])
    own = client.post("/sample", json={"form": "5,5", "num": 2, "seed": 3}).json()
    assert len(own["titles"]) == 2 and all("<sep>" not in t for t in own["titles"])
