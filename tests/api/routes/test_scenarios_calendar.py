"""What-if over the API at night: a fork at 22:05 over 4 h answers with counts and
KPIs marked not applicable (null, with the reason), exactly as ``twin.experiments.whatif``
gives them; ``GET /scenarios`` lists every what-if with the time of day of its
fork; ``factory-twin whatif`` prints the reasons and exits 0."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from feeding import FedTwin, feed_twin

from api.app import create_app
from twin.config.line import load_config
from twin.experiments.whatif import run_scenario
from twin.experiments.whatif_kpis import NEEDS_PLANNED_TIME
from twin.state.snapshot import LineSnapshot

pytestmark = pytest.mark.slow

TOKEN = "scenario-night-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NIGHT_H = 16 + 5 / 60  # the default line starts at 06:00: 22:05


@pytest.fixture(scope="module")
def fed() -> FedTwin:
    return feed_twin(NIGHT_H, seed=3)


@pytest.fixture(scope="module")
def client(fed: FedTwin) -> Iterator[TestClient]:
    app = create_app(twin_state=fed.twin, config=load_config(), api_token=TOKEN)
    with TestClient(app) as subject:
        yield subject


def finished(client: TestClient, scenario_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view: dict[str, Any] = client.get(f"/scenarios/{scenario_id}").json()
        if view["job"]["status"] in {"succeeded", "failed", "cancelled"}:
            return view
        time.sleep(0.3)
    raise AssertionError(f"scenario {scenario_id} did not finish in {timeout} s")


def test_a_night_forecast_over_the_api_has_no_rate_or_ratio(client: TestClient) -> None:
    snapshot = LineSnapshot.model_validate(client.get("/scenarios/snapshot").json())
    assert snapshot.clock is not None
    assert snapshot.clock.planned_stop == "no night shift"
    assert snapshot.calendar is not None
    body = {"horizon_h": 4, "replications": 3, "seed": 9}
    started = client.post("/scenarios", json=body, headers=AUTH)
    assert started.status_code == 202, started.text
    view = finished(client, started.json()["id"])
    assert view["job"]["status"] == "succeeded", view["job"]
    result = view["result"]
    direct = run_scenario(load_config(), snapshot, horizon_s=4 * 3600.0, replications=3, seed=9)
    assert result == direct.model_dump(mode="json")
    assert result["fork_time_of_day"] == snapshot.clock.time_of_day
    for name, forecast in result["kpis"].items():
        if name in NEEDS_PLANNED_TIME:
            assert forecast["baseline"] is None
            assert "no planned production time" in forecast["not_applicable"]
    for run in result["baseline_runs"]:
        for name in ("yield_ratio", "scrap_ratio", "oee"):
            assert run[name] is None or run[name] <= 1.0

    # Listed, with where in the day it was forked; the newest first.
    second = client.post("/scenarios", json={"horizon_h": 9, "replications": 2}, headers=AUTH)
    assert second.status_code == 202
    listed = client.get("/scenarios").json()["scenarios"]
    assert [item["id"] for item in listed] == [second.json()["id"], started.json()["id"]]
    first = listed[1]
    assert first["fork_time_of_day"] == snapshot.clock.time_of_day
    assert first["fork_planned_stop"] == "no night shift"
    assert first["horizon_h"] == 4
    assert first["job"]["status"] == "succeeded"
    assert client.get(first["url"]).json()["result"] == result
    # Nine hours from 22:05 reach into the morning shift: figures again.
    later = finished(client, second.json()["id"])["result"]
    assert later["kpis"]["throughput_per_planned_h"]["baseline"]["mean"] > 0
    assert later["kpis"]["oee"]["baseline"]["mean"] <= 1.0


def test_the_whatif_command_prints_why_a_kpi_does_not_apply(
    client: TestClient, tmp_path: Path
) -> None:
    snapshot = tmp_path / "snapshot.json"
    snapshot.write_text(client.get("/scenarios/snapshot").text)
    command = [sys.executable, "-m", "api.cli", "whatif", "--snapshot", str(snapshot)]
    ran = subprocess.run(
        [*command, "--horizon-h", "4", "--replications", "2", "--seed", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    taken = LineSnapshot.model_validate_json(snapshot.read_text())
    assert taken.clock is not None
    assert f"what-if from {taken.clock.time_of_day}" in ran.stdout
    assert "n/a: not applicable: baseline and scenario: no planned production time" in ran.stdout
    assert "no night shift" in ran.stdout
    oee_row = next(line for line in ran.stdout.splitlines() if line.split()[:1] == ["oee"])
    assert oee_row.split()[1:] == ["n/a", "n/a", "n/a"]
    assert "Traceback" not in ran.stderr
