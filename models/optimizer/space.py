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

from twin.config.line import LineConfig, with_changes

# Setpoints by "station.name" key, e.g. {"machining.speed": 1.15}.
Setpoints = dict[str, float]

# The default decision space of the default line: (station, setpoint, lattice step).
# The bottleneck's speed trades throughput against defects; the welding
# temperature is a quality window. docs/optimizer.md explains why the other
# setpoints stay at their defaults.
DEFAULT_SETPOINTS: tuple[tuple[str, str, float], ...] = (
    ("machining", "speed", 0.05),
    ("welding", "temperature_c", 5.0),
)


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


def decision_space(
    config: LineConfig, setpoints: Sequence[tuple[str, str, float]] = DEFAULT_SETPOINTS
) -> DecisionSpace:
    """The lattice of ``(station, setpoint, step)`` within each setpoint's min and max."""
    stations = {station.id: station for station in config.stations}
    dimensions = []
    for station_id, name, step in setpoints:
        station = stations.get(station_id)
        if station is None:
            raise ValueError(f"unknown station {station_id!r}; stations are {list(stations)}")
        limits = {"speed": station.process.speed, "temperature_c": station.process.temperature_c}
        setpoint = limits.get(name)
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
