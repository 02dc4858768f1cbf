"""Datasets for defect models: one row per part that left the line.

A row describes one part: for every station, the process values the part saw
there (``<station>__speed``, ``<station>__temperature_c``, ``<station>__wear``:
the ``process_*`` fields of its ``part`` point), its processing time
(``<station>__processing_time_s``) and the mean of each of the station's
telemetry fields over the ``sensor_window_s`` before its processing there ended
(``<station>__vibration_mm_s_mean``...). The label ``defect`` is 1 when the part
was scrapped or sent to rework anywhere, else 0; ``defect_station`` names the
station of its first failure ("" for good parts). ``left_at_ms`` is when it
left the line (shipped from the last station, or scrapped) and orders the rows.

Three builders give the same columns for the same line:

- ``from_history``: from the twin's history store, that is from what arrived
  over MQTT (or the backfill), never from the simulator's memory;
- ``from_simulation``: a batch run of the plant itself, which adds
  ``oracle_probability``, the part's true probability of a defect, for
  evaluation only (it is kept apart from the features);
- ``from_csv``: an external CSV with a declared schema (format below).

How the rows are made from a part's points (the join, stand-ins for the
stations a part never reached, where sensor windows end, the oracle) is
``models.dataset.join``; this module reads the data and builds the ``PartDataset``.

**External CSV format.** A header row, then one row per part; ``,`` separated.
The schema maps each column the file must have to its type (``int``,
``float`` or ``str``); undeclared columns are ignored. Roles follow the names:

- ``left_at_ms`` (int, required): when the part left the line, Unix ms; orders
  the time split;
- ``defect`` (int, required): 1 for a defective part, 0 for a good one;
- ``part_id`` (int), ``defect_station`` (str), ``oracle_probability`` (float):
  optional;
- every other declared column is a feature named ``<station>__<field>``, of
  type ``float`` or ``int``; an empty cell is a missing value.

A declared column missing from the file, a value that is not of its declared
type, or a schema that breaks these rules raises ``DatasetError`` naming the
columns. ``PartDataset.to_csv`` and ``PartDataset.csv_schema`` write and
describe a dataset in this format.

**Exploring setpoints.** A line held at its default setpoints makes few
defects, nearly all from tool wear, which teaches a model little.
``explore_setpoints`` changes every setpoint of every station to a random value
within its range at a fixed interval, as a designed experiment would;
``from_simulation(explore_every_s=...)`` runs with it.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from models.dataset.join import (
    SEPARATOR,
    States,
    Telemetry,
    Visit,
    join_rows,
    outcome_of,
    station_order,
)
from models.dataset.rows import (
    DEFECT_STATION,
    LABEL,
    META_TYPES,
    ORACLE,
    PART_ID,
    REQUIRED,
    TIME,
    ColumnType,
    DatasetError,
    PartDataset,
)
from twin.config.line import SENSOR_NAMES, LineConfig
from twin.contract import SENSOR_FIELDS, STATE_RANK
from twin.history.points import HistoryStore
from twin.sim.events import PartFinishedEvent, PlantEvent, StateChangedEvent
from twin.sim.plant import Plant

DEFAULT_SENSOR_WINDOW_S = 120.0
# How far before ``start_ms`` history is read, so that parts leaving early in the
# window are found whole (a part can wait in a buffer through a night).
DEFAULT_LOOKBACK_S = 24 * 3600.0
RUNNING = STATE_RANK["running"]


# -- from history ----------------------------------------------------------------------------
def from_history(
    store: HistoryStore,
    start_ms: int,
    end_ms: int,
    *,
    line: str | None = None,
    stations: Sequence[str] | None = None,
    sensor_window_s: float = DEFAULT_SENSOR_WINDOW_S,
    lookback_s: float = DEFAULT_LOOKBACK_S,
) -> PartDataset:
    """The parts that left the line in [start_ms, end_ms), from the history store.

    ``line`` picks one line of a store that holds several. ``stations`` is the
    line's station order (from its config or its birth message); without it the
    order is read off the parts' paths. History from ``lookback_s`` before
    ``start_ms`` is read to find the parts that leave early in the window whole.
    """
    tags = {"line": line} if line is not None else None
    part_series = [
        key for key in store.series("part") if line is None or key.tags.get("line") == line
    ]
    lines = sorted({key.tags.get("line", "") for key in part_series})
    if len(lines) > 1:
        raise DatasetError(f"the store holds parts of several lines {lines}: pass line=")
    read_from = start_ms - int(lookback_s * 1000)
    points: dict[tuple[str, int], dict[str, float]] = {}
    for name in sorted({key.field for key in part_series}):
        for result in store.query("part", name, read_from, end_ms, tags=tags):
            station = result.key.tags.get("station", "")
            for window in result.windows:
                points.setdefault((station, window.start_ms), {})[name] = window.value
    visits = [
        Visit(
            time_ms=time_ms,
            station=station,
            part_id=int(fields[PART_ID]),
            outcome=outcome_of(fields),
            processing_time_s=fields.get("processing_time_s", math.nan),
            process={
                name.removeprefix("process_"): value
                for name, value in fields.items()
                if name.startswith("process_")
            },
        )
        for (station, time_ms), fields in points.items()
        if PART_ID in fields  # points recorded before parts carried their id cannot be joined
    ]
    order = list(stations) if stations is not None else station_order(visits)
    states: States = {}
    for result in store.query("state", "code", read_from, end_ms, tags=tags):
        station = result.key.tags.get("station", "")
        if station in order and result.windows:
            states[(station, result.key.tags.get("machine", ""))] = (
                np.array([window.start_ms for window in result.windows], dtype=np.int64),
                np.array([window.value == RUNNING for window in result.windows], dtype=np.bool_),
            )
    telemetry: Telemetry = {}
    telemetry_from = read_from - int(sensor_window_s * 1000)
    for name in SENSOR_FIELDS:
        for result in store.query("telemetry", name, telemetry_from, end_ms, tags=tags):
            station = result.key.tags.get("station", "")
            if station in order and result.windows:
                telemetry[(station, name)] = (
                    np.array([window.start_ms for window in result.windows], dtype=np.int64),
                    np.array([window.value for window in result.windows], dtype=np.float64),
                )
    return join_rows(
        visits,
        telemetry,
        states,
        order,
        start_ms=start_ms,
        end_ms=end_ms,
        sensor_window_s=sensor_window_s,
    )


# -- from a simulation -----------------------------------------------------------------------
def explore_setpoints(
    plant: Plant, every_s: float, rng: random.Random
) -> Generator[simpy.Event, Any, None]:
    """A SimPy process: every ``every_s``, each station's setpoints jump to values drawn
    uniformly within their ranges (a designed experiment). Start it with
    ``plant.env.process(explore_setpoints(plant, every_s, rng))``."""
    while True:
        for spec in plant.config.stations:
            process = spec.process
            for name, limits in (
                ("speed", process.speed),
                ("temperature_c", process.temperature_c),
            ):
                if limits is not None and limits.min < limits.max:
                    plant.set_setpoint(spec.id, name, round(rng.uniform(limits.min, limits.max), 3))
        yield plant.env.timeout(every_s)


class _Recorder:
    """Collects a plant's part events and samples its sensors' true values."""

    def __init__(self, plant: Plant, start_ms: int) -> None:
        self.plant = plant
        self.start_ms = start_ms
        self.visits: list[Visit] = []
        self.samples: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        self.states: dict[tuple[str, str], tuple[list[int], list[bool]]] = {}

    def on_event(self, event: PlantEvent) -> None:
        if isinstance(event, StateChangedEvent):
            times, running = self.states.setdefault((event.station, str(event.machine)), ([], []))
            times.append(self.start_ms + int(event.time * 1000))
            running.append(event.to_state == "running")
            return
        if not isinstance(event, PartFinishedEvent):
            return
        self.visits.append(
            Visit(
                time_ms=self.start_ms + int(event.time * 1000),
                station=event.station,
                part_id=event.part_id,
                outcome=event.outcome,
                processing_time_s=float(event.processing_time_s),
                process=dict(event.process or {}),
                defect_probability=event.defect_probability,
            )
        )

    def sample(
        self, period: float, sensors: Sequence[tuple[str, str]]
    ) -> Generator[simpy.Event, Any, None]:
        """The fitted sensors' true values at their sampling period, as a publisher samples."""
        env = self.plant.env
        timeout = env.timeout
        times: list[int] = []
        readings = []
        for key in sensors:
            values: list[float] = []
            self.samples[key] = (times, values)
            readings.append((values.append, self.plant.by_id[key[0]].probe(key[1])))
        start_ms = self.start_ms
        while True:
            now = float(env.now)
            times.append(start_ms + int(now * 1000))
            for record, probe in readings:
                record(probe(now))
            yield timeout(period)

    def state_timelines(self) -> States:
        return {
            key: (np.array(times, dtype=np.int64), np.array(running, dtype=np.bool_))
            for key, (times, running) in self.states.items()
        }

    def telemetry(self) -> Telemetry:
        return {
            key: (np.array(times, dtype=np.int64), np.array(values, dtype=np.float64))
            for key, (times, values) in self.samples.items()
        }


