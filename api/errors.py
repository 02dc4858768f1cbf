"""Error bodies that can always be sent.

FastAPI's 422 body repeats the rejected input. JSON has no NaN or Infinity, so
a request with ``{"factor": NaN}`` (Python's JSON reader takes it) made the
422 itself fail to encode, and the client got a 500. Non-finite numbers are
shown as text instead: ``"input": "nan"``.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


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


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)


__all__ = ["finite", "install_error_handlers"]
