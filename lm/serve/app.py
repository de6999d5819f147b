"""The web app: a JSON API (``/sample``, ``/score``, ``/model``; OpenAPI at ``/openapi.json``,
docs at ``/docs``) and one page at ``/``.

It calls the code the CLI calls: :func:`lm.generation.run.sample` for ``/sample`` (so a seed
gives exactly what ``lm sample`` gives) and :class:`lm.evaluation.scoring.LineScorer` for
``/score`` (as ``lm perplexity --rank``). Model work goes through a one-slot :class:`Gate`.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations, and the
# body models are local to the app.
import contextlib
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI
from fastapi.responses import HTMLResponse

from lm.artifacts import Artifact, Store
from lm.errors import LMError
from lm.evaluation.scoring import LineScorer, ranked
from lm.generation.forms import NAMED
from lm.generation.request import SampleRequest
from lm.generation.vocab import TokenClasses
from lm.serve import errors
from lm.serve.annotate import annotate, finite
from lm.serve.cells import cells_router
from lm.serve.config import ServeConfig
from lm.serve.gate import Gate
from lm.serve.schemas import sample_body, score_body
from lm.settings import build

PAGE = Path(__file__).with_name("page.html")


class Workbench:
    """The served artifacts and what the endpoints do with them (run inside the gate)."""

    def __init__(self, store: Store, refs: list[str], config: ServeConfig) -> None:
        self.store, self.config = store, config
        self.served = [LineScorer(store, ref, config.device) for ref in refs]

    def pick(self, name: str | None) -> LineScorer:
        """The served artifact a request names (reference or name), else the first."""
        if name is None:
            return self.served[0]
        for served in self.served:
            artifact = served.artifact
            if name in (artifact.ref, artifact.name, f"{artifact.kind}:{artifact.name}"):
                return served
        raise LMError(f"model {name!r} is not served here: use one of "
                      f"{', '.join(s.artifact.ref for s in self.served)}")

    def sample(self, served: LineScorer, request: SampleRequest) -> dict[str, Any]:
        """``lm sample``'s result, each text annotated with the scorer's per-token view."""
        from lm.generation.run import sample

        ref = served.artifact.ref
        result = sample(self.store, ref, request)
        payload: dict[str, Any] = {"model": ref, "samples": result.texts,
                                   "warnings": result.warnings, "report": result.report}
        payload["annotations"] = [annotate(s) for s in served.score(result.texts)]
        return finite(payload)

    def score(self, served: LineScorer, texts: list[str], per_token: bool) -> dict[str, Any]:
        scores = served.score(texts)
        return finite({"model": served.artifact.ref, "ranking": ranked(scores),
                       "results": [s.as_dict(per_token) for s in scores]})

    def describe(self) -> dict[str, Any]:
        first = self.served[0]
        classes = TokenClasses.of(first.tokenizer, first.artifact.manifest.get("level", "char"))
        return finite({
            "model": summary(first.artifact),
            "lineage": [{"depth": d, "ref": r, "status": s}
                        for d, r, s in self.store.lineage(first.artifact)],
            "served": [summary(s.artifact) for s in self.served],
            "layout": classes.layout, "forms": ["any", *NAMED],
            "limits": {k: getattr(self.config, k) for k in vars(self.config)
                       if k.startswith("limit_")},
        })


def summary(artifact: Artifact) -> dict[str, Any]:
    """The manifest without its file list: what it is, what it was made from, how it did."""
    manifest = artifact.manifest
    return {"ref": artifact.ref, "kind": artifact.kind, "name": artifact.name,
            "version": artifact.version, "created": manifest.get("created"),
            "level": manifest.get("level"), "content_hash": artifact.content_hash,
            "inputs": manifest.get("inputs", []), "params": artifact.params,
            "metrics": artifact.metrics}


def create_app(store: Store, model: str, config: ServeConfig | None = None) -> FastAPI:
    """The app for ``model`` (and ``config.ngram``), models loaded now, limits from config."""
    config = config or ServeConfig()
    config.check()
    bench = Workbench(store, [model, *([config.ngram] if config.ngram else [])], config)
    gate = Gate(config.limit_queue)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        gate.close()

    app = FastAPI(title="lm serve", version="1", lifespan=lifespan,
                  max_body_size=config.limit_body,
                  description=f"Sampling and scoring with {bench.served[0].artifact.ref}.")
    errors.install(app, config.limit_body)
    _routes(app, bench, gate, config)
    app.include_router(cells_router(config))
    app.state.workbench, app.state.gate = bench, gate
    return app


def _routes(app: FastAPI, bench: Workbench, gate: Gate, config: ServeConfig) -> None:
    SampleBody, ScoreBody = sample_body(config), score_body(config)

    @app.post("/sample", summary="Generate, as `lm sample` does (same seed, same texts)")
    async def sample(body: SampleBody = Body(...)) -> dict[str, Any]:  # type: ignore[valid-type]
        values = body.model_dump(exclude={"model"})
        request = build(SampleRequest, {**values, "device": config.device})
        request.check()  # refuse before waiting in the queue
        return await gate.run(bench.sample, bench.pick(body.model), request)

    @app.post("/score", summary="Perplexity, bits/char and per-token surprisal of each text")
    async def score(body: ScoreBody = Body(...)) -> dict[str, Any]:  # type: ignore[valid-type]
        return await gate.run(bench.score, bench.pick(body.model), body.texts, body.per_token)

    @app.get("/model", summary="The served model's manifest summary and lineage")
    async def model() -> dict[str, Any]:
        return bench.describe()

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    async def page() -> str:
        return PAGE.read_text("utf-8")
