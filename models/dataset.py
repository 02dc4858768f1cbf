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

**How a part's points are joined.** History keeps one ``part`` point per part
and station, with the part's ``part_id``. Ids restart at 0 with every run of the
line, so an id alone is not a part. Points are walked in time order: a point at
the first station opens a new part for its id (unless the id's previous point
sent it back there for rework); the part's later points follow until its
terminal point, a scrap anywhere or a good result at the last station. A part
whose first point lies before what was read, or that never left the line, gives
no row. Where a part passed a station twice (rework), its first pass is used:
that is where it failed.

**Stations a part never reached.** A part scrapped at cutting never reached
machining. Leaving those columns empty would give the label away (empty
downstream columns mean an early scrap), so they carry the values of the part
just ahead of it: the last part that passed the failing station before it, at
the stations that one went on to. It went on as this part would have, one part
earlier, and nothing of this part's failure reached it. Two other choices
leak, as tests on the default line showed (a model on telemetry alone beat the
oracle): the part just behind arrives at stations left idle by the gap, and
what the stations did at the moment of the failure is out of step with the
stations the part did pass. A station the part should have passed but has no
point for (a lost message) stays empty (NaN).

**Where sensor windows end.** A good part is handed on only once the next
buffer has room, so its point comes after any time the machine was blocked; a
scrapped part's point comes at once. A window ending at the point would see an
idle, blocked machine for good parts only, and give the label away again. The
window ends when processing ended instead: at the machine's last change of
state out of ``running`` before the point, read from the ``state`` history
(at stations of one machine; a part point does not say which machine of
several processed it).

**The oracle.** ``from_simulation`` takes each station's true defect
probability from the plant's events (``PartFinishedEvent.defect_probability``,
for the same visit the features describe) and averages the quality model's
per-part noise out over the configured ``noise_sd``. The part's oracle is the
probability that some station fails: ``1 - prod(1 - q_station)``. It is the
Bayes-optimal score given the features, the yardstick for a model.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import simpy

from twin.config import SENSOR_NAMES, LineConfig
from twin.contract import SENSOR_FIELDS, STATE_RANK
from twin.history import HistoryStore
from twin.plant import PartFinishedEvent, Plant, PlantEvent, StateChangedEvent

