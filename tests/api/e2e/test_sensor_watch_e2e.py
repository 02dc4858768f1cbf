"""The sensor watch in the running twin: a live line on the embedded broker, the watch
learning its first line hours, then a fault it names in GET /alarms, through the
alarm book (acknowledged by an operator, cleared when the fault ends)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import get_free_port, wait_until

from api.app import create_app
from api.runtime.line import Stack
from api.runtime.options import StackOptions
from twin.config.line import LineConfig, SensorFault, load_config, with_faults

TOKEN = "sensor-watch-e2e-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ALARM = "sensor:welding:temperature_c"
# The watch learns 2 line hours; welding's temperature reads 8 degC high from hour
# 2.5 for half an hour. At 300x a line hour is 12 s; the waits allow a busy machine
# (the line paces itself down) ten times that.
LEARN_H = 2.0
FAULT_H = (2.5, 0.5)


def _faulted(config: LineConfig) -> LineConfig:
    fault = SensorFault(
        station="welding",
        sensor="temperature_c",
        mode="offset",
        start_h=FAULT_H[0],
        duration_h=FAULT_H[1],
        magnitude=8.0,
    )
    return with_faults(config, [fault])


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    stack = Stack(
        _faulted(load_config()),
        StackOptions(
            speed=300,
            seed=23,
            mqtt_port=get_free_port(),
            history_path=str(tmp_path / "history.sqlite3"),
            sensor_watch_hours=LEARN_H,
            scoring_period_s=0,
        ),
    )
    with TestClient(create_app(stack=stack, api_token=TOKEN)) as test_client:
        yield test_client


def _alarm(client: TestClient) -> dict[str, Any] | None:
    listed = client.get("/alarms").json()["alarms"]
    return next((a for a in listed if a["id"] == ALARM), None)


@pytest.mark.integration
@pytest.mark.slow
def test_the_twin_learns_then_names_a_faulty_sensor_in_its_alarms(
    client: TestClient, tmp_path: Path
) -> None:
    status = client.get("/alarms").json()["sensor_watch"]
    assert status["state"] == "learning"
    assert status["learn_hours"] == LEARN_H
    assert wait_until(
        lambda: client.get("/alarms").json()["sensor_watch"]["state"] == "watching",
        timeout=300,
    ), client.get("/alarms").json()["sensor_watch"]
    # What it learnt is kept beside the history, for the next start.
    assert list(tmp_path.glob("sensor-watch-*.json"))
    # It took the line in line-time order: every message it held, the watermark let go.
    assert client.get("/alarms").json()["sensor_watch"]["held_forced"] == 0

    assert wait_until(lambda: _alarm(client) is not None, timeout=300)
    alarm = _alarm(client)
    assert alarm is not None
    assert (alarm["kind"], alarm["station"], alarm["what"], alarm["priority"]) == (
        "sensor",
        "welding",
        "temperature_c",
        "high",
    )
    evidence = alarm["evidence"]
    assert evidence["kind"] == "offset"
    assert evidence["seen"] - evidence["expected"] > 4.0
    assert evidence["since_s"] >= FAULT_H[0] * 3600 - 60
    assert "expected" in alarm["detail"]

    done = client.post(f"/alarms/{ALARM}/ack", headers=AUTH, json={"by": "anna"})
    assert done.status_code == 200, done.text
    # The fault ends: acknowledged and cleared, it leaves the list.
    assert wait_until(lambda: _alarm(client) is None, timeout=300), _alarm(client)
    events = [
        t["event"]
        for t in client.get("/alarms/history").json()["transitions"]
        if t["alarm_id"] == ALARM
    ]
    assert events[:3] == ["raise", "acknowledge", "clear"]

    # Its trend: the readings against the band the watch expected, around the fault.
    trend = client.get(f"/alarms/{ALARM}/trend", params={"before_s": 1200, "after_s": 600})
    assert trend.status_code == 200, trend.text
    shown = trend.json()
    assert (shown["station"], shown["sensor"], shown["unit"], shown["kind"]) == (
        "welding",
        "temperature_c",
        "°C",
        "offset",
    )
    started, cleared = shown["started_s"], shown["cleared_s"]
    assert started == evidence["since_s"]
    assert cleared is not None
    assert cleared > started
    assert shown["from_s"] == started - 1200
    points = shown["points"]
    assert all(shown["from_s"] - 60 < p["at_s"] <= shown["to_s"] for p in points)
    judged = [p for p in points if p["expected"] is not None]
    before = [p for p in judged if p["at_s"] + 60 <= started]
    fault_s = (FAULT_H[0] * 3600, sum(FAULT_H) * 3600)
    during = [p for p in judged if fault_s[0] + 60 <= p["at_s"] and p["at_s"] + 60 <= fault_s[1]]
    assert len(before) >= 10
    assert len(during) >= 5
    assert sum(p["low"] <= p["reading"] <= p["high"] for p in before) >= 0.9 * len(before)
    assert all(p["reading"] > p["high"] for p in during)
    assert all(p["low"] < p["expected"] < p["high"] for p in judged)
