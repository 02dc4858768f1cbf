"""A paused, a quiet and a running line as the API shows them, over a real broker.

A live stack (mosquitto, plant at 600x, ingest, twin, API on a free port) is
paused and resumed through ``POST /line/commands``. The plant announces each on
its retained ``status`` topic; the twin learns it from there, so ``/twin``,
``/healthz`` and the ``/stream`` line events say "paused" until it resumes,
and a late MQTT subscriber reads it from the broker. Once the plant falls
silent without a goodbye, ``/healthz`` says the data is stale. The line's
clock shows the time of day its calendar gives, checked against datetime
arithmetic on the config.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from helpers import Recorder, serve_in_thread, wait_until

from api.app import create_app
from api.routes.health import STALE_MIN_S, STALE_PERIODS
from api.runtime.line import Stack
from api.runtime.options import StackOptions
from sensors.codec import decode
from twin.config.line import load_config
from twin.contract import LineStatus

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "line-time-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SPEED = 600.0
WAIT_S = 60.0


class LineEvents(threading.Thread):
    """Reads ``/stream`` and keeps the ``paused`` flag of every line event and reset."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.paused: list[bool | None] = []
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self.start()

    def run(self) -> None:
        kind = ""
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10.0)) as client,
                client.stream("GET", self.url + "/stream") as response,
            ):
                for line in response.iter_lines():
                    if self._halt.is_set():
                        return
                    if line.startswith("event:"):
                        kind = line.partition(":")[2].strip()
                    elif line.startswith("data:") and kind in ("line", "reset"):
                        data = json.loads(line.partition(":")[2])
                        summary = data["twin"] if kind == "reset" else data
                        with self._lock:
                            self.paused.append(summary["paused"])
        except BaseException as error:  # reported by the test
            self.error = error

    def seen(self) -> list[bool | None]:
        with self._lock:
            return list(self.paused)

    def close(self) -> None:
        self._halt.set()
        self.join(15)


@pytest.fixture
def live(mosquitto: Any) -> Iterator[tuple[Stack, httpx.Client]]:
    stack = Stack(load_config(), StackOptions(speed=SPEED, seed=3, mqtt_url=mosquitto.url))
    app = create_app(stack=stack, api_token=TOKEN)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield stack, client


def twin(client: httpx.Client) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/twin").json()
    return body


def health(client: httpx.Client) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/healthz").json()
    return body


def test_a_pause_shows_in_twin_healthz_and_the_stream_until_it_resumes(
    live: tuple[Stack, httpx.Client], mosquitto: Any
) -> None:
    stack, client = live
    assert wait_until(lambda: twin(client)["kpis"]["produced"] > 0, timeout=WAIT_S)
    assert twin(client)["paused"] is False
    assert twin(client)["speed_factor"] == SPEED
    assert wait_until(lambda: health(client)["status"] == "ok", timeout=WAIT_S), health(client)
    events = LineEvents(str(client.base_url))
    try:
        assert wait_until(lambda: False in events.seen(), timeout=WAIT_S), events.error

        ack = client.post("/line/commands", json={"action": "pause"}, headers=AUTH)
        assert ack.status_code == 200, ack.text
        assert ack.json()["accepted"] is True
        assert wait_until(lambda: twin(client)["paused"] is True, timeout=WAIT_S)
        report = health(client)
        assert report["status"] == "degraded"
        assert report["line_paused"] is True
        assert any("paused" in reason for reason in report["reasons"]), report["reasons"]
        assert not any("stale" in reason for reason in report["reasons"])  # silence expected
        assert wait_until(lambda: True in events.seen(), timeout=WAIT_S), events.error

        # It is on the wire: a subscriber that comes now reads the retained status.
        late = Recorder(mosquitto.url, stack.topics.status)
        try:
            assert wait_until(lambda: late.snapshot() != [], timeout=WAIT_S)
            _topic, payload, retained = late.snapshot()[-1]
        finally:
            late.close()
        status = decode("status", payload)
        assert isinstance(status, LineStatus)
        assert retained
        assert status.paused is True
        assert status.speed_factor == SPEED

        ack = client.post("/line/commands", json={"action": "resume"}, headers=AUTH)
        assert ack.json()["accepted"] is True
        assert wait_until(lambda: twin(client)["paused"] is False, timeout=WAIT_S)
        assert wait_until(lambda: events.seen()[-1] is False, timeout=WAIT_S)
        assert wait_until(lambda: health(client)["status"] == "ok", timeout=WAIT_S)
    finally:
        events.close()
    assert events.error is None, events.error
    flags = events.seen()
    assert flags.index(True) < len(flags) - 1 - flags[::-1].index(False)  # paused, then not


def test_a_line_that_falls_silent_is_stale_in_healthz(live: tuple[Stack, httpx.Client]) -> None:
    stack, client = live
    assert wait_until(lambda: health(client)["status"] == "ok", timeout=WAIT_S), health(client)
    report = health(client)
    config = load_config()
    shortest = min(
        (getattr(station.sensors, name).period_s or config.sensors.telemetry_period_s)
        for station in config.stations
        for name in ("temperature_c", "vibration_mm_s", "spindle_rpm", "power_kw", "pressure_bar")
        if getattr(station.sensors, name) is not None
    )
    assert report["stale_after_s"] == max(STALE_MIN_S, STALE_PERIODS * shortest / SPEED)
    stack.stop_plant()  # no goodbye, no last will: the line just goes quiet

    def stale() -> bool:
        return any(reason.startswith("stale") for reason in health(client)["reasons"])

    assert wait_until(stale, timeout=WAIT_S), health(client)
    report = health(client)
    assert report["status"] == "degraded"
    assert report["ingest"]["last_message_age_s"] > report["stale_after_s"]
    assert report["line_status"] == "online"  # it never said goodbye


def test_the_clock_is_the_time_of_day_of_the_lines_calendar(
    live: tuple[Stack, httpx.Client],
) -> None:
    _stack, client = live
    assert wait_until(lambda: twin(client)["sim_time_s"] is not None, timeout=WAIT_S)
    body = twin(client)
    calendar = load_config().calendar
    assert calendar is not None
    clock = body["clock"]
    assert clock["calendar"] is True
    wall = datetime(2024, 1, 1) + timedelta(hours=calendar.start_at_h, seconds=body["sim_time_s"])
    assert clock["time_of_day"] == wall.strftime("%H:%M")
    assert clock["elapsed_s"] == body["sim_time_s"]
    assert body["calendar"]["start_at_h"] == calendar.start_at_h
    assert [stop["reason"] for stop in body["calendar"]["planned_downtime"]] == [
        stop.reason for stop in calendar.planned_downtime
    ]
