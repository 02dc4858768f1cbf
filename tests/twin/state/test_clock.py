"""The line's clock (``twin.state.clock``) against the plant's own calendar, on every template.

The plant runs its calendar as a SimPy process (``Plant._calendar``): it closes
and opens the line at the planned stops. The clock computes the same from the
calendar alone, as the twin does from the birth message. The two must agree on
when the line stands still and why, on the planned production time of any
window, and on the shift; time of day is checked against ``datetime`` arithmetic.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from feeding import feed_twin

from twin.config.line import LineConfig, load_config, parse_config
from twin.sim.plant import Plant
from twin.state.clock import (
    AROUND_THE_CLOCK,
    clock_view,
    describe_calendar,
    planned_production_s,
    planned_stop_at,
    shift_at,
)

# Shifts as the economics count them ("this shift"): the dashboard shows both.
from twin.state.shifts import MIN_SHIFT_GAP_H

REPO = Path(__file__).resolve().parents[3]
TEMPLATES = [None, *sorted(str(path) for path in (REPO / "examples" / "lines").glob("*.yaml"))]
HOUR = 3600.0
MIDNIGHT = datetime(2024, 1, 1)


def _config(path: str | None) -> LineConfig:
    config = load_config(path)
    assert config.calendar is not None, f"{path}: every shipped template has a calendar"
    return config


def _calendar_only(config: LineConfig) -> LineConfig:
    """The template's calendar on a one-station line: the same calendar process, and
    few events besides (the bottling line makes a bottle a second)."""
    assert config.calendar is not None
    return parse_config(
        {
            "line": config.line.model_dump(),
            "calendar": config.calendar.model_dump(),
            "stations": [
                {"id": "slow", "processing_time": {"distribution": "deterministic", "mean_s": 900}}
            ],
        }
    )


def _closed_spans(config: LineConfig, periods: float) -> list[tuple[float, float, str]]:
    """When the plant's calendar process closed and opened the line: (start, end, reason)."""
    plant = Plant(_calendar_only(config), seed=1)
    changes: list[tuple[float, bool, str]] = []
    set_calendar = plant._set_calendar

    def recording(closed: bool, reason: str) -> None:
        changes.append((plant.now, closed, reason))
        set_calendar(closed, reason)

    plant._set_calendar = recording  # type: ignore[method-assign]
    assert config.calendar is not None
    plant.run(until=periods * config.calendar.period_h * HOUR)
    spans: list[tuple[float, float, str]] = []
    opened_at: tuple[float, str] | None = None
    for time, closed, reason in changes:
        if closed and opened_at is None:
            opened_at = (time, reason)
        elif not closed and opened_at is not None:
            spans.append((opened_at[0], time, opened_at[1]))
            opened_at = None
    return spans


def _wall(config: LineConfig, sim_time_s: float) -> datetime:
    """The clock at ``sim_time_s``: day 1 begins at midnight before the line starts."""
    assert config.calendar is not None
    start = config.calendar.clock_at_start_h
    if start is None:
        start = config.calendar.start_at_h % 24
    return MIDNIGHT + timedelta(hours=start, seconds=sim_time_s)


@pytest.mark.parametrize("path", TEMPLATES)
def test_planned_stops_are_where_the_plant_stops(path: str | None) -> None:
    config = _config(path)
    calendar = describe_calendar(config.calendar)  # type: ignore[arg-type]
    spans = _closed_spans(config, periods=3)
    assert spans, "the plant never stopped for its calendar"
    for start, end, reason in spans:
        for probe in (start + 1.0, (start + end) / 2, end - 1.0):
            stop = planned_stop_at(calendar, probe)
            assert stop is not None, (path, probe)
            assert reason in stop.reason.split(" / ")
            assert stop.end_s == pytest.approx(end)
        assert planned_stop_at(calendar, end + 1.0) is None or any(
            other_start <= end + 1.0 < other_end for other_start, other_end, _ in spans
        )
    # Open time is open: midway between two stops, and never a stop the plant skipped.
    for (_, end, _), (start, _, _) in zip(spans, spans[1:], strict=False):
        assert planned_stop_at(calendar, (end + start) / 2) is None


