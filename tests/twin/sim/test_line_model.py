"""The richer line model: economics by hand, losses, bottleneck, physics, calendar."""

from __future__ import annotations

from typing import Any

import pytest

from twin.config.line import LineConfig, load_config, parse_config, with_changes
from twin.experiments.experiment import run_experiment, run_once
from twin.sim.physics import SetpointError
from twin.sim.plant import Plant


def line(stations: list[dict[str, Any]], **extra: Any) -> LineConfig:
    return parse_config({"line": {"id": "test"}, "stations": stations, **extra})


def deterministic(mean_s: float) -> dict[str, Any]:
    return {"distribution": "deterministic", "mean_s": mean_s}


def test_economics_match_a_hand_calculation() -> None:
    config = line(
        [
            {
                "id": "a",
                "processing_time": deterministic(60),
                "costs": {
                    "labour_per_h": 30,
                    "overhead_per_h": 6,
                    "power_kw": {"running": 10, "idle": 2},
                },
            },
            {
                "id": "b",
                "processing_time": deterministic(30),
                "input_buffer_capacity": "unlimited",
                "costs": {
                    "labour_per_h": 20,
                    "overhead_per_h": 4,
                    "power_kw": {"running": 4, "idle": 1},
                },
            },
        ],
        products=[{"id": "widget", "material_cost": 2.0, "price": 10.0}],
        economics={"currency": "EUR", "energy_price_per_kwh": 0.25},
    )
    horizon = 3615.0
    report = run_once(config, hours=horizon / 3600, seed=1)

    # By hand: a finishes a part every 60 s and is never idle; b takes each part
    # at 60k s and finishes it at 60k + 30 s. By 3615 s, a has released 61 parts
    # and b has shipped 59 (k = 1..59), and is 15 s into the 60th.
    released, shipped = 61, 59
    b_running = 59 * 30 + 15
    b_idle = horizon - b_running
    hours = horizon / 3600
    labour = (30 + 20) * hours
    overhead = (6 + 4) * hours
    energy_kwh = 10 * hours + 4 * b_running / 3600 + 1 * b_idle / 3600
    energy_cost = energy_kwh * 0.25
    material = released * 2.0
    total = labour + overhead + energy_cost + material
    revenue = shipped * 10.0

    economics = report.economics
    assert report.line_kpis.good == shipped
    assert economics.material_cost == pytest.approx(material)
    assert economics.labour_cost == pytest.approx(labour)
    assert economics.overhead_cost == pytest.approx(overhead)
    assert economics.energy_kwh == pytest.approx(energy_kwh)
    assert economics.total_cost == pytest.approx(total)
    assert economics.cost_per_good_part == pytest.approx(total / shipped)
    assert economics.energy_per_good_part_kwh == pytest.approx(energy_kwh / shipped)
    assert economics.margin_per_hour == pytest.approx((revenue - total) / hours)


def test_microstops_lower_effectiveness_not_availability() -> None:
    base: dict[str, Any] = {"id": "press", "processing_time": deterministic(60)}
    jams = {**base, "microstops": {"mean_between_s": 600, "duration": deterministic(30)}}
    clean = run_once(line([base]), hours=10, seed=4).stations[0]
    jammed = run_once(line([jams]), hours=10, seed=4).stations[0]
    assert jammed.microstops > 0
    assert clean.kpis.availability == pytest.approx(1.0)
    assert jammed.kpis.availability == pytest.approx(1.0)
    # Without jams only the part still in progress is missing from PQ.
    assert clean.kpis.effectiveness is not None
    assert 1 - clean.kpis.effectiveness <= 60 / 36000 + 1e-12
    assert jammed.kpis.effectiveness is not None
    assert jammed.kpis.effectiveness < clean.kpis.effectiveness
    # The lost effectiveness is the microstop time, to the part in progress.
    lost = jammed.kpis.actual_production_time_s * (1 - jammed.kpis.effectiveness)
    assert lost == pytest.approx(jammed.microstop_s, abs=60 + 30)


