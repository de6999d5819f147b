"""The Cells endpoints: a served model's units, each feature's best ones, a text tinted by one.

``GET /cells`` says which units the model has (layers, parts, sizes) and which features they
can be ranked against; ``POST /cells/find`` ranks every unit against each feature on the first
``FIND_TOKENS`` tokens of the model's valid split, as ``lm inspect --find`` does, without the
probes (computed once per model, then kept); ``POST /cells/tint`` gives one unit's value
after each token of a text, as ``lm inspect --text --unit`` (or ``--feature``) does.

Request sizes are bounded (the text by ``--limit-chars``), model work runs in the app's gate,
and a request the model cannot answer (an n-gram, an unknown unit) is a 422 with one line.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic import Field as Spec

from lm.errors import LMError
from lm.evaluation.text_features import FEATURES
from lm.serve.annotate import finite
from lm.serve.config import ServeConfig
from lm.serve.errors import RESPONSES
from lm.serve.schemas import one_of_names as model_name
from lm.serve.schemas import whole_number

FIND_TOKENS = 20_000  # valid tokens recorded for /cells/find: a few seconds on a CPU
TOP_LIMIT = 20
MODEL_HELP = "Which served model: its reference or name (default: the first served)."
FeatureName = Literal[tuple(FEATURES)]  # type: ignore[valid-type]


# exactly one of the two, as the schema says it (a null one counts as absent)
ONE_OF_UNIT_OR_FEATURE = {"oneOf": [
    {"required": ["unit"], "properties": {"unit": {"type": "string"}, "feature": {"type": "null"}}},
    {"required": ["feature"],
     "properties": {"feature": {"type": "string"}, "unit": {"type": "null"}}}]}


def find_body(names: tuple[str, ...]) -> type[BaseModel]:
    """The ``/cells/find`` body."""

    class FindBody(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        top: whole_number({"ge": 1, "le": TOP_LIMIT}) = Spec(  # type: ignore[valid-type]
            5, description="Best units listed per feature.")
        model: model_name(names) = Spec(None, description=MODEL_HELP)  # type: ignore[valid-type]

    return FindBody


def tint_body(limits: ServeConfig, names: tuple[str, ...]) -> type[BaseModel]:
    """The ``/cells/tint`` body: a text and a unit, or a feature whose best unit tints it."""
    bounded = Annotated[str, StringConstraints(min_length=1, max_length=limits.limit_chars)]

    class TintBody(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True,
                                  json_schema_extra=ONE_OF_UNIT_OR_FEATURE)
        text: bounded = Spec(..., description="The text to tint, read as one document.")
        unit: str | None = Spec(None, max_length=32, pattern=r"^\d+:[hc]:\d+$",
                                description="LAYER:PART:INDEX, e.g. 1:c:123 (or a feature).")
        feature: FeatureName | None = Spec(None, description="Tint by this feature's best "
                                           "unit (from /cells/find) instead of a unit.")
        model: model_name(names) = Spec(None, description=MODEL_HELP)  # type: ignore[valid-type]

    return TintBody


class Cells:
    """The loaded models and their rankings, made on first use and kept (run in the gate)."""

    def __init__(self) -> None:
        self.loaded: dict[str, Any] = {}
        self.found: dict[str, dict[str, Any]] = {}

    def model(self, bench: Any, name: str | None) -> Any:
        """The served decoder's own network and tokenizer (loaded once, shared with /sample)."""
        from lm.evaluation.inspection import Loaded
        from lm.tokenization import vocabulary

        recurrent = bench.recurrent_names()
        decoder = bench.pick(recurrent[0] if name is None and recurrent else name)
        artifact = decoder.artifact
        if artifact.kind != "model":
            raise LMError(f"{artifact.ref} is an n-gram model, which has no cells: pick the "
                          "recurrent model")
        if artifact.ref not in self.loaded:
            self.loaded[artifact.ref] = Loaded(artifact, decoder.weights, decoder.tokenizer,
                                               vocabulary(decoder.tokenizer))
        return self.loaded[artifact.ref]

    def describe(self, bench: Any, name: str | None) -> dict[str, Any]:
        from lm.evaluation.cells import unit_names

        loaded = self.model(bench, name)
        layers: dict[tuple[int, str], int] = {}
        for unit in unit_names(loaded.model):
            layer, part, _ = unit.split(":")
            layers[int(layer), part] = layers.get((int(layer), part), 0) + 1
        return {"model": loaded.artifact.ref, "cell": loaded.model.config.cell,
                "parts": [{"layer": layer, "part": part, "size": size}
                          for (layer, part), size in layers.items()],
                "features": {name: f.help for name, f in FEATURES.items()}}

    def find(self, bench: Any, name: str | None, top: int) -> dict[str, Any]:
        from lm.evaluation.inspection import InspectConfig, observe, rank_features

        loaded = self.model(bench, name)
        ref = loaded.artifact.ref
        if ref not in self.found:
            config = InspectConfig(tokens=FIND_TOKENS)
            seen = observe(loaded, loaded.split(bench.store, "valid", FIND_TOKENS), config)
            self.found[ref] = {"model": ref, "split": "valid",
                               "tokens": len(seen.recording.ids),
                               "features": rank_features(seen, TOP_LIMIT)}
        kept = self.found[ref]
        return finite({**kept, "features": {k: {"best": v["best"][:top]}
                                            for k, v in kept["features"].items()}})

    def tint(self, bench: Any, body: Any) -> dict[str, Any]:
        from lm.evaluation.cells import tint

        if (body.unit is None) == (body.feature is None):
            raise LMError("give a unit (LAYER:PART:INDEX) or a feature, one of the two")
        loaded, unit, best, found_on = self.model(bench, body.model), body.unit, None, None
        if body.feature is not None:
            found = self.find(bench, body.model, 1)
            ranked = found["features"][body.feature]["best"]
            if not ranked:
                raise LMError(f"{body.feature} takes one value all over the valid split, so "
                              "no unit tracks it: pick another feature or a unit")
            best, found_on = ranked[0], {"split": found["split"], "tokens": found["tokens"]}
            unit = best["unit"]
        tinted = tint(loaded.model, loaded.tokenizer, body.text, unit)
        return finite({"model": loaded.artifact.ref, "feature": body.feature, "best": best,
                       "found_on": found_on, **tinted.to_json()})


