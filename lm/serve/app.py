"""The web app: a JSON API (``/sample``, ``/score``, ``/model``; OpenAPI at ``/openapi.json``,
docs at ``/docs``) and one page at ``/``.

Each served artifact is opened once as a :class:`~lm.generation.decoder.Decoder` (weights,
tokenizer, verse tables, the n-gram partner and the pair's mixture weight), which ``/sample``
uses exactly as ``lm sample`` does (a seed gives the same texts) and which also scores, for
``/score`` (as ``lm perplexity --rank``) and the tints of the poems. Model work goes through a
one-slot :class:`Gate` that bounds each request's time.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations, and the
# body models are local to the app.
import contextlib
import threading
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI
from fastapi.responses import HTMLResponse

from lm.artifacts import Artifact, Store
from lm.errors import LMError
from lm.evaluation.scoring import LineScorer, logprobs_of, ranked
from lm.generation.decoder import Decoder
from lm.generation.request import SampleRequest
from lm.generation.verse.registry import form_pattern, list_forms
from lm.serve import errors
from lm.serve.annotate import annotate, finite
from lm.serve.cells import cells_router
from lm.serve.config import ServeConfig
from lm.serve.gate import Gate
from lm.serve.schemas import (
    ModelResponse,
    SampleResponse,
    ScoreResponse,
    Served,
    sample_body,
    score_body,
)
from lm.settings import build, declared

PAGE = Path(__file__).with_name("page.html")


class Workbench:
    """The served artifacts, opened once, and what the endpoints do with them (in the gate)."""

    def __init__(self, store: Store, refs: list[str], config: ServeConfig) -> None:
        self.store, self.config = store, config
        self.decoders = [Decoder.open(store, ref, config.device) for ref in refs]
        self.scorers = [LineScorer(d.artifact, d.tokenizer, logprobs_of(d.weights))
                        for d in self.decoders]
        first = self.decoders[0]
        self.partners: list[str] = []
        for other in self.decoders[1:]:
            if other.artifact.kind == "ngram" and first.artifact.kind == "model":
                first.mix_with(other)
                first.weight(other.artifact.ref, "auto")  # λ fitted, or read back, now
                self.partners.append(other.artifact.ref)

    def served(self) -> Served:
        names = [name for d in self.decoders for name in _names(d.artifact)]
        partners = [name for d in self.decoders if d.artifact.ref in self.partners
                    for name in _names(d.artifact)]
        pattern = "|".join(dict.fromkeys(form_pattern(d.lexicon) for d in self.decoders))
        return Served(names, partners, pattern)

    def pattern_rules(self) -> dict[str, str]:
        """What each patterned field of /sample takes, in words, for its 422s."""
        rules = {f.name: f"is not {f.metadata['rule']}" for f, _ in declared(SampleRequest)
                 if f.metadata.get("pattern")}
        forms = ", ".join(name for name, _ in list_forms(self.decoders[0].lexicon))
        rules["form"] = f"is not a form of this model: use one of {forms} (GET /model)"
        return rules

    def recurrent_names(self) -> tuple[str, ...]:
        """The names a request may give for a served recurrent model (the Cells endpoints)."""
        return tuple(name for d in self.decoders if d.artifact.kind == "model"
                     for name in _names(d.artifact))

    def pick(self, name: str | None) -> Decoder:
        """The served artifact a request names (reference or name), else the first."""
        for decoder in self.decoders:
            if name is None or name in _names(decoder.artifact):
                return decoder
        raise LMError(f"model {name!r} is not served here: use one of "
                      f"{', '.join(d.artifact.ref for d in self.decoders)}")

    def index(self, name: str | None) -> int:
        return self.decoders.index(self.pick(name))

    def sample(self, index: int, request: SampleRequest) -> dict[str, Any]:
        """``lm sample``'s result, each text annotated with the scorer's per-token view."""
        decoder = self.decoders[index]
        result = decoder.sample(request)
        payload: dict[str, Any] = {"model": decoder.artifact.ref, "samples": result.texts,
                                   "titles": result.titles, "warnings": result.warnings,
                                   "report": result.report, "weight": result.weight}
        payload["annotations"] = [annotate(s) for s in self.scorers[index].score(result.texts)]
        return finite(payload)

    def score(self, index: int, texts: list[str], per_token: bool) -> dict[str, Any]:
        scores = self.scorers[index].score(texts)
        return finite({"model": self.decoders[index].artifact.ref, "ranking": ranked(scores),
                       "results": [s.as_dict(per_token) for s in scores]})

    def describe(self) -> dict[str, Any]:
        first = self.decoders[0]
        return finite({
            "model": summary(first.artifact),
            "lineage": [{"depth": d, "ref": r, "status": s}
                        for d, r, s in self.store.lineage(first.artifact)],
            "served": [summary(d.artifact) for d in self.decoders],
            "layout": first.classes.layout,
            "titled": first.classes.sep is not None,
            "forms": [name for name, _ in list_forms(first.lexicon) if "," not in name
                      and "TUNE" not in name],
            "mix": self.partners,
            "limits": {k: getattr(self.config, k) for k in vars(self.config)
                       if k.startswith("limit_")},
        })


def _names(artifact: Artifact) -> list[str]:
    """What a request may call an artifact: its reference, its name, kind:name."""
    return [artifact.ref, artifact.name, f"{artifact.kind}:{artifact.name}"]


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
    stopping = threading.Event()  # set on SIGTERM: work in the gate stops at its next step
    gate = Gate(config.limit_queue, config.limit_seconds, stopping)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        stopping.clear()  # a server started again on the same app serves again
        yield
        gate.close()

    app = FastAPI(title="lm serve", version="1", lifespan=lifespan,
                  max_body_size=config.limit_body,
                  description=f"Sampling and scoring with {bench.decoders[0].artifact.ref}.")
    errors.install(app, config.limit_body, bench.pattern_rules())
    _routes(app, bench, gate, config)
    app.include_router(cells_router(config, bench.recurrent_names()))
    app.state.workbench, app.state.gate, app.state.stopping = bench, gate, stopping
    return app


def _routes(app: FastAPI, bench: Workbench, gate: Gate, config: ServeConfig) -> None:
    served = bench.served()
    SampleBody, ScoreBody = sample_body(config, served), score_body(config, served)
    refusals = errors.RESPONSES

    @app.post("/sample", summary="Generate, as `lm sample` does (same seed, same texts)",
              response_model=SampleResponse, responses=refusals)
    async def sample(body: SampleBody = Body(...)) -> dict[str, Any]:  # type: ignore[valid-type]
        values = body.model_dump(exclude={"model"})
        if values["mix"] is not None:
            values["mix"] = bench.pick(values["mix"]).artifact.ref
        request = build(SampleRequest, {**values, "device": config.device})
        return await gate.run(bench.sample, bench.index(body.model), request)

    @app.post("/score", summary="Perplexity, bits/char and per-token surprisal of each text",
              response_model=ScoreResponse, responses=refusals)
    async def score(body: ScoreBody = Body(...)) -> dict[str, Any]:  # type: ignore[valid-type]
        return await gate.run(bench.score, bench.index(body.model), body.texts, body.per_token)

    @app.get("/model", summary="The served model's manifest summary and lineage",
             response_model=ModelResponse)
    async def model() -> dict[str, Any]:
        return bench.describe()

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    async def page() -> str:
        return PAGE.read_text("utf-8")
