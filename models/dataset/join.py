"""The join: a line's part points (or plant events) become one row per part.

``models.dataset.parts`` reads what the twin knows (history, or a batch simulation)
into ``Visit``s, telemetry series and machine state timelines; ``join_rows``
turns them into rows of features, labels and, for a simulation, the oracle.
``PartDataset`` and its builders are in ``models.dataset.parts``, which imports this
module; this module does not import it.

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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from models.dataset.rows import DatasetError, FloatArray, IntArray, PartDataset
from twin.contract import SENSOR_FIELDS

# Feature columns are named <station><SEPARATOR><field>.
SEPARATOR = "__"
# How many parts ahead (or behind) a stand-in is looked for.
SEARCH = 50

# Probabilists' Gauss-Hermite nodes: E[f(Z)] for Z ~ Normal(0, 1).
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(24)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


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
            passed.sort(key=lambda part: part.first_pass[station].time_ms)
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
    high = np.searchsorted(times, ends_ms, side="right")
    low = np.searchsorted(times, ends_ms - window_ms, side="right")
    counts = high - low
    if len(ends_ms) == 0:
        return np.empty(0, dtype=np.float64)
    # Each window summed on its own: the same samples give the same mean, bit for
    # bit, wherever a read starts (differences of a running sum vary in the last
    # bits, and a tree's split can fall between such values: live micro-batches
    # would then score differently from one batch). reduceat sums [low, high) at
    # the even positions; a 0 appended keeps the index len(values) valid.
    bounds = np.column_stack([low, high]).ravel()
    sums = np.add.reduceat(np.append(values, 0.0), bounds)[::2]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
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


def join_rows(
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
    """Join visits into parts and parts into rows (see the module docstring): the parts
    that left in [start_ms, end_ms). ``stations`` is the line's order; with
    ``noise_sd`` (per station) the rows carry the oracle, from the visits'
    ``defect_probability``."""
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
    return PartDataset(
        tuple(name for name, _station, _source in columns),
        features[order],
        np.array(defect, dtype=np.int64)[order],
        np.array(defect_station, dtype=np.str_)[order],
        np.array(part_ids, dtype=np.int64)[order],
        np.array(left_at, dtype=np.int64)[order],
        None if oracle_probability is None else oracle_probability[order],
    )


def outcome_of(fields: Mapping[str, float]) -> str:
    """A ``part`` point's outcome (good, scrap or rework) from its fields."""
    if fields.get("scrap"):
        return "scrap"
    if fields.get("rework"):
        return "rework"
    return "good"


def station_order(visits: Sequence[Visit]) -> list[str]:
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


__all__ = [
    "SEPARATOR",
    "States",
    "Telemetry",
    "Visit",
    "join_rows",
    "outcome_of",
    "station_order",
]