@pytest.mark.parametrize("path", TEMPLATES)
@pytest.mark.parametrize("window_h", [(0.0, 24.0), (3.9, 4.6), (15.95, 20.1), (16.1, 23.9)])
def test_planned_production_time_is_the_plants(
    path: str | None, window_h: tuple[float, float]
) -> None:
    config = _config(path)
    calendar = describe_calendar(config.calendar)  # type: ignore[arg-type]
    start, end = window_h[0] * HOUR, window_h[1] * HOUR
    plant = Plant(_calendar_only(config), seed=2)
    plant.run(until=start)
    plant.reset_statistics()
    plant.run(until=end)
    expected = (end - start) - plant.planned_downtime_so_far()
    assert planned_production_s(calendar, start, end) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("path", TEMPLATES)
def test_time_of_day_day_and_shift_follow_the_calendar(path: str | None) -> None:
    config = _config(path)
    calendar = describe_calendar(config.calendar)  # type: ignore[arg-type]
    spans = _closed_spans(config, periods=4)
    long_spans = [(s, e) for s, e, _ in spans if (e - s) / HOUR >= MIN_SHIFT_GAP_H]
    probes = [minutes * 60.0 + 17.0 for minutes in range(0, 3 * 24 * 60, 37)]
    for probe in probes:
        view = clock_view(calendar, probe)
        wall = _wall(config, probe)
        assert view.time_of_day == wall.strftime("%H:%M")
        assert view.day == (wall.date() - MIDNIGHT.date()).days + 1
        stop = planned_stop_at(calendar, probe)
        assert view.planned_stop == (stop.reason if stop else None)
        if not long_spans:
            assert view.shift == AROUND_THE_CLOCK
            continue
        before = [e for s, e in long_spans if e <= probe]
        after = [s for s, e in long_spans if s > probe]
        if any(s <= probe < e for s, e in long_spans):
            assert view.shift is None, (path, probe)
        elif before and after:
            began, ends = _wall(config, before[-1]), _wall(config, after[0])
            assert view.shift == f"{began:%H:%M}–{ends:%H:%M}", (path, probe)
        else:
            assert view.shift == shift_at(calendar, probe)  # before the first recorded stop


def test_a_period_that_starts_at_six_tells_the_time_from_six() -> None:
    # The bottling line's 12 h period starts at 06:00 and 18:00 on the clock.
    config = load_config(REPO / "examples" / "lines" / "bottling.yaml")
    calendar = describe_calendar(config.calendar)  # type: ignore[arg-type]
    assert clock_view(calendar, 0.0).time_of_day == "06:00"
    # Its cleaning at hour 11 of the period is 17:00 on the clock, twice a day.
    for sim_h in (11.5, 23.5):
        view = clock_view(calendar, sim_h * HOUR)
        assert view.planned_stop == "CIP cleaning"
        assert view.time_of_day == _wall(config, sim_h * HOUR).strftime("%H:%M")


def test_a_twin_without_a_calendar_shows_elapsed_time_and_says_so() -> None:
    config = load_config().model_copy(update={"calendar": None})
    view = feed_twin(0.5, seed=3, config=config).twin.view()
    assert view.calendar is None
    assert view.clock is not None
    assert view.clock.calendar is False
    assert view.clock.elapsed_s == view.sim_time_s
    assert view.clock.time_of_day is None
    assert view.clock.shift is None
    assert "no calendar" in view.clock.note


@pytest.mark.parametrize(("path", "hours"), [(None, 4.25), ("cnc_cell.yaml", 17.0)])
def test_the_twin_labels_planned_downtime_as_the_stop_it_is(path: str | None, hours: float) -> None:
    # 10:15 on the default line is its morning break; 23:00 on the CNC cell is no night shift.
    config = load_config(REPO / "examples" / "lines" / path if path else None)
    fed = feed_twin(hours, seed=4, config=config)
    view = fed.twin.view()
    assert view.calendar == describe_calendar(config.calendar)  # type: ignore[arg-type]
    assert view.clock is not None
    assert view.sim_time_s is not None
    assert view.clock.time_of_day == _wall(config, view.sim_time_s).strftime("%H:%M")
    assert fed.plant.calendar_closed
    assert view.clock.planned_stop == fed.plant.calendar_reason
    resting = [s for s in view.stations if s.state == "planned_downtime"]
    assert resting, "no station rests in the planned stop"
    for station in resting:
        assert station.planned_stop == fed.plant.calendar_reason
        assert station.state_reason == fed.plant.calendar_reason
    for station in view.stations:
        if station.state != "planned_downtime":
            assert station.planned_stop is None
