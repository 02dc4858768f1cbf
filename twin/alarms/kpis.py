"""How the alarm system itself performs, as ISA-18.2 (and EEMUA 191) measures it,
over a window of the line's time, from the alarms' transitions.

Every figure counts annunciations: the moments an alarm was put in front of the
operator anew (``Transition.annunciated``: raised, or back from a shelf or from out
of service while still active). The figures:

- alarms per hour: annunciations over the window's hours;
- flood: the share of 10-minute intervals, counted from the window's start, with
  more than 10 annunciations (the last one may be shorter);
- chattering alarms: alarms annunciated 3 or more times within one minute;
- stale alarms: alarms active without a break for more than 24 hours at the
  window's end;
- bad actors: the 10 alarms annunciated most often, with their share of all.

``REFERENCES`` holds ISA-18.2's published guidance beside them (an operator can
take about 6 alarms an hour, 12 at most; floods under 1% of the time; no chattering
alarm; stale alarms fewer than 5), so a reader sees each figure against it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from twin.alarms.lifecycle import Transition

FLOOD_INTERVAL_S = 600.0
FLOOD_ALARMS = 10  # more than this many in one interval is a flood
CHATTER_WINDOW_S = 60.0
CHATTER_ALARMS = 3  # this many or more within the window is chattering
STALE_AFTER_S = 24 * 3600.0
BAD_ACTORS = 10
REFERENCES = {
    "alarms_per_hour_acceptable": 6.0,
    "alarms_per_hour_manageable": 12.0,
    "flood_share_max": 0.01,
    "chattering_max": 0,
    "stale_max": 5,
}


@dataclass(frozen=True)
class Chattering:
    alarm_id: str
    most_in_a_minute: int
    first_s: float  # the start of the first minute that had that many


@dataclass(frozen=True)
class Stale:
    alarm_id: str
    active_since_s: float
    hours: float


@dataclass(frozen=True)
class BadActor:
    alarm_id: str
    count: int
    share: float


@dataclass(frozen=True)
class AlarmKpis:
    from_s: float
    to_s: float
    annunciated: int
    per_hour: float | None  # None: a window of no length
    intervals: int
    flood_intervals: int
    flood_share: float | None
    peak_per_interval: int
    chattering: list[Chattering] = field(default_factory=list)
    stale: list[Stale] = field(default_factory=list)
    bad_actors: list[BadActor] = field(default_factory=list)


def alarm_kpis(transitions: Iterable[Transition], from_s: float, to_s: float) -> AlarmKpis:
    """The alarm-system figures of the window (``from_s``, ``to_s``] of line time: the
    hours up to and with ``to_s`` (an alarm raised just now counts). ``transitions``
    may hold more than the window (stale alarms look back)."""
    if to_s < from_s:
        raise ValueError(f"to_s ({to_s:g}) is before from_s ({from_s:g})")
    records = sorted(transitions, key=lambda t: t.at_s)
    times: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if record.annunciated and from_s < record.at_s <= to_s:
            times[record.alarm_id].append(record.at_s)
    every = sorted(t for ts in times.values() for t in ts)
    span = to_s - from_s
    intervals = math.ceil(span / FLOOD_INTERVAL_S) if span > 0 else 0
    # Interval k holds (from_s + k * 600 s, from_s + (k + 1) * 600 s].
    per_interval = Counter(math.ceil((t - from_s) / FLOOD_INTERVAL_S) - 1 for t in every)
    flood = sum(1 for count in per_interval.values() if count > FLOOD_ALARMS)
    counts = Counter({alarm_id: len(ts) for alarm_id, ts in times.items()})
    total = len(every)
    return AlarmKpis(
        from_s=from_s,
        to_s=to_s,
        annunciated=total,
        per_hour=total / (span / 3600.0) if span > 0 else None,
        intervals=intervals,
        flood_intervals=flood,
        flood_share=flood / intervals if intervals else None,
        peak_per_interval=max(per_interval.values(), default=0),
        chattering=_chattering(times),
        stale=_stale(records, to_s),
        bad_actors=[
            BadActor(alarm_id, count, count / total)
            for alarm_id, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[
                :BAD_ACTORS
            ]
        ],
    )


def _chattering(times: dict[str, list[float]]) -> list[Chattering]:
    found = []
    for alarm_id, stamps in sorted(times.items()):
        most, first = 0, 0.0
        start = 0
        for end, stamp in enumerate(stamps):
            while stamp - stamps[start] > CHATTER_WINDOW_S:
                start += 1
            if end - start + 1 > most:
                most, first = end - start + 1, stamps[start]
        if most >= CHATTER_ALARMS:
            found.append(Chattering(alarm_id, most, first))
    return found


def _stale(records: list[Transition], to_s: float) -> list[Stale]:
    """Alarms whose condition has been active without a break since more than
    ``STALE_AFTER_S`` before ``to_s`` (whatever their acknowledgement or shelf)."""
    raised_at: dict[str, float | None] = {}
    for record in records:
        if record.at_s > to_s:
            break
        if record.event == "raise":
            if raised_at.get(record.alarm_id) is None:
                raised_at[record.alarm_id] = record.at_s
        elif record.event == "clear":
            raised_at[record.alarm_id] = None
    return [
        Stale(alarm_id, since, (to_s - since) / 3600.0)
        for alarm_id, since in sorted(raised_at.items())
        if since is not None and to_s - since > STALE_AFTER_S
    ]
