"""Sensor alarms scored against what was really wrong, sensor by sensor, in line time.

The truth comes from outside the detector:

- each injected fault (``sensors.faults`` of the line file) is an episode of its
  station *and sensor*, from its start to its end;
- tool wear is an episode of its station from the first part processed at or
  above ``level`` (its finish less its processing time, as the stream reports
  both) until that machine next goes into maintenance.

``score_alarms`` credits an alarm only to an episode of the same station and the
same sensor; a wear alarm only to a wear episode of its station, and nothing
else to a wear episode. An episode is found when an alarm that overlaps it (its
end widened by ``grace_s``) was raised before that widened end; its delay runs
from its start to the first such raise (zero if one was already up). Every other
alarm is false. ``by_station=True`` credits at the station, whatever the sensor:
the generous rule for detectors that cannot name one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel

from models.anomaly.expected import WEAR
from twin.config.line import LineConfig
from twin.contract import PartFinished, StateChanged

DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class SensorEpisode:
    """A span [start_s, end_s) of line time in which a sensor (or a tool) was faulty."""

    station: str
    sensor: str  # the faulty sensor; "wear" for tool wear
    kind: str  # stuck, spike, dropout, offset, wear
    start_s: float
    end_s: float
    size: str = ""  # a label of the fault's magnitude ("5 sd"), for the tables


@dataclass(frozen=True, slots=True)
class Raised:
    """An alarm as scoring sees it: any detector's, sensor named or not."""

    station: str
    sensor: str
    started_s: float
    raised_s: float
    cleared_s: float | None
    kind: str = ""


def fault_episodes(config: LineConfig, sizes: Sequence[str] = ()) -> list[SensorEpisode]:
    """One episode per injected fault of ``config``; ``sizes`` labels them in order."""
    return [
        SensorEpisode(
            fault.station,
            fault.sensor,
            fault.mode,
            fault.start_h * 3600.0,
            (fault.start_h + fault.duration_h) * 3600.0,
            sizes[i] if i < len(sizes) else "",
        )
        for i, fault in enumerate(config.sensors.faults)
    ]


def wear_episodes(
    messages: Iterable[tuple[str | None, BaseModel]], *, level: float, end_s: float
) -> list[SensorEpisode]:
    """Tool wear at or above ``level``, per station and machine, read from the stream."""
    open_: dict[tuple[str, int], float] = {}
    episodes: list[SensorEpisode] = []
    for station, message in messages:
        if station is None:
            continue
        if isinstance(message, PartFinished) and message.process:
            wear = message.process.get(WEAR)
            key = (station, message.machine)
            if wear is not None and wear >= level and key not in open_:
                open_[key] = message.sim_time_s - message.processing_time_s
        elif isinstance(message, StateChanged) and message.to_state == "maintenance":
            key = (station, message.machine)
            began = open_.pop(key, None)
            if began is not None:
                episodes.append(SensorEpisode(station, WEAR, WEAR, began, message.sim_time_s))
    for (station, _), began in open_.items():
        episodes.append(SensorEpisode(station, WEAR, WEAR, began, end_s))
    return sorted(episodes, key=lambda e: (e.start_s, e.station))


