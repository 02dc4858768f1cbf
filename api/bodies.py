"""Types for request bodies: strict, as the OpenAPI schema reads.

Request models are strict (a string or a boolean where a number belongs is an
error, not a coercion). One exception follows the schema itself: JSON Schema
calls ``28959.0`` an integer (a number with no fractional part), so a whole
number written with a ``.0`` is taken as the integer it is.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator


def _whole(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Whole = Annotated[int, BeforeValidator(_whole)]

__all__ = ["Whole"]
