"""From what the twin hears to history: contract messages and KPI snapshots as points.

The recorder sees exactly what the ingest accepted, after the twin applied it,
so history holds what the twin knew, never the simulator's memory. Each
message is placed in time by ``time_of`` (by default its ``ts_ms``, the plant's
wall clock); the backfill passes a function that places simulated time before
the live start instead, and tags its points ``origin=backfill``.

KPI snapshots come from the twin's own view: line and station KPIs, and the
time and money each station lost per category (the stop states of ISO 22400,
valued at the station's labour, overhead and energy rates from the line config).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from pydantic import BaseModel

from twin.config.line import LineConfig
from twin.contract import (
    SENSOR_FIELDS,
    STATE_RANK,
    PartFinished,
    StateChanged,
    Telemetry,
)
from twin.history.points import SCHEMA, Origin, PartsSink, Point, PointSink
from twin.state.views import STOP_LOSSES, KpiSet, StationKpis

TimeOf = Callable[[Any], int]


class _StationKpis(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def kpis(self) -> StationKpis: ...


class KpiSource(Protocol):
    """What a KPI snapshot reads: ``TwinState.kpi_view()``, or a whole ``LineView``."""

    @property
    def kpis(self) -> KpiSet: ...

    @property
    def stations(self) -> Sequence[_StationKpis]: ...


def _ts_ms(message: Any) -> int:
    return int(message.ts_ms)


class HistoryRecorder:
    """Turns accepted contract messages of one line into points for the writer."""

    def __init__(
        self,
        writer: PointSink,
        site: str,
        area: str,
        line: str,
        *,
        origin: Origin = "live",
        time_of: TimeOf = _ts_ms,
    ) -> None:
        self.writer = writer
        self.time_of = time_of
        self.base_tags = {"site": site, "area": area, "line": line, "origin": origin}
        # Tags are shared per station (and machine): one dict each, not one per point.
        self._station_tags: dict[str, dict[str, str]] = {}
        self._by_machine: dict[tuple[str, int], dict[str, str]] = {}
        # The last time given to each (measurement, station, machine): see record.
        self._last_ms: dict[tuple[str, str | None, int], int] = {}
        self.shifted = 0  # points moved by a millisecond or more to stay apart
        # A sink that takes a point as its parts (the backfill's columns) is given
        # them as they are: no Point, no tuple around it, per message.
        self._add: Callable[[str, Mapping[str, str], Mapping[str, float], int], None] = (
            writer.add if isinstance(writer, PartsSink) else self._add_point
        )

    def _tags(self, station: str) -> dict[str, str]:
        tags = self._station_tags.get(station)
        if tags is None:
            tags = self._station_tags[station] = {**self.base_tags, "station": station}
        return tags

    def _machine_tags(self, station: str, machine: int) -> dict[str, str]:
        tags = self._by_machine.get((station, machine))
        if tags is None:
            tags = self._by_machine[(station, machine)] = {
                **self._tags(station),
                "machine": str(machine),
            }
        return tags

    def point_of(self, station: str | None, message: BaseModel) -> Point | None:
        """The point a message becomes, or None for messages history does not keep
        (the line status, retained state snapshots, part starts)."""
        parts = self._parts(station, message)
        if parts is None:
            return None
        measurement, tags, fields, time_ms, _machine = parts
        return Point(measurement, tags, fields, time_ms)

    def _parts(
        self, station: str | None, message: BaseModel
    ) -> tuple[str, dict[str, str], dict[str, float], int, int] | None:
        """(measurement, tags, fields, time, machine) of the point a message becomes.
        Runs for every message the twin takes: no object but the fields is made."""
        if station is None:
            return None
        if isinstance(message, Telemetry):
            values = message.__dict__
            fields = {name: value for name in SENSOR_FIELDS if (value := values[name]) is not None}
            return "telemetry", self._tags(station), fields, self.time_of(message), 0
        if isinstance(message, PartFinished):
            result = message.result
            fields = {
                "good": float(result == "good"),
                "scrap": float(result == "scrap"),
                "rework": float(result == "rework"),
                "processing_time_s": message.processing_time_s,
                # Joins a part's points across stations (models.dataset.join).
                "part_id": float(message.part_id),
                # The line's clock: durations in line time, whatever the speed was.
                "sim_time_s": message.sim_time_s,
            }
            for name, value in (message.process or {}).items():
                fields[f"process_{name}"] = float(value)
            return "part", self._tags(station), fields, self.time_of(message), 0
        if isinstance(message, StateChanged):
            machine = message.machine
            fields = {
                "code": float(STATE_RANK[message.to_state]),
                "sim_time_s": message.sim_time_s,
            }
            tags = self._machine_tags(station, machine)
            return "state", tags, fields, self.time_of(message), machine
        return None

    def record(self, station: str | None, message: BaseModel) -> None:
        """Record the point a message becomes, at a time of its own in its series.

        InfluxDB keys a point by its series and time: a second sample in the same
        millisecond would overwrite the first. A simulated line at high speed
        publishes bursts within one millisecond, so the later point moves just
        past the earlier one (counted in ``shifted``); order is kept.
        """
        if type(message) is Telemetry and station is not None:
            # The bulk of the stream, as _parts makes it, without the tuple between.
            values = message.__dict__
            fields = {name: value for name in SENSOR_FIELDS if (value := values[name]) is not None}
            tags = self._station_tags.get(station) or self._tags(station)
            time_ms = self.time_of(message)
            measurement = "telemetry"
            key: tuple[str, str | None, int] = ("telemetry", station, 0)
        else:
            parts = self._parts(station, message)
            if parts is None:
                return
            measurement, tags, fields, time_ms, machine = parts
            key = (measurement, station, machine)
        last_ms = self._last_ms
        last = last_ms.get(key)
        if last is not None and time_ms <= last:
            time_ms = last + 1
            self.shifted += 1
        last_ms[key] = time_ms
        self._add(measurement, tags, fields, time_ms)

    def _add_point(
        self, measurement: str, tags: Mapping[str, str], fields: Mapping[str, float], time_ms: int
    ) -> None:
        self.writer.write((Point(measurement, tags, fields, time_ms),))

    def kpi_points(self, view: KpiSource, config: LineConfig | None, time_ms: int) -> list[Point]:
        """Line and station KPIs and losses at ``time_ms``, from the twin's view; the
        losses need the line file's costs, so a line without one has none."""
        points = [Point("kpi", self.base_tags, _kpi_fields(view.kpis), time_ms)]
        specs = {spec.id: spec for spec in config.stations} if config is not None else {}
        price = config.economics.energy_price_per_kwh if config is not None else 0.0
        for station in view.stations:
            tags = self._tags(station.id)
            station_kpis = station.kpis
            points.append(Point("kpi", tags, _kpi_fields(station_kpis), time_ms))
            spec = specs.get(station.id)
            if spec is None:
                continue
            costs = spec.costs
            time_rate = (costs.labour_per_h + costs.overhead_per_h) / 3600.0
            by_category: dict[str, tuple[float, float]] = {}
            for loss_category, state, _reason in STOP_LOSSES:
                seconds = float(getattr(station_kpis, f"{state}_time_s"))
                cost = seconds * (time_rate + costs.power_kw.by_state(state) / 3600.0 * price)
                spent, money = by_category.get(loss_category, (0.0, 0.0))
                by_category[loss_category] = (spent + seconds, money + cost)
            for category_name, (seconds, cost) in by_category.items():
                points.append(
                    Point(
                        "loss",
                        {**tags, "category": category_name},
                        {"time_s": seconds, "cost": cost},
                        time_ms,
                    )
                )
        return points

    def record_kpis(self, view: KpiSource, config: LineConfig | None, time_ms: int) -> None:
        self.writer.write(self.kpi_points(view, config, time_ms))


def _kpi_fields(kpis: KpiSet) -> dict[str, float]:
    """The schema's KPI fields this set has a value for (a KPI with no data yet,
    OEE before the first part, is left out, not written as 0)."""
    return {
        name: float(value)
        for name in SCHEMA["kpi"]
        if isinstance(value := getattr(kpis, name, None), int | float)
    }
