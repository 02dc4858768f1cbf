"""A model trained while the twin runs scores without a restart.

A live stack (embedded broker, plant at 600x, ingest, API) starts with an empty
registry: scoring is off and says why. ``factory-twin train`` (the command, in
this process) registers and activates version 1, and the running twin scores
with it; ``POST /training`` (a background job, a child process) then activates
version 2, and the twin switches to it. Waits end on the event, with generous
timeouts for a busy machine.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import get_free_port, wait_until

from api.app import create_app
from api.cli.main import main
from api.runtime.line import Stack
from api.runtime.options import StackOptions
from models.registry.store import ModelRegistry
from twin.config.line import load_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "hot-swap-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Two simulated days with explored setpoints: enough for a model that passes the gate.
TRAINING = ["--hours", "48"]


def _in_use(client: TestClient) -> dict[str, Any]:
    models: dict[str, Any] = client.get("/twin").json()["models"]
    return models


def _version_in_use(client: TestClient) -> int | None:
    model = _in_use(client)["defect_model"]
    return None if model is None else int(model["version"])


def _finished_job(client: TestClient, job_id: str, timeout: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if job["status"] in {"succeeded", "failed", "cancelled"}:
            return job
        time.sleep(0.2)  # polling the job's state, not waiting for time to pass
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def test_models_trained_by_the_command_and_the_api_are_live_without_a_restart(
    tmp_path: Path,
) -> None:
    models = tmp_path / "models"
    stack = Stack(
        load_config(),
        StackOptions(
            speed=600,
            seed=9,
            mqtt_port=get_free_port(),
            models_path=str(models),
            scoring_period_s=0.5,
        ),
    )
    app = create_app(stack=stack, api_token=TOKEN, models_path=str(models))
    with TestClient(app) as client:
        first = _in_use(client)
        assert first["status"] == "off"
        assert str(models) in first["reason"]

        # 1. The command line, while the twin runs.
        report = str(tmp_path / "report")
        argv = ["train", *TRAINING, "--seed", "3", "--models-path", str(models)]
        assert main([*argv, "--report-dir", report]) == 0
        assert ModelRegistry(models).active_version("defect") == 1
        assert wait_until(lambda: _version_in_use(client) == 1, timeout=120), _in_use(client)
        assert _in_use(client)["status"] == "on"
        loop = stack.scoring
        assert loop is not None
        # It scores: the parts that left since the twin started reach it.
        assert wait_until(lambda: _in_use(client)["parts_scored"] > 0, timeout=120)
        scorer = loop.scorer
        assert scorer is not None

        # 2. The API's background job.
        started = client.post("/training", json={"hours": 48, "seed": 4}, headers=AUTH)
        assert started.status_code == 202, started.text
        job = _finished_job(client, started.json()["id"])
        assert job["status"] == "succeeded", job
        result = client.get(job["result_url"]).json()["result"]
        defect = next(item for item in result["registered"] if item["name"] == "defect")
        assert defect["version"] == 2
        assert defect["active"] is True
        assert defect["gate"]["passed"] is True
        assert wait_until(lambda: _version_in_use(client) == 2, timeout=120), _in_use(client)
        # A new scorer took over after the parts the old one scored: none twice.
        assert loop.scorer is not scorer
        assert loop.scorer is not None
        assert loop.scorer.start_ms >= scorer.scored_until_ms
        assert _in_use(client)["errors"] == 0