ColumnType = Literal["int", "float", "str"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SEPARATOR = "__"
LABEL = "defect"
TIME = "left_at_ms"
PART_ID = "part_id"
DEFECT_STATION = "defect_station"
ORACLE = "oracle_probability"
# The columns of a CSV that are not features, with the types they must have.
META_TYPES: dict[str, ColumnType] = {
    PART_ID: "int",
    TIME: "int",
    LABEL: "int",
    DEFECT_STATION: "str",
    ORACLE: "float",
}
REQUIRED = (TIME, LABEL)

DEFAULT_SENSOR_WINDOW_S = 120.0
# How far before ``start_ms`` history is read, so that parts leaving early in the
# window are found whole (a part can wait in a buffer through a night).
DEFAULT_LOOKBACK_S = 24 * 3600.0
# How many parts ahead (or behind) a stand-in is looked for.
SEARCH = 50
RUNNING = STATE_RANK["running"]

# Probabilists' Gauss-Hermite nodes: E[f(Z)] for Z ~ Normal(0, 1).
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(24)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


class DatasetError(ValueError):
    """Data that cannot become a dataset; the message names the columns at fault."""


@dataclass(frozen=True, slots=True)
class Visit:
    """A part finishing at a station: one ``part`` point of history, or one plant event."""

    time_ms: int
    station: str
    part_id: int
    outcome: str  # good, scrap or rework
    processing_time_s: float
    process: Mapping[str, float]
    # The true defect probability, from the plant event (simulation only).
    defect_probability: float | None = None


# (station, telemetry field) -> (sample times in ms, ascending; values)
Telemetry = dict[tuple[str, str], tuple[IntArray, FloatArray]]
# (station, machine) -> (state change times in ms, ascending; running after the change)
States = dict[tuple[str, str], tuple[IntArray, npt.NDArray[np.bool_]]]


@dataclass(frozen=True)
class PartDataset:
    """One row per part that left the line; features apart from labels and the oracle."""

    feature_names: tuple[str, ...]
    features: FloatArray  # (parts, features), NaN where unknown
    defect: IntArray
    defect_station: npt.NDArray[np.str_]
    part_id: IntArray
    left_at_ms: IntArray
    oracle_probability: FloatArray | None = None

    def __post_init__(self) -> None:
        rows = len(self.defect)
        if self.features.shape != (rows, len(self.feature_names)):
            raise DatasetError(
                f"features have shape {self.features.shape}, expected "
                f"({rows}, {len(self.feature_names)})"
            )

    def __len__(self) -> int:
        return len(self.defect)

    @property
    def columns(self) -> list[str]:
        names = [PART_ID, TIME, *self.feature_names, LABEL, DEFECT_STATION]
        return [*names, ORACLE] if self.oracle_probability is not None else names

    def column(self, name: str) -> npt.NDArray[Any]:
        if name in self.feature_names:
            return self.features[:, self.feature_names.index(name)]
        meta: dict[str, npt.NDArray[Any] | None] = {
            PART_ID: self.part_id,
            TIME: self.left_at_ms,
            LABEL: self.defect,
            DEFECT_STATION: self.defect_station,
            ORACLE: self.oracle_probability,
        }
        found = meta.get(name)
        if found is None:
            raise KeyError(f"no column {name!r}; the columns are {self.columns}")
        return found

    def take(self, rows: npt.NDArray[np.intp] | slice) -> PartDataset:
        oracle = self.oracle_probability
        return PartDataset(
            self.feature_names,
            self.features[rows],
            self.defect[rows],
            self.defect_station[rows],
            self.part_id[rows],
            self.left_at_ms[rows],
            None if oracle is None else oracle[rows],
        )

    def time_split(self, test_fraction: float = 0.3) -> tuple[PartDataset, PartDataset]:
        """(earlier parts, later parts): train on the past, test on the future."""
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be between 0 and 1 (got {test_fraction})")
        order = np.argsort(self.left_at_ms, kind="stable")
        cut = round(len(self) * (1 - test_fraction))
        return self.take(order[:cut]), self.take(order[cut:])

    def align(self, feature_names: Sequence[str]) -> PartDataset:
        """The same parts with the given feature columns, in that order (NaN where absent):
        to score a dataset with a model trained on another one."""
        columns = [
            self.column(name) if name in self.feature_names else np.full(len(self), np.nan)
            for name in feature_names
        ]
        features = np.column_stack(columns) if columns else np.empty((len(self), 0))
        return PartDataset(
            tuple(feature_names),
            features.astype(np.float64),
            self.defect,
            self.defect_station,
            self.part_id,
            self.left_at_ms,
            self.oracle_probability,
        )

    def csv_schema(self) -> dict[str, ColumnType]:
        """The schema that ``from_csv`` reads this dataset's CSV with."""
        return {name: META_TYPES.get(name, "float") for name in self.columns}

    def to_csv(self, path: str | Path) -> None:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(self.columns)
            for row in range(len(self)):
                writer.writerow([_cell(self.column(name)[row]) for name in self.columns])


def _cell(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else repr(float(value))
    return str(value)


# -- assembly: the join, shared by every builder -----------------------------------------------
def _noisy_probability(probability: FloatArray, noise_sd: float) -> FloatArray:
    """E[sigmoid(logit(p) + Normal(0, noise_sd))]: the defect probability of a part
    before its per-part noise is drawn."""
    inside = (probability > 0) & (probability < 1)
    if noise_sd <= 0 or not inside.any():
        return probability
    clipped = np.clip(probability, 1e-12, 1 - 1e-12)
    log_odds = np.log(clipped / (1 - clipped))[:, None] + noise_sd * _NODES[None, :]
    averaged: FloatArray = (1 / (1 + np.exp(-log_odds))) @ _WEIGHTS
    return np.where(inside, averaged, probability)


@dataclass
class _Part:
    """One part's visits in time order, and the first one at each station."""

    visits: list[Visit]
    left: bool = False  # reached its terminal point
    first_pass: dict[str, Visit] = field(default_factory=dict)

    def add(self, visit: Visit) -> None:
        self.visits.append(visit)
        self.first_pass.setdefault(visit.station, visit)


def _parts(visits: Sequence[Visit], stations: Sequence[str]) -> list[_Part]:
    """Each part's visits, from its first station to its terminal point (the join).
    Parts still in the line at the end are included, with ``left`` False."""
    first, last = stations[0], stations[-1]
    parts: list[_Part] = []
    open_parts: dict[int, _Part] = {}
    for visit in visits:
        part = open_parts.get(visit.part_id)
        back_for_rework = part is not None and part.visits[-1].outcome == "rework"
        if visit.station == first and not back_for_rework:
            # A new part; an unfinished one with this id belonged to an earlier run.
            part = open_parts[visit.part_id] = _Part([])
            parts.append(part)
        elif part is None:
            continue  # its start lies before what was read
        part.add(visit)
        if visit.outcome == "scrap" or (visit.outcome == "good" and visit.station == last):
            part.left = True
            del open_parts[visit.part_id]
    return parts


class _StandIns:
    """For a station a part never reached, the visit of the part just ahead of it.

    The part that passed the failing station just before this one went on as
    this one would have, one part earlier, and nothing of this one's failure
    reached it. (The part just behind would do worse: it arrives at stations
    left idle by the failure, which gives the label away; so does what the
    station did at the moment of the failure, which is out of step with the
    stations the part did pass.) The part just behind is the fallback at the
    very start of the data.
    """

    def __init__(self, parts: Sequence[_Part], stations: Sequence[str]) -> None:
        self.passed: dict[str, list[_Part]] = {station: [] for station in stations}
        for part in parts:
            for station, visit in part.first_pass.items():
                if visit.outcome == "good":
                    self.passed[station].append(part)
        self.times: dict[str, IntArray] = {}
        for station, passed in self.passed.items():
            passed.sort(key=lambda part: part.first_pass[station].time_ms)  # noqa: B023
            self.times[station] = np.array(
                [part.first_pass[station].time_ms for part in passed], dtype=np.int64
            )

    def find(self, part: _Part, failed_at: str, station: str) -> Visit | None:
        passed = self.passed[failed_at]
        at = int(np.searchsorted(self.times[failed_at], part.first_pass[failed_at].time_ms))
        for neighbours in (reversed(passed[max(0, at - SEARCH) : at]), passed[at : at + SEARCH]):
            for neighbour in neighbours:
                visit = neighbour.first_pass.get(station)
                if visit is not None:
                    return visit
        return None


def _feature_names(
    visits: Sequence[Visit], telemetry: Telemetry, stations: Sequence[str]
) -> list[tuple[str, str, str]]:
    """(column, station, source) per feature, in station order. The source is
    ``process:<name>``, ``processing_time_s`` or ``telemetry:<field>``."""
    process_names: dict[str, set[str]] = {station: set() for station in stations}
    for visit in visits:
        if visit.station in process_names:
            process_names[visit.station].update(visit.process)
    found: list[tuple[str, str, str]] = []
    for station in stations:
        prefix = f"{station}{SEPARATOR}"
        found += [(f"{prefix}{n}", station, f"process:{n}") for n in sorted(process_names[station])]
        found.append((f"{prefix}processing_time_s", station, "processing_time_s"))
        found += [
            (f"{prefix}{name}_mean", station, f"telemetry:{name}")
            for name in SENSOR_FIELDS
            if (station, name) in telemetry
        ]
    return found


def _window_means(
    samples: tuple[IntArray, FloatArray], ends_ms: IntArray, window_ms: int
) -> FloatArray:
    """Mean of the samples in (end - window, end] for each end; NaN where there are none."""
    times, values = samples
    cumulative = np.concatenate(([0.0], np.cumsum(values)))
    high = np.searchsorted(times, ends_ms, side="right")
    low = np.searchsorted(times, ends_ms - window_ms, side="right")
    counts = high - low
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (cumulative[high] - cumulative[low]) / counts
    return np.where(counts > 0, means, np.nan)


def _processing_ends(
    timeline: tuple[IntArray, npt.NDArray[np.bool_]] | None, finished_ms: IntArray
) -> IntArray:
    """When processing ended for each part point: the machine's last change out of
    ``running`` before the point if it was not running then, else the point's time
    (module docstring: where sensor windows end)."""
    if timeline is None or len(timeline[0]) == 0:
        return finished_ms
    times, running = timeline
    # The last change strictly before the point (the machine moves on at its time).
    last = np.searchsorted(times, finished_ms, side="left") - 1
    latest_running = np.maximum.accumulate(np.where(running, np.arange(len(times)), -1))
    ran = latest_running[np.maximum(last, 0)]
    left_running = times[np.minimum(ran + 1, len(times) - 1)]
    stopped = (last >= 0) & ~running[np.maximum(last, 0)] & (ran >= 0)
    return np.where(stopped, left_running, finished_ms)


def _feature_matrix(
    chosen: Sequence[Sequence[Visit | None]],
    columns: Sequence[tuple[str, str, str]],
    telemetry: Telemetry,
    states: States,
    stations: Sequence[str],
    sensor_window_s: float,
) -> FloatArray:
    """The features of each row from the visits chosen for it (NaN where there is none)."""
    features = np.full((len(chosen), len(columns)), np.nan)
    window_ms = int(sensor_window_s * 1000)
    # At a station of several machines, which one a part used is not in its point.
    machines: dict[str, list[tuple[IntArray, npt.NDArray[np.bool_]]]] = {}
    for (station, _machine), timeline in states.items():
        machines.setdefault(station, []).append(timeline)
    for slot, station in enumerate(stations):
        rows = np.array(
            [row for row, visits in enumerate(chosen) if visits[slot] is not None], dtype=np.intp
        )
        here = [visit for visits in chosen if (visit := visits[slot]) is not None]
        single = found[0] if len(found := machines.get(station, [])) == 1 else None
        ends = _processing_ends(single, np.array([v.time_ms for v in here], dtype=np.int64))
        for index, (_name, column_station, source) in enumerate(columns):
            if column_station != station:
                continue
            if source.startswith("telemetry:"):
                samples = telemetry[(station, source.removeprefix("telemetry:"))]
                values = _window_means(samples, ends, window_ms)
            elif source == "processing_time_s":
                values = np.array([visit.processing_time_s for visit in here])
            else:
                name = source.removeprefix("process:")
                values = np.array([visit.process.get(name, np.nan) for visit in here])
            features[rows, index] = values
    return features


def _oracle(
    chosen: Sequence[Sequence[Visit | None]],
    stations: Sequence[str],
    noise_sd: Mapping[str, float],
) -> FloatArray:
    """The probability that some station fails the part: 1 - prod(1 - q_station)."""
    survive = np.ones(len(chosen))
    for slot, station in enumerate(stations):
        probability = np.array(
            [
                visit.defect_probability
                if visit is not None and visit.defect_probability is not None
                else 0.0
                for visit in (visits[slot] for visits in chosen)
            ]
        )
        survive *= 1 - _noisy_probability(probability, noise_sd.get(station, 0.0))
    return 1 - survive


def _assemble(
    visits: Sequence[Visit],
    telemetry: Telemetry,
    states: States,
    stations: Sequence[str],
    *,
    start_ms: int,
    end_ms: int,
    sensor_window_s: float,
    noise_sd: Mapping[str, float] | None = None,
) -> PartDataset:
    """Join visits into parts and parts into rows (see the module docstring)."""
    if not stations:
        raise DatasetError("no stations: the history holds no part points for this span")
    position = {station: index for index, station in enumerate(stations)}
    visits = sorted(
        (visit for visit in visits if visit.station in position),
        key=lambda visit: (visit.time_ms, position[visit.station]),
    )
    columns = _feature_names(visits, telemetry, stations)
    parts = _parts(visits, stations)
    stand_ins = _StandIns(parts, stations)
    chosen: list[list[Visit | None]] = []  # per row, the visit each station's values come from
    defect: list[int] = []
    defect_station: list[str] = []
    part_ids: list[int] = []
    left_at: list[int] = []
    for part in parts:
        exit_visit = part.visits[-1]
        if not part.left or not start_ms <= exit_visit.time_ms < end_ms:
            continue
        reached = position[exit_visit.station]
        row: list[Visit | None] = []
        for station in stations:
            visit = part.first_pass.get(station)
            if visit is None and position[station] > reached:
                visit = stand_ins.find(part, exit_visit.station, station)
            row.append(visit)
        failures = [visit for visit in part.visits if visit.outcome != "good"]
        chosen.append(row)
        defect.append(int(bool(failures)))
        defect_station.append(failures[0].station if failures else "")
        part_ids.append(exit_visit.part_id)
        left_at.append(exit_visit.time_ms)

    features = _feature_matrix(chosen, columns, telemetry, states, stations, sensor_window_s)
    oracle_probability = None if noise_sd is None else _oracle(chosen, stations, noise_sd)
    order = np.lexsort((np.array(part_ids, dtype=np.int64), np.array(left_at, dtype=np.int64)))
    dataset = PartDataset(
        tuple(name for name, _station, _source in columns),
        features,
        np.array(defect, dtype=np.int64),
        np.array(defect_station, dtype=np.str_),
        np.array(part_ids, dtype=np.int64),
        np.array(left_at, dtype=np.int64),
        oracle_probability,
    )
    return dataset.take(order)


# -- from history ----------------------------------------------------------------------------
def _outcome(fields: Mapping[str, float]) -> str:
    if fields.get("scrap"):
        return "scrap"
    if fields.get("rework"):
        return "rework"
    return "good"


def _station_order(visits: Sequence[Visit]) -> list[str]:
    """The line's station order as the parts show it: stations by the median position
    of a part's first point there in that part's sequence of points."""
    ranks: dict[str, list[int]] = {}
    seen: dict[int, list[str]] = {}
    for visit in sorted(visits, key=lambda visit: visit.time_ms):
        path = seen.setdefault(visit.part_id, [])
        if visit.station not in path:
            ranks.setdefault(visit.station, []).append(len(path))
            path.append(visit.station)
    return sorted(ranks, key=lambda station: (float(np.median(ranks[station])), station))


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
            outcome=_outcome(fields),
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
    order = list(stations) if stations is not None else _station_order(visits)
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
    return _assemble(
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
    return _assemble(
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
    "DatasetError",
    "PartDataset",
    "Visit",
    "explore_setpoints",
    "from_csv",
    "from_history",
    "from_simulation",
]