def cells_router(config: ServeConfig, names: tuple[str, ...]) -> APIRouter:
    """The Cells endpoints, their text bounded by the server's ``--limit-chars``; ``names``
    are those of the served recurrent models (an n-gram has no cells)."""
    router, cells = APIRouter(tags=["cells"], responses=RESPONSES), Cells()
    FindBody, TintBody, Name = find_body(names), tint_body(config, names), model_name(names)

    def bench(request: Request) -> tuple[Any, Any]:
        return request.app.state.workbench, request.app.state.gate

    @router.get("/cells", summary="The served model's units and the features they are "
                "ranked against")
    async def units(request: Request, model: Name = Query(None, description=MODEL_HELP)
                    ) -> dict[str, Any]:  # type: ignore[valid-type]
        workbench, gate = bench(request)
        return await gate.run(cells.describe, workbench, model)

    @router.post("/cells/find", summary="Each feature's best units on the valid split "
                 "(as `lm inspect --find`, without the probes)")
    async def find(request: Request,
                   body: FindBody = Body(...)) -> dict[str, Any]:  # type: ignore[valid-type]
        workbench, gate = bench(request)
        return await gate.run(cells.find, workbench, body.model, body.top)

    @router.post("/cells/tint", summary="One unit's value after each token of a text")
    async def tint(request: Request,
                   body: TintBody = Body(...)) -> dict[str, Any]:  # type: ignore[valid-type]
        workbench, gate = bench(request)
        return await gate.run(cells.tint, workbench, body)

    return router
