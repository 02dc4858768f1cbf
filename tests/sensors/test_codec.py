"""Decoding classifies every kind of bad payload."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sensors.codec import DecodeError, decode, encode
from twin.contract import SCHEMA_VERSION, Telemetry


def telemetry(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "ts_ms": 1_700_000_000_000,
        "seq": 4,
        "source": "plant-line1-abcd",
        "sim_time_s": 120.0,
        "temperature_c": 41.2,
        "vibration_mm_s": 2.7,
    }
    payload.update(changes)
    return payload


def kind_of(channel: str, payload: bytes, limit: int = 65536) -> str:
    with pytest.raises(DecodeError) as caught:
        decode(channel, payload, limit)
    return caught.value.kind


def test_round_trip() -> None:
    message = Telemetry.model_validate(telemetry())
    assert decode("telemetry", encode(message)) == message


def test_newer_minor_version_with_extra_fields_is_accepted() -> None:
    payload = json.dumps(telemetry(schema_version="1.7", humidity_pct=40)).encode()
    assert isinstance(decode("telemetry", payload), Telemetry)


def test_too_large() -> None:
    payload = json.dumps(telemetry(pad="x" * 2000)).encode()
    assert kind_of("telemetry", payload, limit=1024) == "too_large"


@pytest.mark.parametrize("payload", [b"not json", b'{"schema_version": ', b"\xff\xfe"])
def test_not_json(payload: bytes) -> None:
    assert kind_of("telemetry", payload) == "not_json"


@pytest.mark.parametrize("version", ["2.0", "0.9", "banana"])
def test_unknown_version(version: str) -> None:
    assert kind_of("telemetry", json.dumps(telemetry(schema_version=version)).encode()) == (
        "unknown_version"
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"temperature_c": "41.2"},
        {"seq": 4.5},
        {"vibration_mm_s": -1},
        {"schema_version": 1},
    ],
)
def test_wrong_types_are_invalid(changes: dict[str, Any]) -> None:
    assert kind_of("telemetry", json.dumps(telemetry(**changes)).encode()) == "invalid"


def test_missing_field_is_invalid_and_named() -> None:
    payload = telemetry()
    del payload["sim_time_s"]
    with pytest.raises(DecodeError, match="sim_time_s") as caught:
        decode("telemetry", json.dumps(payload).encode())
    assert caught.value.kind == "invalid"


def test_unknown_event_kind_is_invalid() -> None:
    payload = telemetry(event="part_teleported")
    assert kind_of("event", json.dumps(payload).encode()) == "invalid"


def test_json_array_is_invalid() -> None:
    assert kind_of("state", b"[1, 2]") == "invalid"


def test_newer_major_version_wins_over_other_novelties() -> None:
    payload = telemetry(schema_version="2.0", event="part_teleported")
    del payload["sim_time_s"]
    assert kind_of("event", json.dumps(payload).encode()) == "unknown_version"
