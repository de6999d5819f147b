"""The load check: 200 /score requests from 8 concurrent clients on loopback all succeed.

The latency figures come from ``bench/serve_load.py`` (the same client code); this only
asserts that nothing failed against a real uvicorn server.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from lm.serve.server import running

BENCH = Path(__file__).resolve().parents[2] / "bench" / "serve_load.py"


def _bench():
    spec = importlib.util.spec_from_file_location("serve_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # its dataclasses look their module up
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


def test_200_score_requests_from_8_clients_all_succeed(poem_app):
    bench = _bench()
    with running(poem_app) as url:
        assert url.startswith("http://127.0.0.1:")
        result = bench.load(url, requests=200, clients=8)
    assert result.failures == []
    assert len(result.latencies) == 200


def test_sample_requests_with_and_without_the_mixture_all_succeed(poem_app):
    bench = _bench()
    with running(poem_app) as url:
        plain = bench.load(url, requests=20, clients=4, scenario="sample")
        mixed = bench.load(url, requests=20, clients=4, scenario="sample-mix", ngram="p-3gram")
    assert plain.failures == [] == mixed.failures
    assert len(plain.latencies) == 20 == len(mixed.latencies)
