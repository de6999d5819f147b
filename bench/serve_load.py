"""Load check of ``lm serve``: many ``/score`` requests from concurrent clients on loopback.

Why: the server runs one model computation at a time and queues the rest; this shows what
that costs a client (latency percentiles) and that nothing fails under concurrency.

It starts the app for MODEL on a free loopback port in this process (uvicorn in a thread, as
``lm serve`` runs it) unless ``--url`` points at a running server, then sends ``--requests``
POST /score requests (each with ``--texts-per-request`` verses) from ``--clients`` threads,
each with its own HTTP connection, and prints one table row: failures, p50/p90/p99/max
latency and throughput.

Usage: ``python bench/serve_load.py MODEL [--artifacts DIR] [--requests 200] [--clients 8]``
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

VERSES = ["白日依山盡，黃河入海流。", "欲窮千里目，更上一層樓。", "床前明月光，疑是地上霜。",
          "舉頭望明月，低頭思故鄉。", "春眠不覺曉，處處聞啼鳥。", "夜來風雨聲，花落知多少。",
          "山依日白盡，海入黃河流。", "月明光前床，霜地上是疑。"]


@dataclass
class Load:
    """What the clients saw: one latency per answered request, and every failure."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def load(url: str, requests: int = 200, clients: int = 8, texts_per_request: int = 2,
         timeout: float = 120.0) -> Load:
    """Send the requests from ``clients`` threads at once; a non-200 answer is a failure."""
    result, lock, local = Load(), threading.Lock(), threading.local()

    def one(index: int) -> None:
        client = getattr(local, "client", None) or httpx.Client(base_url=url, timeout=timeout)
        local.client = client
        texts = [VERSES[(index + k) % len(VERSES)] for k in range(texts_per_request)]
        start = time.perf_counter()
        try:
            response = client.post("/score", json={"texts": texts, "per_token": True})
            ok = response.status_code == 200 and len(response.json()["results"]) == len(texts)
            problem = "" if ok else f"request {index}: {response.status_code} {response.text}"
        except httpx.HTTPError as exc:
            problem = f"request {index}: {type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - start
        with lock:
            (result.failures.append(problem) if problem else result.latencies.append(elapsed))

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(one, range(requests)))
    result.seconds = time.perf_counter() - began
    return result


@contextlib.contextmanager
def served(model: str, artifacts: str | None) -> Iterator[str]:
    from lm.artifacts import Store
    from lm.serve.app import create_app
    from lm.serve.server import running

    with running(create_app(Store(artifacts), model)) as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", help="Model artifact to serve (unless --url).")
    parser.add_argument("--artifacts", help="Artifact store (default: $LM_HOME or ./artifacts).")
    parser.add_argument("--url", help="A running lm serve to load instead.")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--texts-per-request", type=int, default=2)
    args = parser.parse_args()
    if not (args.url or args.model):
        parser.error("give MODEL or --url")
    with (contextlib.nullcontext(args.url) if args.url
          else served(args.model, args.artifacts)) as url:
        httpx.post(f"{url}/score", json={"texts": VERSES[:1]}, timeout=120)  # warm up
        result = load(url, args.requests, args.clients, args.texts_per_request)
    ms = [1000 * result.percentile(p) for p in (50, 90, 99, 100)] if result.latencies else []
    print("| requests | clients | texts/request | failures | p50 ms | p90 ms | p99 ms | max ms "
          "| requests/s | mean ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    mean = 1000 * statistics.fmean(result.latencies) if result.latencies else float("nan")
    print(f"| {args.requests} | {args.clients} | {args.texts_per_request} | "
          f"{len(result.failures)} | " + " | ".join(f"{v:.1f}" for v in ms)
          + f" | {args.requests / result.seconds:.1f} | {mean:.1f} |")
    for failure in result.failures[:5]:
        print(failure)


if __name__ == "__main__":
    main()
