"""GET /forecasts: the app forks shadow forecasts of the learnt and the nominal
line from a twin fed by a plant that runs a hidden line, in a child process,
and scores each against the twin's counters at the horizon's end.

The plant is stepped by the test (``sensors.loopback.LoopbackLine``) while the
app's periodic task ticks once a second, so the test runs the line exactly to
a horizon's end, waits there until the app has read the counters
(``looked_at_sim_time_s``), and runs it a minute on: what the app
scores with lies between the line's good parts at the end and a minute after."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from sensors.loopback import LoopbackLine
from twin.config.line import load_config
from twin.learning.observer import LineLearner
from twin.state.line import TwinState

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "bench"))
from calibration import hidden_line  # noqa: E402 - the benchmark's hidden line

HOUR = 3600.0
# A forecast job starts a fresh interpreter and simulates 2 x 8 runs of each
# horizon: generous, for a machine whose cores are busy.
PATIENCE_S = 240.0


def _wait_for(client: TestClient, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + PATIENCE_S
    while True:
        body: dict[str, Any] = client.get("/forecasts", params={"limit": 500}).json()
        if done(body):
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"not reached in {PATIENCE_S:g} s: {body}")
        time.sleep(0.5)


@pytest.mark.slow
def test_shadow_forecasts_are_forked_and_scored_against_the_line() -> None:
    nominal = load_config()
    learner = LineLearner()
    line = LoopbackLine(hidden_line(nominal), 2, learner.observe)
    line.run_until(26 * HOUR)  # 08:00 of day 2: in a shift, a day learnt
    app = create_app(twin_state=line.twin, config=nominal, learner=learner, forecast_period_s=HOUR)
    with TestClient(app) as client:
        body = _wait_for(client, lambda b: len(b["forecasts"]) >= 2)
        assert body["status"] == "forecasting"
        assert body["period_s"] == HOUR
        by_label = {f["label"]: f for f in body["forecasts"]}
        assert set(by_label) == {"next hour", "rest of shift"}
        hour = by_label["next hour"]
        fork = hour["fork_sim_time_s"]
        assert hour["horizon_s"] == HOUR
        # The rest of the shift runs to 22:00 (line time 16 h of each day from 06:00).
        assert by_label["rest of shift"]["end_sim_time_s"] == pytest.approx(40 * HOUR)
        assert hour["status"] == "waiting"
        assert hour["good_at_fork"] == line.twin.view().kpis.good
        models = {m["model"]: m for m in hour["forecasts"]}
        assert set(models) == {"learned", "nominal"}
        assert models["learned"]["config_hash"] != models["nominal"]["config_hash"]
        for model in models.values():
            predicted = model["good_parts"]
            assert predicted["low"] <= predicted["mean"] <= predicted["high"]
        # The same job priced each drift of the learnt line: the costliest first.
        drift = client.get("/model/drift").json()
        assert drift["drifted"], drift
        priced = {(c["station"], c["parameter"]): c["cost_good_per_h"] for c in drift["costs"]}
        order = [(d["station"], d["parameter"]) for d in drift["drifted"]]
        assert set(priced) == set(order)
        assert [priced[key] for key in order] == sorted(priced.values(), reverse=True)
        details = [a["detail"] for a in client.get("/alarms").json()["alarms"]]
        assert sum("good parts an hour" in detail for detail in details) == len(order)
        # The forecast jobs do not crowd the users' job list.
        assert all(job["kind"] != "forecast" for job in client.get("/jobs").json()["jobs"])

        # The line exactly to the horizon's end, a tick there, then a minute on: the app
        # reads the counters at the end between its ticks before and after it.
        line.run_until(hour["end_sim_time_s"])
        at_end = line.twin.view()
        _wait_for(client, lambda b: b["looked_at_sim_time_s"] == at_end.sim_time_s)
        line.run_until(hour["end_sim_time_s"] + 60.0)
        after = line.twin.view().kpis.good - hour["good_at_fork"]
        made_at_end = at_end.kpis.good - hour["good_at_fork"]
        body = _wait_for(
            client,
            lambda b: any(
                f["fork_sim_time_s"] == fork
                and f["label"] == "next hour"
                and f["status"] == "scored"
                for f in b["forecasts"]
            ),
        )
        scored = next(
            f
            for f in body["forecasts"]
            if f["fork_sim_time_s"] == fork and f["label"] == "next hour"
        )
        made = scored["actual_good_parts"]
        assert made_at_end <= made <= after, (made_at_end, made, after)
        if after == made_at_end:
            assert made == made_at_end
        for model in scored["forecasts"]:
            predicted = model["good_parts"]
            assert model["error_good_parts"] == pytest.approx(abs(predicted["mean"] - made))
            assert model["covered"] == (predicted["low"] <= made <= predicted["high"])
        summary = next(s for s in body["scores"] if s["horizon"] == "next hour")
        for score in summary["models"]:
            assert score["scored"] >= 1
            assert score["mean_abs_error_good_parts"] is not None


@pytest.mark.slow
def test_without_a_line_file_the_learnt_line_forecasts_alone() -> None:
    """No file: the line learnt from its messages alone forecasts, with no nominal
    model beside it."""
    learner = LineLearner()
    line = LoopbackLine(load_config(), 3, learner.observe)
    line.run_until(26 * HOUR)
    app = create_app(twin_state=line.twin, learner=learner, forecast_period_s=HOUR)
    with TestClient(app) as client:
        body = _wait_for(client, lambda b: len(b["forecasts"]) >= 2)
    assert body["status"].startswith("forecasting with the learnt line only")
    for forecast in body["forecasts"]:
        assert [m["model"] for m in forecast["forecasts"]] == ["learned"]
        assert forecast["forecasts"][0]["parameter_draws"] is True


def test_a_period_of_zero_turns_them_off() -> None:
    line = LoopbackLine(load_config(), 1, lambda station, message: None)
    line.run_until(2 * HOUR)
    app = create_app(
        twin_state=line.twin, config=load_config(), learner=LineLearner(), forecast_period_s=0
    )
    with TestClient(app) as client:
        time.sleep(2.5)  # two ticks of the periodic task
        body = client.get("/forecasts").json()
    assert (body["status"], body["period_s"], body["forecasts"]) == ("off", None, [])


def test_the_limit_is_checked() -> None:
    app = create_app(twin_state=TwinState("demo", "a", "line1"))
    with TestClient(app) as client:
        response = client.get("/forecasts", params={"limit": 0})
    assert response.status_code == 422
    assert "limit" in response.text