def test_loss_pareto_adds_up_to_the_time_model() -> None:
    config = load_config()
    report = run_once(config, hours=48, seed=8, warmup_hours=1)
    for station in report.stations:
        entries = [loss for loss in report.losses if loss.station == station.id]
        kpis = station.kpis
        stops = sum(
            loss.time_s for loss in entries if loss.category in ("planned", "unplanned", "external")
        )
        assert stops == pytest.approx(kpis.planned_busy_time_s - kpis.actual_production_time_s)
        speed = {loss.reason: loss.time_s for loss in entries if loss.category == "speed"}
        assert set(speed) == {"microstops", "slow running"}
        assert speed["microstops"] == pytest.approx(station.microstop_s)
        # Slow running is the running time that neither the parts' planned runtime
        # (PRU, the rated cycle) nor the microstops explain: APT x (1 - effectiveness)
        # minus the jams, never below zero, apart from the part still in hand at the
        # end (its running time is in APT, its PRU not yet). One processing time per
        # machine bounds that; 5 mean times bounds one draw of these distributions
        # (CV at most 0.6) with probability above 1 - 1e-4.
        spec = config.stations[[s.id for s in config.stations].index(station.id)]
        assert kpis.effectiveness is not None
        unexplained = kpis.actual_production_time_s * (1 - kpis.effectiveness)
        durations = [spec.processing_time, *spec.processing_time_by_product.values()]
        slowest_mean = max(float(d.mean) for d in durations) / spec.process.speed.min
        in_hand = spec.machines * 5 * slowest_mean
        assert speed["slow running"] >= 0
        assert speed["slow running"] == pytest.approx(
            max(0.0, unexplained - station.microstop_s), abs=in_hand
        )
        quality = sum(loss.time_s for loss in entries if loss.category == "quality")
        assert quality <= kpis.actual_production_time_s
        assert all(loss.cost >= 0 for loss in entries)
    # Ranked by money lost.
    costs = [loss.cost for loss in report.losses]
    assert costs == sorted(costs, reverse=True)
    # The categories engineers recognise are all there.
    assert {loss.category for loss in report.losses if loss.time_s > 0} == {
        "planned",
        "unplanned",
        "external",
        "speed",
        "quality",
    }


def _serial(means: list[float], failures: dict[int, dict[str, float]]) -> LineConfig:
    stations = []
    for index, mean in enumerate(means):
        station: dict[str, Any] = {
            "id": f"s{index + 1}",
            "processing_time": {"distribution": "exponential", "mean_s": mean},
        }
        if index:
            station["input_buffer_capacity"] = 4
        if index in failures:
            station["failures"] = failures[index]
        stations.append(station)
    return line(stations)


@pytest.mark.parametrize(
    ("means", "failures", "expected"),
    [
        ([30, 30, 50, 30], {}, "s3"),
        # Equal cycle times, but s2 loses 40% of its time to breakdowns: te = 40 / 0.6.
        ([40, 40, 40, 40], {1: {"mtbf_s": 600, "mttr_s": 400}}, "s2"),
    ],
    ids=["slow-station", "unreliable-station"],
)
def test_active_period_method_names_the_bottleneck_built_in(
    means: list[float], failures: dict[int, dict[str, float]], expected: str
) -> None:
    report = run_once(_serial(means, failures), hours=200, seed=11, warmup_hours=2)
    assert report.line_kpis.bottleneck == expected
    if failures:
        # The design view cannot see it: every station has the same PRU.
        assert report.line_kpis.constraint == "s1"


