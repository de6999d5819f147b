"""Every refused request gets a 4xx and ``{"detail": "one line"}``: the problem and the fix.

Validation errors name the first bad field (FastAPI's default is a list of objects); an
``LMError`` raised by the shared CLI code (an unknown form, an acrostic character the model
does not know) is the same one-line message the CLI prints.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from lm.errors import LMError
from lm.serve.gate import Busy

log = logging.getLogger("lm.serve")


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def _detail(status: int, text: object) -> JSONResponse:
    return JSONResponse({"detail": one_line(text)}, status_code=status)


def describe(exc: RequestValidationError) -> str:
    """``temperature: Input should be greater than or equal to 0 (and 2 more problems)``."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    text = f"{where or 'request body'}: {first.get('msg', 'invalid')}"
    if first.get("type") == "json_invalid":
        text = f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})"
    more = len(errors) - 1
    return text + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def install(app: FastAPI, limit_body: int) -> None:
    """Map each kind of refusal to its status and a one-line detail."""
    too_big = (f"request body over {limit_body:,} bytes: send less (lm serve --limit-body "
               "raises the cap)")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        malformed = any(e.get("type") == "json_invalid" for e in exc.errors())
        return _detail(400 if malformed else 422, describe(exc))

    @app.exception_handler(LMError)
    async def refused(request: Request, exc: LMError) -> JSONResponse:
        return _detail(422, exc)

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> JSONResponse:
        return _detail(429, exc)

    @app.exception_handler(HTTPException)
    async def http(request: Request, exc: HTTPException) -> JSONResponse:
        detail = too_big if exc.status_code == 413 else one_line(exc.detail)
        return JSONResponse({"detail": detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return _detail(500, f"internal error: {type(exc).__name__}: {exc}")
