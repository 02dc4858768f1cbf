"""Ground truth for anomaly detection, and alarms scored against it.

Two kinds of trouble should raise alarms, and each has a truth read from
outside the detector:

- **Injected sensor faults** (``sensors.faults`` of the line config): one
  ``Episode`` per fault, from its start to its end, placed on the history clock
  as the backfill places simulation time (``start_ms + sim_time_s * 1000``).
- **Tool wear**: vibration rises (``running_mm_s * (1 + wear_gain * wear)``) and
  pressure sags (``pressure_running_bar * (1 - 0.05 * wear)``) as the tool
  wears, until preventive maintenance resets it. ``wear_episodes`` reads wear
  from history, never from the simulator: the ``process_wear`` of each ``part``
  point (the wear when that part was processed). An episode starts when the
  processing of the first part at or above ``level`` began (its point's time
  less its processing time) and ends when the machine next went into
  ``maintenance`` (the ``state`` history), or at the end of the span.

``evaluate_alarms`` matches alarms to episodes at the same station. An episode
is detected when an alarm overlaps it (its end widened by ``grace_ms``, for
the window that holds the end); its delay is from its start to when the first
such alarm was raised (zero if one was already up). An alarm that overlaps no
episode and no ``tolerated`` span is a false alarm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from models.anomaly.alarm import Alarm
from twin.config.line import LineConfig
from twin.history.points import HistoryStore

DAY_MS = 86_400_000
# Worn parts closer than this are one episode (a breakdown, a setup, a break).
WEAR_GAP_S = 1800.0


@dataclass(frozen=True, slots=True)
class Episode:
    """A span of time [start_ms, end_ms) in which a station should be in alarm."""

    station: str
    start_ms: int
    end_ms: int
    kind: str  # a fault mode (stuck, spike, dropout, offset) or "wear"
    sensor: str = ""  # the faulty sensor; "" for wear

    @property
    def span(self) -> tuple[int, int]:
        return self.start_ms, self.end_ms


def fault_episodes(config: LineConfig, start_ms: int) -> list[Episode]:
    """One episode per injected sensor fault, simulation hour 0 at ``start_ms``."""
    return sorted(
        (
            Episode(
                fault.station,
                start_ms + round(fault.start_h * 3_600_000),
                start_ms + round((fault.start_h + fault.duration_h) * 3_600_000),
                fault.mode,
                fault.sensor,
            )
            for fault in config.sensors.faults
        ),
        key=lambda episode: (episode.start_ms, episode.station),
    )


def _series(
    store: HistoryStore,
    measurement: str,
    name: str,
    start_ms: int,
    end_ms: int,
    tags: dict[str, str],
) -> dict[str, dict[int, float]]:
    """Per station, time -> value of one field (machines merged)."""
    out: dict[str, dict[int, float]] = {}
    for result in store.query(measurement, name, start_ms, end_ms, tags=tags or None):
        station = result.key.tags.get("station")
        if station is not None:
            values = out.setdefault(station, {})
            values.update((window.start_ms, window.value) for window in result.windows)
    return out


def wear_episodes(
    store: HistoryStore,
    start_ms: int,
    end_ms: int,
    *,
    level: float,
    line: str | None = None,
    gap_s: float = WEAR_GAP_S,
) -> list[Episode]:
    """Episodes in which a station processed parts with tool wear at or above ``level``,
    read from history: each such part's processing (its ``part`` point's time less
    its processing time, to the point), joined when less than ``gap_s`` apart."""
    tags = {"line": line} if line is not None else {}
    wear = _series(store, "part", "process_wear", start_ms, end_ms, tags)
    processing = _series(store, "part", "processing_time_s", start_ms, end_ms, tags)
    gap_ms = round(gap_s * 1000)
    episodes = []
    for station, by_time in sorted(wear.items()):
        durations = processing.get(station, {})
        spans = [
            (max(t - round(durations.get(t, 0.0) * 1000), start_ms), t)
            for t, value in sorted(by_time.items())
            if value >= level
        ]
        current: list[int] | None = None
        for began, ended in spans:
            if current is not None and began - current[1] < gap_ms:
                current[1] = max(current[1], ended)
                continue
            if current is not None:
                episodes.append(Episode(station, current[0], current[1], "wear"))
            current = [began, ended]
        if current is not None:
            episodes.append(Episode(station, current[0], current[1], "wear"))
    return episodes


@dataclass(frozen=True)
class DriftEvaluation:
    """Alarms against the truth. Rates are over all stations of the line."""

    episodes: int
    detected: int
    detection_rate: float  # detected / episodes (1.0 when there were none)
    false_alarms: int
    false_alarms_per_day: float
    mean_delay_s: float  # over detected episodes; NaN when none was detected
    max_delay_s: float
    by_kind: dict[str, tuple[int, int]]  # kind -> (detected, episodes)
    delays_s: dict[Episode, float] = field(default_factory=dict)
    missed: tuple[Episode, ...] = ()
    false: tuple[Alarm, ...] = ()


def _overlaps(alarm: Alarm, station: str, start_ms: int, end_ms: int) -> bool:
    return alarm.station == station and alarm.start_ms < end_ms and alarm.end_ms > start_ms


def evaluate_alarms(
    alarms: Sequence[Alarm],
    truth: Sequence[Episode],
    span_ms: int,
    *,
    tolerated: Sequence[Episode] = (),
    grace_ms: int = 120_000,
) -> DriftEvaluation:
    """Detection rate, false alarms per day of ``span_ms`` and detection delays.

    ``tolerated`` spans are where an alarm is neither required nor false (tool
    wear between the healthy level and the drift level, say).
    """
    if span_ms <= 0:
        raise ValueError(f"span_ms must be positive, got {span_ms}")
    delays: dict[Episode, float] = {}
    missed = []
    by_kind: dict[str, tuple[int, int]] = {}
    for episode in truth:
        raised = [
            alarm.raised_ms
            for alarm in alarms
            if _overlaps(alarm, episode.station, episode.start_ms, episode.end_ms + grace_ms)
        ]
        hit, total = by_kind.get(episode.kind, (0, 0))
        by_kind[episode.kind] = (hit + bool(raised), total + 1)
        if raised:
            delays[episode] = max(min(raised) - episode.start_ms, 0) / 1000.0
        else:
            missed.append(episode)
    excused = [*truth, *tolerated]
    false = tuple(
        alarm
        for alarm in alarms
        if not any(
            _overlaps(alarm, episode.station, episode.start_ms, episode.end_ms + grace_ms)
            for episode in excused
        )
    )
    values = list(delays.values())
    return DriftEvaluation(
        episodes=len(truth),
        detected=len(delays),
        detection_rate=len(delays) / len(truth) if truth else 1.0,
        false_alarms=len(false),
        false_alarms_per_day=len(false) / (span_ms / DAY_MS),
        mean_delay_s=float(np.mean(values)) if values else float("nan"),
        max_delay_s=max(values, default=float("nan")),
        by_kind=by_kind,
        delays_s=delays,
        missed=tuple(missed),
        false=false,
    )
