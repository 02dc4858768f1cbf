"""The line shows offline when its plant stops or dies: real brokers and processes, a browser.

- ``factory-twin up`` stopped with SIGTERM says goodbye: the retained line
  status it leaves on the broker is offline, its own message (not the last will).
- A plant process killed with -9 cannot say anything: the broker publishes its
  MQTT last will, on Debian's mosquitto and on the embedded broker, and the twin
  (``GET /twin``) and the dashboard (headless Chromium) show the line offline
  within the keepalive the plant's client uses.

The plant runs in a process of its own (``tests/plant_process.py``), so that
the twin, the API and the broker outlive it. Each wait ends at the event; the
bounds only catch a hang.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import (
    REPO,
    Recorder,
    chromium,
    get_free_port,
    serve_in_thread,
    wait_until,
    watched_page,
)

from api.app import create_app
from api.runtime.line import Stack
from api.runtime.options import StackOptions
from sensors.topics import LineTopics
from twin.config.line import load_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Generous: a busy 2-core machine starts Python, the plant and the API slowly.
HANG_S = 120.0


def status_topic() -> str:
    line = load_config().line
    return LineTopics(line.site, line.area, line.id).status


def statuses(recorder: Recorder) -> list[dict[str, Any]]:
    return [json.loads(payload) for _topic, payload, _retained in recorder.snapshot()]


def retained_status(url: str) -> dict[str, Any]:
    """The retained line status, as a new subscriber gets it from the broker."""
    fresh = Recorder(url, status_topic())
    try:
        assert wait_until(lambda: bool(fresh.snapshot()), timeout=HANG_S), "no retained status"
        topic, payload, retained = fresh.snapshot()[0]
    finally:
        fresh.close()
    assert retained, "the first status a new subscriber gets is the retained one"
    message: dict[str, Any] = json.loads(payload)
    return message


@pytest.fixture
def plant_process(broker_url: str) -> Iterator[tuple[subprocess.Popen[str], float]]:
    """The plant and its publisher in a process of their own; (process, keepalive s)."""
    # -P: the script's folder (tests/) is not put first on the path, where its
    # folders named like the packages' rooms (tests/twin/sim, ...) would shadow them.
    process = subprocess.Popen(
        [sys.executable, "-P", str(REPO / "tests" / "plant_process.py"), "--mqtt-url", broker_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # blocks until ready, or the process ends
        assert first.startswith("ready keepalive="), first + process.stdout.read()
        yield process, float(first.split("=", 1)[1])
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(HANG_S)


def test_a_killed_plant_is_offline_by_its_last_will_in_the_twin_and_the_dashboard(
    broker_url: str, plant_process: tuple[subprocess.Popen[str], float]
) -> None:
    process, keepalive_s = plant_process
    # A dead client is detected by the broker within 1.5 keepalives (MQTT 3.1.1,
    # 3.1.2.10); a killed process's socket closes at once, sooner still.
    within_s = 1.5 * keepalive_s
    stack = Stack(
        load_config(),
        StackOptions(
            mqtt_url=broker_url,
            run_plant=False,
            persistent_session=False,
            scoring_period_s=0,
            first_training=False,
        ),
    )
    with serve_in_thread(create_app(stack=stack)) as url, chromium() as browser:
        from playwright.sync_api import expect

        def line_status() -> str:
            return str(httpx.get(f"{url}/twin", timeout=10).json()["status"])

        assert wait_until(lambda: line_status() == "online", timeout=HANG_S), line_status()
        page, problems = watched_page(browser)
        page.goto(f"{url}/")
        shown = page.get_by_test_id("line-status")
        expect(shown).to_have_text("line: online", timeout=HANG_S * 1000)

        process.send_signal(signal.SIGKILL)
        process.wait(HANG_S)
        assert wait_until(lambda: line_status() == "offline", timeout=within_s), line_status()
        expect(shown).to_have_text("line: offline", timeout=within_s * 1000)
        assert httpx.get(f"{url}/healthz", timeout=10).json()["line_status"] == "offline"
        assert problems == []

    # What the broker keeps is the will: the plant never got to say goodbye.
    will = retained_status(broker_url)
    assert will["status"] == "offline"
    assert will["sim_time_s"] is None
    assert will["seq"] == 0


def test_up_stopped_with_sigterm_says_goodbye(mosquitto: Any, tmp_path: Path) -> None:
    """An external broker outlives ``up``: what it keeps is up's own goodbye
    (it carries the plant's clock; the last will carries none)."""
    env = {**os.environ, "FACTORY_TWIN_API_PORT": str(get_free_port())}
    watcher = Recorder(mosquitto.url, status_topic())
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.cli",
            "up",
            "--mqtt-url",
            mosquitto.url,
            "--no-backfill",
            "--speed",
            "60",
            "--history-path",
            str(tmp_path / "history.sqlite3"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    try:
        came_online = wait_until(
            lambda: (
                process.poll() is not None
                or any(s["status"] == "online" for s in statuses(watcher))
            ),
            timeout=HANG_S,
        )
        assert process.poll() is None, process.communicate()[0]
        assert came_online, "up never announced the line online"
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=HANG_S)[0]
    finally:
        watcher.close()
        if process.poll() is None:
            process.kill()
            process.wait(HANG_S)
    assert process.returncode == 0, output
    assert "Traceback" not in output
    goodbye = retained_status(mosquitto.url)
    assert goodbye["status"] == "offline", goodbye
    assert goodbye["sim_time_s"] is not None, "the last will, not up's goodbye"
    assert goodbye["seq"] > 0