def _sensor_groups(config: LineConfig) -> dict[float, list[tuple[str, str]]]:
    default = config.sensors.telemetry_period_s
    groups: dict[float, list[tuple[str, str]]] = {}
    for spec in config.stations:
        for name in SENSOR_NAMES:
            sensor = getattr(spec.sensors, name)
            if sensor is not None:
                groups.setdefault(sensor.period_s or default, []).append((spec.id, name))
    return groups


def from_simulation(
    config: LineConfig,
    hours: float,
    seed: int,
    *,
    start_ms: int = 0,
    explore_every_s: float | None = None,
    sensor_window_s: float = DEFAULT_SENSOR_WINDOW_S,
) -> PartDataset:
    """The parts that left the line in a batch run of ``hours``, with their oracle.

    The run is the plant itself (``models`` never imports ``sensors``): the part
    events are what the publisher would send, placed in time as the backfill
    places them (``start_ms`` + simulated time), and the telemetry summaries come
    from the sensors' true values at their sampling periods, without the noise,
    drift and faults of the measurement. With ``explore_every_s`` the setpoints
    are explored (``explore_setpoints``, its generator seeded from ``seed``).
    """
    if not hours > 0:
        raise ValueError(f"hours must be > 0 (got {hours})")
    plant = Plant(config, seed=seed)
    noise_sd = {
        spec.id: spec.process.quality.noise_sd if spec.process.quality is not None else 0.0
        for spec in config.stations
    }
    recorder = _Recorder(plant, start_ms)
    plant.add_listener(recorder.on_event)
    if explore_every_s is not None:
        explorer = random.Random(f"{seed}/setpoints")  # noqa: S311 - a designed experiment
        plant.env.process(explore_setpoints(plant, explore_every_s, explorer))
    for period, sensors in _sensor_groups(config).items():
        plant.env.process(recorder.sample(period, sensors))
    span_s = hours * 3600.0
    plant.run(until=span_s)
    return join_rows(
        recorder.visits,
        recorder.telemetry(),
        recorder.state_timelines(),
        [spec.id for spec in config.stations],
        start_ms=start_ms,
        end_ms=start_ms + int(span_s * 1000),
        sensor_window_s=sensor_window_s,
        noise_sd=noise_sd,
    )