def test_setpoints_change_speed_while_running_and_are_validated() -> None:
    config = load_config()
    plant = Plant(config, seed=2)
    plant.run(until=3600)
    machining = plant.by_id["machining"]
    with pytest.raises(SetpointError, match=r"speed 2 is out of range .* 0.7 to 1.4"):
        plant.set_setpoint("machining", "speed", 2.0)
    with pytest.raises(SetpointError, match="has no setpoint 'pressure'"):
        plant.set_setpoint("machining", "pressure", 1.0)
    with pytest.raises(SetpointError, match="unknown station 'lathe'"):
        plant.set_setpoint("lathe", "speed", 1.0)
    with pytest.raises(SetpointError, match="must be a finite number"):
        plant.set_setpoint("machining", "speed", float("nan"))
    assert machining.setpoints["speed"] == 1.0
    plant.set_setpoint("machining", "speed", 1.3)
    assert machining.setpoints["speed"] == 1.3
    draws = [machining.physics.samplers["bracket-s"]() for _ in range(2000)]
    nominal = config.stations[1].processing_time.mean
    assert sum(draws) / len(draws) == pytest.approx(nominal / 1.3, rel=0.03)


def test_wear_raises_vibration_and_preventive_maintenance_resets_it() -> None:
    config = load_config()
    plant = Plant(config, seed=6)
    machine = plant.by_id["machining"].machines[0]
    wear_spec = config.stations[1].process.wear
    assert wear_spec is not None
    assert wear_spec.preventive_at is not None
    samples: list[tuple[float, float]] = []
    for minute in range(1, 60 * 30):
        plant.run(until=minute * 60)
        if machine.state == "running":
            samples.append((machine.wear, machine.vibration_mm_s()))
    assert plant.by_id["machining"].maintenances >= 1
    assert max(wear for wear, _ in samples) <= wear_spec.preventive_at + wear_spec.per_part * 2
    low = [vibration for wear, vibration in samples if wear < 0.2]
    high = [vibration for wear, vibration in samples if wear > 0.6]
    assert low
    assert high
    assert min(high) > max(low)


def test_planned_downtime_is_outside_the_planned_busy_time() -> None:
    config = line(
        [{"id": "a", "processing_time": deterministic(60)}],
        calendar={
            "period_h": 8,
            "planned_downtime": [{"start_h": 4, "duration_h": 2, "reason": "break"}],
        },
    )
    report = run_once(config, hours=8, seed=1)
    kpis = report.stations[0].kpis
    assert kpis.planned_downtime_s == pytest.approx(2 * 3600, abs=60)
    assert kpis.planned_busy_time_s == pytest.approx(6 * 3600, abs=60)
    assert kpis.availability == pytest.approx(1.0)
    assert report.line_kpis.good == pytest.approx(6 * 60, abs=1)


def test_parallel_machines_multiply_capacity() -> None:
    single = {"id": "mill", "processing_time": deterministic(60)}
    triple = {**single, "machines": 3}
    one = run_once(line([single]), hours=2, seed=1)
    three = run_once(line([triple]), hours=2, seed=1)
    assert three.line_kpis.good == 3 * one.line_kpis.good
    assert three.stations[0].kpis.machines == 3
    assert three.stations[0].kpis.planned_busy_time_s == pytest.approx(3 * 2 * 3600)


def test_setups_happen_when_the_product_changes() -> None:
    config = line(
        [
            {
                "id": "press",
                "processing_time": deterministic(10),
                "setup": {"time": deterministic(100)},
            }
        ],
        products=[{"id": "a", "mix": 1}, {"id": "b", "mix": 1}],
        release={"policy": "saturated", "batch_size": 10},
    )
    report = run_once(config, hours=10, seed=5)
    station = report.stations[0]
    assert station.setups > 0
    assert station.kpis.setup_time_s == pytest.approx(100 * station.setups, abs=100)
    assert station.kpis.nee is not None
    assert station.kpis.oee is not None
    assert station.kpis.nee > station.kpis.oee


def test_rework_sends_parts_back_and_counts_them() -> None:
    config = line(
        [
            {"id": "coat", "processing_time": deterministic(10)},
            {
                "id": "check",
                "processing_time": deterministic(5),
                "input_buffer_capacity": 3,
                "defect_probability": 0.2,
                "rework": {"probability": 0.5, "to": "coat"},
            },
        ]
    )
    report = run_once(config, hours=20, seed=9)
    kpis = report.line_kpis
    assert kpis.rework > 0
    assert kpis.scrap > 0
    assert kpis.rework == pytest.approx(kpis.scrap, rel=0.2)
    assert kpis.first_pass_yield is not None
    assert kpis.yield_ratio is not None
    assert kpis.first_pass_yield < kpis.yield_ratio


