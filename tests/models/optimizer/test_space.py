"""The decision space: lattices inside the setpoint ranges, and a point as the line."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from models.optimizer.space import (
    DEFAULT_SETPOINTS,
    MAX_DEFAULT_POINTS,
    MAX_LATTICE_STEPS,
    configure,
    decision_space,
    parse_vars,
    ranged_setpoints,
    round_step,
)
from twin.config.line import LineConfig, load_config, with_changes
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


# -- any line's decision space -----------------------------------------------------------------
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "lines"
TEMPLATES = sorted(EXAMPLES.glob("*.yaml"))


def test_every_template_has_a_default_space_of_its_own_ranged_setpoints() -> None:
    assert TEMPLATES, "no line templates found"
    for path in TEMPLATES:
        config = load_config(path)
        ranged = ranged_setpoints(config)
        space = decision_space(config)
        assert [(d.station, d.name) for d in space.dimensions] == ranged, path.name
        for dimension in space.dimensions:
            station = next(s for s in config.stations if s.id == dimension.station)
            limits = getattr(station.process, dimension.name)
            assert limits.min < limits.max
            assert dimension.values[0] == pytest.approx(limits.min)
            assert dimension.values[-1] == pytest.approx(limits.max)
            assert 2 <= len(dimension.values) <= MAX_LATTICE_STEPS + 1
        assert space.size <= MAX_DEFAULT_POINTS


@pytest.mark.parametrize(
    ("low", "high"),
    [(0.7, 1.3), (0.7, 1.4), (225, 260), (0.85, 1.1), (80, 92), (1, 1.001), (0, 7e5)],
)
def test_a_round_step_is_the_smallest_round_one_within_the_step_count(
    low: float, high: float
) -> None:
    step = round_step(low, high)
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m) for m in (1.0, 2.0, 2.5, 5.0))
    assert (high - low) / step <= MAX_LATTICE_STEPS + 1e-9
    # The next smaller round step would cut the range into too many steps.
    smaller = [
        m * 10.0**e
        for e in range(math.floor(math.log10(step)) - 1, math.floor(math.log10(step)) + 1)
        for m in (1.0, 2.0, 2.5, 5.0)
        if m * 10.0**e < step * (1 - 1e-9)
    ]
    assert all((high - low) / candidate > MAX_LATTICE_STEPS for candidate in smaller)


def test_named_setpoints_take_their_order_and_an_optional_step() -> None:
    config = load_config(EXAMPLES / "smt.yaml")
    chosen = parse_vars(["reflow.temperature_c:2.5", " printer.speed "], config)
    assert [(s, n) for s, n, _ in chosen] == [("reflow", "temperature_c"), ("printer", "speed")]
    assert chosen[0][2] == 2.5
    printer = next(s for s in config.stations if s.id == "printer").process.speed
    assert chosen[1][2] == round_step(printer.min, printer.max)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["nowhere.speed"], "'nowhere.speed': unknown station 'nowhere'"),
        (["printer.sped"], "'printer.sped': station 'printer' has no setpoint 'sped'"),
        (["printer.temperature_c"], "its setpoints with a range are ['printer.speed']"),
        (["printer"], "'printer': expected station.setpoint"),
        (["printer.speed", "printer.speed"], "named twice"),
        (["printer.speed:fast"], "the step 'fast' is not a number"),
        (["printer.speed:-1"], "finite number > 0"),
        (["printer.speed:inf"], "finite number > 0"),
        ([], "at least one"),
    ],
)
def test_a_bad_name_is_refused_naming_it(names: list[str], message: str) -> None:
    config = load_config(EXAMPLES / "smt.yaml")
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_vars(names, config)


def test_a_line_without_ranges_or_with_too_many_says_what_to_do(line: LineConfig) -> None:
    cell = load_config(EXAMPLES / "cnc_cell.yaml")
    ((station, name),) = ranged_setpoints(cell)
    index = [s.id for s in cell.stations].index(station)
    fixed = with_changes(
        cell, {f"stations.{index}.process.{name}": {"min": 1.0, "max": 1.0, "default": 1.0}}
    )
    assert ranged_setpoints(fixed) == []
    with pytest.raises(ValueError, match="no setpoint with a range"):
        decision_space(fixed)
    # The default line without one of its two chosen setpoints: every other ranged
    # one makes far too many lattice points.
    machining = [s.id for s in line.stations].index("machining")
    others = with_changes(
        line, {f"stations.{machining}.process.speed": {"min": 1, "max": 1, "default": 1}}
    )
    assert len(ranged_setpoints(others)) == len(ranged_setpoints(line)) - 1
    with pytest.raises(ValueError, match="choose some"):
        decision_space(others)
