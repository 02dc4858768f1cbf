"""The twin's memory: points in time, the store interface, and the one writer.

Everything the twin records (sensor readings, part results, state changes,
KPIs and losses) becomes a ``Point``: a measurement, tags that say where
(site, area, line, station...), numeric fields and a time in Unix milliseconds.
The schema (which measurement carries which fields) is ``SCHEMA`` below and is
documented in ``docs/storage.md``; the InfluxDB sink writes the same points, so
Grafana and the API read the same names.

Time is the plant's clock as the messages carry it (``ts_ms``, wall-clock at
publishing). Imported history (the backfill) is placed on the same clock,
ending where the live line starts, and tagged ``origin=backfill``; live points
are tagged ``origin=live``. A query merges both unless it asks for one.

``HistoryWriter`` is the single way in: it appends to the embedded store (the
hot store, always on, and the durable queue for every other sink) and tells the
sinks that there is more to read. A sink such as InfluxDB tails the store from
its own high-water mark, so an outage of the sink loses nothing the store still
holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Aggregate = Literal["mean", "min", "max", "last"]
AGGREGATES: tuple[Aggregate, ...] = ("mean", "min", "max", "last")
Origin = Literal["live", "backfill"]

# measurement -> its numeric fields. The writer produces nothing else; the
# Grafana dashboard and the API may rely on these names (a test checks the
# dashboard against them).
SCHEMA: dict[str, tuple[str, ...]] = {
    # One point per telemetry sample; a sensor not in the sample is absent.
    "telemetry": ("temperature_c", "vibration_mm_s", "spindle_rpm", "power_kw", "pressure_bar"),
    # One point per finished part at a station: 1 in the field of its result,
    # its processing time, the part's id (ids restart at 0 with each run of the
    # line), the line's clock when it finished, and the process values it saw.
    "part": (
        "good",
        "scrap",
        "rework",
        "processing_time_s",
        "part_id",
        "sim_time_s",
        "process_speed",
        "process_temperature_c",
        "process_wear",
    ),
    # One point per machine state change: the new state's code (STATE_CODES) and
    # the line's clock then (the point's time is the wall clock at publishing).
    "state": ("code", "sim_time_s"),
    # Station KPIs, sampled periodically (station tag), and line KPIs (no station tag).
    "kpi": (
        "oee",
        "availability",
        "effectiveness",
        "quality_ratio",
        "good",
        "scrap",
        "produced",
        "throughput_per_h",
        "work_in_process",
        "utilisation",
    ),
    # Time and money lost per station and category (category tag), sampled with the KPIs.
    "loss": ("time_s", "cost"),
    # One point per change of an alarm (twin.alarms.points): its state and event codes,
    # whether it is shown and acknowledged, its occurrence, the line's clock then.
    "alarm": ("state_code", "event_code", "active", "acknowledged", "occurrence", "at_s"),
}


@dataclass(frozen=True, slots=True)
class Point:
    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, float]
    time_ms: int


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """One stored series: a measurement's field under one set of tags."""

    measurement: str
    field: str
    tags: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Window:
    """One downsampling window: ``start_ms`` inclusive, the aggregate of its samples."""

    start_ms: int
    value: float
    count: int


@dataclass(frozen=True, slots=True)
class SeriesResult:
    key: SeriesKey
    windows: list[Window]


@dataclass(frozen=True, slots=True)
class StoredSample:
    """A stored field sample with its position in the store (for sinks that tail it)."""

    position: int
    measurement: str
    field: str
    tags: Mapping[str, str]
    time_ms: int
    value: float