def test_a_limited_repair_crew_makes_machines_wait() -> None:
    stations = [
        {
            "id": f"m{index}",
            "processing_time": deterministic(10),
            "failures": {"mtbf_s": 300, "mttr_s": 200},
        }
        for index in range(3)
    ]
    free = run_once(
        line(stations[:1] + [{**s, "input_buffer_capacity": 5} for s in stations[1:]]),
        hours=50,
        seed=3,
    )
    crewed = run_once(
        line(
            stations[:1] + [{**s, "input_buffer_capacity": 5} for s in stations[1:]],
            repair_crew={"size": 1},
        ),
        hours=50,
        seed=3,
    )
    assert sum(s.kpis.down_time_s for s in crewed.stations) > sum(
        s.kpis.down_time_s for s in free.stations
    )


def test_time_based_failures_strike_idle_machines_too() -> None:
    config = line(
        [
            {"id": "feeder", "processing_time": deterministic(100)},
            {
                "id": "fast",
                "processing_time": deterministic(10),
                "input_buffer_capacity": 2,
                "failures": {"basis": "time", "mtbf_s": 2000, "mttr_s": 100},
            },
        ]
    )
    report = run_once(config, hours=100, seed=2)
    fast = report.stations[1]
    # The station is busy only 10% of the time, yet fails at the calendar rate.
    expected_failures = 100 * 3600 / (2000 + 100)
    assert fast.breakdowns == pytest.approx(expected_failures, rel=0.2)


@pytest.mark.slow
def test_yield_optimal_setpoints_lie_strictly_inside_their_ranges() -> None:
    """Brute force: sweep each setpoint over its range (the others at default)
    and take the value with the most good parts per hour, with common random
    numbers across the sweep."""
    base = load_config()
    grid_points = 7
    for station_index, station in enumerate(base.stations):
        process = station.process
        setpoints = {"speed": process.speed, "temperature_c": process.temperature_c}
        for name, limits in setpoints.items():
            if limits is None or limits.min == limits.max:
                continue
            step = (limits.max - limits.min) / (grid_points - 1)
            grid = [limits.min + i * step for i in range(grid_points)]
            outputs = []
            for value in grid:
                changed = with_changes(
                    base, {f"stations.{station_index}.process.{name}.default": value}
                )
                result = run_experiment(changed, hours=72, seed=17, replications=2, jobs=2)
                outputs.append(result.summary["throughput_per_h"].mean)
            best = grid[outputs.index(max(outputs))]
            assert limits.min < best < limits.max, (station.id, name, grid, outputs)


def test_a_night_shift_stop_wraps_past_midnight() -> None:
    config = line(
        [{"id": "a", "processing_time": deterministic(60)}],
        calendar={
            "period_h": 24,
            "start_at_h": 6,
            "planned_downtime": [{"start_h": 22, "duration_h": 8, "reason": "night"}],
        },
    )
    report = run_once(config, hours=48, seed=1)
    kpis = report.stations[0].kpis
    assert kpis.planned_downtime_s == pytest.approx(2 * 8 * 3600, abs=60)
    assert report.line_kpis.good == pytest.approx(2 * 16 * 60, abs=2)


def test_line_effectiveness_follows_the_product_mix_at_the_constraint() -> None:
    config = line(
        [
            {
                "id": "press",
                "processing_time": deterministic(10),
                "processing_time_by_product": {"b": deterministic(30)},
            }
        ],
        products=[{"id": "a", "mix": 1}, {"id": "b", "mix": 1}],
    )
    kpis = run_once(config, hours=10, seed=3).line_kpis
    # No losses: the only gap to 1 is the part in progress (at most 30 s of 10 h).
    assert kpis.effectiveness is not None
    assert 1 - 30 / 36000 - 1e-12 <= kpis.effectiveness <= 1 + 1e-12
