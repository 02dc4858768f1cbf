"""Error bodies that can always be sent.

FastAPI's 422 body repeats the rejected input. JSON has no NaN or Infinity, so
a request with ``{"factor": NaN}`` (Python's JSON reader takes it) made the
422 itself fail to encode, and the client got a 500. Non-finite numbers are
shown as text instead: ``"input": "nan"``.

A 405 names in ``Allow`` every method the path has, not only the first route's.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)  # noqa: S101 - registered for it
    return JSONResponse(
        status_code=422, content={"detail": finite(jsonable_encoder(error.errors()))}
    )


async def _http_error(request: Request, error: Exception) -> Response:
    """FastAPI's own answer, with a 405's ``Allow`` naming every method of the path:
    Starlette names only the first route's when several share a path
    (``GET`` and ``POST /scenarios``)."""
    assert isinstance(error, StarletteHTTPException)  # noqa: S101 - registered for it
    response = await http_exception_handler(request, error)
    if error.status_code == 405:
        allowed = [
            method
            for method in METHODS
            if any(
                route.matches({**request.scope, "method": method})[0] == Match.FULL
                for route in request.app.routes
            )
        ]
        if allowed:
            response.headers["Allow"] = ", ".join(allowed)
    return response


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


__all__ = ["finite", "install_error_handlers"]
