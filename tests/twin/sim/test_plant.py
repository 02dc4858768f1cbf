"""The SimPy plant: determinism, conservation, blocking, breakdowns, defects."""

from __future__ import annotations

import math
import statistics
from typing import Any

import pytest

from twin.config.line import LineConfig, load_config, parse_config
from twin.experiments.experiment import run_once
from twin.sim.events import PartFinishedEvent, PartStartedEvent, PlantEvent, StateChangedEvent
from twin.sim.plant import Plant

# Two-sided 95% Student t quantile for 19 degrees of freedom (20 replications).
T_95_19 = 2.093


def line(stations: list[dict[str, Any]]) -> LineConfig:
    return parse_config({"line": {"id": "test"}, "stations": stations})


def test_same_seed_same_run_other_seed_other_run() -> None:
    config = load_config()
    first = run_once(config, hours=8, seed=7).model_dump_json()
    again = run_once(config, hours=8, seed=7).model_dump_json()
    other = run_once(config, hours=8, seed=8).model_dump_json()
    assert first == again
    assert first != other


def test_parts_are_conserved_and_buffers_respect_capacity() -> None:
    config = load_config()
    plant = Plant(config, seed=1)
    over_capacity: list[PlantEvent] = []

    def check(event: PlantEvent) -> None:
        if isinstance(event, PartStartedEvent) and event.input_buffer_level is not None:
            index = plant.by_id[event.station].position
            if event.input_buffer_level > config.buffer_capacity(index):
                over_capacity.append(event)
        if isinstance(event, PartFinishedEvent) and event.output_buffer_level is not None:
            index = plant.by_id[event.station].position + 1
            if event.output_buffer_level > config.buffer_capacity(index):
                over_capacity.append(event)

    plant.add_listener(check)
    plant.run(until=24 * 3600)
    assert over_capacity == []
    assert plant.parts_shipped > 0
    assert plant.parts_scrapped > 0
    assert plant.parts_released == plant.parts_shipped + plant.parts_scrapped + (
        plant.work_in_process
    )
    stations_and_buffers = len(config.stations) + sum(
        config.buffer_capacity(index) for index in range(1, len(config.stations))
    )
    assert 0 <= plant.work_in_process <= stations_and_buffers
    for station in plant.stations:
        assert sum(station.time_in_states(plant.now).values()) == pytest.approx(plant.now)


def test_slow_downstream_blocks_upstream_deterministically() -> None:
    config = line(
        [
            {"id": "fast", "processing_time": {"distribution": "deterministic", "mean_s": 10}},
            {
                "id": "slow",
                "processing_time": {"distribution": "deterministic", "mean_s": 20},
                "input_buffer_capacity": 2,
            },
        ]
    )
    plant = Plant(config, seed=0)
    horizon = 20_000.0
    plant.run(until=horizon)
    # The slow station starts at t=10 and finishes one part every 20 s.
    assert plant.parts_shipped == math.floor((horizon - 10) / 20)
    fast, slow = plant.stations
    fast_times = fast.time_in_states(horizon)
    # The fast station works 10 s of every 20 s once the buffer is full.
    assert fast_times["blocked"] / horizon == pytest.approx(0.5, abs=0.01)
    assert fast_times["starved"] == 0
    assert slow.time_in_states(horizon)["running"] == pytest.approx(horizon - 10)


def test_breakdowns_match_mtbf_and_mttr() -> None:
    mtbf, mttr = 1000.0, 100.0
    config = line(
        [
            {
                "id": "machine",
                "processing_time": {"distribution": "deterministic", "mean_s": 10},
                "failures": {"mtbf_s": mtbf, "mttr_s": mttr},
            }
        ]
    )
    horizon = 200_000.0
    down_fractions = []
    for seed in range(20):
        plant = Plant(config, seed=seed)
        plant.run(until=horizon)
        down_fractions.append(plant.stations[0].time_in_states(horizon)["down"] / horizon)
    mean = statistics.fmean(down_fractions)
    half_width = T_95_19 * statistics.stdev(down_fractions) / math.sqrt(len(down_fractions))
    expected = mttr / (mtbf + mttr)
    assert abs(mean - expected) <= half_width, (mean, half_width, expected)


def test_defect_rate_matches_probability() -> None:
    probability = 0.1
    config = line(
        [
            {
                "id": "press",
                "processing_time": {"distribution": "exponential", "mean_s": 1},
                "defect_probability": probability,
            }
        ]
    )
    plant = Plant(config, seed=3)
    plant.run(until=50_000)
    finished = plant.parts_shipped + plant.parts_scrapped
    observed = plant.parts_scrapped / finished
    sigma = math.sqrt(probability * (1 - probability) / finished)
    assert abs(observed - probability) < 4 * sigma


def test_events_tell_the_whole_story() -> None:
    config = load_config()
    plant = Plant(config, seed=5)
    events: list[PlantEvent] = []
    plant.add_listener(events.append)
    plant.run(until=48 * 3600)
    shipped = [e for e in events if isinstance(e, PartFinishedEvent) and e.exits_line]
    scrapped = [e for e in events if isinstance(e, PartFinishedEvent) and e.outcome == "scrap"]
    assert len(shipped) == plant.parts_shipped
    assert len(scrapped) == plant.parts_scrapped
    assert all(e.station == "inspection" for e in shipped)
    # Every good hand-over is followed by a start of the same part downstream,
    # or the part is still waiting in the buffer or in a machine's hands.
    started = {(e.station, e.part_id) for e in events if isinstance(e, PartStartedEvent)}
    order = [station.id for station in config.stations]
    for event in events:
        if isinstance(event, PartFinishedEvent) and event.good and not event.exits_line:
            downstream = plant.by_id[order[order.index(event.station) + 1]]
            waiting = {part.id for part in downstream.input.items}
            held = {m.current_part.id for m in downstream.machines if m.current_part is not None}
            assert (downstream.id, event.part_id) in started or event.part_id in waiting | held
    # State changes never repeat the state a machine is already in.
    last_state: dict[tuple[str, int], str] = {}
    for event in events:
        if isinstance(event, StateChangedEvent):
            key = (event.station, event.machine)
            assert last_state.get(key) != event.to_state
            last_state[key] = event.to_state
    seen = {e.to_state for e in events if isinstance(e, StateChangedEvent)}
    assert seen == {
        "running",
        "setup",
        "maintenance",
        "down",
        "starved",
        "blocked",
        "planned_downtime",
    }


def test_a_failing_listener_does_not_stop_the_line() -> None:
    plant = Plant(load_config(), seed=1)

    def broken(event: PlantEvent) -> None:
        raise RuntimeError("observer bug")

    plant.add_listener(broken)
    plant.run(until=3600)
    assert plant.parts_shipped > 0


def test_temperature_follows_a_first_order_curve() -> None:
    config = line(
        [
            {
                "id": "oven",
                "processing_time": {"distribution": "deterministic", "mean_s": 7},
                "thermal": {"ambient_c": 20, "operating_c": 200, "time_constant_s": 100},
            }
        ]
    )
    plant = Plant(config, seed=1)
    machine = plant.stations[0].machines[0]
    for tau in (1, 2, 5):
        plant.run(until=100 * tau)
        # Always running: T(t) = 200 - 180 exp(-t / 100), whatever the part boundaries.
        assert machine.temperature_c(plant.now) == pytest.approx(200 - 180 * math.exp(-tau))