@dataclass
class Scored:
    """Alarms against the truth over a span of line time."""

    episodes: int = 0
    found: int = 0
    false_alarms: int = 0
    days: float = 0.0
    delays_s: list[float] = field(default_factory=list)
    wear_delays_s: list[float] = field(default_factory=list)
    # (kind, sensor, size) -> [found, episodes]
    by: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)
    missed: list[SensorEpisode] = field(default_factory=list)
    false: list[Raised] = field(default_factory=list)
    kinds_right: int = 0  # found episodes whose first alarm named the fault's kind

    def add(self, other: Scored) -> None:
        self.episodes += other.episodes
        self.found += other.found
        self.false_alarms += other.false_alarms
        self.days += other.days
        self.delays_s += other.delays_s
        self.wear_delays_s += other.wear_delays_s
        for key, (hit, total) in other.by.items():
            mine = self.by.setdefault(key, [0, 0])
            mine[0] += hit
            mine[1] += total
        self.missed += other.missed
        self.false += other.false
        self.kinds_right += other.kinds_right

    @property
    def faults(self) -> tuple[int, int]:
        """(found, episodes) over the sensor faults, wear left out."""
        found = sum(h for (kind, _, _), (h, _) in self.by.items() if kind != WEAR)
        total = sum(t for (kind, _, _), (_, t) in self.by.items() if kind != WEAR)
        return found, total

    @property
    def detection_rate(self) -> float:
        found, total = self.faults
        return found / total if total else math.nan

    @property
    def false_per_day(self) -> float:
        return self.false_alarms / self.days if self.days else math.nan


def _overlaps(alarm: Raised, episode: SensorEpisode, until_s: float, grace_s: float) -> bool:
    end = alarm.cleared_s if alarm.cleared_s is not None else until_s
    return alarm.started_s < episode.end_s + grace_s and end >= episode.start_s


def _matches(alarm: Raised, episode: SensorEpisode, by_station: bool) -> bool:
    if alarm.station != episode.station:
        return False
    if episode.sensor == WEAR:
        return alarm.sensor == WEAR
    if alarm.sensor == WEAR:
        return False
    return by_station or alarm.sensor == episode.sensor


def score_alarms(
    alarms: Sequence[Raised],
    truth: Sequence[SensorEpisode],
    *,
    start_s: float,
    end_s: float,
    grace_s: float = 120.0,
    by_station: bool = False,
    tolerated: Sequence[SensorEpisode] = (),
) -> Scored:
    """Score the alarms raised in [start_s, end_s) against ``truth`` (episodes in that
    span). ``tolerated`` episodes excuse an alarm without asking for one."""
    inside = [a for a in alarms if start_s <= a.raised_s < end_s]
    scored = Scored(days=(end_s - start_s) / DAY_S)
    for episode in truth:
        if not (start_s <= episode.start_s < end_s):
            continue
        scored.episodes += 1
        key = (episode.kind, episode.sensor, episode.size)
        counts = scored.by.setdefault(key, [0, 0])
        counts[1] += 1
        hits = [
            a
            for a in inside
            if _matches(a, episode, by_station)
            and _overlaps(a, episode, end_s, grace_s)
            and a.raised_s <= episode.end_s + grace_s
        ]
        if not hits:
            scored.missed.append(episode)
            continue
        first = min(hits, key=lambda a: a.raised_s)
        counts[0] += 1
        scored.found += 1
        delay = max(first.raised_s - episode.start_s, 0.0)
        (scored.wear_delays_s if episode.kind == WEAR else scored.delays_s).append(delay)
        scored.kinds_right += first.kind == episode.kind
    excuses = [*truth, *tolerated]
    for alarm in inside:
        if not any(
            _matches(alarm, e, by_station) and _overlaps(alarm, e, end_s, grace_s) for e in excuses
        ):
            scored.false.append(alarm)
    scored.false_alarms = len(scored.false)
    return scored


def poisson_upper(count: int, days: float, confidence: float = 0.95) -> float:
    """The upper bound of the two-sided ``confidence`` interval of a Poisson rate
    (``count`` events in ``days``), per day: the exact (Garwood) interval."""
    from scipy.stats import chi2

    alpha = 1.0 - confidence
    return float(chi2.ppf(1 - alpha / 2, 2 * (count + 1)) / 2 / days)


def poisson_lower(count: int, days: float, confidence: float = 0.95) -> float:
    from scipy.stats import chi2

    if count == 0:
        return 0.0
    alpha = 1.0 - confidence
    return float(chi2.ppf(alpha / 2, 2 * count) / 2 / days)
