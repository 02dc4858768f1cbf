"""The ISA-18.2 alarm lifecycle through the API: acknowledge with and without the
token, shelve with a reason until the shelf expires on the line's clock, take out of
service and back, the alarm history of a window, the alarm-system figures, and the
book as it was after a restart of the twin on the same history file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.routes.alarms import DEFAULT_TELEMETRY_PERIOD_S, STALE_PERIODS
from twin.alarms.lifecycle import Transition
from twin.alarms.log import AlarmLog
from twin.alarms.points import STATE_CODES
from twin.contract import SCHEMA_VERSION, Telemetry
from twin.history.store import SqliteStore
from twin.state.line import TwinState

TOKEN = "alarm-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STATIONS = ("cutting", "welding", "painting")
SILENT = "broken_sensor:painting:-"
STALE_AFTER_S = STALE_PERIODS * DEFAULT_TELEMETRY_PERIOD_S


def _sample(sim_time_s: float) -> Telemetry:
    return Telemetry(
        schema_version=SCHEMA_VERSION,
        ts_ms=0,
        seq=0,
        source="test",
        sim_time_s=sim_time_s,
        temperature_c=40.0,
    )


def _clock(twin: TwinState, sim_time_s: float, stations: tuple[str, ...] = STATIONS[:2]) -> None:
    """The line's clock moves to ``sim_time_s``: those stations report then."""
    for station in stations:
        twin.apply_telemetry(station, _sample(sim_time_s))


def _silent_painting() -> TwinState:
    """Every station reports at 100 s; painting then falls silent past the limit."""
    twin = TwinState("site", "area", "line")
    _clock(twin, 100.0, STATIONS)
    _clock(twin, 100.0 + STALE_AFTER_S + 1)
    return twin


def _alarm(client: TestClient, alarm_id: str) -> dict[str, Any] | None:
    listed = client.get("/alarms").json()["alarms"]
    return next((a for a in listed if a["id"] == alarm_id), None)


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app(twin_state=_silent_painting(), api_token=TOKEN))


