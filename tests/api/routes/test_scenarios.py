"""What-if over the API: a fork of the twin's state runs as a background job and
gives exactly what a batch simulation from that state gives for the same seed;
bad requests name the field; the forecast is later checked against the line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from feeding import FedTwin, feed_twin
from helpers import wait_until

from api.app import create_app
from twin.config.line import load_config
from twin.experiments.whatif import ScenarioChanges, run_scenario
from twin.state.line import TwinState
from twin.state.snapshot import LineSnapshot

pytestmark = pytest.mark.slow

TOKEN = "scenario-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FED_HOURS = 3.0


@pytest.fixture
def fed() -> FedTwin:
    return feed_twin(FED_HOURS, seed=11)


@pytest.fixture
def client(fed: FedTwin) -> Iterator[TestClient]:
    app = create_app(twin_state=fed.twin, config=load_config(), api_token=TOKEN)
    with TestClient(app) as subject:
        yield subject


def finished(client: TestClient, scenario_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = client.get(f"/scenarios/{scenario_id}").json()
        if view["job"]["status"] in {"succeeded", "failed", "cancelled"}:
            return view
        time.sleep(0.3)
    raise AssertionError(f"scenario {scenario_id} did not finish in {timeout} s")


def test_a_fork_over_the_api_equals_the_batch_simulation_from_that_state(
    client: TestClient,
) -> None:
    snapshot = LineSnapshot.model_validate(client.get("/scenarios/snapshot").json())
    assert snapshot.sim_time_s == pytest.approx(FED_HOURS * 3600, abs=60)
    body = {
        "horizon_h": 2,
        "replications": 3,
        "seed": 5,
        "changes": {"setpoints": {"machining": {"speed": 0.7}}},
    }
    assert client.post("/scenarios", json=body).status_code == 401
    started = client.post("/scenarios", json=body, headers=AUTH)
    assert started.status_code == 202, started.text
    assert started.json()["kind"] == "scenario"
    view = finished(client, started.json()["id"])
    assert view["job"]["status"] == "succeeded", view["job"]
    assert view["job"]["progress"] == 1.0

    batch = run_scenario(
        load_config(),
        snapshot,
        ScenarioChanges.model_validate(body["changes"]),
        horizon_s=2 * 3600.0,
        replications=3,
        seed=5,
    )
    assert view["result"] == batch.model_dump(mode="json")
    throughput = view["result"]["kpis"]["throughput_per_h"]
    assert throughput["difference"]["mean"] < 0  # machining slowed: fewer parts
    # The job's generic result is the same forecast.
    generic = client.get(view["job"]["result_url"]).json()["result"]
    assert generic["kpis"] == view["result"]["kpis"]


def test_bad_scenarios_name_the_field(client: TestClient) -> None:
    for body, field in [
        ({"changes": {"setpoints": {"lathe": {"speed": 1.0}}}}, "setpoints.lathe"),
        ({"changes": {"setpoints": {"machining": {"speed": 99}}}}, "setpoints.machining.speed"),
        ({"changes": {"stations_down": {"welding": -1}}}, "stations_down"),
        ({"horizon_h": 1000}, "horizon_h"),
        ({"replications": 0}, "replications"),
        ({"horizon_h": 168, "replications": 100}, "horizon_s x replications"),
        ({"changes": {"weather": "rain"}}, "weather"),
    ]:
        answer = client.post("/scenarios", json=body, headers=AUTH)
        assert answer.status_code == 422, (body, answer.text)
        assert field in answer.text, (field, answer.text)
        # Every 422 has the shape the schema declares: a list of located errors.
        detail = answer.json()["detail"]
        assert isinstance(detail, list), detail
        assert all(error["loc"][0] == "body" and error["msg"] for error in detail), detail
    unknown = client.post(
        "/scenarios", json={"changes": {"stations_down": {"lathe": 1}}}, headers=AUTH
    )
    assert unknown.json()["detail"][0]["loc"] == ["body", "changes", "stations_down", "lathe"]
    assert client.get("/jobs").json()["jobs"] == []  # nothing was started
    assert client.get("/scenarios/abc123").status_code == 404


def test_without_data_or_line_there_is_nothing_to_fork() -> None:
    config = load_config()
    empty = TwinState(config.line.site, config.line.area, config.line.id)
    with TestClient(create_app(twin_state=empty, config=config, api_token=TOKEN)) as client:
        answer = client.post("/scenarios", json={}, headers=AUTH)
        assert answer.status_code == 409
        assert "no data" in answer.json()["detail"]
    with TestClient(create_app(twin_state=empty, api_token=TOKEN)) as client:
        assert client.post("/scenarios", json={}, headers=AUTH).status_code == 503


def test_the_forecast_is_checked_against_what_the_line_then_did(
    client: TestClient, fed: FedTwin
) -> None:
    horizon_h = 1.0
    body = {"horizon_h": horizon_h, "replications": 4, "seed": 1}
    started = client.post("/scenarios", json=body, headers=AUTH).json()
    view = finished(client, started["id"])
    result = view["result"]
    assert view["check"]["status"] == "waiting"
    fork_s = result["fork_sim_time_s"]
    shipped_at_fork = fed.twin.counters()[0]
    assert result["counters_at_fork"]["shipped"] == shipped_at_fork

    # The line goes on past the forecast's end; the twin hears it over its ingest.
    fed.plant.run(until=fork_s + horizon_h * 3600 + 600)
    shipped_now = fed.twin.counters()[0]
    now = fed.twin.view().sim_time_s
    assert now is not None

    def checked() -> bool:
        answer = client.get(f"/scenarios/{started['id']}").json()
        return bool(answer["check"]["status"] == "checked")

    assert wait_until(checked, timeout=30)
    check = client.get(f"/scenarios/{started['id']}").json()["check"]
    assert check["actual_good_parts"] == shipped_now - shipped_at_fork
    assert check["checked_at_sim_time_s"] == now
    rate = (shipped_now - shipped_at_fork) * 3600 / (now - fork_s)
    assert check["actual_throughput_per_h"] == pytest.approx(rate)
    baseline = result["kpis"]["throughput_per_h"]["baseline"]
    assert check["forecast_throughput_per_h"] == pytest.approx(baseline["mean"])
    # One run of the line is judged against where one run falls: the prediction
    # interval, which is wider than the interval of the forecast's mean.
    low, high = baseline["prediction_low"], baseline["prediction_high"]
    assert (check["low"], check["high"]) == (low, high)
    assert low < baseline["low"] <= baseline["high"] < high
    assert check["within_interval"] == (low <= rate <= high)


def test_the_whatif_command_names_what_is_wrong(client: TestClient, tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot.json"
    snapshot.write_text(client.get("/scenarios/snapshot").text)
    changes = tmp_path / "changes.json"
    changes.write_text(json.dumps({"setpoints": {"lathe": {"speed": 1.0}}}))

    def whatif(*argv: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "api.cli", "whatif", *argv]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    missing = whatif("--snapshot", str(tmp_path / "nope.json"))
    assert missing.returncode == 2
    assert "--snapshot" in missing.stderr
    unknown = whatif("--snapshot", str(snapshot), "--changes", str(changes))
    assert unknown.returncode == 2
    assert "setpoints.lathe" in unknown.stderr
    ran = whatif("--snapshot", str(snapshot), "--horizon-h", "0.5", "--replications", "2")
    assert ran.returncode == 0, ran.stderr
    assert "throughput_per_h" in ran.stdout
