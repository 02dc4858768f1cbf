"""Shifts from the line's calendar: where they start, and which one runs now.

The line config has a calendar of planned downtime, not of shifts. A shift is
taken to begin where production resumes after a planned stop of
``MIN_SHIFT_GAP_H`` or more (no night shift, cleaning); shorter stops are breaks
inside it. The economics (``twin.state.economics``) give their figures for the
shift running now from these starts. Everything here is a pure function of the
calendar and the simulation time.
"""

from __future__ import annotations

from twin.config.line import Calendar

SimTime = float

# A planned stop at least this long ends a shift; shorter ones are breaks in it.
MIN_SHIFT_GAP_H = 1.0


def _planned_stops_h(calendar: Calendar) -> list[tuple[float, float]]:
    """The calendar's planned stops as (start, end) hours of the period, touching
    stops merged, a stop running over the end of the period joined to its start."""
    merged: list[tuple[float, float]] = []
    for start, end, _reason in calendar.segments_h():
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    period = calendar.period_h
    if len(merged) > 1 and merged[0][0] == 0.0 and merged[-1][1] >= period:
        first = merged.pop(0)
        merged[-1] = (merged[-1][0], period + first[1])
    return merged


def shift_starts_h(calendar: Calendar) -> list[tuple[float, float]]:
    """Where shifts start, as (hour of the period, hours of planned stop just before).

    The calendar lists planned downtime, not shifts: a shift starts where
    production resumes after a planned stop of ``MIN_SHIFT_GAP_H`` or more (no
    night shift, cleaning); shorter stops are breaks inside a shift. A calendar
    without such a stop has one shift a period, starting with the period.
    """
    period = calendar.period_h
    starts = [
        (end % period, end - start)
        for start, end in _planned_stops_h(calendar)
        if end - start >= MIN_SHIFT_GAP_H
    ]
    return sorted(starts) or [(0.0, 0.0)]


# Shift starts are keyed to the millisecond; closer than this to one is at it.
BOUNDARY_NOISE_S = 1e-6


def shift_boundaries_s(calendar: Calendar, now: SimTime) -> tuple[SimTime, SimTime, float]:
    """The latest shift start at or before ``now``, the next one after it, and the
    planned stop (seconds) that precedes the next one."""
    period = calendar.period_h * 3600.0
    time_of_period = (calendar.start_at_h * 3600.0 + now) % period
    latest = None
    upcoming: tuple[SimTime, float] | None = None
    for hour, stop_h in shift_starts_h(calendar):
        since = (time_of_period - hour * 3600.0) % period
        if period - since < BOUNDARY_NOISE_S:
            # At the start itself, float noise in ``now % period`` can put it a hair
            # before: that is this start, not the one a period earlier.
            since = 0.0
        start = now - since
        if latest is None or start > latest:
            latest = start
        following = start + period
        if upcoming is None or following < upcoming[0]:
            upcoming = (following, stop_h * 3600.0)
    assert latest is not None  # noqa: S101 - shift_starts_h is never empty
    assert upcoming is not None  # noqa: S101
    # Rounded: the same boundary, reached from different times, is one snapshot key.
    return round(latest, 3), round(upcoming[0], 3), upcoming[1]


def current_shift_start_s(calendar: Calendar, now: SimTime) -> SimTime:
    """Simulation time at which the shift running at ``now`` started (may be < 0)."""
    return shift_boundaries_s(calendar, now)[0]