# -- from a CSV ------------------------------------------------------------------------------
def _check_schema(schema: Mapping[str, ColumnType]) -> list[str]:
    problems = [
        f"required column {name!r} is not declared" for name in REQUIRED if name not in schema
    ]
    for name, kind in schema.items():
        expected = META_TYPES.get(name)
        if expected is not None:
            if kind != expected:
                problems.append(f"column {name!r} must be declared {expected}, not {kind!r}")
        elif SEPARATOR not in name.strip(SEPARATOR):
            problems.append(
                f"column {name!r} is neither {sorted(META_TYPES)} nor a feature "
                f"named <station>{SEPARATOR}<field>"
            )
        elif kind not in ("float", "int"):
            problems.append(f"feature column {name!r} must be float or int, not {kind!r}")
    return problems


def _parse(text: str, kind: ColumnType) -> float | int | str:
    if kind == "str":
        return text
    if kind == "int":
        return int(text)
    value = float(text)
    if math.isinf(value):
        raise ValueError("not finite")
    return value


def from_csv(path: str | Path, schema: Mapping[str, ColumnType]) -> PartDataset:
    """An external CSV with a declared schema (the format is in the module docstring)."""
    problems = _check_schema(schema)
    if problems:
        raise DatasetError(f"{path}: the schema is not usable:\n  - " + "\n  - ".join(problems))
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DatasetError(f"{path}: the file is empty (no header row)")
        header = [name.strip() for name in header]
        missing = [name for name in schema if name not in header]
        if missing:
            raise DatasetError(f"{path}: missing columns: {', '.join(missing)}")
        index = {name: header.index(name) for name in schema}
        values: dict[str, list[float | int | str]] = {name: [] for name in schema}
        mistyped: dict[str, str] = {}
        for line_number, row in enumerate(reader, start=2):
            for name, kind in schema.items():
                text = row[index[name]].strip() if index[name] < len(row) else ""
                if text == "" and name not in REQUIRED and name != PART_ID:
                    values[name].append(math.nan if kind != "str" else "")
                    continue
                try:
                    value = _parse(text, kind)
                    if name == LABEL and value not in (0, 1):
                        raise ValueError("0 or 1")
                except ValueError as error:
                    wanted = "0 or 1" if str(error) == "0 or 1" else kind
                    problem = "is empty" if text == "" else f"{text!r} is not {wanted}"
                    mistyped.setdefault(name, f"line {line_number}: {problem}")
                    value = 0
                values[name].append(value)
    if mistyped:
        details = "; ".join(f"{name} ({where})" for name, where in mistyped.items())
        raise DatasetError(f"{path}: mistyped columns: {details}")
    rows = len(values[LABEL])
    feature_names = tuple(name for name in schema if name not in META_TYPES)
    features = np.array([values[name] for name in feature_names], dtype=np.float64).T
    dataset = PartDataset(
        feature_names,
        features.reshape(rows, len(feature_names)),
        np.array(values[LABEL], dtype=np.int64),
        np.array(values.get(DEFECT_STATION, [""] * rows), dtype=np.str_),
        np.array(values.get(PART_ID, range(rows)), dtype=np.int64),
        np.array(values[TIME], dtype=np.int64),
        np.array(values[ORACLE], dtype=np.float64) if ORACLE in values else None,
    )
    return dataset.take(np.argsort(dataset.left_at_ms, kind="stable"))


__all__ = [
    "DEFAULT_LOOKBACK_S",
    "DEFAULT_SENSOR_WINDOW_S",
    "explore_setpoints",
    "from_csv",
    "from_history",
    "from_simulation",
]
