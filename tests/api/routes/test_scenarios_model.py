"""What-ifs on the learnt line or the line file (``model``), over the API.

A plant runs the hidden line of bench/calibration.py; the app has the nominal
file and a learner fed with the plant's messages. Once the learnt line is
ready (every station's processing time learnt), a what-if runs it unless asked
for the file's, and says which it ran and why; the learnt line, slower than the
file, forecasts fewer good parts from the same fork and seeds.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from feeding import feed_learner

from api.app import create_app
from twin.config.line import LineConfig, load_config

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "bench"))
from calibration import hidden_line  # noqa: E402 - the benchmark's hidden line

TOKEN = "scenario-model-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY = {"horizon_h": 4, "replications": 4, "seed": 3}


def _run(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    started = client.post("/scenarios", json=body, headers=AUTH)
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        view: dict[str, Any] = client.get(f"/scenarios/{started.json()['id']}").json()
        if view["job"]["status"] in {"succeeded", "failed", "cancelled"}:
            assert view["job"]["status"] == "succeeded", view["job"]
            return view
        time.sleep(0.3)
    raise AssertionError("the what-if did not finish")


def _summary(client: TestClient, scenario_id: str) -> dict[str, Any]:
    listed = client.get("/scenarios").json()["scenarios"]
    found: dict[str, Any] = next(s for s in listed if s["id"] == scenario_id)
    return found


@pytest.mark.slow
def test_a_ready_learnt_line_is_the_default_and_the_file_can_be_asked_for() -> None:
    nominal = load_config()
    twin, learner = feed_learner(hidden_line(nominal), 26.0, seed=4)
    app = create_app(twin_state=twin, config=nominal, learner=learner, api_token=TOKEN)
    with TestClient(app) as client:
        model = client.get("/model").json()
        assert model["ready"] is True
        learnt_hash = LineConfig.model_validate(model["line"]).config_hash()
        default = _run(client, BODY)
        filed = _run(client, {**BODY, "model": "nominal"})
        chosen = _summary(client, default["job"]["id"])
        asked = _summary(client, filed["job"]["id"])
    assert (chosen["model"], chosen["model_reason"]) == ("learned", "the learnt line is ready")
    assert (asked["model"], asked["model_reason"]) == ("nominal", "asked for")
    assert default["result"]["config_hash"] == learnt_hash
    assert filed["result"]["config_hash"] == nominal.config_hash()
    # Same fork, same seeds: the slower learnt line forecasts fewer good parts.
    good = {
        name: view["result"]["kpis"]["good_parts"]["baseline"]["mean"]
        for name, view in (("learned", default), ("nominal", filed))
    }
    assert good["learned"] < good["nominal"], good


def test_before_it_is_ready_the_file_runs_unless_the_learnt_line_is_asked_for() -> None:
    nominal = load_config()
    twin, learner = feed_learner(nominal, 0.05, seed=4)  # three minutes: a few parts
    app = create_app(twin_state=twin, config=nominal, learner=learner, api_token=TOKEN)
    with TestClient(app) as client:
        assert client.get("/model").json()["ready"] is False
        default = _run(client, {**BODY, "horizon_h": 1, "replications": 2})
        asked = _run(client, {**BODY, "horizon_h": 1, "replications": 2, "model": "learned"})
        chosen = _summary(client, default["job"]["id"])
        forced = _summary(client, asked["job"]["id"])
        bad = client.post("/scenarios", json={**BODY, "model": "best"}, headers=AUTH)
    assert chosen["model"] == "nominal"
    assert "not ready" in chosen["model_reason"]
    assert forced["model"] == "learned"
    assert "not ready yet" in forced["model_reason"]
    assert bad.status_code == 422
    assert "model" in bad.text


@pytest.mark.slow
def test_the_optimizer_runs_the_learnt_line_once_it_is_ready() -> None:
    nominal = load_config()
    twin, learner = feed_learner(hidden_line(nominal), 26.0, seed=4)
    app = create_app(twin_state=twin, config=nominal, learner=learner, api_token=TOKEN)
    body = {
        "budget": 2,
        "hours": 2,
        "replications": 1,
        "confirm_replications": 2,
        "confirm_doublings": 0,
        "vars": ["machining.speed"],
    }
    with TestClient(app) as client:
        learnt_hash = LineConfig.model_validate(client.get("/model").json()["line"]).config_hash()
        runs = {}
        for model in (None, "nominal"):
            started = client.post(
                "/optimize", json={**body, **({"model": model} if model else {})}, headers=AUTH
            )
            assert started.status_code == 202, started.text
            job = app.state.jobs.get(started.json()["id"])
            deadline = time.monotonic() + 300
            while job.status not in {"succeeded", "failed", "cancelled"}:
                assert time.monotonic() < deadline, "the optimizer did not finish"
                time.sleep(0.5)
            assert job.status == "succeeded", job.error
            recommendation = client.get("/optimize/recommendation").json()
            ran = Path(job.argv[job.argv.index("--config") + 1])
            runs[model] = (recommendation, LineConfig.model_validate_json(ran.read_text()))
    chosen, chosen_file = runs[None]
    asked, asked_file = runs["nominal"]
    assert (chosen["model"], chosen["model_reason"]) == ("learned", "the learnt line is ready")
    assert chosen_file.config_hash() == learnt_hash
    assert (asked["model"], asked["model_reason"]) == ("nominal", "asked for")
    assert asked_file.config_hash() == nominal.config_hash()
