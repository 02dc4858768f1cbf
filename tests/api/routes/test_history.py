"""/history: range and downsampling queries through the API, checked against
values computed from the raw points the test wrote."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers import get_free_port, port_open, wait_until

from api.app import create_app
from twin.config.line import SENSOR_NAMES, load_config
from twin.history.points import SCHEMA, Point
from twin.history.store import SqliteStore
from twin.state.line import TwinState

TAGS = {"site": "plant-a", "area": "fab", "line": "line1", "origin": "live"}


@pytest.fixture
def history(tmp_path: Path) -> Iterator[tuple[TestClient, list[Point]]]:
    store = SqliteStore(tmp_path / "history.sqlite3", retention_ms=None)
    rng = random.Random(11)
    points = [
        Point(
            "telemetry",
            {**TAGS, "station": rng.choice(["cut", "weld"])},
            {"temperature_c": round(rng.uniform(20, 80), 2)},
            1_700_000_000_000 + rng.randrange(0, 7_200_000),
        )
        for _ in range(2000)
    ]
    store.write(points)
    store.flush(10)
    app = create_app(twin_state=TwinState("plant-a", "fab", "line1"), history_store=store)
    with TestClient(app) as client:
        yield client, points
    store.close()


def test_downsampled_history_matches_the_raw_points(
    history: tuple[TestClient, list[Point]],
) -> None:
    client, points = history
    start, every = 1_700_000_000_000 + 600_000, 300_000
    end = start + 3_600_000
    response = client.get(
        "/history",
        params={
            "measurement": "telemetry",
            "field": "temperature_c",
            "station": "cut",
            "start": start,
            "end": end,
            "every": "5m",
            "agg": "max",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["every_ms"] == every
    assert len(body["series"]) == 1
    assert body["series"][0]["tags"]["station"] == "cut"
    windows: dict[int, list[float]] = {}
    for point in points:
        if point.tags["station"] == "cut" and start <= point.time_ms < end:
            key = start + (point.time_ms - start) // every * every
            windows.setdefault(key, []).append(point.fields["temperature_c"])
    got = {p["t_ms"]: (p["value"], p["count"]) for p in body["series"][0]["points"]}
    assert got == {key: (max(values), len(values)) for key, values in windows.items()}

    mean = client.get(
        "/history",
        params={
            "measurement": "telemetry",
            "field": "temperature_c",
            "station": "weld",
            "start": start,
            "end": end,
            "every": 3_600_000,
        },
    ).json()["series"][0]["points"]
    weld = [
        p.fields["temperature_c"]
        for p in points
        if p.tags["station"] == "weld" and start <= p.time_ms < end
    ]
    assert mean[0]["value"] == pytest.approx(statistics.fmean(weld))
    assert mean[0]["count"] == len(weld)


def test_raw_history_and_iso_times(history: tuple[TestClient, list[Point]]) -> None:
    client, points = history
    response = client.get(
        "/history",
        params={
            "measurement": "telemetry",
            "field": "temperature_c",
            "start": "2023-11-14T22:13:20Z",  # 1_700_000_000_000
            "end": "2023-11-14T22:23:20+00:00",
        },
    )
    assert response.status_code == 200, response.text
    served = sorted(
        (p["t_ms"], p["value"]) for series in response.json()["series"] for p in series["points"]
    )
    expected = sorted(
        (p.time_ms, p.fields["temperature_c"])
        for p in points
        if 1_700_000_000_000 <= p.time_ms < 1_700_000_600_000
    )
    assert served == expected


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"measurement": "sensors", "field": "x"}, "measurement", "'telemetry', 'part'"),
        ({"measurement": "telemetry", "field": "colour"}, "field", "no field 'colour'"),
        (
            {"measurement": "telemetry", "field": "power_kw", "start": "yesterday"},
            "start",
            "neither Unix milliseconds nor an ISO 8601",
        ),
        ({"measurement": "kpi", "field": "oee", "every": "5 parsecs"}, "every", "not a duration"),
        ({"measurement": "kpi", "field": "oee", "start": "20", "end": "10"}, "start", "before"),
        ({"measurement": "kpi", "field": "oee", "agg": "median"}, "agg", ""),
        (
            {"measurement": "kpi", "field": "oee", "start": "-1" + "0" * 30},
            "start",
            "outside 1970-01-01 .. 9999-12-31",
        ),
        (
            {"measurement": "kpi", "field": "oee", "end": "9" * 30},
            "end",
            "outside 1970-01-01 .. 9999-12-31",
        ),
        (
            {"measurement": "kpi", "field": "oee", "start": "-5"},
            "start",
            "outside 1970-01-01 .. 9999-12-31",
        ),
        ({"measurement": "kpi", "field": "oee", "every": "9" * 30}, "every", "longer than"),
    ],
)
def test_bad_queries_name_the_field(
    history: tuple[TestClient, list[Point]], params: dict[str, str], field: str, words: str
) -> None:
    client, _ = history
    response = client.get("/history", params=params)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert any(field in error["loc"] and words in error["msg"] for error in detail), detail


def test_an_empty_end_is_now(history: tuple[TestClient, list[Point]]) -> None:
    """The schema allows an empty string; it means the default, as when left out."""
    client, points = history
    newest = max(p.time_ms for p in points)
    params = {"measurement": "telemetry", "field": "temperature_c", "start": str(newest - 1000)}
    with_empty = client.get("/history", params={**params, "end": ""})
    left_out = client.get("/history", params=params)
    assert with_empty.status_code == left_out.status_code == 200, with_empty.text
    assert with_empty.json()["series"] == left_out.json()["series"]
    assert with_empty.json()["series"], "the newest points are in the answer"


def test_series_listing(history: tuple[TestClient, list[Point]]) -> None:
    client, _ = history
    listed = client.get("/history/series", params={"measurement": "telemetry"}).json()
    assert {(s["field"], s["tags"]["station"]) for s in listed} == {
        ("temperature_c", "cut"),
        ("temperature_c", "weld"),
    }


def dashboard_pairs() -> set[tuple[str, str]]:
    """(measurement, field) of every query of the provisioned Grafana dashboard,
    read with the same parser ``make docker-check`` uses."""
    repo = Path(__file__).resolve().parents[3]
    spec = importlib.util.spec_from_file_location("docker_check", repo / "docker" / "check.py")
    assert spec is not None
    assert spec.loader is not None
    check = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = check
    spec.loader.exec_module(check)
    dashboard = json.loads((repo / "docker/grafana/dashboards/line-overview.json").read_text())
    pairs = set()
    for _where, query in check.dashboard_queries(dashboard):
        refs = check.flux_references(query)
        for measurement in refs.measurements:
            pairs |= {(measurement, f) for f in refs.fields if f in SCHEMA.get(measurement, ())}
    return pairs


@pytest.mark.integration
@pytest.mark.slow
def test_first_open_has_history_covering_the_backfill(tmp_path: Path) -> None:
    """``factory-twin up`` with a (short) backfill: once it is done, history covers
    the span for every station's sensors, parts, states and the line KPIs before
    and after the line went live."""
    api_port, mqtt_port = get_free_port(), get_free_port()
    history_path = tmp_path / "first-open.sqlite3"
    env = {**os.environ, "FACTORY_TWIN_API_PORT": str(api_port), "FACTORY_TWIN_KPI_PERIOD_S": "1"}
    days = 0.25
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.cli",
            "up",
            "--speed",
            "60",
            "--mqtt-port",
            str(mqtt_port),
            "--history-path",
            str(history_path),
            "--backfill-days",
            str(days),
            # A test's own loopback broker: anonymous clients are accepted on purpose.
            "--allow-anonymous-mqtt",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        came_up = wait_until(lambda: port_open(api_port) or process.poll() is not None, timeout=90)
        assert process.poll() is None, process.communicate()[0]
        assert came_up, "API never came up"
        base = f"http://127.0.0.1:{api_port}"
        span_ms = int(days * 86_400_000)

        # The API answers while the backfill writes in the background; history is
        # complete once /healthz says so.
        def backfill_state() -> str:
            return str(httpx.get(f"{base}/healthz", timeout=5).json()["backfill"]["state"])

        assert wait_until(lambda: backfill_state() == "done", timeout=120), backfill_state()

        def fetch(measurement: str, field: str, **tags: str) -> dict[str, object]:
            response = httpx.get(
                f"{base}/history",
                params={
                    "measurement": measurement,
                    "field": field,
                    "start": str(int(time.time() * 1000) - 2 * span_ms),
                    "end": "now",
                    "every": "1h",
                    **tags,
                },
                timeout=10,
            )
            response.raise_for_status()
            body: dict[str, object] = response.json()
            return body

        stations = {s["id"] for s in httpx.get(f"{base}/stations", timeout=5).json()}
        # up runs the packaged line: every station, and each of its sensors, has
        # backfilled history over the whole span.
        specs = load_config().stations
        assert stations == {spec.id for spec in specs}
        for sensor in SENSOR_NAMES:
            fitted = {spec.id for spec in specs if getattr(spec.sensors, sensor) is not None}
            if not fitted:
                continue
            series = fetch("telemetry", sensor, origin="backfill")["series"]
            assert isinstance(series, list)
            assert {s["tags"]["station"] for s in series} == fitted, sensor
            for one in series:
                first = min(p["t_ms"] for p in one["points"])
                last = max(p["t_ms"] for p in one["points"])
                # hourly windows over the whole span
                assert last - first >= span_ms - 2 * 3_600_000, (sensor, one["tags"])
        for measurement, field in (("part", "good"), ("state", "code")):
            series = fetch(measurement, field, origin="backfill")["series"]
            assert isinstance(series, list)
            held = {s["tags"]["station"] for s in series}
            assert held == stations, f"backfilled {measurement}.{field} misses {stations - held}"
        assert fetch("kpi", "oee", origin="backfill")["series"], "no backfilled line KPIs"
        # Every chart of the Grafana dashboard has data: each (measurement, field)
        # its queries select is in history after the backfill.
        charted = dashboard_pairs()
        assert charted
        for measurement, field in sorted(charted):
            answer = fetch(measurement, field, origin="backfill")
            assert answer["series"], f"the dashboard charts {measurement}.{field}: no history"
        # History's own counters are in /healthz: nothing stuck, no sink configured.
        history = httpx.get(f"{base}/healthz", timeout=5).json()["history"]
        assert history["samples"] > 0
        assert history["store"]["acknowledged"] > 0
        assert history["store"]["last_error"] is None
        assert history["sinks"] == {}
        # Live history follows: the KPI sampler and the ingest write as the line runs.
        assert wait_until(
            lambda: bool(fetch("telemetry", "power_kw", origin="live")["series"]), timeout=30
        )
        assert wait_until(lambda: bool(fetch("kpi", "produced", origin="live")["series"]), 30)
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert "backfill done" in output
    assert "Traceback" not in output
