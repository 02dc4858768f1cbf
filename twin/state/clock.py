"""The line's clock as a plant reads it: time of day, shift and planned stops.

A line publishes its simulation time (``sim_time_s``) on every message, and its
shift calendar in its retained birth message (``CalendarDescription``): where
time 0 falls in the calendar's period and in the day, and the planned stops
that repeat every period. From the two the twin tells the time of day, the
day of operation, the shift, and the break or shift change in force, so that a
planned stop reads as the break it is rather than as a fault.

Shifts follow the rule the economics use (``twin.state.shifts``): the calendar
lists planned stops, not shifts, so a shift starts where production resumes
after a planned stop of ``MIN_SHIFT_GAP_H`` or more (no night shift, cleaning);
shorter stops are breaks inside it. A shift is named by its span in clock time
("06:00–22:00"); a calendar without such a stop runs "around the clock".

Without a calendar the clock is the time elapsed since the line started, and
says so. Everything here is a pure function of the calendar and the time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from twin.config.line import Calendar
from twin.contract import CalendarDescription, PlannedStopDescription
from twin.state.views import ClockView

HOUR_S = 3600.0
DAY_S = 24 * HOUR_S
# A planned stop at least this long ends a shift (as in twin.state.shifts).
MIN_SHIFT_GAP_H = 1.0
AROUND_THE_CLOCK = "around the clock"
NO_CALENDAR = "no calendar from the line: elapsed time since it started"
FROM_CALENDAR = "time of day and shift from the line's calendar"


@dataclass(frozen=True, slots=True)
class Stop:
    """One planned stop as a span of line time (s); touching stops are one."""

    start_s: float
    end_s: float
    reason: str

    @property
    def hours(self) -> float:
        return (self.end_s - self.start_s) / HOUR_S


def describe_calendar(calendar: Calendar) -> CalendarDescription:
    """A config's calendar as the line announces it in its birth message."""
    return CalendarDescription(
        period_h=calendar.period_h,
        start_at_h=calendar.start_at_h,
        clock_at_start_h=calendar.time_of_day_at_start_h,
        planned_downtime=[
            PlannedStopDescription(
                start_h=stop.start_h, duration_h=stop.duration_h, reason=stop.reason
            )
            for stop in calendar.planned_downtime
        ],
    )


def _spans_h(calendar: CalendarDescription) -> list[tuple[float, float, str]]:
    """The planned stops as (start, end, reason) hours of one period: sorted,
    clipped or wrapped at its end, overlapping or touching stops merged."""
    period = calendar.period_h
    pieces: list[tuple[float, float, str]] = []
    for stop in calendar.planned_downtime:
        end = stop.start_h + stop.duration_h
        if end <= period:
            pieces.append((stop.start_h, end, stop.reason))
        else:
            pieces.append((stop.start_h, period, stop.reason))
            pieces.append((0.0, end - period, stop.reason))
    merged: list[tuple[float, float, str]] = []
    for start, end, reason in sorted(pieces):
        if merged and start <= merged[-1][1]:
            first_start, first_end, first_reason = merged[-1]
            label = first_reason if reason == first_reason else f"{first_reason} / {reason}"
            merged[-1] = (first_start, max(end, first_end), label)
        else:
            merged.append((start, end, reason))
    if len(merged) > 1 and merged[0][0] == 0.0 and merged[-1][1] >= period:
        # A stop over the end of the period runs into the next period's first one.
        first = merged.pop(0)
        last = merged.pop()
        label = last[2] if last[2] == first[2] else f"{last[2]} / {first[2]}"
        merged.append((last[0], period + first[1], label))
    return merged


def _period_origin_s(calendar: CalendarDescription, sim_time_s: float) -> float:
    """Line time at which the period holding ``sim_time_s`` began."""
    period_s = calendar.period_h * HOUR_S
    offset = calendar.start_at_h * HOUR_S
    return math.floor((sim_time_s + offset) / period_s) * period_s - offset


def stops_around(calendar: CalendarDescription, sim_time_s: float) -> list[Stop]:
    """The planned stops from two periods before ``sim_time_s`` to two after, in order."""
    period_s = calendar.period_h * HOUR_S
    origin = _period_origin_s(calendar, sim_time_s)
    spans = _spans_h(calendar)
    return [
        Stop(origin + k * period_s + start * HOUR_S, origin + k * period_s + end * HOUR_S, reason)
        for k in range(-2, 3)
        for start, end, reason in spans
    ]


