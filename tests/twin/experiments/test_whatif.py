"""What-if forks: snapshot from the twin, fork == batch, CIs, changes, bounds."""

from __future__ import annotations

import pytest
from feeding import feed_twin
from pydantic import ValidationError

from twin.config.line import Calendar, LineConfig, Release, load_config
from twin.experiments.experiment import run_once
from twin.experiments.whatif import (
    MAX_HORIZON_S,
    MAX_REPLICATIONS,
    ScenarioChanges,
    ScenarioResult,
    fork_plant,
    replication_seeds,
    run_scenario,
    simulate_from,
)
from twin.experiments.whatif_kpis import ScenarioKpis
from twin.state.line import TwinState
from twin.state.snapshot import LineCounters, LineSnapshot, StationSnapshot, snapshot_from_view
from twin.state.views import LineView

HOUR = 3600.0


@pytest.fixture(scope="module")
def config() -> LineConfig:
    return load_config()


@pytest.fixture(scope="module")
def view() -> LineView:
    # Three hours of the default line through publisher, codec and ingest: 09:00.
    return feed_twin(3, seed=5).twin.view()


@pytest.fixture(scope="module")
def snapshot(view: LineView, config: LineConfig) -> LineSnapshot:
    return snapshot_from_view(view, config)


def empty_line(config: LineConfig) -> LineSnapshot:
    """The state a batch run starts from: time 0, nothing inside, no wear."""
    return LineSnapshot(
        line=config.line.id,
        config_hash=config.config_hash(),
        sim_time_s=0.0,
        counters=LineCounters(released=0, shipped=0, good=0, scrap=0, rework=0, work_in_process=0),
        stations=[
            StationSnapshot(
                id=spec.id,
                position=position,
                state=None,
                state_since_s=None,
                input_buffer_level=0,
                parts_in_process=0,
                setpoints={"speed": spec.process.speed.default}
                | (
                    {"temperature_c": spec.process.temperature_c.default}
                    if spec.process.temperature_c
                    else {}
                ),
                process={},
                wear=0.0,
                maintenance_due=False,
                machines=[],
                started=0,
                good=0,
                scrap=0,
                rework=0,
            )
            for position, spec in enumerate(config.stations)
        ],
    )


# -- the snapshot ----------------------------------------------------------------------------
def test_snapshot_reflects_the_twins_view(view: LineView, snapshot: LineSnapshot) -> None:
    config = load_config()
    assert view.sim_time_s is not None
    assert snapshot.sim_time_s == view.sim_time_s
    assert snapshot.counters.shipped == view.kpis.good
    assert snapshot.counters.scrap == view.kpis.scrap
    assert snapshot.counters.work_in_process == view.kpis.work_in_process
    for seen, taken, spec in zip(view.stations, snapshot.stations, config.stations, strict=True):
        assert taken.id == seen.id == spec.id
        assert taken.state == seen.state
        assert taken.state_since_s == seen.state_since_s
        level = seen.input_buffer.level if seen.input_buffer is not None else None
        assert taken.input_buffer_level == (level or 0)
        assert taken.parts_in_process == (0 if seen.current_part is None else 1)
        assert taken.setpoints["speed"] == seen.process["speed"]
        wear_model = spec.process.wear
        if wear_model is None:
            assert taken.wear == 0.0
        else:
            # The latest finished part's wear, plus what that part wore the tool.
            grown = seen.process["wear"] + wear_model.per_part * seen.process["speed"] ** (
                wear_model.speed_exponent
            )
            assert grown < (wear_model.preventive_at or float("inf"))
            assert taken.wear == pytest.approx(grown)
            assert taken.wear > 0
    # The twin lost no message, so its WIP is what the buffers and machines hold.
    held = sum(s.input_buffer_level + s.parts_in_process for s in snapshot.stations)
    assert held == snapshot.counters.work_in_process
    assert LineSnapshot.model_validate_json(snapshot.model_dump_json()) == snapshot


def test_snapshot_of_an_empty_twin_says_there_is_no_data(config: LineConfig) -> None:
    empty = TwinState(config.line.site, config.line.area, config.line.id).view()
    with pytest.raises(ValueError, match="sim_time_s: the twin has no data yet"):
        snapshot_from_view(empty, config)


