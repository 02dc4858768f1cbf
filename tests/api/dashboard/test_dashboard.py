"""The dashboard at ``/``: its files, and a real headless Chromium using it on a live line.

The browser test drives Debian's ``chromium`` through Playwright (never a
downloaded browser) against a real stack: embedded broker, live plant at 60x,
ingest, twin and the API on a free port. It watches the counters move, sends a
setpoint through the form and sees the process follow it, pauses and resumes
the line, and opens a station's view. Any JavaScript error fails it.

The screenshot goes to ``build/screenshots/dashboard.png``; with
``FACTORY_TWIN_UPDATE_SCREENSHOT=1`` it also replaces ``docs/img/dashboard.png``
(the README's picture).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers import (
    REPO,
    chromium,
    get_free_port,
    plant_clock,
    serve_in_thread,
    wait_until,
    watched_page,
)

from api.app import create_app
from api.runtime.line import Stack
from api.runtime.options import StackOptions
from twin.config.line import SENSOR_NAMES, LineConfig, load_config
from twin.experiments.whatif_kpis import KPI_NAMES
from twin.state.line import TwinState

if TYPE_CHECKING:
    from playwright.sync_api import Browser

TEST_TOKEN = "dashboard-test-token-0123456789"
# A noisy 2-core CI machine: generous waits, each ending as soon as the page is right.
WAIT_MS = 60_000
SCREENSHOT = REPO / "build" / "screenshots" / "dashboard.png"
DOCS_SCREENSHOT = REPO / "docs" / "img" / "dashboard.png"
# The SVG namespace is a name in the code, never fetched.
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


# -- the files, without a browser ----------------------------------------------------------
@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(twin_state=TwinState("plant-a", "fabrication", "line1"))) as test:
        yield test


def test_root_serves_the_dashboard_and_its_assets_offline(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assets = {
        "/dashboard/main.js": "text/javascript",
        "/dashboard/style.css": "text/css",
    }
    for path in assets:
        assert path in page.text
    for path, content_type in assets.items():
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(content_type), path
        assert SVG_NAMESPACE not in response.text or path.endswith(".js")
        external = re.findall(r"https?://[^\s\"'`)]+", response.text.replace(SVG_NAMESPACE, ""))
        assert external == [], f"{path} references {external}"
    assert re.findall(r"https?://", page.text) == []
    # Only the listed assets: not the package's Python files.
    assert client.get("/dashboard/__init__.py").status_code == 404
    # The API's own documentation stays where it was.
    assert client.get("/docs").status_code == 200


# -- a real browser on a live line ----------------------------------------------------------
# The station whose sensors drop out a few simulated minutes in: its broken-sensor
# alarm is there for the alarm link to open, every run.
SILENT_STATION = "welding"


def _silenced(config: LineConfig, station_id: str) -> LineConfig:
    """``config`` with every sensor of ``station_id`` in dropout from 0.05 h on (after it
    reported: a station that never did has no telemetry to be stale)."""
    station = next(spec for spec in config.stations if spec.id == station_id)
    fitted = [name for name in SENSOR_NAMES if getattr(station.sensors, name) is not None]
    assert fitted, f"{station_id} has no sensors"
    data = config.model_dump(mode="json")
    data["sensors"]["faults"] = [
        {
            "station": station_id,
            "sensor": name,
            "mode": "dropout",
            "start_h": 0.05,
            "duration_h": 1000,
        }
        for name in fitted
    ]
    return LineConfig.model_validate(data)


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[str, Stack]]:
    config = _silenced(load_config(), SILENT_STATION)
    stack = Stack(config, StackOptions(speed=60, seed=7, mqtt_port=get_free_port()))
    app = create_app(stack=stack, api_token=TEST_TOKEN)
    with serve_in_thread(app) as url:
        yield url, stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def _clock_text(seconds: float) -> str:
    """The dashboard's h:mm:ss of a line time."""
    total = math.floor(seconds)
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


