"""The twin state: typed messages in, a consistent view out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from twin.contract import (
    SCHEMA_VERSION,
    LineDescription,
    LineStatus,
    PartFinished,
    PartStarted,
    StateChanged,
    StationDescription,
    StationState,
    Telemetry,
)
from twin.state.line import TwinState
from twin.state.views import LiveScoringView

_seq = iter(range(1_000_000))


def header(sim_time: float) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "ts_ms": 1,
        "seq": next(_seq),
        "source": "test",
        "sim_time_s": sim_time,
    }


def described_twin() -> TwinState:
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
                name="Test line",
                stations=[
                    StationDescription(
                        id="a",
                        name="A",
                        position=0,
                        ideal_cycle_time_s=10,
                        input_buffer_capacity=None,
                    ),
                    StationDescription(
                        id="b", name="B", position=1, ideal_cycle_time_s=20, input_buffer_capacity=3
                    ),
                ],
            ),
        )
    )
    return twin


def changed(sim_time: float, to: str, previous: str | None = None) -> StateChanged:
    return StateChanged(
        **header(sim_time), event="state_changed", from_state=previous, to_state=to, reason="r"
    )


def finished(
    sim_time: float, part: int, result: str, exits: bool, level: int | None
) -> PartFinished:
    return PartFinished(
        **header(sim_time),
        event="part_finished",
        part_id=part,
        result=result,
        processing_time_s=10.0,
        exits_line=exits,
        output_buffer_level=level,
    )


def test_description_status_and_order() -> None:
    twin = described_twin()
    view = twin.view()
    assert view.status == "online"
    assert view.name == "Test line"
    assert [s.id for s in view.stations] == ["a", "b"]
    assert twin.station_ids() == [s.id for s in view.stations]
    assert view.stations[0].input_buffer is None
    assert view.stations[1].input_buffer is not None
    assert view.stations[1].input_buffer.capacity == 3


def test_counters_buffers_and_time_model() -> None:
    twin = described_twin()
    twin.apply_event("a", changed(0.0, "running"))
    twin.apply_event("b", changed(0.0, "starved"))
    twin.apply_event(
        "a", PartStarted(**header(0.0), event="part_started", part_id=0, input_buffer_level=None)
    )
    twin.apply_event("a", finished(10.0, 0, "good", False, 1))
    twin.apply_event(
        "b", PartStarted(**header(10.0), event="part_started", part_id=0, input_buffer_level=0)
    )
    twin.apply_event("b", changed(10.0, "running", "starved"))
    twin.apply_event(
        "a", PartStarted(**header(10.0), event="part_started", part_id=1, input_buffer_level=None)
    )
    twin.apply_event("a", finished(20.0, 1, "scrap", False, None))
    twin.apply_event("b", finished(30.0, 0, "good", True, None))
    twin.apply_telemetry("b", Telemetry(**header(30.0), temperature_c=40.5, vibration_mm_s=1.5))

    view = twin.view()
    assert view.sim_time_s == 30.0
    assert (view.kpis.produced, view.kpis.good, view.kpis.scrap) == (2, 1, 1)
    assert view.kpis.work_in_process == 0
    a, b = view.stations
    assert (a.started, a.good, a.scrap) == (2, 1, 1)
    assert (b.started, b.good, b.scrap) == (1, 1, 0)
    assert b.input_buffer is not None
    assert b.input_buffer.level == 0
    assert b.telemetry is not None
    assert b.telemetry.temperature_c == 40.5
    assert b.kpis.starved_time_s == pytest.approx(10)
    assert b.kpis.actual_production_time_s == pytest.approx(20)
    # b has the least capacity by design; a, never starved or blocked, has the
    # longest active period (30 s against b's 20 s), so the active-period method names it.
    assert view.kpis.constraint == "b"
    assert view.kpis.bottleneck == "a"
    # The line's availability and effectiveness are b's own: 20 s running of 30 s,
    # and its one part at PRU 20 s in 20 s. The part a scrapped never took b's time,
    # so it lowers the line's quality ratio (1 shipped of 2 finished) instead.
    assert view.kpis.availability == pytest.approx(20 / 30)
    assert view.kpis.effectiveness == pytest.approx(20 * 1 / 20)
    assert view.kpis.quality_ratio == pytest.approx(1 / 2)
    assert view.kpis.oee == pytest.approx(20 / 30 * 1 * 1 / 2)


def test_late_state_report_does_not_rewind() -> None:
    twin = described_twin()
    twin.apply_event("a", changed(100.0, "down"))
    twin.apply_station_state(
        "a",
        StationState(**header(50.0), state="running", reason="old", since_sim_time_s=50.0),
    )
    twin.apply_event("a", changed(40.0, "blocked"))
    station = twin.view().stations[0]
    assert station.state == "down"
    assert station.state_since_s == 100.0


def test_retained_state_seeds_a_station_seen_mid_run() -> None:
    twin = described_twin()
    twin.apply_station_state(
        "b", StationState(**header(500.0), state="blocked", reason="full", since_sim_time_s=480.0)
    )
    station = twin.view().stations[1]
    assert station.state == "blocked"
    assert station.kpis.blocked_time_s == pytest.approx(20)


def test_last_will_marks_offline_and_keeps_description() -> None:
    twin = described_twin()
    twin.apply_line_status(
        LineStatus(
            schema_version=SCHEMA_VERSION,
            ts_ms=2,
            seq=0,
            source="test",
            status="offline",
            sim_time_s=None,
        )
    )
    view = twin.view()
    assert view.status == "offline"
    assert [s.id for s in view.stations] == ["a", "b"]


def test_the_json_view_is_the_view_and_follows_every_change() -> None:
    twin = described_twin()
    twin.apply_event("a", changed(0.0, "running"))
    first = twin.view_json()
    assert json.loads(first) == twin.view().model_dump(mode="json")
    assert twin.view_json() is first  # no change: the same body
    twin.apply_telemetry("a", Telemetry(**header(5.0), temperature_c=41.0))
    second = twin.view_json()
    assert json.loads(second)["stations"][0]["telemetry"]["temperature_c"] == 41.0
    assert json.loads(second) == twin.view().model_dump(mode="json")
    twin.set_live_scoring(LiveScoringView(status="on"), defect_risk={"a": 0.25})
    third = json.loads(twin.view_json())
    assert third["models"]["status"] == "on"
    assert third["stations"][0]["defect_risk"] == 0.25


def status(**fields: Any) -> LineStatus:
    return LineStatus(
        schema_version=SCHEMA_VERSION, ts_ms=3, seq=1, source="test", sim_time_s=9.0, **fields
    )


def test_the_retained_status_says_whether_the_line_is_paused_and_how_fast() -> None:
    twin = described_twin()
    assert twin.view().paused is None  # a status without the field says nothing
    twin.apply_line_status(status(status="online", paused=True, speed_factor=60.0))
    view = twin.view()
    assert view.paused is True
    assert view.speed_factor == 60.0
    assert [s.id for s in view.stations] == ["a", "b"]  # no description: the old one stays
    announced = twin.announcement()
    assert (announced.status, announced.paused, announced.speed_factor) == ("online", True, 60.0)
    twin.apply_line_status(status(status="online", paused=False, speed_factor=120.0))
    assert (twin.view().paused, twin.view().speed_factor) == (False, 120.0)
    twin.apply_line_status(status(status="online", paused=True, speed_factor=120.0))
    # The last will carries no pause: an offline line is not paused, it is gone.
    twin.apply_line_status(
        LineStatus(
            schema_version=SCHEMA_VERSION,
            ts_ms=4,
            seq=0,
            source="test",
            status="offline",
            sim_time_s=None,
        )
    )
    assert twin.view().paused is None
    assert twin.announcement().status == "offline"


@pytest.mark.parametrize(("template", "seed"), [(None, 4), ("examples/lines/smt.yaml", 11)])
def test_the_kpi_view_has_the_kpis_of_the_whole_view(template: str | None, seed: int) -> None:
    """A KPI snapshot reads ``kpi_view()``: the same figures as ``view()``, line and
    stations, at every moment (here after the line ran a while on two templates)."""
    from feeding import feed_twin
    from helpers import REPO

    from twin.config.line import load_config

    config = load_config(REPO / template) if template else load_config()
    twin = feed_twin(2.0, seed=seed, config=config).twin
    view, kpi_view = twin.view(), twin.kpi_view()
    assert kpi_view.kpis == view.kpis
    assert [(station.id, station.kpis) for station in kpi_view.stations] == [
        (station.id, station.kpis) for station in view.stations
    ]
    assert len(kpi_view.stations) == len(config.stations)
    assert view.kpis.produced > 0