def planned_stop_at(calendar: CalendarDescription, sim_time_s: float) -> Stop | None:
    """The planned stop in force at ``sim_time_s``, or None while production is planned."""
    for stop in stops_around(calendar, sim_time_s):
        if stop.start_s <= sim_time_s < stop.end_s:
            return stop
    return None


def planned_production_s(calendar: CalendarDescription, start_s: float, end_s: float) -> float:
    """Planned production time between two line times: the span minus its planned stops."""
    if end_s <= start_s:
        return 0.0
    period_s = calendar.period_h * HOUR_S
    spans = _spans_h(calendar)
    stopped = 0.0
    origin = _period_origin_s(calendar, start_s) - period_s
    while origin < end_s:
        for first, last, _reason in spans:
            low = max(start_s, origin + first * HOUR_S)
            high = min(end_s, origin + last * HOUR_S)
            stopped += max(0.0, high - low)
        origin += period_s
    return max(0.0, (end_s - start_s) - stopped)


def time_of_day_s(calendar: CalendarDescription, sim_time_s: float) -> float:
    """Seconds after midnight at ``sim_time_s``."""
    return (calendar.clock_at_start_h * HOUR_S + sim_time_s) % DAY_S


def format_clock(seconds_of_day: float) -> str:
    """ "HH:MM" of seconds after midnight (minutes rounded down, as a clock shows them)."""
    minutes = int(seconds_of_day // 60) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _long_stops(calendar: CalendarDescription, sim_time_s: float) -> list[Stop]:
    """The planned stops around ``sim_time_s`` long enough to end a shift."""
    return [stop for stop in stops_around(calendar, sim_time_s) if stop.hours >= MIN_SHIFT_GAP_H]


def shift_at(calendar: CalendarDescription, sim_time_s: float) -> str | None:
    """The shift running at ``sim_time_s`` by its clock span, or None during a
    planned stop long enough to end a shift."""
    long_stops = _long_stops(calendar, sim_time_s)
    if not long_stops:
        return AROUND_THE_CLOCK
    if any(stop.start_s <= sim_time_s < stop.end_s for stop in long_stops):
        return None
    began = max(stop.end_s for stop in long_stops if stop.end_s <= sim_time_s)
    ends = min(stop.start_s for stop in long_stops if stop.start_s > sim_time_s)
    start = format_clock(time_of_day_s(calendar, began))
    end = format_clock(time_of_day_s(calendar, ends))
    return f"{start}–{end}"


def shift_end_s(calendar: CalendarDescription, sim_time_s: float) -> float | None:
    """When the shift running at ``sim_time_s`` ends (the start of the next planned
    stop of ``MIN_SHIFT_GAP_H`` or more); None outside shifts or around the clock."""
    long_stops = _long_stops(calendar, sim_time_s)
    if not long_stops or any(stop.start_s <= sim_time_s < stop.end_s for stop in long_stops):
        return None
    return min(stop.start_s for stop in long_stops if stop.start_s > sim_time_s)


def clock_view(calendar: CalendarDescription | None, sim_time_s: float | None) -> ClockView:
    """The line's clock at ``sim_time_s`` (the twin's time); elapsed time only
    without a calendar, nothing without a time."""
    if calendar is None or sim_time_s is None:
        return ClockView(calendar=calendar is not None, elapsed_s=sim_time_s, note=NO_CALENDAR)
    of_day = time_of_day_s(calendar, sim_time_s)
    stop = planned_stop_at(calendar, sim_time_s)
    upcoming = [s for s in stops_around(calendar, sim_time_s) if s.start_s > sim_time_s]
    following = min(upcoming, key=lambda s: s.start_s) if upcoming else None
    period_s = calendar.period_h * HOUR_S
    return ClockView(
        calendar=True,
        elapsed_s=sim_time_s,
        day=int((calendar.clock_at_start_h * HOUR_S + sim_time_s) // DAY_S) + 1,
        time_of_day=format_clock(of_day),
        time_of_day_s=of_day,
        period_hour_h=((calendar.start_at_h * HOUR_S + sim_time_s) % period_s) / HOUR_S,
        shift=shift_at(calendar, sim_time_s),
        planned_stop=stop.reason if stop is not None else None,
        planned_stop_until_s=stop.end_s if stop is not None else None,
        planned_stop_until=(
            format_clock(time_of_day_s(calendar, stop.end_s)) if stop is not None else None
        ),
        next_planned_stop=following.reason if following is not None else None,
        next_planned_stop_at_s=following.start_s if following is not None else None,
        note=FROM_CALENDAR,
    )
