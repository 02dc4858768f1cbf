"""What-if forks that know the calendar: nights, breaks, the fork's time of day.

A forecast over a horizon with no planned production time (the night of a line
with no night shift) gives counts, never a rate or a ratio; one across a break
counts over planned time only; one just before a stop has too little planned
time for an OEE. Run on the default line and on the other templates' calendars,
forked from twins fed through publisher, codec and ingest. The planned time is
checked against interval arithmetic on the config's planned stops (written
here, independent of ``twin.state.clock``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from feeding import feed_twin

from twin.config.line import Calendar, LineConfig, PlannedStop, load_config
from twin.experiments.whatif import ScenarioChanges, ScenarioResult, fork_plant, run_scenario
from twin.experiments.whatif_kpis import KPI_NAMES, MIN_PLANNED_S, NEEDS_AN_HOUR, NEEDS_PLANNED_TIME
from twin.state.snapshot import LineSnapshot, snapshot_from_view

REPO = Path(__file__).resolve().parents[3]
HOUR = 3600.0
RATIOS = ("yield_ratio", "scrap_ratio", "oee")
COUNTS = ("good_parts", "scrap_parts", "planned_production_h", "mean_wip")


def _config(name: str | None) -> LineConfig:
    return load_config(REPO / "examples" / "lines" / name if name else None)


@cache
def _snapshot(name: str | None, clock_h: float, seed: int) -> LineSnapshot:
    """The twin's snapshot at ``clock_h`` o'clock of the first day (the templates
    used here start at 06:00)."""
    config = _config(name)
    assert config.calendar is not None
    assert config.calendar.start_at_h == 6.0
    fed = feed_twin(clock_h - 6.0, seed=seed, config=config)
    return snapshot_from_view(fed.twin.view(), config)


def planned_seconds(calendar: Calendar, start_s: float, end_s: float) -> float:
    """The horizon minus its overlap with the planned stops, period by period."""
    period = calendar.period_h * HOUR
    origin = -calendar.start_at_h * HOUR  # where the first period began
    stopped = 0.0
    while origin < end_s:
        for stop in calendar.planned_downtime:
            low = max(start_s, origin + stop.start_h * HOUR)
            high = min(end_s, origin + (stop.start_h + stop.duration_h) * HOUR)
            stopped += max(0.0, high - low)
        origin += period
    return (end_s - start_s) - stopped


def assert_no_ratio_above_one(result: ScenarioResult) -> None:
    for run in [*result.baseline_runs, *result.scenario_runs]:
        for name in RATIOS:
            value = getattr(run, name)
            assert value is None or 0.0 <= value <= 1.0, (name, value)
    for name in RATIOS:
        for estimate in (result.kpis[name].baseline, result.kpis[name].scenario):
            assert estimate is None or estimate.mean <= 1.0


@pytest.mark.parametrize("name", [None, "cnc_cell.yaml"])
def test_a_night_forecast_gives_counts_and_no_rate_or_ratio(name: str | None) -> None:
    config = _config(name)
    assert config.calendar is not None
    snapshot = _snapshot(name, 22 + 5 / 60, seed=3)
    assert snapshot.clock is not None
    assert snapshot.clock.planned_stop == "no night shift"
    start = snapshot.sim_time_s
    assert planned_seconds(config.calendar, start, start + 4 * HOUR) == 0.0
    result = run_scenario(config, snapshot, horizon_s=4 * HOUR, replications=3, seed=8)
    assert result.fork_time_of_day == snapshot.clock.time_of_day
    assert_no_ratio_above_one(result)
    for kpi in KPI_NAMES:
        forecast = result.kpis[kpi]
        if kpi in NEEDS_PLANNED_TIME:
            assert forecast.baseline is None
            assert forecast.scenario is None
            assert forecast.not_applicable is not None
            assert "no planned production time" in forecast.not_applicable
            assert "no night shift" in forecast.not_applicable
        elif kpi in COUNTS:
            assert forecast.baseline is not None, kpi  # counts stay numbers
            assert forecast.not_applicable is None
        else:  # a lead time with no part shipped: undefined, and it says so
            assert (forecast.baseline is None) == (forecast.not_applicable is not None)
            if forecast.not_applicable is not None:
                assert "undefined in every replication" in forecast.not_applicable
    assert result.kpis["planned_production_h"].baseline.mean == 0.0  # type: ignore[union-attr]
    assert result.kpis["good_parts"].baseline.mean == 0.0  # type: ignore[union-attr]


def test_a_fork_inside_a_planned_stop_takes_no_part_until_it_ends() -> None:
    config = _config(None)
    snapshot = _snapshot(None, 22 + 5 / 60, seed=3)
    plant = fork_plant(config, snapshot, seed=2)
    assert plant.calendar_closed
    assert plant.calendar_reason == "no night shift"
    morning = snapshot.sim_time_s + planned_seconds_until_open(config, snapshot.sim_time_s)
    plant.run(until=morning - 1.0)
    assert sum(station.parts_started for station in plant.stations) == 0
    plant.run(until=morning + 0.5 * HOUR)
    assert sum(station.parts_started for station in plant.stations) > 0


def planned_seconds_until_open(config: LineConfig, start_s: float) -> float:
    """Seconds from ``start_s`` until production is planned again (minute steps)."""
    assert config.calendar is not None
    step = 60.0
    elapsed = 0.0
    while planned_seconds(config.calendar, start_s + elapsed, start_s + elapsed + step) == 0.0:
        elapsed += step
    return (
        elapsed
        + step
        - planned_seconds(config.calendar, start_s + elapsed, start_s + elapsed + step)
    )


@pytest.mark.parametrize(
    ("name", "clock_h", "horizon_h"),
    [(None, 9 + 50 / 60, 1.5), ("smt.yaml", 9 + 40 / 60, 2.0), ("cnc_cell.yaml", 17.5, 2.0)],
)
def test_a_horizon_across_a_break_counts_over_planned_time(
    name: str | None, clock_h: float, horizon_h: float
) -> None:
    config = _config(name)
    assert config.calendar is not None
    snapshot = _snapshot(name, clock_h, seed=5)
    start = snapshot.sim_time_s
    horizon_s = horizon_h * HOUR
    planned = planned_seconds(config.calendar, start, start + horizon_s)
    assert 0 < planned < horizon_s  # the horizon spans a break
    assert planned >= MIN_PLANNED_S
    result = run_scenario(config, snapshot, horizon_s=horizon_s, replications=3, seed=4)
    assert_no_ratio_above_one(result)
    for run in result.baseline_runs:
        assert run.planned_production_h * HOUR == pytest.approx(planned)
        # Per planned hour and per calendar hour, each over its own hours.
        assert run.throughput_per_planned_h == pytest.approx(run.good_parts * HOUR / planned)
        assert run.throughput_per_h == pytest.approx(run.good_parts / horizon_h)
        assert run.oee is not None
    assert all(forecast.not_applicable is None for forecast in result.kpis.values())


def test_just_before_a_night_stop_oee_needs_an_hour_of_planned_time() -> None:
    config = _config(None)
    assert config.calendar is not None
    snapshot = _snapshot(None, 21 + 58 / 60, seed=2)
    start = snapshot.sim_time_s
    planned = planned_seconds(config.calendar, start, start + 4 * HOUR)
    assert 0 < planned < MIN_PLANNED_S
    result = run_scenario(config, snapshot, horizon_s=4 * HOUR, replications=3, seed=8)
    assert_no_ratio_above_one(result)
    for kpi in NEEDS_AN_HOUR:
        assert result.kpis[kpi].baseline is None
        reason = result.kpis[kpi].not_applicable
        assert reason is not None
        assert f"only {planned / 60:.0f} min of planned production time" in reason
    for run in result.baseline_runs:
        assert run.planned_production_h * HOUR == pytest.approx(planned)
        assert run.throughput_per_h == pytest.approx(run.good_parts / 4)


def test_a_scenario_with_a_night_shift_has_figures_where_the_baseline_has_none() -> None:
    config = _config(None)
    snapshot = _snapshot(None, 22 + 5 / 60, seed=3)
    breaks_only = Calendar(
        period_h=24,
        planned_downtime=[
            PlannedStop(start_h=10, duration_h=0.5, reason="break"),
            PlannedStop(start_h=18, duration_h=0.5, reason="break"),
            PlannedStop(start_h=2, duration_h=0.5, reason="break"),
        ],
    )
    changes = ScenarioChanges(shift_plan=breaks_only)
    result = run_scenario(config, snapshot, changes, horizon_s=4 * HOUR, replications=3, seed=1)
    assert_no_ratio_above_one(result)
    throughput = result.kpis["throughput_per_h"]
    assert throughput.baseline is None
    assert throughput.scenario is not None
    assert throughput.scenario.mean > 0
    assert throughput.difference is None
    assert throughput.not_applicable is not None
    assert throughput.not_applicable.startswith("not applicable: baseline:")
    assert "scenario:" not in throughput.not_applicable
    # The scenario keeps the line's time of day: the first minutes of its 02:00 break
    # fall in the horizon (22:05 to 02:05).
    phased = breaks_only.model_copy(update={"start_at_h": 6.0})
    start = snapshot.sim_time_s
    planned = planned_seconds(phased, start, start + 4 * HOUR)
    assert planned < 4 * HOUR
    for run in result.scenario_runs:
        assert run.planned_production_h * HOUR == pytest.approx(planned)


def test_the_fork_runs_on_the_calendar_the_line_announced() -> None:
    line_config = _config(None)
    snapshot = _snapshot(None, 22 + 5 / 60, seed=3)
    assert line_config.calendar is not None
    # A model whose calendar starts its day at midnight: 16 h after its start it works.
    shifted = line_config.model_copy(
        update={"calendar": line_config.calendar.model_copy(update={"start_at_h": 0.0})}
    )
    assert fork_plant(shifted, snapshot, seed=1).calendar_closed  # the line's 22:05
    unannounced = snapshot.model_copy(update={"calendar": None})
    assert not fork_plant(shifted, unannounced, seed=1).calendar_closed  # the model's 16:05
