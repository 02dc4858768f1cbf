"""The dashboard's ``line-pace`` pill in a real headless Chromium.

The twin is fed by hand: a line status that says the speed asked and the speed in
force, and a heartbeat with a station that has not caught up, so that the twin
knows its lag. The pill must show the speed in force and the speed asked (in ×),
the lag in line seconds and in messages, as ``/twin`` gives them, and mark the
line as slowed while the speed in force is under the speed asked; and stop marking
it once the line runs at the speed asked.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from helpers import chromium, serve_in_thread, watched_page

from api.app import create_app
from tests.twin.state.test_state import described_twin, header
from twin.contract import SCHEMA_VERSION, LineStatus, PartStarted
from twin.state.line import TwinState

if TYPE_CHECKING:
    from playwright.sync_api import Browser

WAIT_MS = 60_000
_status_seq = itertools.count(10)


def say_speed(twin: TwinState, in_force: float, asked: float) -> None:
    """The line's status, as its heartbeat: the speeds, and one event published on
    each station, of which station b's never arrives (the lag)."""
    twin.apply_line_status(
        LineStatus(
            schema_version=SCHEMA_VERSION,
            ts_ms=2,
            seq=next(_status_seq),
            source="test",
            status="online",
            sim_time_s=40.0,
            speed_factor=in_force,
            speed_asked=asked,
            published_events={"a": 20, "b": 1},
            published_telemetry={},
        )
    )


@pytest.fixture(scope="module")
def lagging_twin() -> TwinState:
    twin = described_twin()
    say_speed(twin, 250.0, 1000.0)
    for seq in range(20):
        event = header(10.0 + seq) | {"seq": seq}
        twin.apply_event(
            "a", PartStarted(**event, event="part_started", part_id=seq, input_buffer_level=None)
        )
    return twin


@pytest.fixture(scope="module")
def url(lagging_twin: TwinState) -> Iterator[str]:
    with serve_in_thread(create_app(twin_state=lagging_twin)) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.mark.integration
def test_the_pace_pill_shows_both_speeds_and_the_lag_and_marks_a_slowed_line(
    url: str, browser: Browser, lagging_twin: TwinState
) -> None:
    from playwright.sync_api import expect

    view: dict[str, Any] = httpx.get(f"{url}/twin", timeout=30).json()
    in_force, asked = view["speed_factor"], view["speed_asked"]
    lag_s, lag_messages = view["lag_s"], view["lag_messages"]
    assert in_force < asked
    assert (lag_s or 0) > 0
    assert (lag_messages or 0) > 0
    page, problems = watched_page(browser)
    try:
        page.goto(f"{url}/")
        pill = page.get_by_test_id("line-pace")
        expect(pill).to_have_attribute("data-state", "paced", timeout=WAIT_MS)
        expect(pill).to_contain_text(f"speed {in_force:.1f}× of {asked:.0f}× asked")
        expect(pill).to_contain_text(f"{lag_s:.0f} s of line time")
        expect(pill).to_contain_text(f"{lag_messages:,} messages")
        # The mark is seen, not only in an attribute: the pill looks unlike an ok one.
        paced_colour = pill.evaluate("element => getComputedStyle(element).borderColor")

        # The pipeline carries the speed asked again: no mark, one speed.
        say_speed(lagging_twin, asked, asked)
        expect(pill).to_have_attribute("data-state", "ok", timeout=WAIT_MS)
        expect(pill).to_contain_text(re.compile(rf"speed {asked:.1f}×(?! of)"))
        expect(pill).not_to_contain_text("asked")
        ok_colour = pill.evaluate("element => getComputedStyle(element).borderColor")
        assert paced_colour != ok_colour
        # A twin fed by hand has no line file: /economics answers 503, as it should.
        assert [p for p in problems if "/economics" not in p] == []
    finally:
        page.close()
