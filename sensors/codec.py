"""Encoding and decoding payloads against the contract.

Decoding runs on the ingest's hot path, so it uses the pydantic contract models
directly (``model_validate_json``), never a generic JSON Schema validator. Every
failure is classified so that the ingest can count it by kind:

- ``too_large``: over the size limit, rejected before parsing;
- ``not_json``: not valid UTF-8 JSON;
- ``unknown_version``: a ``schema_version`` whose major version we do not speak;
- ``invalid``: valid JSON that breaks the contract (missing field, wrong type...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter, ValidationError

from twin.contract import (
    PAYLOAD_TYPES,
    VERSION_PATTERN,
    LineStatus,
    StationState,
    Telemetry,
)
from twin.errors import first_problem

DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024
_VERSION = re.compile(VERSION_PATTERN)
DecodeErrorKind = Literal["too_large", "not_json", "unknown_version", "invalid"]
DECODE_ERROR_KINDS: tuple[DecodeErrorKind, ...] = (
    "too_large",
    "not_json",
    "unknown_version",
    "invalid",
)

Decoded = Telemetry | StationState | LineStatus | Any


class DecodeError(ValueError):
    def __init__(self, kind: DecodeErrorKind, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


# Each channel's validating JSON decoder, resolved once: this is the hot path. A
# model's own validator is what ``model_validate_json`` calls, and an adapter's is
# what ``TypeAdapter.validate_json`` calls (with the same defaults), minus their
# Python frames (the adapter's checks its arguments on every call).
_DECODERS: dict[str, Callable[[bytes], Any]] = {
    channel: kind.validator.validate_json
    if isinstance(kind, TypeAdapter)
    else kind.__pydantic_validator__.validate_json
    for channel, kind in PAYLOAD_TYPES.items()
}


def _unknown_version(payload: bytes) -> str | None:
    """The payload's schema_version if it is a version string we do not speak.

    Runs only for payloads that already failed, so that a message of a newer
    major version counts as ``unknown_version`` whatever else about it is new
    (an event kind we do not know, say), and costs the hot path nothing.
    """
    try:
        document = json.loads(payload)
    except ValueError:
        return None
    version = document.get("schema_version") if isinstance(document, dict) else None
    if isinstance(version, str) and not _VERSION.match(version):
        return version
    return None


def _classify(exc: ValidationError, payload: bytes) -> DecodeError:
    errors = exc.errors(include_url=False)
    for error in errors:
        if error["type"] == "json_invalid":
            return DecodeError("not_json", str(error["msg"]))
    version = _unknown_version(payload)
    if version is not None:
        return DecodeError("unknown_version", f"schema_version {version!r} not supported")
    return DecodeError("invalid", first_problem(exc, top_level="(payload)"))


def decode(channel: str, payload: bytes, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> Decoded:
    """Decode one payload of ``channel`` into its contract model, or raise DecodeError."""
    if len(payload) > max_bytes:
        raise DecodeError("too_large", f"{len(payload)} bytes > limit {max_bytes}")
    decoder = _DECODERS.get(channel)
    if decoder is None:
        raise DecodeError("invalid", f"no payload type for channel {channel!r}")
    try:
        return decoder(payload)
    except ValidationError as exc:
        raise _classify(exc, payload) from None


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json().encode()
