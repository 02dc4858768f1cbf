"""Shifts from the calendar: they start after the long planned stops."""

from __future__ import annotations

import pytest

from twin.config.line import Calendar, PlannedStop
from twin.state.shifts import MIN_SHIFT_GAP_H, current_shift_start_s, shift_starts_h


@pytest.mark.parametrize(
    ("stop_h", "starts"),
    [(MIN_SHIFT_GAP_H, [(9.0, MIN_SHIFT_GAP_H)]), (MIN_SHIFT_GAP_H - 1 / 60, [(0.0, 0.0)])],
    ids=["a stop of the gap ends a shift", "a minute shorter is a break"],
)
def test_a_shift_ends_at_a_planned_stop_of_at_least_the_gap(
    stop_h: float, starts: list[tuple[float, float]]
) -> None:
    calendar = Calendar(planned_downtime=[PlannedStop(start_h=9.0 - stop_h, duration_h=stop_h)])
    assert shift_starts_h(calendar) == starts


def test_touching_planned_stops_make_one_stop_and_shifts_are_sorted() -> None:
    """A cleaning hour right after a break is one stop of 1.5 h (a shift ends);
    a stop over the end of the period joins the one at its start."""
    calendar = Calendar(
        planned_downtime=[
            PlannedStop(start_h=13.5, duration_h=0.5),
            PlannedStop(start_h=14.0, duration_h=1.0),
            PlannedStop(start_h=22.0, duration_h=2.0),
            PlannedStop(start_h=0.0, duration_h=5.0),
            PlannedStop(start_h=9.0, duration_h=0.25),
        ]
    )
    assert shift_starts_h(calendar) == [(5.0, 7.0), (15.0, 1.5)]
    # Alone at the start of the period, a stop is not joined to anything.
    morning = Calendar(planned_downtime=[PlannedStop(start_h=0.0, duration_h=6.0)])
    assert shift_starts_h(morning) == [(6.0, 6.0)]
    # Over the end of a 12 h period: from 11:00 to 01:00 of the next period.
    wrapped = Calendar(period_h=12.0, planned_downtime=[PlannedStop(start_h=11.0, duration_h=2.0)])
    assert shift_starts_h(wrapped) == [(1.0, 2.0)]


@pytest.mark.parametrize(
    ("now_h", "start_h"),
    [(7.0, 7.0), (8.5, 7.0), (18.999, 7.0), (19.0, 19.0), (23.0, 19.0), (31.0, 31.0), (3.0, -5.0)],
)
def test_the_current_shift_started_at_the_latest_shift_start(now_h: float, start_h: float) -> None:
    """Two shifts a day, from 07:00 and from 19:00, the simulation starting at
    midnight: the shift running at 03:00 began at 19:00 the day before (< 0)."""
    calendar = Calendar(
        planned_downtime=[
            PlannedStop(start_h=6.0, duration_h=1.0),
            PlannedStop(start_h=18.0, duration_h=1.0),
        ]
    )
    assert current_shift_start_s(calendar, now_h * 3600.0) == pytest.approx(start_h * 3600.0)
    # Where the simulation starts in the period shifts every start by as much.
    later = calendar.model_copy(update={"start_at_h": 2.0})
    shifted = current_shift_start_s(later, (now_h - 2.0) * 3600.0)
    assert shifted == pytest.approx((start_h - 2.0) * 3600.0)


def test_touching_stops_merge_from_the_first_one_on() -> None:
    """Two touching stops at the start of the list are one stop of their total."""
    calendar = Calendar(
        planned_downtime=[
            PlannedStop(start_h=1.0, duration_h=0.5),
            PlannedStop(start_h=1.5, duration_h=0.75),
        ]
    )
    assert shift_starts_h(calendar) == [(2.25, 1.25)]
