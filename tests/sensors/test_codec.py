"""Decoding classifies every kind of bad payload."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pydantic import ValidationError

from sensors.codec import DecodeError, decode, encode
from twin.contract import SCHEMA_VERSION, LineStatus, StationDescription, Telemetry


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


def line_status(**description: Any) -> dict[str, Any]:
    return {
        "schema_version": "1.1",
        "ts_ms": 1_700_000_000_000,
        "seq": 0,
        "source": "plant-line1-abcd",
        "sim_time_s": 0.0,
        "status": "online",
        "paused": False,
        "speed_factor": 60.0,
        "description": {"name": "Line", "stations": [], **description},
    }


def test_a_birth_message_with_a_calendar_round_trips() -> None:
    calendar = {
        "period_h": 24.0,
        "start_at_h": 6.0,
        "clock_at_start_h": 6.0,
        "planned_downtime": [{"start_h": 22.0, "duration_h": 8.0, "reason": "no night shift"}],
    }
    message = decode("status", json.dumps(line_status(calendar=calendar)).encode())
    assert isinstance(message, LineStatus)
    assert message.description is not None
    assert message.description.calendar is not None
    assert message.description.calendar.planned_downtime[0].reason == "no night shift"
    assert decode("status", encode(message)) == message
    # A 1.0 birth message, without the new fields, still reads: the twin shows elapsed time.
    old = line_status()
    del old["paused"], old["speed_factor"]
    old["schema_version"] = "1.0"
    read = decode("status", json.dumps(old).encode())
    assert isinstance(read, LineStatus)
    assert read.paused is None
    assert read.description is not None
    assert read.description.calendar is None


@pytest.mark.parametrize(
    ("calendar", "field"),
    [
        ({"period_h": 24.0, "start_at_h": 25.0, "clock_at_start_h": 6.0}, "start_at_h"),
        ({"period_h": 24.0, "start_at_h": 6.0, "clock_at_start_h": 24.0}, "clock_at_start_h"),
        (
            {
                "period_h": 12.0,
                "start_at_h": 0.0,
                "clock_at_start_h": 6.0,
                "planned_downtime": [{"start_h": 13.0, "duration_h": 1.0, "reason": "x"}],
            },
            "planned_downtime[0].start_h",
        ),
    ],
)
def test_a_calendar_that_does_not_fit_its_period_is_invalid_and_named(
    calendar: dict[str, Any], field: str
) -> None:
    with pytest.raises(DecodeError, match=re.escape(field)) as caught:
        decode("status", json.dumps(line_status(calendar=calendar)).encode())
    assert caught.value.kind == "invalid"


def caught(channel: str, payload: bytes, limit: int = 65536) -> DecodeError:
    with pytest.raises(DecodeError) as error:
        decode(channel, payload, limit)
    return error.value


def test_the_size_limit_is_inclusive_and_the_error_names_both_sizes() -> None:
    payload = json.dumps(telemetry()).encode()
    assert isinstance(decode("telemetry", payload, len(payload)), Telemetry)
    error = caught("telemetry", payload, len(payload) - 1)
    assert error.kind == "too_large"
    assert error.detail == f"{len(payload)} bytes > limit {len(payload) - 1}"
    assert str(error) == f"too_large: {error.detail}"


def test_an_unknown_channel_is_invalid_and_named() -> None:
    error = caught("telemetry/v2", json.dumps(telemetry()).encode())
    assert error.kind == "invalid"
    assert "'telemetry/v2'" in error.detail


def test_not_json_says_where_the_json_breaks() -> None:
    error = caught("telemetry", b'{"schema_version": }')
    assert error.kind == "not_json"
    # The parser's own message: what is wrong and at which column.
    assert "JSON" in error.detail
    assert "column 20" in error.detail


def test_an_unknown_version_is_named_in_the_error() -> None:
    error = caught("telemetry", json.dumps(telemetry(schema_version="3.1")).encode())
    assert error.kind == "unknown_version"
    assert "'3.1'" in error.detail
    assert "schema_version" in error.detail


def test_an_invalid_nested_field_is_named_by_its_path() -> None:
    station = {"id": "saw", "name": "Saw", "position": 0, "input_buffer_capacity": None}
    station["ideal_cycle_time_s"] = -1.0
    error = caught("status", json.dumps(line_status(stations=[station])).encode())
    assert error.kind == "invalid"
    # The message is pydantic's for that field alone, with nothing added: one error.
    with pytest.raises(ValidationError) as alone:
        StationDescription.model_validate(station)
    message = alone.value.errors()[0]["msg"]
    assert error.detail == f"description.stations[0].ideal_cycle_time_s: {message}"


def test_an_invalid_payload_as_a_whole_is_named_as_such() -> None:
    error = caught("state", b"[1, 2]")
    assert error.detail.startswith("(payload): ")


@pytest.mark.parametrize("broken", [2, 3])
def test_the_first_error_is_named_and_the_others_counted(broken: int) -> None:
    changes = {"seq": "four", "sim_time_s": "late", "temperature_c": "hot"}
    payload = telemetry(**dict(list(changes.items())[:broken]))
    error = caught("telemetry", json.dumps(payload).encode())
    assert error.kind == "invalid"
    assert error.detail.startswith("seq: ")
    assert error.detail.endswith(f" (+{broken - 1} more)")
