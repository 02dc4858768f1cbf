"""Sweeps: designs, factor paths, backends that agree to the bit, the CONWIP
line against theory, the Pareto front (the command, its report and Ctrl-C:
tests/api/cli/test_sweep.py)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest

from twin.config.line import LineConfig, load_config
from twin.experiments.doe import (
    DesignConfigs,
    SweepSpec,
    SweepSpecError,
    design_points,
    parse_spec,
)
from twin.experiments.sweep import SerialBackend, pareto_front, plan_sweep, run_sweep
from twin.experiments.sweep_backends import DaskBackend, ProcessPoolBackend

REPO = Path(__file__).resolve().parents[3]
CONWIP = REPO / "examples" / "validation" / "conwip_exponential.yaml"
FAMILY_CONFIDENCE = 0.95


def spec(**fields: Any) -> SweepSpec:
    return parse_spec(fields)


def small_spec() -> SweepSpec:
    return spec(
        factors=[
            {"name": "buffers.welding", "levels": [2, 6]},
            {"name": "repair_crew.size", "levels": [1, 2]},
        ],
        replications=2,
        hours=3,
        warmup_hours=0.5,
        seed=11,
    )


# -- designs ------------------------------------------------------------------------------
def test_a_grid_has_every_combination_of_levels() -> None:
    grid = spec(
        factors=[
            {"name": "buffers.welding", "levels": [2, 4, 8]},
            {"name": "repair_crew.size", "levels": [1, 2]},
            {"name": "stations.machining.setpoints.speed", "low": 0.8, "high": 1.2, "steps": 4},
        ]
    )
    points = design_points(grid)
    assert len(points) == 3 * 2 * 4
    combinations = {tuple(point.values.values()) for point in points}
    assert len(combinations) == len(points)
    assert {point.values["buffers.welding"] for point in points} == {2, 4, 8}
    assert [point.index for point in points] == list(range(len(points)))


def test_a_latin_hypercube_puts_one_point_in_each_stratum_of_each_factor() -> None:
    points = 9
    ranges = {
        "stations.machining.setpoints.speed": (0.7, 1.4),
        "stations.welding.setpoints.temperature_c": (60.0, 110.0),
        "stations.welding.failures.mtbf_h": (1.0, 12.0),
    }
    lhs = spec(
        design="lhs",
        points=points,
        factors=[{"name": name, "low": low, "high": high} for name, (low, high) in ranges.items()],
    )
    design = design_points(lhs)
    assert len(design) == points
    for name, (low, high) in ranges.items():
        strata = sorted(
            int((float(point.values[name]) - low) / (high - low) * points) for point in design
        )
        assert strata == list(range(points)), name


@pytest.mark.parametrize("design", ["lhs", "random"])
def test_the_same_seed_gives_the_same_design(design: str) -> None:
    def make(seed: int) -> SweepSpec:
        return spec(
            design=design,
            points=6,
            seed=seed,
            factors=[
                {"name": "buffers.welding", "low": 1, "high": 10, "integer": True},
                {"name": "stations.machining.setpoints.speed", "low": 0.7, "high": 1.4},
                {"name": "release.policy", "levels": ["saturated", "conwip"]},
            ],
        )

    assert design_points(make(3)) == design_points(make(3))
    assert design_points(make(3)) != design_points(make(4))
    for point in design_points(make(3)):
        assert isinstance(point.values["buffers.welding"], int)
        assert 1 <= point.values["buffers.welding"] <= 10


def test_an_unknown_factor_is_named_in_the_error() -> None:
    bad = spec(
        factors=[
            {"name": "buffers.welding", "levels": [2]},
            {"name": "buffers.weldng", "levels": [2, 4]},
        ]
    )
    with pytest.raises(SweepSpecError, match=r"factors\[1\] \(buffers\.weldng\).*'welding'"):
        plan_sweep(bad, load_config())


@pytest.mark.parametrize(
    ("factor", "message"),
    [
        (
            {"name": "stations.cutting.setpoints.temperature_c", "levels": [80]},
            "no 'temperature_c'",
        ),
        ({"name": "stations.welding.failures", "levels": [1]}, "a section, not a value"),
        ({"name": "stations.machining.machines", "low": 1, "high": 3}, "integer: true"),
        ({"name": "stations.machining.setpoints.speed", "levels": [2.0]}, "min <= default <= max"),
        ({"name": "release.wip_cap", "levels": [4]}, "not saturated"),
    ],
)
def test_a_factor_that_does_not_fit_the_line_is_named(factor: dict[str, Any], message: str) -> None:
    with pytest.raises(SweepSpecError, match=message) as raised:
        DesignConfigs(spec(factors=[factor]), load_config())
    assert f"factors[0] ({factor['name']})" in str(raised.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"factors": [{"name": "x", "levels": [1], "low": 0, "high": 1}]}, "not both"),
        ({"factors": [{"name": "x", "low": 2, "high": 1}]}, "low < high"),
        ({"factors": [{"name": "x", "levels": [1]}], "design": "lhs"}, "needs points"),
        ({"factors": [{"name": "x", "levels": [1]}], "points": 3}, "points applies"),
        ({"factors": [{"name": "x", "levels": [1]}], "replicatons": 3}, "replicatons: unknown"),
        ({"factors": []}, "factors"),
    ],
)
def test_a_bad_spec_names_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SweepSpecError, match=message):
        parse_spec(fields)


def test_friendly_names_change_the_right_config_fields() -> None:
    sweep = spec(
        factors=[
            {"name": "stations.machining.machines", "levels": [2]},
            {"name": "buffers.welding", "levels": ["unlimited"]},
            {"name": "repair_crew.size", "levels": [3]},
            {"name": "stations.welding.setpoints.temperature_c", "levels": [90.0]},
            {"name": "stations.welding.failures.mtbf_h", "levels": [2.5]},
            {"name": "stations.painting.failures.mttr_s", "levels": [300.0]},
            {"name": "release.policy", "levels": ["conwip"]},
            {"name": "release.wip_cap", "levels": [12]},
        ]
    )
    plan = plan_sweep(sweep, load_config())
    line = plan.configs[0]
    machining, welding, painting = line.stations[1], line.stations[2], line.stations[3]
    assert machining.machines == 2
    assert welding.unbounded_buffer
    assert line.repair_crew is not None
    assert line.repair_crew.size == 3
    assert welding.process.temperature_c is not None
    assert welding.process.temperature_c.default == 90.0
    assert welding.failures is not None
    assert welding.failures.mtbf_s == 2.5 * 3600
    assert painting.failures is not None
    assert painting.failures.mttr_s == 300.0
    assert (line.release.policy, line.release.wip_cap) == ("conwip", 12)


def test_a_saturated_level_drops_the_wip_cap() -> None:
    sweep = spec(
        factors=[
            {"name": "release.policy", "levels": ["conwip", "saturated"]},
            {"name": "release.wip_cap", "levels": [6]},
        ]
    )
    releases = [config.release for config in plan_sweep(sweep, load_config()).configs]
    assert [(release.policy, release.wip_cap) for release in releases] == [
        ("conwip", 6),
        ("saturated", None),
    ]


# -- backends -------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.integration
def test_every_backend_gives_identical_results() -> None:
    line = load_config()
    sweep = small_spec()
    serial = run_sweep(sweep, line, SerialBackend())
    assert len(serial.runs) == 4 * 2
    assert len({run.seed for run in serial.runs}) == len(serial.runs)
    for backend in (
        ProcessPoolBackend(workers=1),
        ProcessPoolBackend(workers=2),
        DaskBackend(workers=2),  # a real distributed.LocalCluster of 2 worker processes
    ):
        assert run_sweep(sweep, line, backend) == serial, type(backend).__name__


def test_run_seeds_depend_on_the_point_and_replication_only() -> None:
    sweep = small_spec()
    tasks = plan_sweep(sweep, load_config()).tasks
    again = plan_sweep(sweep, load_config()).tasks
    assert [task.seed for task in tasks] == [task.seed for task in again]
    common = plan_sweep(
        sweep.model_copy(update={"common_random_numbers": True}), load_config()
    ).tasks
    by_replication = {task.replication: task.seed for task in common if task.point == 0}
    assert all(task.seed == by_replication[task.replication] for task in common)


# -- the CONWIP line against theory --------------------------------------------------------
@pytest.mark.slow
def test_the_sweeps_intervals_cover_the_conwip_practical_worst_case() -> None:
    """Factory Physics' practical worst case, TH(w) = w/(W0+w-1) rb, CT(w) = T0+(w-1)/rb,
    inside the sweep's own intervals at every w. As in test_validation.py, the
    intervals are widened by Bonferroni so that the whole family holds at 95%."""
    line = load_config(CONWIP)
    times = [float(station.processing_time.mean) for station in line.stations]
    assert len(set(times)) == 1, "the practical worst case needs a balanced line"
    rb = 1 / max(times)
    t0 = sum(times)
    w0 = rb * t0
    wips = [1, 2, 4, 8]
    family = 2 * len(wips)
    sweep = spec(
        factors=[{"name": "release.wip_cap", "levels": wips}],
        replications=8,
        hours=1.5,
        warmup_hours=0.1,
        seed=20261128,
        confidence=1 - (1 - FAMILY_CONFIDENCE) / family,
    )
    result = run_sweep(sweep, line, ProcessPoolBackend(workers=2))
    assert all(run.littles_law_holds for run in result.runs)
    for point in result.points:
        w = int(point.values["release.wip_cap"])
        theory = {
            "throughput_per_h": w / (w0 + w - 1) * rb * 3600,
            "cycle_time_s": t0 + (w - 1) / rb,
        }
        for name, expected in theory.items():
            found = point.kpis[name]
            assert found.low is not None
            assert found.high is not None
            assert found.low <= expected <= found.high, (
                f"w={w} {name}: theory {expected:.5g} outside "
                f"[{found.low:.5g}, {found.high:.5g}] (mean {found.mean:.5g})"
            )


# -- Pareto front ------------------------------------------------------------------------------
def dominates(a: list[float], b: list[float], maximise: list[bool]) -> bool:
    better = [x > y if up else x < y for x, y, up in zip(a, b, maximise, strict=True)]
    no_worse = [x >= y if up else x <= y for x, y, up in zip(a, b, maximise, strict=True)]
    return all(no_worse) and any(better)


def test_the_pareto_front_on_hand_made_points() -> None:
    # throughput (max), WIP (min), yield (max)
    maximise = [True, False, True]
    points = [
        [50.0, 10.0, 0.95],  # 0: front
        [50.0, 12.0, 0.95],  # 1: dominated by 0 (more WIP)
        [60.0, 20.0, 0.90],  # 2: front (most throughput)
        [40.0, 5.0, 0.90],  # 3: front (least WIP)
        [45.0, 11.0, 0.99],  # 4: front (best yield)
        [45.0, 11.0, 0.99],  # 5: equal to 4: neither dominates, both stay
        [44.0, 11.0, 0.98],  # 6: dominated by 4
    ]
    front = pareto_front(points, maximise)
    assert front == [0, 2, 3, 4, 5]
    for index in front:
        assert not any(dominates(other, points[index], maximise) for other in points)
    for index in set(range(len(points))) - set(front):
        assert any(dominates(points[best], points[index], maximise) for best in front)


def test_the_pareto_front_is_exactly_the_non_dominated_set() -> None:
    rng = random.Random(5)
    maximise = [True, False, True]
    for _ in range(30):
        points = [
            [rng.choice([1.0, 2.0, 3.0]), rng.random(), rng.choice([0.9, 1.0])]
            for _ in range(rng.randint(1, 25))
        ]
        front = set(pareto_front(points, maximise))
        assert front
        for index, point in enumerate(points):
            dominated = any(dominates(other, point, maximise) for other in points)
            assert (index in front) == (not dominated)


def test_a_missing_value_counts_as_the_worst() -> None:
    assert pareto_front([[1.0, None], [1.0, 5.0]], [True, True]) == [1]
    assert pareto_front([[None, None]], [True, False]) == [0]


def test_all_design_points_are_distinct_runs() -> None:
    plan = plan_sweep(small_spec(), load_config())
    keys = [(task.point, task.replication) for task in plan.tasks]
    assert keys == list(itertools.product(range(4), range(2)))
    assert all(isinstance(config, LineConfig) for config in plan.configs)
