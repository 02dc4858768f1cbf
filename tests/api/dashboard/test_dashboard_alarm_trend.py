"""A sensor alarm's trend in real headless Chromium: on a live line whose sensor watch
has learnt its first hours, a temperature offset is injected; the operator opens the
alarm's trend from the list and sees the readings leave the band the watch expected,
as GET /alarms/{id}/trend has them, and the trend follow the alarm until it clears."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import chromium, get_free_port, serve_in_thread, wait_until, watched_page

from api.app import create_app
from api.runtime.line import Stack
from api.runtime.options import StackOptions
from twin.config.line import SensorFault, load_config, with_faults

TOKEN = "dashboard-trend-token-0123456789"
ALARM = "sensor:painting:temperature_c"
WAIT_MS = 300_000
# The watch learns 2 line hours; painting's temperature reads 6 degC high from hour
# 2.5 for 0.4 h. At 300x a line hour is 12 s; the waits allow a busy machine (the
# line paces itself down) far more.
LEARN_H = 2.0


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    fault = SensorFault(
        station="painting",
        sensor="temperature_c",
        mode="offset",
        start_h=2.5,
        duration_h=0.4,
        magnitude=6.0,
    )
    history: Path = tmp_path_factory.mktemp("trend") / "history.sqlite3"
    stack = Stack(
        with_faults(load_config(), [fault]),
        StackOptions(
            speed=300,
            seed=31,
            mqtt_port=get_free_port(),
            history_path=str(history),
            sensor_watch_hours=LEARN_H,
            scoring_period_s=0,
        ),
    )
    with serve_in_thread(create_app(stack=stack, api_token=TOKEN)) as url:
        yield url


def _get(url: str, path: str) -> Any:
    with urllib.request.urlopen(f"{url}{path}", timeout=30) as answer:  # noqa: S310 - loopback
        return json.load(answer)


def _listed(url: str) -> bool:
    return any(a["id"] == ALARM for a in _get(url, "/alarms")["alarms"])


@pytest.mark.integration
@pytest.mark.slow
def test_an_operator_sees_a_sensor_leave_the_band_it_was_expected_in(live: str) -> None:
    from playwright.sync_api import expect

    assert wait_until(lambda: _listed(live), timeout=WAIT_MS / 1000)
    with chromium() as browser:
        page, problems = watched_page(browser)
        try:
            page.goto(f"{live}/#token={TOKEN}")
            row = page.locator(f'li.alarm[data-alarm-id="{ALARM}"]')
            expect(row).to_be_visible(timeout=WAIT_MS)
            row.get_by_test_id("alarm-trend-open").click()
            panel = page.get_by_test_id("alarm-trend")
            chart = panel.get_by_test_id("alarm-trend-chart")
            expect(chart).to_be_visible(timeout=WAIT_MS)
            expect(panel).to_contain_text("temperature at painting: offset")
            expect(panel.get_by_test_id("alarm-trend-axis")).to_contain_text("°C")
            expect(panel.get_by_test_id("alarm-trend-band").first).to_be_visible()

            # What the chart draws is what the API has for the same minutes.
            judged = int(chart.get_attribute("data-judged") or 0)
            outside = int(chart.get_attribute("data-outside") or 0)
            last_s = float(chart.get_attribute("data-last-s") or "nan")
            answer = _get(live, f"/alarms/{ALARM}/trend")
            upto = [
                p for p in answer["points"] if p["expected"] is not None and p["at_s"] <= last_s
            ]
            away = [p for p in upto if not p["low"] <= p["reading"] <= p["high"]]
            assert judged == len(upto)
            # The last minute drawn may have been still filling.
            assert abs(outside - len(away)) <= 1
            assert outside >= 1
            assert judged > outside
            caption = panel.get_by_test_id("alarm-trend-caption")
            expect(caption).to_contain_text(f"of {judged} judged minutes read outside")

            # The offset ends: the open trend follows the alarm until it clears.
            expect(caption).to_contain_text("cleared", timeout=WAIT_MS)
            panel.get_by_test_id("alarm-trend-close").click()
            expect(panel).to_be_hidden()
        finally:
            page.close()
    assert problems == [], problems
