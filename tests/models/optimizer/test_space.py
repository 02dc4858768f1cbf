"""The decision space: lattices inside the setpoint ranges, and a point as the line."""

from __future__ import annotations

import math

import pytest

from models.optimizer.space import DEFAULT_SETPOINTS, configure, decision_space
from twin.config.line import LineConfig, load_config
from twin.sim.plant import Plant


@pytest.fixture(scope="module")
def line() -> LineConfig:
    return load_config()


def test_the_default_decision_space_spans_each_setpoint_range(line: LineConfig) -> None:
    space = decision_space(line)
    stations = {station.id: station for station in line.stations}
    assert [(d.station, d.name) for d in space.dimensions] == [
        (station, name) for station, name, _ in DEFAULT_SETPOINTS
    ]
    for dimension, (_, _, step) in zip(space.dimensions, DEFAULT_SETPOINTS, strict=True):
        limits = getattr(stations[dimension.station].process, dimension.name)
        assert dimension.values[0] == pytest.approx(limits.min)
        assert dimension.values[-1] == pytest.approx(limits.max)
        gaps = [b - a for a, b in zip(dimension.values, dimension.values[1:], strict=False)]
        assert gaps == pytest.approx([step] * len(gaps))
    assert space.size == math.prod(len(d.values) for d in space.dimensions)
    assert len(space.points()) == space.size


def test_a_lattice_step_that_does_not_divide_the_range_still_ends_at_max(
    line: LineConfig,
) -> None:
    (dimension,) = decision_space(line, [("painting", "temperature_c", 25.0)]).dimensions
    assert dimension.values == (160.0, 185.0, 210.0, 220.0)


@pytest.mark.parametrize(
    ("setpoints", "message"),
    [
        ([("nowhere", "speed", 0.1)], "unknown station"),
        ([("cutting", "temperature_c", 5.0)], "no setpoint"),
        ([("cutting", "speed", 0.0)], "must be > 0"),
        ([], "at least one"),
    ],
)
def test_a_bad_decision_space_is_refused(
    line: LineConfig, setpoints: list[tuple[str, str, float]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        decision_space(line, setpoints)


def test_configure_makes_the_setpoints_the_line_defaults(line: LineConfig) -> None:
    changed = configure(line, {"machining.speed": 1.15, "welding.temperature_c": 80.0})
    plant = Plant(changed, seed=1)
    assert plant.by_id["machining"].setpoints["speed"] == 1.15
    assert plant.by_id["welding"].setpoints["temperature_c"] == 80.0
    assert plant.by_id["cutting"].setpoints == Plant(line, seed=1).by_id["cutting"].setpoints
