"""Request bodies of the API, with the server's limits in their OpenAPI schema.

``/sample`` takes the fields of :class:`~lm.generation.request.SampleRequest`, read from its
declarations (type, default, help, minimum) so that nothing is declared twice: a setting added
to ``lm sample`` is a field of ``/sample`` too. Its own rules (``valid``, the ones between
settings) stay in ``SampleRequest.check``, which the server calls as the CLI does.
"""

from __future__ import annotations

from dataclasses import MISSING, Field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, create_model
from pydantic import Field as Spec

from lm.generation.request import SampleRequest
from lm.serve.config import ServeConfig
from lm.settings import declared

SERVER_SIDE = frozenset({"device"})  # chosen when the server starts, not per request
SHORT_TEXTS = frozenset({"form", "acrostic"})  # each line they ask for costs a whole line
SHORT_LIMIT = 64
MODEL_HELP = "Which served artifact: its reference or name (default: the first served)."


def _bounds(f: Field, kind: Any, limits: ServeConfig) -> dict[str, Any]:
    """The field's minimum, the server's caps, and no NaN or infinity for numbers."""
    bounds: dict[str, Any] = {}
    if f.metadata.get("at_least") is not None:
        bounds["ge"] = f.metadata["at_least"]
    caps = {"num": limits.limit_num, "max_tokens": limits.limit_tokens,
            "beam": limits.limit_beam}
    if f.name in caps:
        bounds["le"] = caps[f.name]
    if kind in (float, float | None):
        bounds["allow_inf_nan"] = False
    if kind in (str, str | None) or f.metadata.get("parse"):
        bounds["max_length"] = SHORT_LIMIT if f.name in SHORT_TEXTS else limits.limit_chars
    return bounds


def sample_body(limits: ServeConfig) -> type[BaseModel]:
    """The ``/sample`` body: every per-request setting of ``lm sample``, plus ``model``."""
    fields: dict[str, Any] = {}
    for f, kind in declared(SampleRequest):
        if f.name in SERVER_SIDE:
            continue
        if f.metadata.get("parse"):
            kind = str | None  # given as on the command line; the setting parses it
        default = f.default if f.default is not MISSING else f.default_factory()
        fields[f.name] = (kind, Spec(default, description=f.metadata.get("help", ""),
                                     **_bounds(f, kind, limits)))
    fields["model"] = (str | None, Spec(None, description=MODEL_HELP))
    return create_model("SampleBody", __config__=ConfigDict(extra="forbid"), **fields)


def score_body(limits: ServeConfig) -> type[BaseModel]:
    """The ``/score`` body: several texts, each scored on its own."""
    text = Annotated[str, StringConstraints(min_length=1, max_length=limits.limit_chars)]

    class ScoreBody(BaseModel):
        model_config = ConfigDict(extra="forbid")
        texts: list[text] = Spec(..., min_length=1, max_length=limits.limit_texts,
                                 description="Texts to score, each as its own document.")
        per_token: bool = Spec(True, description="Each token's surprisal and characters.")
        model: str | None = Spec(None, description=MODEL_HELP)

    return ScoreBody
