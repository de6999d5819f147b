"""Request and response bodies of the API; the request rules all live in the OpenAPI schema.

``/sample`` takes the fields of :class:`~lm.generation.request.SampleRequest`, read from its
declarations (type, default, help, bounds, choices, patterns) so that nothing is declared
twice: a setting added to ``lm sample`` is a field of ``/sample`` too. The rules between
settings (``SampleRequest.BETWEEN``) become ``allOf`` ``if``/``then`` clauses and are checked
by the same code as on the command line; the server's caps and what it serves (the forms of
its model, its n-gram, its artifacts) narrow the fields further. Values are strict: JSON
``"true"`` is not a boolean, ``"5"`` not a number.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, Field
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    create_model,
    model_validator,
)
from pydantic import Field as Spec

from lm.errors import LMError
from lm.generation.request import SampleRequest
from lm.serve.config import ServeConfig
from lm.settings import declared, spelled_as_fields

SERVER_SIDE = frozenset({"device"})  # chosen when the server starts, not per request
SHORT_TEXTS = frozenset({"form", "acrostic"})  # each line they ask for costs a whole line
SHORT_LIMIT = 64
MODEL_HELP = "Which served artifact: its reference or name (default: the first served)."
BOUND_KEYS = {"at_least": "ge", "above": "gt", "at_most": "le", "below": "lt"}


def _bounds(f: Field, kind: Any, limits: ServeConfig) -> dict[str, Any]:
    """The field's declared bounds and pattern, the server's caps, no NaN or infinity."""
    meta = f.metadata
    bounds: dict[str, Any] = {key: meta[name] for name, key in BOUND_KEYS.items()
                              if meta.get(name) is not None}
    caps = {"num": limits.limit_num, "max_tokens": limits.limit_tokens,
            "beam": limits.limit_beam}
    if f.name in caps:
        bounds["le"] = caps[f.name]
    if kind in (float, float | None):
        bounds["allow_inf_nan"] = False
    if kind in (str, str | None):
        bounds["max_length"] = SHORT_LIMIT if f.name in SHORT_TEXTS else limits.limit_chars
        if meta.get("pattern"):
            bounds["pattern"] = f"^(?:{meta['pattern']})$"
    return bounds


def _integral(value: Any) -> Any:
    """JSON's 11.0 is the integer 11 (JSON Schema says so); 11.5 and "11" stay refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def whole_number(bounds: dict[str, Any]) -> Any:
    """An integer that JSON may spell 11.0, with its bounds (taken out of ``bounds``)."""
    limits = {key: bounds.pop(key) for key in ("ge", "gt", "le", "lt") if key in bounds}
    return Annotated[int, Spec(**limits), BeforeValidator(_integral)]


def _kind(f: Field, kind: Any, served: Served, bounds: dict[str, Any]) -> Any:
    """The field's type: choices become a Literal, and what the server serves narrows some."""
    if f.name in served.choices:
        bounds.clear()  # the served names are the whole rule (none served: only null)
        return served.literal(f.name)
    if kind in (int, int | None):
        return whole_number(bounds) if kind is int else whole_number(bounds) | None
    choices = f.metadata.get("choices")
    if choices is None:
        return kind
    options = Literal[tuple(choices() if callable(choices) else choices)]  # type: ignore[misc]
    return options | None if type(None) in typing.get_args(kind) else options


class Served:
    """What the running server offers, which a request's fields must name: its artifacts, the
    n-grams it can mix with and the forms of its model (a regular expression)."""

    def __init__(self, refs: list[str], partners: list[str], form_pattern: str) -> None:
        self.choices: dict[str, tuple[str, ...]] = {"model": tuple(refs),
                                                     "mix": tuple(partners)}
        self.form_pattern = form_pattern

    def literal(self, name: str) -> Any:
        """One of the served names, or null; only null when none is served."""
        return one_of_names(self.choices[name])


def one_of_names(names: tuple[str, ...]) -> Any:
    """A field naming one of ``names``, or null; only null when there is none."""
    return Literal[names] | None if names else None  # type: ignore[valid-type]


def sample_body(limits: ServeConfig, served: Served) -> type[BaseModel]:
    """The ``/sample`` body: every per-request setting of ``lm sample``, plus ``model``."""
    fields: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for f, kind in declared(SampleRequest):
        if f.name in SERVER_SIDE:
            continue
        default = f.default if f.default is not MISSING else f.default_factory()
        defaults[f.name] = default
        bounds = _bounds(f, kind, limits)
        if f.name == "form":
            bounds["pattern"] = f"^(?:{served.form_pattern})$"
        kind = _kind(f, kind, served, bounds)
        fields[f.name] = (kind, Spec(default, description=f.metadata.get("help", ""), **bounds))
    fields["model"] = (served.literal("model"), Spec(None, description=MODEL_HELP))
    caps = {"num": limits.limit_num, "beam": limits.limit_beam}
    clauses = [c for rule in SampleRequest.BETWEEN for c in rule.clauses(defaults, caps)]
    config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"allOf": clauses})
    base = type("SampleRules", (_Checked,), {"model_config": config})
    return create_model("SampleBody", __base__=base, **fields)


class _Checked(BaseModel):
    """A body whose rules between fields are those of ``SampleRequest.BETWEEN``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="after")
    def _between(self) -> _Checked:
        with spelled_as_fields():
            try:
                for rule in SampleRequest.BETWEEN:
                    rule.check(self)
            except LMError as broken:
                raise ValueError(str(broken)) from None
        return self


def score_body(limits: ServeConfig, served: Served) -> type[BaseModel]:
    """The ``/score`` body: several texts, each scored on its own."""
    text = Annotated[str, StringConstraints(min_length=1, max_length=limits.limit_chars)]
    model_name = served.literal("model")

    class ScoreBody(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        texts: list[text] = Spec(..., min_length=1, max_length=limits.limit_texts,
                                 description="Texts to score, each as its own document.")
        per_token: bool = Spec(True, description="Each token's surprisal and characters.")
        model: model_name = Spec(None, description=MODEL_HELP)

    return ScoreBody


# ------------------------------------------------------------------------------- responses
class ErrorBody(BaseModel):
    """Every refusal: one line naming the problem and the fix."""

    detail: str


class TokenView(BaseModel):
    token: str
    bits: float | None
    start: int
    end: int


class LineView(BaseModel):
    start: int
    end: int
    rhyme: int | None
    tones: str | None


class Scored(BaseModel):
    """One text as ``lm perplexity --rank`` scores it (numbers that overflow are null)."""

    text: str
    tokens: int
    oov: int
    nats_per_token: float | None
    perplexity: float | None
    characters: int | None
    bits_per_char: float | None
    worst: dict[str, Any] | None
    per_token: list[TokenView] | None = None


class Annotation(Scored):
    lines: list[LineView]


class SampleResponse(BaseModel):
    model: str
    samples: list[str]
    titles: list[str] | None = None  # each poem's title, for a model of titled documents
    warnings: list[str]
    report: dict[str, Any] | None
    weight: float | None = None  # λ on the model when mixing
    annotations: list[Annotation]


class ScoreResponse(BaseModel):
    model: str
    ranking: list[int]
    results: list[Scored]


class ModelResponse(BaseModel):
    model: dict[str, Any]
    lineage: list[dict[str, Any]]
    served: list[dict[str, Any]]
    layout: str
    titled: bool
    forms: list[str]
    mix: list[str]
    limits: dict[str, float]