@pytest.mark.integration
@pytest.mark.slow
def test_dashboard_in_chromium_follows_and_commands_the_live_line(
    live: tuple[str, Stack], browser: Browser
) -> None:
    from playwright.sync_api import expect

    live_url, stack = live

    page, problems = watched_page(browser)
    try:
        page.goto(f"{live_url}/")
        expect(page.get_by_test_id("conn-status")).to_have_text("live", timeout=WAIT_MS)
        expect(page.get_by_test_id("line-status")).to_have_text("line: online", timeout=WAIT_MS)

        # 1. Live numbers move: the good-parts counter grows.
        good = page.get_by_test_id("kpi-good")
        expect(good).to_have_text(re.compile(r"^[1-9][\d,]*$"), timeout=WAIT_MS)
        first = good.inner_text()
        expect(good).not_to_have_text(first, timeout=WAIT_MS)

        # 4. A station opens its view: by a click on its box (and, below, by an alarm's link).
        page.get_by_test_id("station-machining").click()
        detail = page.get_by_test_id("station-detail")
        expect(detail).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_test_id("detail-name")).to_contain_text("machining")
        assert page.evaluate("location.hash") == "#station=machining"

        # 2. With the token, a setpoint goes through the form, is acknowledged, and
        # the parts the station makes next report the new speed.
        expect(page.get_by_test_id("process-speed")).to_have_text("1.00 ×", timeout=WAIT_MS)
        page.get_by_test_id("token-input").fill(TEST_TOKEN)
        page.get_by_test_id("token-save").click()
        expect(page.get_by_test_id("token-state")).to_contain_text("token set")
        page.get_by_test_id("setpoint-name").select_option("speed")
        page.get_by_test_id("setpoint-value").fill("1.25")
        page.get_by_test_id("setpoint-send").click()
        ack = page.get_by_test_id("setpoint-ack")
        expect(ack).to_contain_text("accepted", timeout=WAIT_MS)
        expect(ack).to_have_attribute("data-accepted", "true")
        expect(page.get_by_test_id("process-speed")).to_have_text("1.25 ×", timeout=WAIT_MS)
        # ...and the telemetry answers: the spindle turns at the new speed.
        nominal = next(s for s in load_config().stations if s.id == "machining").sensors
        faster = nominal.nominal_rpm * 1.25
        spindle = page.get_by_test_id("sensor-machining-spindle_rpm")

        def spindle_rpm() -> float:
            digits = re.sub(r"[^\d.]", "", spindle.inner_text())
            return float(digits) if digits else 0.0

        deadline = time.monotonic() + WAIT_MS / 1000
        while spindle_rpm() < 0.97 * faster and time.monotonic() < deadline:
            time.sleep(0.25)
        assert spindle_rpm() == pytest.approx(faster, rel=0.03), spindle.inner_text()

        # 3. Pause: the counters and the clock freeze, and the header says "paused",
        # never "live". Resume: they move again, live.
        page.get_by_test_id("pause").click()
        expect(page.get_by_test_id("line-ack")).to_contain_text("pause: accepted", timeout=WAIT_MS)
        expect(page.get_by_test_id("conn-status")).to_have_text("paused", timeout=WAIT_MS)
        expect(page.get_by_test_id("line-status")).to_have_text(
            "line: online, paused", timeout=WAIT_MS
        )
        # The plant's clock stands still (three rounds of its runner), and once the
        # twin has all it published before it stopped, the page shows that clock and
        # that count: what a frozen source ends with, so they stay.
        frozen_at = plant_clock(stack)
        assert [plant_clock(stack) for _ in range(3)] == [frozen_at] * 3

        def twin() -> dict[str, Any]:
            view: dict[str, Any] = httpx.get(f"{live_url}/twin", timeout=10).json()
            return view

        assert wait_until(lambda: twin()["sim_time_s"] == frozen_at, timeout=60), (
            twin()["sim_time_s"],
            frozen_at,
        )
        frozen = twin()
        paused_good = f"{frozen['kpis']['good']:,}"
        paused_clock = _clock_text(frozen_at)
        expect(good).to_have_text(paused_good, timeout=WAIT_MS)
        expect(page.get_by_test_id("sim-time")).to_have_text(paused_clock, timeout=WAIT_MS)
        assert page.get_by_test_id("conn-status").inner_text() == "paused"
        # The time of day the line's calendar gives: 06:00 at its start, plus its clock.
        calendar = load_config().calendar
        assert calendar is not None
        wall = datetime(2024, 1, 1) + timedelta(
            hours=calendar.start_at_h, seconds=frozen["sim_time_s"]
        )
        expect(page.get_by_test_id("clock-time")).to_have_text(
            wall.strftime("%H:%M"), timeout=WAIT_MS
        )
        shift = frozen["clock"]["shift"]
        assert shift, frozen["clock"]  # the morning: inside a shift, not in a planned stop
        expect(page.get_by_test_id("clock-shift")).to_have_text(f"shift {shift}")
        assert plant_clock(stack) == frozen_at
        assert (twin()["sim_time_s"], twin()["kpis"]["good"]) == (frozen_at, frozen["kpis"]["good"])
        assert good.inner_text() == paused_good
        assert page.get_by_test_id("sim-time").inner_text() == paused_clock
        page.get_by_test_id("resume").click()
        expect(page.get_by_test_id("line-ack")).to_contain_text("resume: accepted", timeout=WAIT_MS)
        expect(page.get_by_test_id("conn-status")).to_have_text("live", timeout=WAIT_MS)
        expect(page.get_by_test_id("line-status")).to_have_text("line: online", timeout=WAIT_MS)
        expect(page.get_by_test_id("sim-time")).not_to_have_text(paused_clock, timeout=WAIT_MS)
        expect(good).not_to_have_text(paused_good, timeout=WAIT_MS)

        # 4 again: an alarm's link opens its station (the silenced station's sensors
        # went quiet: a broken-sensor alarm).
        alarm_link = page.get_by_test_id("alarm-link").filter(has_text=SILENT_STATION).first
        expect(alarm_link).to_be_visible(timeout=WAIT_MS)
        alarm_link.click()
        expect(page.get_by_test_id("detail-name")).to_contain_text(SILENT_STATION, timeout=WAIT_MS)
        assert page.evaluate("location.hash") == f"#station={SILENT_STATION}"
        page.get_by_test_id("station-machining").click()
        expect(page.get_by_test_id("detail-name")).to_contain_text("machining", timeout=WAIT_MS)
        expect(page.get_by_test_id("loss-pareto").locator("tr").nth(1)).to_be_visible(
            timeout=WAIT_MS
        )
        # Where the money goes: once parts are made, cost and energy per good part are
        # numbers (GET /economics), not the "–" of a figure not known yet.
        expect(page.get_by_test_id("cost-per-good-part")).to_have_text(
            re.compile(r"^\d+\.\d{2} [A-Z]{3}$"), timeout=WAIT_MS
        )
        expect(page.get_by_test_id("energy-per-good-part")).to_have_text(
            re.compile(r"^\d+\.\d{3} kWh$"), timeout=WAIT_MS
        )
        expect(page.get_by_test_id("money-window")).to_contain_text("Money lost", timeout=WAIT_MS)
        expect(page.get_by_test_id("loss-bottleneck")).to_contain_text(
            "Bottleneck", timeout=WAIT_MS
        )

        # What-if from the live state: the form starts a job, its forecast comes back
        # as a table, and the forecast's check waits for the line to pass its end.
        form = page.get_by_test_id("scenario-form")
        form.locator("[name=horizon_h]").fill("1")
        form.locator("[name=replications]").fill("3")
        form.locator("[name=down_station]").select_option("welding")
        form.locator("[name=down_hours]").fill("0.5")
        form.locator("button[type=submit]").click()
        table = page.get_by_test_id("scenario-table")
        expect(table).to_contain_text("throughput per h", timeout=WAIT_MS)
        expect(table.locator("tr")).to_have_count(len(KPI_NAMES) + 1)  # a header, the KPIs
        expect(table).to_contain_text("good parts per planned hour")  # units stated
        expect(page.get_by_test_id("scenario-check")).to_contain_text(
            "forecast check", timeout=WAIT_MS
        )
        # The finished job shows its outcome as the table, not a log line of the command.
        expect(page.get_by_test_id("scenario-job")).to_contain_text("scenario succeeded")
        expect(page.get_by_test_id("scenario-job")).not_to_contain_text("throughput_per")
        # What-ifs started elsewhere (here: a script on the API) are listed too, and
        # picking one shows its forecast as a table.
        listed = httpx.get(f"{live_url}/scenarios", timeout=10).json()["scenarios"]
        assert len(listed) == 1
        other = httpx.post(
            f"{live_url}/scenarios",
            json={"horizon_h": 0.5, "replications": 2, "seed": 3},
            headers={"Authorization": f"Bearer {TEST_TOKEN}"},
            timeout=30,
        )
        assert other.status_code == 202, other.text
        item = page.locator(f'[data-scenario="{other.json()["id"]}"]')
        expect(item).to_contain_text("succeeded", timeout=WAIT_MS)
        item.click()
        expect(item).to_have_attribute("aria-pressed", "true", timeout=WAIT_MS)
        expect(page.get_by_test_id("scenario-when")).to_contain_text("2 replications")
        expect(table.locator("tr")).to_have_count(len(KPI_NAMES) + 1)
        # Half an hour has too little planned time for an OEE: n/a, and why.
        expect(table.locator('tr[data-kpi="oee"]')).to_contain_text("n/a")
        expect(page.get_by_test_id("scenario-na")).to_contain_text("min of planned production time")

        # 5. The picture, for the build and (on request) for the README.
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")  # the sticky header over the top, not mid-page
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        if os.environ.get("FACTORY_TWIN_UPDATE_SCREENSHOT") == "1":
            DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(SCREENSHOT, DOCS_SCREENSHOT)
    finally:
        page.close()
    assert problems == [], problems