def test_snapshot_of_another_line_is_refused(view: LineView, config: LineConfig) -> None:
    other = config.model_copy(update={"line": config.line.model_copy(update={"id": "line9"})})
    with pytest.raises(ValueError, match="^line: "):
        snapshot_from_view(view, other)
    missing = view.model_copy(update={"stations": view.stations[:-1]})
    with pytest.raises(ValueError, match=r"stations\[4\] \(inspection\)"):
        snapshot_from_view(missing, config)


# -- the fork's initial state ------------------------------------------------------------------
def test_forked_plant_starts_in_the_snapshots_state(
    config: LineConfig, snapshot: LineSnapshot
) -> None:
    welding = snapshot.station("welding")
    down_at_fork = welding.model_copy(
        update={
            "state": "down",
            "machines": [welding.machines[0].model_copy(update={"state": "down"})],
        }
    )
    snap = snapshot.model_copy(
        update={"stations": [down_at_fork if s.id == "welding" else s for s in snapshot.stations]}
    )
    changes = ScenarioChanges(
        setpoints={"painting": {"temperature_c": 200.0}}, stations_down={"inspection": 1.5}
    )
    plant = fork_plant(config, snap, changes, seed=3)
    assert plant.now == snap.sim_time_s
    assert plant.statistics_since == snap.sim_time_s
    for seen, station in zip(snap.stations, plant.stations, strict=True):
        assert len(station.input.items) == seen.input_buffer_level + seen.parts_in_process
        for machine in station.machines:
            assert machine.wear == seen.wear
            assert machine.maintenance_due == seen.maintenance_due
        expected = dict(seen.setpoints) | changes.setpoints.get(station.id, {})
        assert station.setpoints == expected
    assert plant.work_in_process == sum(
        s.input_buffer_level + s.parts_in_process for s in snap.stations
    )
    assert plant.parts_released == 0  # the preloaded parts are not the forecast's releases
    down = {station.id for station in plant.stations if station.machines[0].broken}
    assert down == {"welding", "inspection"}
    assert {station.state for station in plant.stations if station.id in down} == {"down"}
    # The what-if outage lasts exactly its hours; the repair under way at the fork ends.
    inspection = plant.by_id["inspection"].machines[0]
    plant.run(until=snap.sim_time_s + 1.5 * HOUR - 1.0)
    assert inspection.broken
    plant.run(until=snap.sim_time_s + 1.5 * HOUR + 1.0)
    assert not inspection.broken
    plant.run(until=snap.sim_time_s + 4 * HOUR)
    assert plant.by_id["welding"].machines[0].time_in_state["down"] > 0


def test_the_fork_keeps_the_lines_time_of_day(config: LineConfig, snapshot: LineSnapshot) -> None:
    # The default line starts at 06:00 and breaks at 10:00 for half an hour.
    at_ten_past_ten = snapshot.model_copy(update={"sim_time_s": 4 * HOUR + 600})
    plant = fork_plant(config, at_ten_past_ten, seed=1)
    plant.run(until=plant.now + 1)
    assert plant.calendar_closed
    plant.run(until=4.5 * HOUR + 1)
    assert not plant.calendar_closed
    no_breaks = Calendar(period_h=24, start_at_h=0, planned_downtime=[])
    plant = fork_plant(config, at_ten_past_ten, ScenarioChanges(shift_plan=no_breaks), seed=1)
    plant.run(until=plant.now + 1)
    assert not plant.calendar_closed


# -- fork == batch -------------------------------------------------------------------------------
def test_a_fork_of_the_empty_line_at_time_zero_is_the_batch_run(config: LineConfig) -> None:
    forked = simulate_from(config, empty_line(config), horizon_s=3 * HOUR, seed=11)
    batch = ScenarioKpis.from_report(run_once(config, hours=3, seed=11))
    assert forked == batch
    assert forked.good_parts > 0


