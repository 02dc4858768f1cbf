"""Alarms derived from the twin: silent sensors, ingest losses, a lagging twin."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.routes.alarms import (
    DEFAULT_LAG_ALARM_S,
    DEFAULT_TELEMETRY_PERIOD_S,
    LAG_CLEAR_SHARE,
    STALE_PERIODS,
)
from twin.contract import SCHEMA_VERSION, Telemetry
from twin.state.line import TwinState
from twin.state.views import LineView

STATIONS = ("cutting", "welding", "painting")


def _sample(sim_time_s: float) -> Telemetry:
    return Telemetry(
        schema_version=SCHEMA_VERSION,
        ts_ms=0,
        seq=0,
        source="test",
        sim_time_s=sim_time_s,
        temperature_c=40.0,
    )


@pytest.fixture
def twin() -> TwinState:
    """Three stations reporting telemetry every period up to t = 100 s."""
    state = TwinState("site", "area", "line")
    for station in STATIONS:
        state.apply_telemetry(station, _sample(100.0))
    return state


class _Ingest:
    def __init__(self, **counts: Any) -> None:
        self.counts = counts

    def health(self) -> dict[str, Any]:
        return {
            "gaps": 0,
            "malformed": {"too_large": 0, "not_json": 0, "unknown_version": 0, "invalid": 0},
        } | self.counts


def _alarms(twin: TwinState, ingest: _Ingest | None = None) -> list[dict[str, Any]]:
    response = TestClient(create_app(twin_state=twin, ingest=ingest)).get("/alarms")
    assert response.status_code == 200, response.text
    alarms: list[dict[str, Any]] = response.json()["alarms"]
    return alarms


def test_a_quiet_healthy_line_has_no_alarms(twin: TwinState) -> None:
    assert _alarms(twin, _Ingest()) == []


def test_a_station_that_stopped_reporting_has_a_broken_sensor_alarm(twin: TwinState) -> None:
    stale_after = STALE_PERIODS * DEFAULT_TELEMETRY_PERIOD_S
    twin.apply_telemetry("cutting", _sample(100.0 + stale_after + 1))
    twin.apply_telemetry("welding", _sample(100.0 + stale_after + 1))
    [alarm] = _alarms(twin)
    assert alarm["station"] == "painting"
    assert alarm["kind"] == "broken_sensor"
    assert alarm["since"] == 100.0
    assert alarm["link"] == "/stations/painting"


def test_a_station_silent_for_less_than_the_limit_is_no_alarm(twin: TwinState) -> None:
    twin.apply_telemetry("cutting", _sample(100.0 + STALE_PERIODS * DEFAULT_TELEMETRY_PERIOD_S))
    assert _alarms(twin) == []


def test_ingest_gaps_and_malformed_messages_are_alarms(twin: TwinState) -> None:
    ingest = _Ingest(
        gaps=3, malformed={"too_large": 0, "not_json": 2, "unknown_version": 0, "invalid": 1}
    )
    alarms = _alarms(twin, ingest)
    assert [(alarm["kind"], alarm["station"], alarm["link"]) for alarm in alarms] == [
        ("ingest", None, "/healthz"),
        ("ingest", None, "/healthz"),
    ]
    assert "3 sequence gaps" in alarms[0]["detail"]
    assert "3 malformed" in alarms[1]["detail"]


class _Lagging(TwinState):
    """A twin whose lag (line seconds, at a line speed) the test sets."""

    lag_s: float | None = None
    speed = 60.0

    def view(self) -> LineView:
        return (
            super()
            .view()
            .model_copy(update={"lag_s": self.lag_s, "speed_factor": self.speed, "lag_messages": 0})
        )


def test_the_lag_alarm_rises_above_its_bound_and_clears_only_under_half_of_it() -> None:
    twin = _Lagging("site", "area", "line")
    client = TestClient(create_app(twin_state=twin))

    def lag_alarm(wall_s: float | None) -> bool:
        """Whether the lag alarm is active (a cleared one stays listed until
        acknowledged: ISA-18.2's returned-unacknowledged state)."""
        twin.lag_s = None if wall_s is None else wall_s * twin.speed
        alarms = client.get("/alarms").json()["alarms"]
        return any(alarm["kind"] == "lag" and alarm["active"] for alarm in alarms)

    bound = DEFAULT_LAG_ALARM_S
    clears = LAG_CLEAR_SHARE * bound
    # From below, the band between the two bounds raises nothing...
    assert not lag_alarm(0.0)
    assert not lag_alarm((bound + clears) / 2)
    assert not lag_alarm(bound)
    # ...above the bound it is raised, and the band keeps it up: no flapping.
    assert lag_alarm(bound * 1.01)
    assert lag_alarm((bound + clears) / 2)
    assert lag_alarm(clears * 1.01)
    assert lag_alarm(bound * 1.5)
    assert not lag_alarm(clears)
    [cleared] = client.get("/alarms").json()["alarms"]
    assert (cleared["state"], cleared["state_code"]) == ("returned_unacknowledged", "RTNUN")
    assert not lag_alarm((bound + clears) / 2)
    # A lag no longer known clears it.
    assert lag_alarm(bound * 2)
    assert not lag_alarm(None)
    assert not lag_alarm((bound + clears) / 2)


def test_a_rule_that_fails_leaves_the_other_rules_going_and_is_logged_once(
    twin: TwinState, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The rules run every second: one that raises (the learnt line's drift, from
    a stream the learner could not make a line of) must not silence the others,
    nor fill the log."""
    import api.routes.alarms as rules

    def broken(*args: Any) -> list[Any]:
        raise ValueError("a learnt line that is not a valid line file")

    monkeypatch.setattr(rules, "_drift_conditions", broken)
    stale_after = STALE_PERIODS * DEFAULT_TELEMETRY_PERIOD_S
    twin.apply_telemetry("cutting", _sample(100.0 + stale_after + 1))
    twin.apply_telemetry("welding", _sample(100.0 + stale_after + 1))
    with caplog.at_level("DEBUG", logger="api.routes.alarms"):
        client = TestClient(create_app(twin_state=twin))
        for _ in range(3):
            response = client.get("/alarms")
            assert response.status_code == 200, response.text
            assert [(a["kind"], a["station"]) for a in response.json()["alarms"]] == [
                ("broken_sensor", "painting")
            ]
    failures = [
        r for r in caplog.records if "drift" in r.getMessage() and "failed" in r.getMessage()
    ]
    assert [r.levelname for r in failures].count("ERROR") == 1, failures
