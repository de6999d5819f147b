"""Every request is bounded in time, and the server stops promptly: a long request is cut at
``--limit-seconds`` while the others are answered, and SIGTERM ends ``lm serve`` within 5 s in
the middle of a generation."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from fastapi import FastAPI

from lm.artifacts import Store
from lm.serve import server as server_module
from lm.serve.app import create_app
from lm.serve.config import ServeConfig
from lm.serve.server import running

# many rows, a form that cannot end before 921 tokens, a per-row rule at every step: seconds
LONG = {"num": 64, "max_tokens": 1000, "form": ",".join(["90"] * 10), "no_repeat_ngram": 4,
        "repetition_penalty": 1.1}
SHORT = {"num": 1, "max_tokens": 5, "seed": 1}


def _post(url: str, body: dict, answers: dict, key: str) -> None:
    start = time.monotonic()
    response = httpx.post(f"{url}/sample", json=body, timeout=60)
    answers[key] = (response, time.monotonic() - start)


def test_a_long_request_is_stopped_at_the_limit_and_the_others_are_answered(poem_store):
    limit = 1.0
    app = create_app(Store(poem_store), "p", ServeConfig(limit_seconds=limit))
    answers: dict = {}
    with running(app) as url:
        long = threading.Thread(target=_post, args=(url, LONG, answers, "long"))
        long.start()
        time.sleep(0.3)  # the long one holds the model now; three more wait behind it
        short = [threading.Thread(target=_post, args=(url, {**SHORT, "seed": i}, answers, i))
                 for i in range(3)]
        for thread in short:
            thread.start()
        for thread in (long, *short):
            thread.join(60)
    response, seconds = answers["long"]
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert "ran past the server's 1 s limit" in response.json()["detail"]
    assert limit <= seconds < limit + 2
    for i in range(3):
        response, seconds = answers[i]
        assert response.status_code == 200 and len(response.json()["samples"]) == 1
        assert seconds < limit + 3  # waited for the long one's limit at most, then ran


def test_a_form_longer_than_the_token_limit_is_refused(poem_app):
    with running(poem_app) as url:
        refused = httpx.post(f"{url}/sample", json={"form": "999"}, timeout=30)
        assert refused.status_code == 422
        assert refused.json()["detail"] == ("form 999 needs up to 1002 tokens, more than "
                                            "max_tokens 200: raise max_tokens or ask for a "
                                            "shorter form")
        capped = httpx.post(f"{url}/sample", json={"form": "999", "max_tokens": 5000},
                            timeout=30)
        assert capped.status_code == 422
        assert capped.json()["detail"].startswith("max_tokens: Input should be less than or "
                                                  "equal to 1000")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_sigterm_stops_lm_serve_within_five_seconds_mid_generation(poem_store, tmp_path):
    port = _free_port()
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "lm", "--artifacts", str(poem_store), "serve", "p", "--port",
         str(port), "--limit-seconds", "120"], env=env, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{url}/model", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        answers: dict = {}
        long = threading.Thread(target=_post, args=(url, LONG, answers, "long"))
        long.start()
        time.sleep(1.0)  # mid-generation
        assert "long" not in answers
        start = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
        stopped = time.monotonic() - start
        long.join(10)
    finally:
        if server.poll() is None:
            server.kill()
    assert stopped < 5, stopped
    response, _ = answers["long"]
    assert response.status_code == 503
    assert response.json()["detail"].startswith("the server is shutting down")


def _bare_app() -> FastAPI:
    app = FastAPI()
    app.state.stopping = threading.Event()
    return app


def test_a_signal_tells_the_model_work_to_stop_and_a_second_ctrl_c_forces_the_exit():
    app = _bare_app()
    stopping = server_module._server(app, "127.0.0.1", 0, "warning")
    stopping.handle_exit(signal.SIGINT, None)
    assert app.state.stopping.is_set() and stopping.should_exit and not stopping.force_exit
    stopping.handle_exit(signal.SIGINT, None)
    assert stopping.force_exit  # as uvicorn does: Ctrl-C twice ends it at once


def test_the_server_is_one_worker_with_a_short_grace(monkeypatch):
    app, started = _bare_app(), []
    monkeypatch.setattr(server_module.StoppingServer, "run", lambda self: started.append(self))
    server_module.serve_forever(app, "0.0.0.0", 9001)
    (served,) = started
    config = served.config
    assert (config.app, config.host, config.port, config.log_level) == (app, "0.0.0.0", 9001,
                                                                        "info")
    assert config.workers == 1 and config.timeout_graceful_shutdown == 3
    assert served.stopping is app.state.stopping
