"""Effectiveness and OEE mean what ISO 22400 says: at most 1, on every shipped line.

The planned runtime per unit (PRU) is a station's rated cycle: its nominal
(mean) processing time at the maximum speed setpoint. Over PQ parts,
effectiveness = sum(PRU_i) / APT, and APT holds at least the processing times
x_i of those parts (microstops and the part in hand only add to it). At a speed
s <= max, x_i = draw_i / s with E[draw_i] = nominal_i, so E[x_i] >= PRU_i: the
ratio can pass 1 only when the draws happen to run short of their mean. How
far is sampling, and it is derived here, not guessed:

    sum(x_i) / sum(PRU_i) >= (s_max / s) * sum(draw_i) / sum(nominal_i), whose
    relative standard deviation is at most sigma_max / (mu_min * sqrt(PQ))

(sigma_max the largest standard deviation and mu_min the smallest mean of the
station's processing times over its products). Effectiveness may therefore
exceed 1 by at most Z such standard deviations, with Z = 4.5: a one-sided
normal tail of 3.4e-6 per check, so that the roughly 10^3 checks below fail
by chance with probability about 0.3%. (Sums of right-skewed durations have a
lighter lower tail than the normal, so this is conservative.) OEE = A x E x Q
with A, Q <= 1, so the same bound holds for OEE. The line's effectiveness is
its capacity constraint's own, so the constraint's bound holds for it.

Every setpoint's minimum, default and maximum is covered: all setpoints at
their minimum, at their default, at their maximum, and, where the setpoints
belong to more than one station, two mixes (alternate setpoints at max and
min, and the mirror image). The setpoints change while the line runs, as
commands change them, half-way through a 1 h warm-up; the line file's
defaults stay, so a PRU that followed the default speed would show. Each
combination runs 3 seeds (the replication seeds of one experiment) for 8 h
after the warm-up, so that parts in process at the start of the window are
covered too, on the batch simulator. The live twin (MQTT messages through the
real publisher and ingest) is held to the same bound at maximum speed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from feeding import feed_twin
from kpi_tolerance import effectiveness_tolerance

from twin.config.line import LineConfig, Setpoint, load_config, with_changes
from twin.experiments.experiment import (
    RATIO_KPIS,
    Estimate,
    estimate,
    kpi_range,
    replication_seed,
    summarise_runs,
    value_range,
)
from twin.experiments.whatif import run_scenario
from twin.sim.plant import Plant
from twin.sim.report import RunReport, plant_report
from twin.state.snapshot import snapshot_from_view
from twin.state.views import KpiSet

REPO = Path(__file__).resolve().parents[3]
LINES = [None, *sorted((REPO / "examples" / "lines").glob("*.yaml"))]
CNC_CELL = REPO / "examples" / "lines" / "cnc_cell.yaml"
HOURS = 8.0
WARMUP_HOURS = 1.0
REPLICATIONS = 3


def _line_id(path: Path | None) -> str:
    return "default" if path is None else path.stem


Setpoints = dict[tuple[str, str], float]


def _setpoints(config: LineConfig) -> list[tuple[str, str, Setpoint]]:
    """Every setpoint with a range: (station, name, limits)."""
    found = []
    for station in config.stations:
        process = station.process
        found.append((station.id, "speed", process.speed))
        if process.temperature_c is not None:
            found.append((station.id, "temperature_c", process.temperature_c))
    return [(station, name, limits) for station, name, limits in found if limits.min < limits.max]


def _combinations(config: LineConfig) -> dict[str, Setpoints]:
    """Every setpoint at min, default and max, and two mixes."""
    setpoints = _setpoints(config)
    assert setpoints, "every shipped line has a setpoint to vary"

    def at(pick: Any) -> Setpoints:
        return {
            (station, name): pick(position, limits)
            for position, (station, name, limits) in enumerate(setpoints)
        }

    combinations = {
        "min": at(lambda _, limits: limits.min),
        "default": at(lambda _, limits: limits.default),
        "max": at(lambda _, limits: limits.max),
    }
    if len({station for station, _, _ in setpoints}) > 1:
        # Fast stations beside slow ones: more blocking and starving. Setpoints of
        # one station only (the bottling filler's speed and fill temperature) have
        # no such interaction, and that line is the costly one to simulate.
        combinations["mixed"] = at(
            lambda position, limits: limits.max if position % 2 == 0 else limits.min
        )
        combinations["mirrored"] = at(
            lambda position, limits: limits.min if position % 2 == 0 else limits.max
        )
    return combinations


def _run(config: LineConfig, setpoints: Setpoints, seed: int) -> RunReport:
    """A batch run whose setpoints change half-way through the warm-up, as an
    operator's commands change them: the line file's defaults stay."""
    plant = Plant(config, seed=seed)
    plant.run(until=WARMUP_HOURS * 3600.0 / 2)
    for (station, name), value in setpoints.items():
        plant.set_setpoint(station, name, value)
    plant.run(until=WARMUP_HOURS * 3600.0)
    plant.reset_statistics()
    plant.run(until=(WARMUP_HOURS + HOURS) * 3600.0)
    return plant_report(plant, seed=seed, hours=HOURS, warmup_hours=WARMUP_HOURS)


def assert_at_most_one(kpis: KpiSet, tolerance: float, where: str) -> None:
    for name in ("effectiveness", "oee", "availability", "quality_ratio"):
        value = getattr(kpis, name)
        assert value is None or value >= 0, f"{where}: {name} {value}"
        assert value is None or value <= 1 + tolerance, (
            f"{where}: {name} {value:.4f} above 1 + {tolerance:.4f}"
        )


def assert_inside_range(found: Estimate, low: float, high: float, where: str) -> None:
    if found.low is None or found.high is None:
        return
    assert low <= found.low <= found.high <= high, f"{where}: [{found.low}, {found.high}]"


@pytest.mark.slow
@pytest.mark.parametrize("path", LINES, ids=_line_id)
def test_effectiveness_and_oee_stay_at_most_one_across_the_setpoint_ranges(
    path: Path | None,
) -> None:
    config = load_config(path)
    products = [product.id for product in config.products]
    seeds = [replication_seed(17, index) for index in range(REPLICATIONS)]
    clipped = 0
    for label, setpoints in _combinations(config).items():
        runs = [_run(config, setpoints, seed) for seed in seeds]
        for run in runs:
            by_id = {station.id: station for station in run.stations}
            for (station_id, name), value in setpoints.items():
                assert by_id[station_id].setpoints[name] == value  # the change reached the plant
            tolerances = {}
            for spec, station in zip(config.stations, run.stations, strict=True):
                kpis = station.kpis
                tolerance = effectiveness_tolerance(spec, products, kpis.produced)
                tolerances[spec.id] = tolerance
                assert_at_most_one(kpis, tolerance, f"{label} seed {run.seed} {spec.id}")
                assert kpis.nee is None or kpis.nee <= 1 + tolerance
            line = run.line_kpis
            assert line.constraint is not None
            assert_at_most_one(line, tolerances[line.constraint], f"{label} seed {run.seed} line")
        # Every interval of a ratio lies in [0, 1], as ``run_experiment`` reports
        # them; three replications make wide ones, so some near 1 (quality) or 0
        # (scrap) must have been clipped.
        summary, stations = summarise_runs(config, runs)
        for name, found in summary.items():
            if name in RATIO_KPIS:
                assert_inside_range(found, 0.0, 1.0, f"{label} line {name}")
                clipped += found.clipped
        for station_id, per_station in stations.items():
            for name, found in per_station.items():
                assert name in RATIO_KPIS
                assert_inside_range(found, 0.0, 1.0, f"{label} {station_id} {name}")
                clipped += found.clipped
    assert clipped > 0, "no interval reached past its range: the clipping went untested"


@pytest.mark.slow
@pytest.mark.parametrize("path", [None, CNC_CELL], ids=_line_id)
def test_the_live_twin_at_maximum_speed_keeps_the_same_bound(path: Path | None) -> None:
    """MQTT messages through the real publisher and ingest: the twin's station and
    line effectiveness and OEE, with every station switched to its maximum speed
    by command (the line file's default speeds stay what they are)."""
    config = load_config(path)
    fastest = {
        spec.id: {"speed": spec.process.speed.max}
        for spec in config.stations
        if spec.process.speed.max > spec.process.speed.default
    }
    assert fastest
    products = [product.id for product in config.products]
    for seed in (1, 2, 3):
        view = feed_twin(HOURS, seed=seed, config=config, setpoints=fastest).twin.view()
        tolerances = {}
        for spec, station in zip(config.stations, view.stations, strict=True):
            assert station.id == spec.id
            assert station.process.get("speed") == spec.process.speed.max
            tolerance = effectiveness_tolerance(spec, products, station.kpis.produced)
            tolerances[spec.id] = tolerance
            assert_at_most_one(station.kpis, tolerance, f"seed {seed} {spec.id}")
        line = view.kpis
        assert line.constraint is not None
        assert_at_most_one(line, tolerances[line.constraint], f"seed {seed} line")


def test_a_ratios_interval_is_clipped_to_its_range_and_the_mean_kept() -> None:
    values = [0.99, 1.0, 0.97]
    free = estimate(values)
    assert free.high is not None
    assert free.high > 1, "the unclipped interval passes 1"
    found = estimate(values, bounds=(0.0, 1.0))
    assert found.high == 1.0
    assert found.low == free.low
    assert found.mean == free.mean
    assert found.half_width == free.half_width
    assert found.clipped
    assert not free.clipped
    # A mean above 1 (by chance) is never hidden: the interval ends at 1, below it.
    above = estimate([1.02, 1.0, 1.04], bounds=(0.0, 1.0))
    assert above.mean > 1
    assert above.high == 1.0
    assert above.low is not None
    assert above.low <= 1.0
    assert kpi_range("throughput_per_h") is None
    assert kpi_range("oee") == (0.0, 1.0)


@pytest.mark.slow
def test_what_if_intervals_of_ratios_and_their_differences_stay_in_range() -> None:
    config = load_config(CNC_CELL)
    view = feed_twin(1.0, seed=4, config=config).twin.view()
    snapshot = snapshot_from_view(view, config)
    clipped = 0
    # Seeds until one's interval reaches past a range, every one of them checked:
    # three replications leave a ratio near 1 a wide interval on most seeds.
    for seed in range(9, 15):
        result = run_scenario(config, snapshot, horizon_s=8 * 3600.0, replications=3, seed=seed)
        for name, forecast in result.kpis.items():
            bounds = kpi_range(name)
            if bounds is None:
                continue
            for found in (forecast.baseline, forecast.scenario):
                assert found is not None
                assert_inside_range(found, *bounds, f"{name}, seed {seed}")
                clipped += found.clipped
            assert forecast.difference is not None
            assert_inside_range(forecast.difference, -1.0, 1.0, f"{name} difference")
        if clipped:
            break
    assert clipped > 0, "no interval reached past its range: the clipping went untested"


@pytest.mark.slow
@pytest.mark.parametrize(
    "path", [None, REPO / "examples" / "lines" / "bottling.yaml"], ids=_line_id
)
def test_what_if_intervals_of_counts_and_rates_never_go_below_zero(path: Path | None) -> None:
    # Two replications of an hour: a t interval on one degree of freedom is about
    # 25 standard deviations wide, so an unclipped one of a part count reaches
    # far below zero (the dashboard showed good parts 28 in [-148, 204]).
    config = load_config(path)
    view = feed_twin(1.0, seed=5, config=config).twin.view()
    snapshot = snapshot_from_view(view, config)
    result = run_scenario(config, snapshot, horizon_s=3600.0, replications=2, seed=11)
    clipped = 0
    for name, forecast in result.kpis.items():
        bounds = value_range(name)
        if bounds is None or bounds[1] != math.inf:
            continue
        for found in (forecast.baseline, forecast.scenario):
            if found is None:
                continue
            assert found.mean >= 0, name
            for end in (found.low, found.high, found.prediction_low, found.prediction_high):
                assert end is None or end >= 0, f"{name}: {found}"
            free = estimate(
                [getattr(run, name) for run in result.baseline_runs]
                if found is forecast.baseline
                else [getattr(run, name) for run in result.scenario_runs]
            )
            assert found.mean == free.mean, "the mean is never clipped"
            clipped += found.clipped
    assert clipped > 0, "no interval of a count reached below zero: the clipping went untested"


def test_an_explicit_pru_reaches_the_report_and_the_live_twin() -> None:
    """``ideal_cycle_time_s`` in the line file is what the plant's report and the
    twin (through the birth message) value each part at."""
    base = load_config(CNC_CELL)
    mills = next(index for index, spec in enumerate(base.stations) if spec.id == "milling")
    rated = 400.0  # below 540 s / 1.25 = 432 s, the nominal time at the maximum speed
    config = with_changes(base, {f"stations.{mills}.ideal_cycle_time_s": rated})
    fed = feed_twin(HOURS, seed=5, config=config)
    report = plant_report(fed.plant, seed=5, hours=HOURS)
    for kpis in (report.stations[mills].kpis, fed.twin.view().stations[mills].kpis):
        assert kpis.effectiveness is not None
        assert kpis.produced > 0
        apt = kpis.actual_production_time_s
        # The plant values a part when it is processed, counts it when handed on:
        # a part per machine may sit in between (blocked).
        in_between = config.stations[mills].machines * rated / apt
        assert kpis.effectiveness == pytest.approx(rated * kpis.produced / apt, abs=in_between)