def test_run_scenario_equals_single_forks_and_repeats_byte_for_byte(
    config: LineConfig, snapshot: LineSnapshot
) -> None:
    changes = ScenarioChanges(setpoints={"machining": {"speed": 0.9}})
    result = run_scenario(config, snapshot, changes, horizon_s=2 * HOUR, replications=3, seed=42)
    seeds = replication_seeds(42, 3)
    assert result.replication_seeds == seeds
    assert len(set(seeds)) == 3
    for index, seed in enumerate(seeds):
        alone = simulate_from(config, snapshot, changes, horizon_s=2 * HOUR, seed=seed)
        assert result.scenario_runs[index] == alone
        baseline = simulate_from(config, snapshot, None, horizon_s=2 * HOUR, seed=seed)
        assert result.baseline_runs[index] == baseline
    again = run_scenario(config, snapshot, changes, horizon_s=2 * HOUR, replications=3, seed=42)
    assert again.model_dump_json() == result.model_dump_json()
    assert ScenarioResult.model_validate_json(result.model_dump_json()) == result
    assert result.fork_sim_time_s == snapshot.sim_time_s
    assert result.end_sim_time_s == snapshot.sim_time_s + 2 * HOUR
    assert result.counters_at_fork == snapshot.counters


def test_no_change_forecasts_the_baseline_and_reports_progress(
    config: LineConfig, snapshot: LineSnapshot
) -> None:
    calls: list[tuple[int, int]] = []
    result = run_scenario(
        config,
        snapshot,
        None,
        horizon_s=HOUR,
        replications=3,
        seed=1,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert result.scenario_runs == result.baseline_runs
    difference = result.kpis["throughput_per_h"].difference
    assert difference is not None
    assert difference.mean == 0.0
    assert difference.half_width == 0.0

    calls.clear()
    run_scenario(
        config,
        snapshot,
        ScenarioChanges(stations_down={"cutting": 0.5}),
        horizon_s=HOUR,
        replications=2,
        seed=1,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


# -- confidence intervals ------------------------------------------------------------------
def test_confidence_intervals_shrink_with_more_replications(
    config: LineConfig, snapshot: LineSnapshot
) -> None:
    # Half-width ~ t(n-1) / sqrt(n): 24 replications should give about a quarter of
    # 4's. Summed over three seeds, so that one lucky small sample cannot decide.
    kpis = ("throughput_per_h", "oee")
    summed: dict[tuple[str, int], float] = dict.fromkeys(
        [(kpi, n) for kpi in kpis for n in (4, 24)], 0.0
    )
    for seed in range(3):
        for replications in (4, 24):
            result = run_scenario(
                config, snapshot, horizon_s=3 * HOUR, replications=replications, seed=seed
            )
            for kpi in kpis:
                forecast = result.kpis[kpi].baseline
                assert forecast is not None
                assert forecast.half_width is not None
                assert forecast.n == replications
                summed[kpi, replications] += forecast.half_width
    for kpi in kpis:
        assert 0 < summed[kpi, 24] < summed[kpi, 4] / 2, kpi


# -- changes matter ------------------------------------------------------------------------
def test_the_last_station_down_for_the_horizon_ships_nothing(
    config: LineConfig, snapshot: LineSnapshot
) -> None:
    result = run_scenario(
        config,
        snapshot,
        ScenarioChanges(stations_down={"inspection": 2.0}),
        horizon_s=2 * HOUR,
        replications=4,
        seed=7,
    )
    assert all(run.good_parts == 0 for run in result.scenario_runs)
    assert all(run.good_parts > 0 for run in result.baseline_runs)
    difference = result.kpis["throughput_per_h"].difference
    assert difference is not None
    assert difference.high is not None
    assert difference.high < 0


def test_a_slower_bottleneck_lowers_the_forecast_throughput(
    config: LineConfig, snapshot: LineSnapshot
) -> None:
    slowest = config.stations[1].process.speed.min  # machining: the capacity constraint
    result = run_scenario(
        config,
        snapshot,
        ScenarioChanges(setpoints={"machining": {"speed": slowest}}),
        horizon_s=4 * HOUR,
        replications=12,
        seed=3,
    )
    throughput = result.kpis["throughput_per_h"]
    assert throughput.baseline is not None
    assert throughput.scenario is not None
    assert throughput.difference is not None
    assert throughput.scenario.mean < throughput.baseline.mean
    assert throughput.difference.high is not None
    assert throughput.difference.high < 0


def test_a_lower_conwip_cap_drains_the_line_down_to_it(
    config: LineConfig, snapshot: LineSnapshot
) -> None:
    cap = snapshot.counters.work_in_process // 2
    release = Release(policy="conwip", wip_cap=cap, batch_size=config.release.batch_size)
    plant = fork_plant(config, snapshot, ScenarioChanges(release=release), seed=2)
    assert plant.work_in_process == snapshot.counters.work_in_process
    plant.run(until=plant.now + 4 * HOUR)
    assert plant.parts_shipped > 0
    assert plant.work_in_process == cap


# -- bounds and validation -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("horizon_s", "replications", "field"),
    [
        (0.0, 2, "horizon_s"),
        (-5.0, 2, "horizon_s"),
        (float("nan"), 2, "horizon_s"),
        (MAX_HORIZON_S + 1, 2, "horizon_s"),
        (HOUR, 0, "replications"),
        (HOUR, MAX_REPLICATIONS + 1, "replications"),
        (MAX_HORIZON_S, MAX_REPLICATIONS, "horizon_s x replications"),
    ],
)
def test_bounds_name_the_field(
    config: LineConfig, snapshot: LineSnapshot, horizon_s: float, replications: int, field: str
) -> None:
    with pytest.raises(ValueError, match=f"^{field} "):
        run_scenario(config, snapshot, horizon_s=horizon_s, replications=replications, seed=1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (ScenarioChanges(setpoints={"nope": {"speed": 1.0}}), "setpoints.nope: unknown station"),
        (ScenarioChanges(stations_down={"nope": 1.0}), "stations_down.nope: unknown station"),
        (
            ScenarioChanges(setpoints={"machining": {"speed": 9.0}}),
            "setpoints.machining.speed: speed 9 is out of range for station 'machining'",
        ),
        (
            ScenarioChanges(setpoints={"machining": {"temperature_c": 50.0}}),
            "setpoints.machining.temperature_c: station 'machining' has no setpoint",
        ),
    ],
)
def test_changes_are_checked_against_the_line(
    config: LineConfig, snapshot: LineSnapshot, changes: ScenarioChanges, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        run_scenario(config, snapshot, changes, horizon_s=HOUR, replications=2, seed=1)


def test_changes_refuse_unknown_fields_and_bad_values() -> None:
    with pytest.raises(ValidationError, match="bogus"):
        ScenarioChanges.model_validate({"bogus": 1})
    with pytest.raises(ValidationError, match="stations_down.welding"):
        ScenarioChanges.model_validate({"stations_down": {"welding": -1}})


# -- what the line then did ----------------------------------------------------------------
@pytest.mark.slow
def test_the_prediction_interval_covers_what_the_line_then_did(config: LineConfig) -> None:
    """The forecast's interval for the baseline is where the line's one run will
    fall. Twenty lines (seeds) are forked at 09:00 from their twins, forecast for
    2 h with 6 replications, and then run on: their throughput over the 2 h, as
    each twin counted it, falls inside the 95% prediction interval for at least 16
    of 20 (a binomial 95% event lands below 16 about 1.6% of the time). The
    interval of the forecast's mean, far narrower, covers much fewer."""
    horizon_s = 2 * HOUR
    inside_prediction = inside_mean = 0
    lines = 20
    for seed in range(lines):
        fed = feed_twin(3, seed=100 + seed)
        fork = snapshot_from_view(fed.twin.view(), config)
        forecast = run_scenario(config, fork, horizon_s=horizon_s, replications=6, seed=seed)
        baseline = forecast.kpis["throughput_per_h"].baseline
        assert baseline is not None
        assert baseline.prediction_low is not None
        assert baseline.prediction_high is not None
        assert baseline.low is not None
        assert baseline.high is not None
        shipped_at_fork = fed.twin.counters()[0]
        fed.plant.run(until=fork.sim_time_s + horizon_s)
        actual = (fed.twin.counters()[0] - shipped_at_fork) * HOUR / horizon_s
        inside_prediction += baseline.prediction_low <= actual <= baseline.prediction_high
        inside_mean += baseline.low <= actual <= baseline.high
    assert inside_prediction >= 16, (inside_prediction, lines)
    assert inside_mean < inside_prediction
