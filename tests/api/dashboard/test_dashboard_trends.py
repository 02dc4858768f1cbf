"""A station's trends in real headless Chromium: its sensors and OEE over the last
hours, drawn from ``/history`` on the page itself, on a live line with half a day of
imported history behind it."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import chromium, get_free_port, serve_in_thread, wait_until, watched_page

from api.app import create_app
from api.runtime.line import Stack
from api.runtime.options import StackOptions
from twin.config.line import SENSOR_NAMES, load_config

WAIT_MS = 120_000
STATION = "machining"


@pytest.fixture(scope="module")
def live() -> Iterator[str]:
    stack = Stack(
        load_config(),
        StackOptions(speed=20, seed=14, mqtt_port=get_free_port(), backfill_s=12 * 3600.0),
    )
    with serve_in_thread(create_app(stack=stack)) as url:
        yield url


def _get(url: str, path: str) -> Any:
    with urllib.request.urlopen(f"{url}{path}", timeout=30) as answer:  # noqa: S310 - loopback
        return json.load(answer)


def _history(url: str, field: str, measurement: str, start_ms: str, end_ms: str) -> list[float]:
    body = _get(
        url,
        f"/history?measurement={measurement}&field={field}&station={STATION}"
        f"&start={start_ms}&end={end_ms}&every=2m",
    )
    points = sorted(
        (point["t_ms"], point["value"]) for series in body["series"] for point in series["points"]
    )
    return [value for _, value in points]


@pytest.mark.integration
@pytest.mark.slow
def test_a_stations_trends_are_its_history_drawn_on_the_page(live: str) -> None:
    from playwright.sync_api import expect

    config = load_config()
    station = next(spec for spec in config.stations if spec.id == STATION)
    fitted = [name for name in SENSOR_NAMES if getattr(station.sensors, name) is not None]
    absent = [name for name in SENSOR_NAMES if name not in fitted]
    # The half day of imported history is written in the background: the trends
    # are drawn from it once it is all in (a busy machine takes longer to write it).
    assert wait_until(lambda: _get(live, "/healthz")["backfill"]["state"] == "done", timeout=300)
    with chromium() as browser:
        page, problems = watched_page(browser)
        try:
            page.goto(f"{live}/#station={STATION}")
            trends = page.get_by_test_id("detail-trends")
            for name in fitted:
                expect(trends.get_by_test_id(f"trend-{name}")).to_be_visible(timeout=WAIT_MS)
            expect(trends.get_by_test_id("trend-oee")).to_be_visible(timeout=WAIT_MS)
            # Only the sensors the station has.
            for name in absent:
                expect(trends.get_by_test_id(f"trend-{name}")).to_have_count(0)
            start_ms = trends.get_attribute("data-start-ms")
            end_ms = trends.get_attribute("data-end-ms")
            assert start_ms is not None
            assert end_ms is not None
            for name, measurement in [*((n, "telemetry") for n in fitted), ("oee", "kpi")]:
                row = trends.get_by_test_id(f"trend-{name}")
                shown = int(row.get_attribute("data-points") or 0)
                vertices = row.locator("polyline").get_attribute("points") or ""
                assert len(vertices.split()) == shown, name
                # The half day of history is in the window: many points, not one.
                assert shown >= 10, (name, shown)
                values = _history(live, name, measurement, start_ms, end_ms)
                # The same window asked again: what the page drew, and perhaps a
                # later point or two written since.
                assert len(values) >= shown, name
                assert float(row.get_attribute("data-first") or "nan") == pytest.approx(
                    values[0], rel=1e-12
                )
            expect(trends.get_by_test_id("trend-temperature_c")).to_contain_text("°C")
            expect(trends.get_by_test_id("trend-oee")).to_contain_text("%")
        finally:
            page.close()
    assert problems == [], problems
