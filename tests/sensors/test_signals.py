"""Sensor realism: noise, drift, quantisation and injected faults."""

from __future__ import annotations

import random
import statistics
from typing import Any

import pytest
from helpers import MemoryClient

from sensors.publisher import PlantPublisher
from sensors.signals import Sensor, SensorModel
from sensors.topics import LineTopics
from twin.config.line import LineConfig, SensorFault, SensorSpec, load_config, parse_config
from twin.contract import SENSOR_RANGES, Telemetry
from twin.sim.plant import Plant


def fault(mode: str, **fields: Any) -> SensorFault:
    return SensorFault.model_validate(
        {
            "station": "s",
            "sensor": "power_kw",
            "mode": mode,
            "start_h": 1,
            "duration_h": 1,
            **fields,
        }
    )


def test_noise_drift_and_quantisation() -> None:
    model = SensorModel(noise_sd=0.5, resolution=0.1, drift_per_h=0.2)
    rng = random.Random(1)
    at_start = [model.measure(10.0, rng, 0.0) for _ in range(4000)]
    after_10h = [model.measure(10.0, rng, 36000.0) for _ in range(4000)]
    assert statistics.fmean(at_start) == pytest.approx(10.0, abs=0.03)
    assert statistics.fmean(after_10h) == pytest.approx(12.0, abs=0.03)
    assert statistics.stdev(at_start) == pytest.approx(0.5, rel=0.05)
    assert all(abs(value * 10 - round(value * 10)) < 1e-6 for value in at_start)


@pytest.mark.parametrize("mode", ["stuck", "spike", "dropout", "offset"])
def test_faults_act_only_inside_their_window(mode: str) -> None:
    sensor = Sensor(
        SensorModel(noise_sd=0.1, resolution=0.01),
        [fault(mode, magnitude=50.0, probability=0.5)],
    )
    rng = random.Random(2)
    true_values = [float(i) for i in range(3 * 360)]  # one sample every 10 s for 3 h
    readings = [sensor.read(value, rng, i * 10.0) for i, value in enumerate(true_values)]
    inside = readings[360:720]
    outside = readings[:360] + readings[720:]
    assert all(
        value is not None and abs(value - true_values[i if i < 360 else i + 360]) < 1
        for i, value in enumerate(outside)
    )
    if mode == "dropout":
        assert inside == [None] * 360
    elif mode == "stuck":
        assert set(inside) == {readings[359]}
    elif mode == "offset":
        errors = [value - true for value, true in zip(inside, true_values[360:720], strict=True)]
        assert statistics.fmean(errors) == pytest.approx(50, abs=0.05)  # type: ignore[arg-type]
    else:
        spikes = sum(
            1
            for value, true in zip(inside, true_values[360:720], strict=True)
            if value - true > 40  # type: ignore[operator]
        )
        assert 0.4 * 360 < spikes < 0.6 * 360


def machining_telemetry(config: LineConfig) -> list[Telemetry]:
    """The machining station's telemetry over one simulated hour."""
    topics = LineTopics(config.line.site, config.line.area, config.line.id)
    plant = Plant(config, seed=4)
    client = MemoryClient()
    publisher = PlantPublisher(plant, client, topics, rng=random.Random(4))  # type: ignore[arg-type]
    publisher.attach()
    plant.run(until=3600)
    return [
        Telemetry.model_validate_json(payload)
        for topic, payload, *_ in client.messages
        if topic == topics.station("machining", "telemetry")
    ]


def test_every_configured_sensor_publishes_at_its_own_period() -> None:
    config = load_config()
    samples = machining_telemetry(config)
    counts = {
        name: sum(getattr(sample, name) is not None for sample in samples)
        for name in ("temperature_c", "vibration_mm_s", "spindle_rpm", "power_kw", "pressure_bar")
    }
    # Periods from the default line: vibration 5 s, pressure 30 s, the rest 10 s.
    assert counts == {
        "temperature_c": 360,
        "vibration_mm_s": 720,
        "spindle_rpm": 360,
        "power_kw": 360,
        "pressure_bar": 120,
    }
    # Spindle turning (readings near 0 are the noise of a stopped spindle).
    running = [s.spindle_rpm for s in samples if s.spindle_rpm and s.spindle_rpm > 1000]
    assert statistics.fmean(running) == pytest.approx(8000, rel=0.01)  # nominal x speed 1.0


