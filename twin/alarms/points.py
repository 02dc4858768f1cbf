"""The alarms as history points: each transition also a point of the ``alarm`` measurement.

The record of every transition is the ``alarm_events`` table (``twin.alarms.log``):
the message, who acknowledged and why are there. The ``alarm`` points are the
same changes as a time series, so that the history's other readers have them:
InfluxDB, which the sink copies the embedded store to, and Grafana. A point's
fields are numbers (InfluxDB 2 and VictoriaMetrics both keep them):

- ``state_code``: the state after the change, its index in ``STATES``;
- ``event_code``: what happened, its index in ``EVENTS``;
- ``active``: 1 while the alarm is active and shown (unacknowledged or acknowledged);
- ``acknowledged``: 1 once acknowledged;
- ``occurrence``: the how-manieth raise of the alarm;
- ``at_s``: the line's clock at the change.

Its tags: the line's place, ``alarm`` (the alarm's id), ``kind``, ``priority``,
``station`` and ``sensor`` where the alarm names them, and ``origin=live``. Its
time is the change's wall clock; two changes of one alarm in one millisecond are
placed a millisecond apart, as a series keeps one point per time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import get_args

from twin.alarms.lifecycle import Event, State, Transition
from twin.history.points import Point

MEASUREMENT = "alarm"
STATES: tuple[State, ...] = get_args(State)
EVENTS: tuple[Event, ...] = get_args(Event)
STATE_CODES = {state: index for index, state in enumerate(STATES)}
EVENT_CODES = {event: index for index, event in enumerate(EVENTS)}
SHOWN: frozenset[State] = frozenset({"unacknowledged", "acknowledged"})


def alarm_points(transitions: Sequence[Transition], place: Mapping[str, str]) -> list[Point]:
    """The points of ``transitions`` (in order) for a line at ``place`` (site, area, line)."""
    points: list[Point] = []
    last_ms: dict[str, int] = {}
    for change in transitions:
        tags = {
            **place,
            "alarm": change.alarm_id,
            "kind": change.kind,
            "priority": change.priority,
            "origin": "live",
        }
        if change.station:
            tags["station"] = change.station
        if change.sensor:
            tags["sensor"] = change.sensor
        time_ms = change.wall_ms
        before = last_ms.get(change.alarm_id)
        if before is not None and time_ms <= before:
            time_ms = before + 1
        last_ms[change.alarm_id] = time_ms
        fields = {
            "state_code": float(STATE_CODES[change.after]),
            "event_code": float(EVENT_CODES[change.event]),
            "active": float(change.after in SHOWN),
            "acknowledged": float(change.after == "acknowledged"),
            "occurrence": float(change.occurrence),
            "at_s": float(change.at_s),
        }
        points.append(Point(MEASUREMENT, tags, fields, time_ms))
    return points
