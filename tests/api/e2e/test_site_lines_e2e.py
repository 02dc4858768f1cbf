"""Every line of a site gets every per-line feature: alarms, history, what-if, optimizer.

A real ``SiteStack`` (the embedded broker, both lines in one realtime
environment) behind the API. The second line, south, is the one whose station
machining loses its sensors soon after the start (a dropout fault); north has no
fault and no such station. So south's alarms name machining and north's do not,
south's history is tagged
with south and its stations, and a what-if and an optimizer run started on south
answer about south, while the first line's paths (the single-line aliases) do not
list them. Each line streams its own twin. An unknown line is a 404 naming the
lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers import get_free_port, serve_in_thread, wait_until

from api.app import create_app
from api.runtime.options import StackOptions
from twin.config.site import parse_site

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "site-lines-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Minutes of wall time at most: a job takes seconds on an idle machine.
JOB_TIMEOUT_S = 300


# The optimizer's decision space is the machining speed and the welding
# temperature (models.optimizer.search.DEFAULT_SETPOINTS): south has both.
SOUTH_STATIONS = ("cutting", "machining", "welding")
NORTH_STATIONS = ("m0", "m1", "m2")
PROCESS: dict[str, dict[str, Any]] = {
    "machining": {"speed": {"min": 0.8, "max": 1.2, "default": 1.0}},
    "welding": {"temperature_c": {"min": 200, "max": 260, "default": 230}},
}


def line(line_id: str, area: str, station_ids: tuple[str, ...], faulty: bool) -> dict[str, Any]:
    """Three stations; on a faulty line, the middle one's sensors drop out after
    0.05 h of line time and stay out."""
    stations = [
        {
            "id": station_id,
            "processing_time": {"distribution": "deterministic", "mean_s": 10 + index},
            "defect_probability": 0.02,
            **({"process": PROCESS[station_id]} if station_id in PROCESS else {}),
            **({"input_buffer_capacity": 5} if index else {}),
        }
        for index, station_id in enumerate(station_ids)
    ]
    config: dict[str, Any] = {"line": {"id": line_id, "area": area}, "stations": stations}
    if faulty:
        config["sensors"] = {
            "faults": [
                {
                    "station": station_ids[1],
                    "sensor": sensor,
                    "mode": "dropout",
                    "start_h": 0.05,
                    "duration_h": 1000,
                }
                for sensor in ("temperature_c", "vibration_mm_s")
            ]
        }
    return config


SITE = {
    "site": {"id": "works"},
    "lines": [
        {"inline": line("north", "hall-1", NORTH_STATIONS, faulty=False)},
        {"inline": line("south", "hall-2", SOUTH_STATIONS, faulty=True)},
    ],
}


def get(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, (path, response.text)
    return response.json()


def finished(client: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    """The job once it has ended; it must have succeeded."""
    url = f"/jobs/{job['id']}"
    assert wait_until(
        lambda: get(client, url)["status"] in {"succeeded", "failed", "cancelled"},
        timeout=JOB_TIMEOUT_S,
    ), get(client, url)
    done: dict[str, Any] = get(client, url)
    assert done["status"] == "succeeded", (done["error"], done["message"])
    return done


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    from api.runtime.site import SiteStack

    site = SiteStack(parse_site(SITE), StackOptions(speed=600, seed=3, mqtt_port=get_free_port()))
    with (
        serve_in_thread(create_app(site=site, api_token=TOKEN)) as url,
        httpx.Client(base_url=url, timeout=30) as test,
    ):
        assert wait_until(
            lambda: min(get(test, f"/lines/{i}")["kpis"]["produced"] for i in site.lines) > 5,
            timeout=60,
        )
        yield test
    assert not site.started


def test_the_second_lines_alarms_are_its_own(client: httpx.Client) -> None:
    def silent(path: str) -> list[dict[str, Any]]:
        alarms = get(client, path)["alarms"]
        return [alarm for alarm in alarms if alarm["kind"] == "broken_sensor"]

    assert wait_until(lambda: silent("/lines/south/alarms"), timeout=60)
    [alarm] = silent("/lines/south/alarms")
    assert alarm["station"] == "machining"
    assert alarm["link"] == "/lines/south/stations/machining"
    assert get(client, alarm["link"])["id"] == "machining"
    # North's sensors measure on: no such alarm there, by its path or the alias.
    assert silent("/lines/north/alarms") == []
    assert silent("/alarms") == []


def test_the_second_lines_history_is_tagged_with_it(client: httpx.Client) -> None:
    def series(path: str) -> list[dict[str, Any]]:
        answer = get(client, path, measurement="telemetry", field="temperature_c")
        return [s for s in answer["series"] if s["points"]]

    assert wait_until(lambda: len(series("/lines/south/history")) == 3, timeout=60)
    south = series("/lines/south/history")
    assert {s["tags"]["line"] for s in south} == {"south"}
    assert {s["tags"]["station"] for s in south} == set(SOUTH_STATIONS)
    assert {s["tags"]["line"] for s in series("/history")} == {"north"}
    listed = get(client, "/lines/south/history/series", measurement="telemetry")
    assert listed
    assert {entry["tags"]["line"] for entry in listed} == {"south"}


def test_a_what_if_on_the_second_line_forecasts_it(client: httpx.Client) -> None:
    snapshot = get(client, "/lines/south/scenarios/snapshot")
    assert snapshot["line"] == "south"
    body = {"horizon_h": 0.5, "replications": 2, "seed": 1}
    started = client.post("/lines/south/scenarios", json=body, headers=AUTH)
    assert started.status_code == 202, started.text
    job = finished(client, started.json())
    listed = get(client, "/lines/south/scenarios")["scenarios"]
    assert [item["id"] for item in listed] == [job["id"]]
    assert listed[0]["url"] == f"/lines/south/scenarios/{job['id']}"
    view = get(client, listed[0]["url"])
    assert view["result"]["line"] == "south"
    # The first line's paths do not serve it.
    assert get(client, "/scenarios")["scenarios"] == []
    assert client.get(f"/scenarios/{job['id']}").status_code == 404
    assert client.get(f"/lines/north/scenarios/{job['id']}").status_code == 404


def test_the_optimizer_on_the_second_line_recommends_its_setpoints(
    client: httpx.Client,
) -> None:
    body = {"budget": 2, "hours": 0.5, "replications": 1, "seed": 1}
    started = client.post("/lines/south/optimize", json=body, headers=AUTH)
    assert started.status_code == 202, started.text
    job = finished(client, started.json())
    recommendation = get(client, "/lines/south/optimize/recommendation")
    assert recommendation["job_id"] == job["id"]
    assert set(recommendation["setpoints"]) == {"machining", "welding"}
    # North has run no optimizer: its recommendation is not south's.
    north = client.get("/optimize/recommendation")
    assert north.status_code == 404
    assert "no optimizer run has finished yet" in north.json()["detail"]
    assert client.get("/lines/north/optimize/recommendation").status_code == 404


def first_event(client: httpx.Client, path: str) -> tuple[str, dict[str, Any]]:
    """The kind and data of the first event of a stream (a new one starts with a reset)."""
    kind = ""
    with client.stream("GET", path) as response:
        assert response.status_code == 200
        for text in response.iter_lines():
            if text.startswith("event: "):
                kind = text.removeprefix("event: ")
            elif text.startswith("data: "):
                return kind, json.loads(text.removeprefix("data: "))
    raise AssertionError(f"{path} ended without an event")


def test_each_line_streams_its_own_twin(client: httpx.Client) -> None:
    kind, data = first_event(client, "/lines/south/stream")
    assert kind == "reset"
    assert data["twin"]["line"] == "south"
    assert [s["id"] for s in data["twin"]["stations"]] == list(SOUTH_STATIONS)
    kind, data = first_event(client, "/stream")
    assert (kind, data["twin"]["line"]) == ("reset", "north")


def test_an_unknown_line_is_a_404_naming_the_lines(client: httpx.Client) -> None:
    for path in ("/alarms", "/history?measurement=kpi&field=oee", "/scenarios", "/optimize"):
        answer = (
            client.post(f"/lines/west{path}", json={}, headers=AUTH)
            if path == "/optimize"
            else client.get(f"/lines/west{path}")
        )
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["detail"] == "line_id 'west' is unknown; lines: north, south"
