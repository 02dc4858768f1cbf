"""``factory-twin up --twin-only`` against an external broker, fed by a plant
started separately: the twin of a line this process does not simulate.

Debian's mosquitto is the external broker. The twin-only process starts first
and subscribes; then a second ``factory-twin up`` runs the CNC cell's plant
(with a twin of its own) against the same broker. The two twins are fed the
same messages, so once the line is paused they must agree on every count, and
the twin-only one has learnt the line from them (``GET /model``) and forecasts
with it (``GET /forecasts``). Each process has its own ingest client id by
default; with one id they would drop each other from the broker in turn.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import Mosquitto, get_free_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
CNC = REPO / "examples" / "lines" / "cnc_cell.yaml"
COMMAND = [sys.executable, "-m", "api.cli", "up"]
TOKEN = "twin-only-e2e-token-0123456789abcdef"


def _up(tmp: Path, name: str, port: int, extra: list[str], env: dict[str, str]) -> Any:
    state = tmp / name
    state.mkdir()
    return subprocess.Popen(
        [*COMMAND, "--config", str(CNC), "--api-port", str(port), *extra],
        env={
            **os.environ,
            "FACTORY_TWIN_API_TOKEN": TOKEN,
            "FACTORY_TWIN_HISTORY_PATH": str(state / "history.sqlite3"),
            "FACTORY_TWIN_MODELS_PATH": str(state / "models"),
            "FACTORY_TWIN_JOBS_PATH": str(state / "jobs"),
            "FACTORY_TWIN_FIRST_TRAINING": "false",
            **env,
        },
        stdout=open(state / "log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _get(port: int, path: str) -> Any:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10).json()


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(process: Any) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_a_twin_only_twin_follows_and_learns_a_line_simulated_elsewhere(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    assert CNC.exists()
    twin_port, plant_port = get_free_port(), get_free_port()
    twin = _up(
        tmp_path,
        "twin",
        twin_port,
        ["--twin-only", "--mqtt-url", mosquitto.url],
        {"FACTORY_TWIN_FORECAST_PERIOD_S": "1800"},
    )
    plant = None
    try:
        assert wait_until(lambda: _answers(twin_port), timeout=120), "the twin-only API"
        plant = _up(
            tmp_path,
            "plant",
            plant_port,
            ["--mqtt-url", mosquitto.url, "--no-backfill", "--speed", "600"],
            {"FACTORY_TWIN_FORECAST_PERIOD_S": "0"},
        )
        assert wait_until(lambda: _answers(plant_port), timeout=120), "the plant's API"

        def learnt_and_forecasting() -> bool:
            model = _get(twin_port, "/model")
            forecasts = _get(twin_port, "/forecasts")
            return len(model.get("parameters", [])) >= 4 and len(forecasts["forecasts"]) >= 2

        assert wait_until(learnt_and_forecasting, timeout=300, interval=2), (
            _get(twin_port, "/model"),
            _get(twin_port, "/forecasts"),
        )
        # Pause the line through the plant's API; both twins then hold still.
        paused = httpx.post(
            f"http://127.0.0.1:{plant_port}/line/commands",
            json={"action": "pause"},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        assert paused.status_code == 200, paused.text

        def counts(port: int) -> tuple[int, int, int]:
            kpis = _get(port, "/kpis")
            return kpis["produced"], kpis["good"], kpis["scrap"]

        def agree() -> bool:
            return counts(twin_port) == counts(plant_port)

        assert wait_until(agree, timeout=60, interval=1), (counts(twin_port), counts(plant_port))
        produced, good, _ = counts(twin_port)
        assert good > 0
        assert produced >= good
        stations = {s["id"]: s for s in _get(twin_port, "/twin")["stations"]}
        plant_stations = {s["id"]: s for s in _get(plant_port, "/twin")["stations"]}
        assert set(stations) == {"saw", "milling", "deburring", "cmm"}
        for station_id, station in stations.items():
            mine = plant_stations[station_id]
            assert (station["started"], station["good"]) == (mine["started"], mine["good"])
        # What the twin-only twin learnt: the mills' processing time, 540 s in the file.
        model = _get(twin_port, "/model")
        milling = next(
            p
            for p in model["parameters"]
            if p["station"] == "milling" and p["parameter"] == "processing_time.mean_s"
        )
        assert milling["nominal"] == 540.0
        # Within 4 standard errors of the file's mean (the file's cv is 0.06): a
        # bound a right estimate misses once in 15,000 runs, not one in 20.
        assert abs(milling["value"] - 540.0) <= 4 * 540.0 * 0.06 / milling["n"] ** 0.5
        assert not milling["drifted"]
        forecasts = _get(twin_port, "/forecasts")
        assert forecasts["status"] == "forecasting"
        assert {m["model"] for m in forecasts["forecasts"][0]["forecasts"]} == {
            "learned",
            "nominal",
        }
    finally:
        for process in (plant, twin):
            if process is not None:
                _stop(process)
    log = (tmp_path / "twin" / "log").read_text()
    assert "connection lost" not in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