def test_an_alarm_is_acknowledged_with_the_token_only(client: TestClient) -> None:
    alarm = _alarm(client, SILENT)
    assert alarm is not None
    assert (alarm["state"], alarm["state_code"], alarm["priority"]) == (
        "unacknowledged",
        "UNACK",
        "high",
    )
    assert alarm["evidence"]["since_s"] == 100.0
    assert alarm["since"] == 100.0
    assert client.post(f"/alarms/{SILENT}/ack").status_code == 401
    wrong = client.post(f"/alarms/{SILENT}/ack", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert _alarm(client, SILENT)["state"] == "unacknowledged"  # type: ignore[index]
    done = client.post(f"/alarms/{SILENT}/ack", headers=AUTH, json={"by": "anna", "note": "seen"})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["alarm"]["state"] == "acknowledged"
    [change] = body["transitions"]
    assert (change["event"], change["before"], change["after"], change["by"], change["reason"]) == (
        "acknowledge",
        "unacknowledged",
        "acknowledged",
        "anna",
        "seen",
    )
    again = client.post(f"/alarms/{SILENT}/ack", headers=AUTH)
    assert again.status_code == 409
    assert "acknowledged" in again.json()["detail"]
    assert client.post("/alarms/broken_sensor:welding:-/ack", headers=AUTH).status_code == 404
    # The per-line path acts on the same book.
    assert client.get("/lines/line/alarms").json()["alarms"][0]["state"] == "acknowledged"


def test_a_shelf_needs_a_reason_and_ends_on_the_lines_clock(client: TestClient) -> None:
    twin: TwinState = client.app.state.twin  # type: ignore[attr-defined]
    url = f"/alarms/{SILENT}/shelve"
    for bad, field in (
        ({"for_s": 0, "reason": "x"}, "for_s"),
        ({"for_s": 1e9, "reason": "x"}, "for_s"),
        ({"for_s": 60}, "reason"),
        ({"for_s": 60, "reason": ""}, "reason"),
        ({"for_s": 60, "reason": "x", "until": 5}, "until"),
    ):
        refused = client.post(url, headers=AUTH, json=bad)
        assert refused.status_code == 422, (bad, refused.text)
        assert field in str(refused.json()["detail"])
    shelved = client.post(url, headers=AUTH, json={"for_s": 120, "reason": "sensor recalibration"})
    assert shelved.status_code == 200, shelved.text
    alarm = shelved.json()["alarm"]
    now = 100.0 + STALE_AFTER_S + 1
    assert (alarm["state"], alarm["shelved_until_s"], alarm["shelf_reason"]) == (
        "shelved",
        now + 120,
        "sensor recalibration",
    )
    _clock(twin, now + 119)
    assert _alarm(client, SILENT)["state"] == "shelved"  # type: ignore[index]
    _clock(twin, now + 121)
    back = _alarm(client, SILENT)
    assert back is not None
    # Painting is still silent: back on the list, to acknowledge anew.
    assert (back["state"], back["occurrence"]) == ("unacknowledged", 2)
    events = [t["event"] for t in client.get("/alarms/history").json()["transitions"]]
    assert events == ["raise", "shelve", "shelf_expired"]
    assert client.post(f"/alarms/{SILENT}/unshelve", headers=AUTH).status_code == 409


def test_out_of_service_until_returned_and_a_cleared_alarm_leaves_the_list(
    client: TestClient,
) -> None:
    twin: TwinState = client.app.state.twin  # type: ignore[attr-defined]
    url = f"/alarms/{SILENT}/out-of-service"
    assert client.post(url, headers=AUTH, json={}).status_code == 422
    assert client.post(url, json={"reason": "sensor replaced"}).status_code == 401
    removed = client.post(url, headers=AUTH, json={"reason": "sensor replaced", "by": "ben"})
    assert removed.json()["alarm"]["state"] == "out_of_service"
    # Painting reports again: the condition clears while out of service.
    _clock(twin, 400.0, STATIONS)
    assert _alarm(client, SILENT)["state"] == "out_of_service"  # type: ignore[index]
    back = client.post(f"/alarms/{SILENT}/return-to-service", headers=AUTH)
    assert back.json()["alarm"]["state"] == "normal"
    assert _alarm(client, SILENT) is None


def test_the_history_of_a_window_filtered(client: TestClient) -> None:
    twin: TwinState = client.app.state.twin  # type: ignore[attr-defined]
    client.post(f"/alarms/{SILENT}/ack", headers=AUTH)
    _clock(twin, 500.0, STATIONS)  # painting reports again: cleared
    history = client.get("/alarms/history").json()
    assert [t["event"] for t in history["transitions"]] == ["raise", "acknowledge", "clear"]
    assert history["truncated"] is False
    assert client.get("/alarms/history", params={"station": "welding"}).json()["transitions"] == []
    assert (
        len(client.get("/alarms/history", params={"priority": "high"}).json()["transitions"]) == 3
    )
    assert client.get("/alarms/history", params={"priority": "low"}).json()["transitions"] == []
    limited = client.get("/alarms/history", params={"limit": 2}).json()
    assert (len(limited["transitions"]), limited["truncated"]) == (2, True)
    assert client.get("/alarms/history", params={"from": "2999-01-01T00:00:00Z"}).status_code == 422
    bad = client.get("/alarms/history", params={"from": "yesterday"})
    assert bad.status_code == 422
    assert "from" in str(bad.json()["detail"])


def test_the_alarm_system_figures(client: TestClient) -> None:
    twin: TwinState = client.app.state.twin  # type: ignore[attr-defined]
    # Painting reports and falls silent, twice: two annunciations, the second at
    # the twin's clock now (the window's end is in it).
    for step in range(2):
        start = 1000.0 + 1000 * step
        _clock(twin, start, STATIONS)
        client.get("/alarms")
        _clock(twin, start + STALE_AFTER_S + 1)
        client.get("/alarms")
    kpis = client.get("/alarms/kpis", params={"hours": 1}).json()
    assert kpis["annunciated"] == 2
    assert kpis["to_s"] == 2000.0 + STALE_AFTER_S + 1
    # The hour asked for is longer than the line's life (line time starts at 0):
    # the window is its life, 2,051 s.
    assert kpis["from_s"] == 0.0
    assert kpis["per_hour"] == pytest.approx(2 / (kpis["to_s"] / 3600))
    assert kpis["bad_actors"][0] == {"alarm_id": SILENT, "count": 2, "share": 1.0}
    # The window: the last quarter of an hour holds the second only.
    assert client.get("/alarms/kpis", params={"hours": 0.25}).json()["annunciated"] == 1
    assert kpis["chattering"] == []
    assert kpis["references"]["alarms_per_hour_acceptable"] == 6.0
    assert client.get("/alarms/kpis", params={"hours": 0}).status_code == 422


def test_the_book_survives_a_restart_on_the_same_history_file(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    store = SqliteStore(path)
    client = TestClient(
        create_app(twin_state=_silent_painting(), history_store=store, api_token=TOKEN)
    )
    client.post(f"/alarms/{SILENT}/ack", headers=AUTH, json={"by": "anna"})
    store.close()

    store = SqliteStore(path)
    try:
        # The restarted twin knows nothing yet of its line's messages: the book does.
        restarted = TestClient(
            create_app(
                twin_state=TwinState("site", "area", "line"), history_store=store, api_token=TOKEN
            )
        )
        history = restarted.get("/alarms/history").json()["transitions"]
        assert [(t["event"], t["by"]) for t in history] == [
            ("raise", None),
            ("acknowledge", "anna"),
        ]
        # Until the twin hears from painting, the alarm stays as it was: acknowledged.
        alarm = _alarm(restarted, SILENT)
        assert alarm is not None
        assert (alarm["state"], alarm["occurrence"]) == ("acknowledged", 1)
        # Painting reports: cleared, and off the list (acknowledged before the restart).
        twin: TwinState = restarted.app.state.twin  # type: ignore[attr-defined]
        _clock(twin, 50.0, STATIONS)
        assert _alarm(restarted, SILENT) is None
        assert restarted.get("/alarms/history").json()["transitions"][-1]["event"] == "clear"
    finally:
        store.close()


def test_an_anomaly_alarm_of_an_earlier_version_clears_at_the_first_look(tmp_path: Path) -> None:
    """Earlier versions raised ``anomaly`` alarms from a drift detector that the sensor
    watch replaced: no rule raises them now, so one kept in the book is cleared."""
    path = tmp_path / "history.sqlite3"
    old = "anomaly:welding:-"
    store = SqliteStore(path)
    record = AlarmLog(path)
    record.append(
        [
            Transition(
                alarm_id=old,
                occurrence=1,
                event="raise",
                before="normal",
                after="unacknowledged",
                at_s=90.0,
                wall_ms=int(time.time() * 1000) - 60_000,
                priority="medium",
                kind="anomaly",
                station="welding",
                sensor=None,
                message="anomaly score 1.4 is at or above the threshold 1",
                evidence={"score": 1.4, "threshold": 1.0},
            )
        ]
    )
    record.close()
    try:
        client = TestClient(
            create_app(twin_state=_silent_painting(), history_store=store, api_token=TOKEN)
        )
        alarm = _alarm(client, old)
        assert alarm is not None
        assert (alarm["kind"], alarm["active"], alarm["state"]) == (
            "anomaly",
            False,
            "returned_unacknowledged",
        )
        assert client.post(f"/alarms/{old}/ack", headers=AUTH).status_code == 200
        assert _alarm(client, old) is None
        history = client.get("/alarms/history").json()["transitions"]
        assert [t["event"] for t in history if t["alarm_id"] == old] == [
            "raise",
            "clear",
            "acknowledge",
        ]
    finally:
        store.close()


def test_each_alarm_change_is_also_a_point_of_the_history(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "history.sqlite3")
    try:
        client = TestClient(
            create_app(twin_state=_silent_painting(), history_store=store, api_token=TOKEN)
        )
        assert _alarm(client, SILENT) is not None
        client.post(f"/alarms/{SILENT}/ack", headers=AUTH, json={"by": "anna"})
        store.flush()
        [series] = store.query("alarm", "state_code", 0, 2**62, tags={"alarm": SILENT})
        codes = [window.value for window in series.windows]
        assert codes == [STATE_CODES["unacknowledged"], STATE_CODES["acknowledged"]]
        assert series.key.tags["station"] == "painting"
        assert series.key.tags["line"] == "line"
        # /history serves them as any other measurement.
        shown = client.get(
            "/history",
            params={"measurement": "alarm", "field": "active", "start": "1970-01-01T00:00:00Z"},
        )
        assert shown.status_code == 200, shown.text
    finally:
        store.close()


def test_alarm_changes_that_cannot_be_written_are_counted_in_healthz(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "history.sqlite3")
    try:
        client = TestClient(
            create_app(twin_state=_silent_painting(), history_store=store, api_token=TOKEN)
        )
        assert _alarm(client, SILENT) is not None  # raised, and written
        health = client.get("/healthz").json()
        assert health["alarm_records_lost"] == 0
        assert not any(r.startswith("alarm records") for r in health["reasons"])
        # The record's file goes away under the book (a disk that fails): the next
        # change cannot be written. The alarm still changes; /healthz says so.
        books = client.app.state.alarm_books  # type: ignore[attr-defined]
        [book] = books.values()
        assert book.log is not None
        book.log.close()
        done = client.post(f"/alarms/{SILENT}/ack", headers=AUTH, json={"by": "anna"})
        assert done.status_code == 200, done.text
        assert _alarm(client, SILENT)["state"] == "acknowledged"  # type: ignore[index]
        health = client.get("/healthz").json()
        assert health["alarm_records_lost"] == 1
        assert health["status"] == "degraded"
        assert "alarm records: 1 changes could not be written to history" in health["reasons"]
    finally:
        store.close()


def test_a_trend_is_only_for_a_sensor_watch_alarm(client: TestClient) -> None:
    other = client.get(f"/alarms/{SILENT}/trend")
    assert other.status_code == 409
    assert "broken_sensor alarm" in other.json()["detail"]
    unknown = client.get("/alarms/sensor:painting:temperature_c/trend")
    assert unknown.status_code == 404
    assert "sensor:painting:temperature_c" in unknown.json()["detail"]
    wrong = client.get(f"/alarms/{SILENT}/trend", params={"before_s": -5})
    assert wrong.status_code == 422
    assert "before_s" in wrong.text
