"""GET /model and GET /model/drift over a twin and a learner fed by a plant that
runs a hidden line (``hidden_line`` of bench/calibration.py), the app given the
nominal file."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from feeding import feed_learner

from api.app import create_app
from twin.config.line import LineConfig, load_config
from twin.sim.plant import Plant

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "bench"))
from calibration import HIDDEN_CHANGES, hidden_line  # noqa: E402 - the benchmark's hidden line

# The changes hidden_line makes, as the learnt parameters name them.
CHANGED = HIDDEN_CHANGES


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    twin, learner = feed_learner(hidden_line(), 72.0, seed=1)
    app = create_app(twin_state=twin, config=load_config(), learner=learner)
    with TestClient(app) as test:
        yield test


def test_the_learnt_line_is_a_line_file_the_simulator_runs(client: TestClient) -> None:
    response = client.get("/model")
    assert response.status_code == 200, response.text
    body = response.json()
    learnt = LineConfig.model_validate(body["line"])
    stations = {station.id: station for station in learnt.stations}
    # The file holds the learnt values, not the nominal ones.
    found = {(p["station"], p["parameter"]): p for p in body["parameters"]}
    machining = found[("machining", "processing_time.mean_s")]
    assert stations["machining"].processing_time.mean == pytest.approx(machining["value"], rel=1e-3)
    assert machining["nominal"] == 52.0
    welding = stations["welding"].failures
    assert welding is not None
    assert welding.mtbf_s == pytest.approx(found[("welding", "failures.mtbf_s")]["value"])
    for item in body["parameters"]:
        assert item["low"] <= item["value"] <= item["high"], item
        assert item["n"] >= body["min_samples"], item
    Plant(learnt, seed=1).run(until=3600.0)  # it runs


def test_the_drift_names_exactly_the_hidden_changes(client: TestClient) -> None:
    response = client.get("/model/drift")
    assert response.status_code == 200, response.text
    body = response.json()
    named = {(item["station"], item["parameter"]) for item in body["drifted"]}
    assert named == CHANGED
    ratios = [abs(item["ratio"] - 1) for item in body["drifted"]]
    assert body["drifted"][0]["parameter"] != "processing_time.mean_s"  # 12% is the least
    assert max(ratios) > 0.5
    assert body["learnt"] == len(client.get("/model").json()["parameters"])
    # Under the line's path too.
    assert client.get("/lines/line1/model/drift").json()["drifted"] == body["drifted"]


def test_each_drifted_parameter_is_an_alarm_of_its_own_kind(client: TestClient) -> None:
    alarms = client.get("/alarms").json()["alarms"]
    drift = [alarm for alarm in alarms if alarm["kind"] == "model_drift"]
    assert {alarm["station"] for alarm in drift} == {station for station, _ in CHANGED}
    assert len(drift) == len(CHANGED)
    for alarm in drift:
        assert alarm["link"] == "/model/drift"
        assert "x the line file's" in alarm["detail"]
    mttr = next(a for a in drift if "failures.mttr_s" in a["detail"])
    assert "against 8.0 min" in mttr["detail"]  # the file's 480 s, as the dashboard says it
    scrap = next(a for a in drift if "defect_probability" in a["detail"])
    assert "against 0.40 %" in scrap["detail"]  # inspection's 0.004


def test_without_a_line_file_the_line_is_learnt_from_its_messages_alone() -> None:
    """No file: the stations, machines and buffers come from the birth message and
    every parameter from the stream; nothing has a nominal value, nothing drifts."""
    nominal = load_config()
    twin, learner = feed_learner(nominal, 24.0, seed=2)
    with TestClient(create_app(twin_state=twin, learner=learner)) as test:
        body = test.get("/model").json()
        drift = test.get("/model/drift").json()
    learnt = LineConfig.model_validate(body["line"])
    assert [s.id for s in learnt.stations] == [s.id for s in nominal.stations]
    for mine, filed in zip(learnt.stations, nominal.stations, strict=True):
        assert mine.machines == filed.machines
        assert mine.input_buffer_capacity == filed.input_buffer_capacity
    assert learnt.calendar is not None
    assert {p.id for p in learnt.products} == {p.id for p in nominal.products}
    machining = next(
        p
        for p in body["parameters"]
        if p["station"] == "machining" and p["parameter"] == "processing_time.mean_s"
    )
    assert machining["nominal"] is None
    assert machining["low"] <= 52.0 <= machining["high"]
    assert all(p["nominal"] is None and not p["drifted"] for p in body["parameters"])
    assert drift["drifted"] == []
    assert any("release" in item for item in body["not_learnt"])
    Plant(learnt, seed=1).run(until=3600.0)  # it runs


def test_a_line_the_twin_knows_no_station_of_cannot_be_learnt_yet() -> None:
    from twin.learning.observer import LineLearner
    from twin.state.line import TwinState

    app = create_app(twin_state=TwinState("s", "a", "l"), learner=LineLearner())
    with TestClient(app) as test:
        response = test.get("/model")
    assert response.status_code == 409
    assert "stations" in response.json()["detail"]
