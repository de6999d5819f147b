"""Every refused request gets a 4xx or 503 and ``{"detail": "one line"}``: the problem and the
fix, documented for every operation (:data:`RESPONSES`).

Validation errors name the first bad field (FastAPI's default is a list of objects); an
``LMError`` raised by the shared CLI code (an unknown form, an acrostic character the model
does not know) is the message the CLI prints, naming JSON fields instead of flags. A full
queue is 429 and work stopped at its time limit (or by shutdown) is 503, both with
``Retry-After``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from lm.errors import LMError
from lm.serve.gate import Busy, Overrun
from lm.serve.schemas import ErrorBody

log = logging.getLogger("lm.serve")


REFUSALS = {
    400: "The body is not valid JSON.",
    413: "The body is larger than --limit-body.",
    422: "A field breaks its rule, or the model cannot do what the request asks; the detail "
         "names the field and the fix.",
    429: "The queue for the model is full; retry after Retry-After seconds.",
    503: "The request ran past --limit-seconds, or the server is stopping; retry after "
         "Retry-After seconds.",
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in REFUSALS.items()}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.",
                               "schema": {"type": "integer"}}}
for _status in (429, 503):
    RESPONSES[_status]["headers"] = RETRY_AFTER


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def _detail(status: int, text: object, retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"detail": one_line(text)}, status_code=status, headers=headers)


def describe(exc: RequestValidationError, rules: dict[str, str] | None = None) -> str:
    """``temperature: Input should be greater than or equal to 0 (and 2 more problems)``.

    A text that misses its pattern is told the field's rule in words (``rules``), not the
    pattern: a form's pattern lists every tune of a ci model."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") == "string_pattern_mismatch" and where in (rules or {}):
        message = f"{first.get('input')!r} {rules[where]}"
    text = f"{where}: {message}" if where else message
    if first.get("type") == "json_invalid":
        text = f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})"
    more = len(errors) - 1
    return text + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def install(app: FastAPI, limit_body: int, rules: dict[str, str] | None = None) -> None:
    """Map each kind of refusal to its status and a one-line detail (``rules``: what each
    patterned field takes, in words)."""
    too_big = (f"request body over {limit_body:,} bytes: send less (lm serve --limit-body "
               "raises the cap)")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        malformed = any(e.get("type") == "json_invalid" for e in exc.errors())
        return _detail(400 if malformed else 422, describe(exc, rules))

    @app.exception_handler(LMError)
    async def refused(request: Request, exc: LMError) -> JSONResponse:
        return _detail(422, exc)

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> JSONResponse:
        return _detail(429, exc, exc.retry_after)

    @app.exception_handler(Overrun)
    async def overrun(request: Request, exc: Overrun) -> JSONResponse:
        return _detail(503, exc, exc.retry_after)

    @app.exception_handler(HTTPException)
    async def http(request: Request, exc: HTTPException) -> JSONResponse:
        detail = too_big if exc.status_code == 413 else one_line(exc.detail)
        return JSONResponse({"detail": detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return _detail(500, f"internal error: {type(exc).__name__}: {exc}")
