"""The dashboard never hides a ratio above 100 %: shown as measured, marked, and why.

A real headless Chromium (Debian's ``chromium`` through Playwright) opens the
dashboard of a twin built from contract messages in which one station made a
part in less running time than its published planned runtime per unit (PRU):
a line whose published PRU is slower than it really runs. Its effectiveness
and OEE are above 1; the page shows them as they are, marks them and says why
in a tooltip, and leaves the ratios at or below 1 unmarked. The lead time and
the mean WIP (Little's law on the twin's counts) are figures, not "–".
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import chromium, serve_in_thread, watched_page

from api.app import create_app
from twin.config.line import LineConfig, parse_config
from twin.contract import (
    SCHEMA_VERSION,
    LineDescription,
    LineStatus,
    PartFinished,
    PartStarted,
    StateChanged,
    StationDescription,
)
from twin.state.line import TwinState

WAIT_MS = 60_000
PRU_S = 20.0
_seq = iter(range(1_000_000))


def _header(sim_time: float) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "ts_ms": 1,
        "seq": next(_seq),
        "source": "test",
        "sim_time_s": sim_time,
    }


def line_config() -> LineConfig:
    """The line file of the twin below (the API prices its losses with it)."""
    return parse_config(
        {
            "line": {"id": "line", "name": "Fast line", "site": "site", "area": "area"},
            "stations": [
                {
                    "id": "press",
                    "name": "Press",
                    "processing_time": {"distribution": "deterministic", "mean_s": PRU_S},
                }
            ],
        }
    )


def fast_twin() -> TwinState:
    """One station, PRU 20 s, that ships a part after 10 s and runs 5 s more on the next."""
    twin = TwinState("site", "area", "line")
    twin.apply_line_status(
        LineStatus(
            schema_version=SCHEMA_VERSION,
            ts_ms=1,
            seq=0,
            source="test",
            status="online",
            sim_time_s=0.0,
            description=LineDescription(
                name="Fast line",
                stations=[
                    StationDescription(
                        id="press",
                        name="Press",
                        position=0,
                        ideal_cycle_time_s=PRU_S,
                        input_buffer_capacity=None,
                    )
                ],
            ),
        )
    )
    twin.apply_event(
        "press",
        StateChanged(
            **_header(0.0), event="state_changed", from_state=None, to_state="running", reason="r"
        ),
    )
    for part, start in ((0, 0.0), (1, 10.0)):
        twin.apply_event(
            "press",
            PartStarted(
                **_header(start), event="part_started", part_id=part, input_buffer_level=None
            ),
        )
        if part == 0:
            twin.apply_event(
                "press",
                PartFinished(
                    **_header(10.0),
                    event="part_finished",
                    part_id=0,
                    result="good",
                    processing_time_s=10.0,
                    exits_line=True,
                    output_buffer_level=None,
                ),
            )
    twin.apply_event(
        "press",
        StateChanged(
            **_header(15.0),
            event="state_changed",
            from_state="running",
            to_state="running",
            reason="still",
        ),
    )
    return twin


@pytest.mark.integration
def test_ratios_above_one_are_shown_marked_and_explained() -> None:
    from playwright.sync_api import expect

    twin = fast_twin()
    kpis = twin.view().kpis
    # What the page must show, from the twin itself: 15 s running, one part of PRU 20 s.
    assert kpis.effectiveness == pytest.approx(PRU_S / 15.0)
    assert kpis.availability == pytest.approx(1.0)
    assert kpis.cycle_time_s == pytest.approx(15.0)  # WIP 1 for 15 s over 1 part out
    assert kpis.mean_wip == pytest.approx(1.0)

    config = line_config()
    assert config.stations[0].planned_runtime_per_unit_s() == PRU_S
    app = create_app(twin_state=twin, config=config)
    with chromium() as browser, serve_in_thread(app) as url:
        page, problems = watched_page(browser)
        page.goto(f"{url}/")
        effectiveness = page.get_by_test_id("kpi-effectiveness")
        expect(effectiveness).to_have_text(f"{100 * PRU_S / 15.0:.1f} % ▲", timeout=WAIT_MS)
        expect(effectiveness).to_have_class("value above-one")
        expect(effectiveness).to_have_attribute("title", _contains("Above 100 %"))
        expect(effectiveness).to_have_attribute("title", _contains("planned runtime per unit"))
        oee = page.get_by_test_id("kpi-oee")
        expect(oee).to_have_text(f"{100 * PRU_S / 15.0:.1f} % ▲")
        expect(page.get_by_test_id("oee-press")).to_have_text(f"{100 * PRU_S / 15.0:.1f} % ▲")
        # At or below 1: as it is, no mark, no tooltip.
        availability = page.get_by_test_id("kpi-availability")
        expect(availability).to_have_text("100.0 %")
        assert availability.get_attribute("title") is None
        assert "above-one" not in (availability.get_attribute("class") or "")
        # Lead time and mean WIP are figures.
        expect(page.get_by_test_id("kpi-cycle")).to_have_text("15 s")
        expect(page.get_by_test_id("kpi-mean-wip")).to_have_text("1.0 parts")
        page.close()
        assert problems == []


def _contains(text: str) -> Any:
    import re

    return re.compile(re.escape(text))
