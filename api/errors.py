"""Error bodies that can always be sent.

FastAPI's 422 body repeats the rejected input. JSON has no NaN or Infinity, so
a request with ``{"factor": NaN}`` (Python's JSON reader takes it) made the
422 itself fail to encode, and the client got a 500. Non-finite numbers are
shown as text instead: ``"input": "nan"``.

A 405 names in ``Allow`` every method the path has, not only the first route's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
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


def invalid(location: Sequence[str | int], problem: str) -> HTTPException:
    """A 422 shaped as FastAPI's own: a list of errors, each with its location,
    for a check the request models cannot make (a station the line lacks)."""
    return HTTPException(
        status_code=422,
        detail=[{"loc": list(location), "msg": problem, "type": "value_error"}],
    )


def located(prefix: Sequence[str | int], error: Exception) -> HTTPException:
    """``invalid`` for a ``ValueError`` whose message starts with the dotted field
    it is about (``stations_down.welding: unknown station``), under ``prefix``."""
    message = str(error)
    head = message.split(":", 1)[0].split(" ", 1)[0]
    path = [part for part in head.split(".") if part] if ":" in message or " " in message else []
    return invalid([*prefix, *path], message)


def without_paths(message: str, roots: Mapping[str, Path | str | None]) -> str:
    """``message`` with each of ``roots`` (a directory the server keeps) shown by
    its name: an error body tells a client what is wrong, not where files live."""
    for label, root in roots.items():
        if root:
            message = message.replace(str(root), f"<{label}>")
    return message


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


__all__ = ["finite", "install_error_handlers", "invalid", "located", "without_paths"]