def test_an_injected_fault_shows_in_the_published_telemetry() -> None:
    data = load_config().model_dump(mode="json", exclude_none=True)
    data["sensors"]["faults"] = [
        {
            "station": "machining",
            "sensor": "power_kw",
            "mode": "dropout",
            "start_h": 0.5,
            "duration_h": 0.25,
        }
    ]
    config = parse_config(data)
    samples = machining_telemetry(config)
    in_window = [s for s in samples if 1800 <= s.sim_time_s < 2700]
    assert in_window
    assert all(s.power_kw is None for s in in_window)
    # The other sensors of the station go on reporting.
    assert sum(s.temperature_c is not None for s in in_window) == 90
    assert any(s.power_kw is not None for s in samples if s.sim_time_s >= 2700)


def test_a_fault_on_a_missing_sensor_is_a_config_error() -> None:
    data = load_config().model_dump(mode="json", exclude_none=True)
    data["sensors"]["faults"] = [
        {
            "station": "welding",
            "sensor": "spindle_rpm",
            "mode": "stuck",
            "start_h": 0,
            "duration_h": 1,
        }
    ]
    with pytest.raises(ValueError, match="station 'welding' has no spindle_rpm sensor"):
        parse_config(data)


def test_part_events_carry_the_process_values_the_part_saw() -> None:
    config = load_config()
    topics = LineTopics(config.line.site, config.line.area, config.line.id)
    plant = Plant(config, seed=5)
    client = MemoryClient()
    PlantPublisher(plant, client, topics, rng=random.Random(5)).attach()  # type: ignore[arg-type]
    plant.run(until=1800)
    finished = [
        payload
        for topic, payload, *_ in client.messages
        if topic == topics.station("welding", "event") and b"part_finished" in payload
    ]
    assert finished
    assert b'"temperature_c":85.0' in finished[0]
    assert b'"wear"' in finished[0]


@pytest.mark.parametrize("resolution", [0.001, 0.1, 1.0, 0.25, 5.0])
def test_readings_sit_on_the_resolution_grid(resolution: float) -> None:
    model = SensorModel(noise_sd=3.0, resolution=resolution)
    rng = random.Random(6)
    readings = [model.measure(100.0, rng) for _ in range(2000)]
    steps = [value / resolution for value in readings]
    assert all(abs(step - round(step)) < 1e-6 for step in steps)
    assert len(set(readings)) >= 3  # the noise still shows


def test_a_reading_saturates_at_the_ends_of_the_contract_range() -> None:
    """A faulty or drifting sensor pins at its range, as a real one does, and its
    payload stays valid against the contract."""
    high = SensorModel.from_spec(SensorSpec(noise_sd=0.0, resolution=0.1), "vibration_mm_s")
    low = SensorModel.from_spec(SensorSpec(noise_sd=0.0, resolution=0.1), "temperature_c")
    assert high.measure(5e6, random.Random(1)) == SENSOR_RANGES["vibration_mm_s"][1]
    assert high.measure(-3.0, random.Random(1)) == SENSOR_RANGES["vibration_mm_s"][0]
    assert low.measure(-1e4, random.Random(1)) == SENSOR_RANGES["temperature_c"][0]

    data = load_config().model_dump(mode="json", exclude_none=True)
    data["sensors"]["faults"] = [
        {
            "station": "machining",
            "sensor": name,
            "mode": "offset",
            "magnitude": magnitude,
            "start_h": 0.25,
            "duration_h": 0.25,
        }
        for name, magnitude in (("vibration_mm_s", 1e7), ("temperature_c", -1e5))
    ]
    samples = machining_telemetry(parse_config(data))  # each decoded by the contract
    in_window = [s for s in samples if 900 <= s.sim_time_s < 1800]
    vibrations = {s.vibration_mm_s for s in in_window if s.vibration_mm_s is not None}
    assert vibrations == {SENSOR_RANGES["vibration_mm_s"][1]}
    temperatures = {s.temperature_c for s in in_window if s.temperature_c is not None}
    assert temperatures == {SENSOR_RANGES["temperature_c"][0]}
