"""First start with an empty registry: the twin trains its own first models.

``factory-twin up --demo`` runs as a user runs it (``make run``): a child
process with its own state directory and an empty model registry, a short
backfill (half a simulated day), the embedded broker and the API on free
ports. Without any command the twin trains its first models in the background
while the line runs: ``/twin`` and the dashboard (a real headless Chromium)
say "training models", then show the live defect risk. Generous timeouts, each
wait ending on the event. Beside it: how much history the first training reads,
and what the twin is told when it ends.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, chromium, get_free_port, wait_for_port, wait_until, watched_page

from api.children import stop_process
from api.first_training import MAX_HISTORY_PARTS, history_days, summarize
from models.dataset.parts import from_simulation
from twin.config.line import load_config

DAY_MS = 86_400_000
WAIT_MS = 600_000  # training shares two busy cores with the line, at a lower priority


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


@pytest.fixture
def first_start(tmp_path: Path) -> Iterator[str]:
    """``factory-twin up --demo`` on an empty registry; its API's base URL."""
    api_port, mqtt_port = get_free_port(), get_free_port()
    env = {
        **os.environ,
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "FACTORY_TWIN_MODELS_PATH": str(tmp_path / "models"),
        "FACTORY_TWIN_BACKFILL_DAYS": "0.5",
        "FACTORY_TWIN_API_PORT": str(api_port),
        "FACTORY_TWIN_MQTT_PORT": str(mqtt_port),
    }
    log = (tmp_path / "up.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "up", "--demo"],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(api_port, timeout=300)
        yield f"http://127.0.0.1:{api_port}"
    finally:
        stop_process(process, signal.SIGINT, grace_s=60)
        log.close()
    output = (tmp_path / "up.log").read_text("utf-8", "replace")
    assert "Traceback" not in output, output[-4000:]


@pytest.mark.integration
@pytest.mark.slow
# The waits below add up past the suite's 300 s hang bound when both cores are busy:
# the bound here only catches a hang.
@pytest.mark.timeout(1500)
def test_first_start_trains_in_the_background_and_shows_live_defect_risk(
    first_start: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    url = first_start
    # The API answers as soon as it is up, before the backfill (which begins then)
    # has written the history the first training needs: the twin says "training"
    # once that history is on disk, while the line runs on (it does not wait).
    assert wait_until(lambda: _get(f"{url}/twin")["models"]["status"] == "training", 120)
    twin = _get(f"{url}/twin")
    assert twin["models"]["status"] == "training", twin["models"]
    assert twin["models"]["reason"].startswith("training models")
    started_s = twin["sim_time_s"] or 0.0
    assert wait_until(lambda: (_get(f"{url}/twin")["sim_time_s"] or 0.0) > started_s, 120)

    with chromium() as browser:
        page, problems = watched_page(browser)
        page.goto(f"{url}/")
        risk = page.get_by_test_id("kpi-defect-risk")
        expect(risk).to_have_text("training models…", timeout=60_000)
        expect(page.get_by_test_id("station-machining")).to_contain_text(
            "training…", timeout=60_000
        )
        # Then, with no command given, the live defect risk (a percentage).
        expect(risk).to_have_text(re.compile(r"^\d{1,3}\.\d %$"), timeout=WAIT_MS)
        assert problems == []

    models = _get(f"{url}/twin")["models"]
    assert models["status"] == "on"
    assert models["defect_model"]["name"] == "defect"
    assert models["defect_model"]["version"] == 1
    assert 0.0 <= models["defect_risk"] <= 1.0
    assert models["parts_scored"] > 0
    listed = {model["name"]: model for model in _get(f"{url}/models")}
    defect = listed["defect"]["versions"][0]
    assert defect["active"] is True
    assert defect["gate_passed"] is True
    card = _get(f"{url}/models/defect")
    assert card["data"]["source"] == "history+simulation"
    assert card["gate"]["passed"] is True
    # It learnt from the backfilled half day, up to where the live line began.
    history = card["data"]["description"]
    assert abs(history["end_ms"] - history["start_ms"] - 0.5 * DAY_MS) < 5 * 60_000
    reports = list((tmp_path / "state" / "factory-twin" / "reports").glob("first-training-*"))
    assert len(reports) == 1
    assert (reports[0] / "report" / "report.md").is_file()


@pytest.mark.parametrize("template", ["examples/lines/bottling.yaml", "examples/lines/smt.yaml"])
def test_the_first_training_reads_a_bounded_number_of_parts(template: str) -> None:
    """A week of a bottling line is 800,000 parts: the first training reads the
    latest hours of it, a few tens of thousands of parts; a slower line, all of it."""
    config = load_config(REPO / template)
    days = history_days(config, 7 * 86_400)
    parts = len(from_simulation(config, min(days, 1.0) * 24, seed=3))
    if days < 7:
        assert MAX_HISTORY_PARTS / 4 < parts <= MAX_HISTORY_PARTS
    else:
        assert parts * 7 <= MAX_HISTORY_PARTS  # a week of it is within the bound


def test_the_twin_is_told_what_the_first_training_came_to() -> None:
    gate = {"passed": False, "reason": "below the floor: ROC-AUC 0.51, needs >= 0.6"}
    refused = {
        "registered": [
            {"name": "defect", "version": 1, "active": False, "gate": gate},
            {"name": "defect-station", "version": 1, "active": True, "gate": {"passed": True}},
        ]
    }
    outcome = summarize(0, refused, [])
    assert not outcome.defect_live
    assert outcome.live == ("defect-station v1",)
    assert "defect v1 below the floor: ROC-AUC 0.51" in outcome.message
    assert "--force" in outcome.message

    crashed = summarize(2, None, ["factory-twin: error: the history store holds no parts yet"])
    assert not crashed.ok
    assert "the history store holds no parts yet" in crashed.message

    passed = summarize(0, {"registered": [{**refused["registered"][0], "active": True}]}, [])
    assert passed.defect_live
    assert passed.message == "first models live: defect v1"
