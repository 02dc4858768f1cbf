"""The decision space of the yield optimiser: which setpoints it chooses, and from what.

A decision is a set of process setpoints (a station's ``speed`` or
``temperature_c``), each on a lattice of values inside its configured range: the
lattice keeps the search finite, so that a search never evaluates a point twice
and a brute force can evaluate them all. ``configure`` turns a point into the
line with those setpoints as its defaults. See docs/optimizer.md.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from twin.config.line import LineConfig, Setpoint, with_changes

# Setpoints by "station.name" key, e.g. {"machining.speed": 1.15}.
Setpoints = dict[str, float]

# (station, setpoint, lattice step)
Choice = tuple[str, str, float]

# The default decision space of the default line: (station, setpoint, lattice step).
# The bottleneck's speed trades throughput against defects; the welding
# temperature is a quality window. docs/optimizer.md explains why the other
# setpoints stay at their defaults.
DEFAULT_SETPOINTS: tuple[Choice, ...] = (
    ("machining", "speed", 0.05),
    ("welding", "temperature_c", 5.0),
)
# The setpoints a station's ``process`` may give a range (twin.config.line.Process).
SETPOINT_NAMES = ("speed", "temperature_c")
# Without a step given, a setpoint's lattice step is the smallest round one (1, 2,
# 2.5 or 5 times a power of ten) that cuts its range into at most this many steps.
MAX_LATTICE_STEPS = 12
_ROUND_MANTISSAS = (1.0, 2.0, 2.5, 5.0)
# A line's default space (every setpoint with a range) may have this many lattice
# points at most; past that, the user chooses (``--vars``).
MAX_DEFAULT_POINTS = 400


class Dimension(BaseModel):
    """One setpoint of one station and the lattice of values it may take."""

    model_config = ConfigDict(frozen=True)

    station: str
    name: str
    values: tuple[float, ...]

    @property
    def key(self) -> str:
        return f"{self.station}.{self.name}"


class DecisionSpace(BaseModel):
    """The setpoints the optimiser chooses, each on its own lattice; a point is one
    value of each."""

    model_config = ConfigDict(frozen=True)

    dimensions: tuple[Dimension, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(dimension.key for dimension in self.dimensions)

    @property
    def size(self) -> int:
        return math.prod(len(dimension.values) for dimension in self.dimensions)

    def points(self) -> list[Setpoints]:
        """Every point of the lattice, the last dimension varying fastest."""
        keys = self.keys
        grids = [dimension.values for dimension in self.dimensions]
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grids)]

    def to_unit(self, points: Sequence[Mapping[str, float]]) -> NDArray[np.float64]:
        """Points scaled to the unit cube, dimension by dimension (the surrogate's input)."""
        columns = []
        for dimension in self.dimensions:
            low, high = min(dimension.values), max(dimension.values)
            span = high - low if high > low else 1.0
            columns.append([(point[dimension.key] - low) / span for point in points])
        return np.asarray(columns, dtype=np.float64).T.reshape(len(points), len(columns))


def _lattice(low: float, high: float, step: float) -> tuple[float, ...]:
    count = math.floor((high - low) / step + 1e-9)
    values = [round(low + index * step, 10) for index in range(count + 1)]
    if values[-1] < high - 1e-9:
        values.append(high)
    return tuple(values)


def round_step(low: float, high: float) -> float:
    """The smallest round step (1, 2, 2.5 or 5 times a power of ten) that cuts
    ``low`` to ``high`` into at most ``MAX_LATTICE_STEPS`` steps."""
    span = high - low
    if not span > 0:
        raise ValueError(f"a range needs min < max (got {low:g} to {high:g})")
    exponent = math.floor(math.log10(span / MAX_LATTICE_STEPS)) - 1
    while True:
        for mantissa in _ROUND_MANTISSAS:
            step = round(mantissa * 10.0**exponent, 12)
            if span / step <= MAX_LATTICE_STEPS + 1e-9:
                return step
        exponent += 1


def ranged_setpoints(config: LineConfig) -> list[tuple[str, str]]:
    """Every (station, setpoint) of the line with a range to choose from (min < max),
    in the line's order."""
    found = []
    for station in config.stations:
        for name in SETPOINT_NAMES:
            setpoint: Setpoint | None = getattr(station.process, name)
            if setpoint is not None and setpoint.min < setpoint.max:
                found.append((station.id, name))
    return found


def default_setpoints(config: LineConfig) -> tuple[Choice, ...]:
    """The decision space a line gets when the user names none: on the default line
    (the line with its setpoints) ``DEFAULT_SETPOINTS``; on any other, every setpoint
    with a range, each at its round step, when that makes at most
    ``MAX_DEFAULT_POINTS`` lattice points. ValueError says what to do otherwise."""
    ranged = ranged_setpoints(config)
    if all((station, name) in ranged for station, name, _ in DEFAULT_SETPOINTS):
        return DEFAULT_SETPOINTS
    if not ranged:
        raise ValueError(
            "the line has no setpoint with a range to optimize: give a station's "
            "process.speed or process.temperature_c a min below its max"
        )
    chosen = []
    for station, name in ranged:
        chosen.append((station, name, round_step(*_range(config, station, name))))
    size = math.prod(len(_lattice(*_range(config, s, n), step)) for s, n, step in chosen)
    if size > MAX_DEFAULT_POINTS:
        keys = ", ".join(f"{station}.{name}" for station, name in ranged)
        raise ValueError(
            f"its {len(ranged)} setpoints with a range ({keys}) make {size:,} lattice "
            f"points, more than {MAX_DEFAULT_POINTS}: choose some (--vars, or vars)"
        )
    return tuple(chosen)


def _range(config: LineConfig, station_id: str, name: str) -> tuple[float, float]:
    station = next(station for station in config.stations if station.id == station_id)
    setpoint: Setpoint = getattr(station.process, name)
    return setpoint.min, setpoint.max


def parse_vars(names: Sequence[str], config: LineConfig) -> tuple[Choice, ...]:
    """The decision space a user names: ``station.setpoint`` or
    ``station.setpoint:step`` each (``printer.speed``, ``reflow.temperature_c:2.5``),
    the step a round one when not given. ValueError names the entry and the problem."""
    stations = [station.id for station in config.stations]
    ranged = ranged_setpoints(config)
    chosen: list[Choice] = []
    for raw in names:
        entry = raw.strip()
        key, colon, step_text = entry.partition(":")
        station, _, name = key.partition(".")
        if not station or not name:
            raise ValueError(f"{entry!r}: expected station.setpoint, e.g. {_example(ranged)}")
        if station not in stations:
            raise ValueError(f"{key!r}: unknown station {station!r}; stations are {stations}")
        if (station, name) not in ranged:
            own = [f"{s}.{n}" for s, n in ranged if s == station]
            raise ValueError(
                f"{key!r}: station {station!r} has no setpoint {name!r} with a range; "
                + (f"its setpoints with a range are {own}" if own else "it has none")
            )
        if any((s, n) == (station, name) for s, n, _ in chosen):
            raise ValueError(f"{key!r}: named twice")
        low, high = _range(config, station, name)
        if colon:
            try:
                step = float(step_text)
            except ValueError:
                raise ValueError(f"{entry!r}: the step {step_text!r} is not a number") from None
            if not (math.isfinite(step) and step > 0):
                raise ValueError(f"{entry!r}: the step must be a finite number > 0")
        else:
            step = round_step(low, high)
        chosen.append((station, name, step))
    if not chosen:
        raise ValueError(f"name at least one setpoint, e.g. {_example(ranged)}")
    return tuple(chosen)


def _example(ranged: Sequence[tuple[str, str]]) -> str:
    return ",".join(f"{s}.{n}" for s, n in ranged[:2]) or "station.speed"


def decision_space(config: LineConfig, setpoints: Sequence[Choice] | None = None) -> DecisionSpace:
    """The lattice of ``(station, setpoint, step)`` within each setpoint's min and max;
    without ``setpoints``, the line's default (``default_setpoints``)."""
    if setpoints is None:
        setpoints = default_setpoints(config)
    stations = {station.id: station for station in config.stations}
    dimensions = []
    for station_id, name, step in setpoints:
        station = stations.get(station_id)
        if station is None:
            raise ValueError(f"unknown station {station_id!r}; stations are {list(stations)}")
        setpoint = getattr(station.process, name) if name in SETPOINT_NAMES else None
        if setpoint is None:
            raise ValueError(f"station {station_id!r} has no setpoint {name!r}")
        if not step > 0:
            raise ValueError(f"the lattice step of {station_id}.{name} must be > 0 (got {step})")
        dimensions.append(
            Dimension(
                station=station_id, name=name, values=_lattice(setpoint.min, setpoint.max, step)
            )
        )
    if not dimensions:
        raise ValueError("the decision space needs at least one setpoint")
    return DecisionSpace(dimensions=tuple(dimensions))


def configure(config: LineConfig, setpoints: Mapping[str, float]) -> LineConfig:
    """The line with these setpoints as its defaults (validated against the ranges)."""
    index = {station.id: position for position, station in enumerate(config.stations)}
    changes: dict[str, float] = {}
    for key, value in setpoints.items():
        station, _, name = key.partition(".")
        if station not in index or not name:
            raise ValueError(f"unknown setpoint {key!r}; use 'station.setpoint'")
        changes[f"stations.{index[station]}.process.{name}.default"] = value
    return with_changes(config, changes, source="optimizer setpoints")
