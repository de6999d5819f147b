"""Load check of ``lm serve``: many requests from concurrent clients on loopback.

Why: the server runs one model computation at a time and queues the rest; this shows what
that costs a client (latency percentiles), that nothing fails under concurrency, and what
sampling from the RNN + n-gram mixture costs beside sampling from the RNN alone.

It starts the app for MODEL (with ``--ngram`` beside it) on a free loopback port in this
process (uvicorn in a thread, as ``lm serve`` runs it) unless ``--url`` points at a running
server, then, for each scenario of ``--scenarios``, sends ``--requests`` requests from
``--clients`` threads, each with its own HTTP connection, and prints one table row per
scenario: failures, p50/p90/p99/max latency and throughput. The scenarios:

* ``score``: POST /score with ``--texts-per-request`` verses;
* ``sample``: POST /sample, 4 五言绝句 under ``meter`` (a new seed each request);
* ``sample-mix``: the same drawn from the mixture with the n-gram, ``weight: auto``.

Each scenario is warmed up by one request first, so rows show the second request on.

Usage: ``python bench/serve_load.py MODEL [--ngram NGRAM] [--scenarios score,sample,sample-mix]
[--requests 200] [--clients 8]``
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


def request_for(scenario: str, index: int, texts_per_request: int = 2,
                ngram: str | None = None) -> tuple[str, dict, int]:
    """(path, body, results expected) of request ``index`` of a scenario."""
    if scenario == "score":
        texts = [VERSES[(index + k) % len(VERSES)] for k in range(texts_per_request)]
        return "/score", {"texts": texts, "per_token": True}, len(texts)
    body = {"num": 4, "form": "wujue", "meter": True, "seed": index}
    if scenario == "sample-mix":
        body.update(mix=ngram, weight="auto")
    return "/sample", body, 4


def load(url: str, requests: int = 200, clients: int = 8, texts_per_request: int = 2,
         timeout: float = 120.0, scenario: str = "score", ngram: str | None = None) -> Load:
    """Send the requests from ``clients`` threads at once; a non-200 answer is a failure."""
    result, lock, local = Load(), threading.Lock(), threading.local()

    def one(index: int) -> None:
        client = getattr(local, "client", None) or httpx.Client(base_url=url, timeout=timeout)
        local.client = client
        path, body, expected = request_for(scenario, index, texts_per_request, ngram)
        start = time.perf_counter()
        try:
            response = client.post(path, json=body)
            answers = response.json().get("results") or response.json().get("samples") \
                if response.status_code == 200 else None
            ok = answers is not None and len(answers) == expected
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
def served(model: str, artifacts: str | None, ngram: str | None) -> Iterator[str]:
    from lm.artifacts import Store
    from lm.serve.app import create_app
    from lm.serve.config import ServeConfig
    from lm.serve.server import running

    with running(create_app(Store(artifacts), model, ServeConfig(ngram=ngram))) as url:
        yield url


def row(scenario: str, result: Load, clients: int, requests: int) -> str:
    ms = [1000 * result.percentile(p) for p in (50, 90, 99, 100)] if result.latencies else []
    mean = 1000 * statistics.fmean(result.latencies) if result.latencies else float("nan")
    return (f"| {scenario} | {requests} | {clients} | {len(result.failures)} | "
            + " | ".join(f"{v:.1f}" for v in ms)
            + f" | {requests / result.seconds:.1f} | {mean:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", help="Model artifact to serve (unless --url).")
    parser.add_argument("--ngram", help="N-gram served beside it (sample-mix needs one).")
    parser.add_argument("--artifacts", help="Artifact store (default: $LM_HOME or ./artifacts).")
    parser.add_argument("--url", help="A running lm serve to load instead.")
    parser.add_argument("--scenarios", default="score",
                        help="Comma-separated: score, sample, sample-mix.")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--texts-per-request", type=int, default=2)
    args = parser.parse_args()
    if not (args.url or args.model):
        parser.error("give MODEL or --url")
    print("| scenario | requests | clients | failures | p50 ms | p90 ms | p99 ms | max ms "
          "| requests/s | mean ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    means = {}
    with (contextlib.nullcontext(args.url) if args.url
          else served(args.model, args.artifacts, args.ngram)) as url:
        for scenario in args.scenarios.split(","):
            path, body, _ = request_for(scenario, -1, args.texts_per_request, args.ngram)
            httpx.post(f"{url}{path}", json=body, timeout=120)  # warm up: the first request
            result = load(url, args.requests, args.clients, args.texts_per_request,
                          scenario=scenario, ngram=args.ngram)
            print(row(scenario, result, args.clients, args.requests), flush=True)
            for failure in result.failures[:5]:
                print(failure)
            means[scenario] = statistics.fmean(result.latencies) if result.latencies else None
    if means.get("sample") and means.get("sample-mix"):
        print(f"sample-mix ÷ sample (mean latency): {means['sample-mix'] / means['sample']:.2f}×")


if __name__ == "__main__":
    main()