class HistoryStore(Protocol):
    """What the API, the models and the sinks need of a store."""

    def write(self, points: Sequence[Point]) -> None:
        """Queue points; they are durable once ``flush`` returns (or the next batch commits)."""

    def write_columns(
        self,
        keys: Sequence[SeriesKey],
        series: Sequence[int],
        times: Sequence[int],
        values: Sequence[float],
    ) -> None:
        """Queue samples as columns (sample ``i``: ``values[i]`` at ``times[i]`` in the
        series ``keys[series[i]]``): the bulk path, with no object per sample."""

    def flush(self, timeout: float | None = None) -> bool:
        """Commit everything queued; True once it is on disk."""

    def query(
        self,
        measurement: str,
        field: str,
        start_ms: int,
        end_ms: int,
        *,
        tags: Mapping[str, str] | None = None,
        every_ms: int | None = None,
        aggregate: Aggregate = "mean",
    ) -> list[SeriesResult]:
        """Samples in [start_ms, end_ms) per series (origins merged unless a tag asks),
        raw (every_ms None: each sample its own window) or aggregated per window."""

    def series(self, measurement: str | None = None) -> list[SeriesKey]: ...

    def read_after(self, position: int, limit: int) -> list[StoredSample]:
        """Samples stored after ``position``, oldest first (for sinks)."""

    def read_rows_after(
        self, position: int, limit: int
    ) -> tuple[list[tuple[int, int, int, float]], dict[int, SeriesKey]]:
        """``read_after`` as ``(position, series id, time_ms, value)`` rows and the keys of
        the series they name. A series id names the same series for the store's life."""

    def count_after(self, position: int) -> int:
        """Samples stored after ``position``: what a sink at that mark has yet to send."""

    def mark(self, sink: str) -> int:
        """The position a sink has acknowledged (0: nothing yet)."""

    def set_mark(self, sink: str, position: int) -> None: ...

    def lost(self, sink: str) -> int:
        """Samples retention deleted before the sink had them: counted, never silent."""

    def apply_retention(self, now_ms: int) -> int:
        """Delete what is older than the retention; the number of samples deleted."""

    def close(self) -> None: ...


class PointSink(Protocol):
    """Anything points can be written to: the writer, or a batcher in front of it."""

    def write(self, points: Sequence[Point]) -> None: ...


@runtime_checkable
class PartsSink(Protocol):
    """A point sink that also takes one point as its parts, with no ``Point`` made:
    the backfill's columns, fed a point per message."""

    def write(self, points: Sequence[Point]) -> None: ...

    def add(
        self, measurement: str, tags: Mapping[str, str], fields: Mapping[str, float], time_ms: int
    ) -> None: ...


class Sink(Protocol):
    """A long-term copy of the store (InfluxDB): told when there is more to read."""

    name: str

    def notify(self) -> None: ...

    def health(self) -> Mapping[str, Any]: ...

    def close(self, timeout: float = 10.0) -> None: ...


@dataclass
class WriterStats:
    points: int = 0
    samples: int = 0
    by_measurement: dict[str, int] = field(default_factory=dict)


class HistoryWriter:
    """The one way into history: the embedded store first, then the sinks."""

    def __init__(self, store: HistoryStore, sinks: Iterable[Sink] = ()) -> None:
        self.store = store
        self.sinks = list(sinks)
        self.stats = WriterStats()
        self._lock = threading.Lock()

    def write(self, points: Sequence[Point]) -> None:
        if not points:
            return
        self.store.write(points)
        with self._lock:
            self.stats.points += len(points)
            for point in points:
                self.stats.samples += len(point.fields)
                counts = self.stats.by_measurement
                counts[point.measurement] = counts.get(point.measurement, 0) + 1
        for sink in self.sinks:
            sink.notify()

    def write_columns(
        self,
        keys: Sequence[SeriesKey],
        series: Sequence[int],
        times: Sequence[int],
        values: Sequence[float],
        points_by_measurement: Mapping[str, int],
    ) -> None:
        """The bulk path (the backfill): samples as columns, see
        ``HistoryStore.write_columns``; ``points_by_measurement`` counts the points
        they came from, for the writer's counters."""
        if not len(values):
            return
        self.store.write_columns(keys, series, times, values)
        with self._lock:
            self.stats.points += sum(points_by_measurement.values())
            self.stats.samples += len(values)
            counts = self.stats.by_measurement
            for measurement, number in points_by_measurement.items():
                counts[measurement] = counts.get(measurement, 0) + number
        for sink in self.sinks:
            sink.notify()

    def flush(self, timeout: float | None = None) -> bool:
        done = self.store.flush(timeout)
        for sink in self.sinks:
            sink.notify()
        return done

    def health(self) -> dict[str, Any]:
        """The store's counters and each sink's: errors are shown, not buried in logs."""
        store_health = getattr(self.store, "health", None)
        return {
            "points": self.stats.points,
            "samples": self.stats.samples,
            "store": store_health() if callable(store_health) else {},
            "sinks": {sink.name: dict(sink.health()) for sink in self.sinks},
        }

    def close(self, timeout: float = 10.0) -> None:
        """Flush the store, then let every sink deliver what it holds."""
        self.store.flush(timeout)
        for sink in self.sinks:
            sink.close(timeout)
        self.store.close()


PointListener = Callable[[Sequence[Point]], None]
