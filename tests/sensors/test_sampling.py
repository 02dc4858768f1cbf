"""When the line's sensors are sampled: each at its own period, on one clock.

The default line with one station's sensors at periods of their own (5 s and
15 s beside the line's 10 s): each station gets one sample at every moment one
of its periods is due, carrying exactly the sensors due then, at
``start + k * period`` with no drift from adding periods up. Expected moments are
computed from the periods, not typed in.
"""

from __future__ import annotations

import math

import simpy

from sensors.sampling import SamplingGroup, SensorProbe, sampling_clock, sampling_groups
from sensors.signals import Sensor, SensorModel
from sensors.topics import LineTopics
from twin.config.line import SENSOR_NAMES, LineConfig, load_config, with_changes
from twin.sim.plant import Plant

HORIZON_S = 120.0


def line_with_periods() -> LineConfig:
    base = load_config()
    station = base.stations[0].id
    return with_changes(
        base,
        {
            "stations.0.sensors.temperature_c.period_s": 5.0,
            "stations.0.sensors.vibration_mm_s.period_s": 15.0,
        },
        source=f"periods on {station}",
    )


def fitted(config: LineConfig) -> dict[tuple[str, str], Sensor]:
    return {
        (spec.id, name): Sensor(SensorModel.from_spec(getattr(spec.sensors, name), name))
        for spec in config.stations
        for name in SENSOR_NAMES
        if getattr(spec.sensors, name) is not None
    }


def topics_of(config: LineConfig) -> LineTopics:
    line = config.line
    return LineTopics(site=line.site, area=line.area, line=line.id)


def period_of(config: LineConfig, station_id: str, name: str) -> float:
    spec = getattr(next(s for s in config.stations if s.id == station_id).sensors, name)
    return float(spec.period_s or config.sensors.telemetry_period_s)


def periodic_line() -> tuple[
    LineConfig, dict[tuple[str, str], Sensor], LineTopics, list[SamplingGroup]
]:
    """The line with periods of their own, its fitted sensors, topics and groups."""
    config = line_with_periods()
    sensors = fitted(config)
    topics = topics_of(config)
    groups = sampling_groups(
        Plant(config, seed=1), sensors, topics, config.sensors.telemetry_period_s
    )
    return config, sensors, topics, groups


def test_groups_hold_every_fitted_sensor_once_by_station_and_period() -> None:
    config, sensors, topics, groups = periodic_line()

    seen = [
        (group.station.id, name, group.period, group.topic)
        for group in groups
        for name, _, _ in group.sensors
    ]
    assert sorted((station, name) for station, name, _, _ in seen) == sorted(sensors)
    for station, name, period, topic in seen:
        assert period == period_of(config, station, name)
        assert topic == topics.station(station, "telemetry")
    # One group per (station, period): no two groups share both.
    keys = [(group.station.id, group.period) for group in groups]
    assert len(keys) == len(set(keys))


def test_each_station_gets_one_sample_of_the_sensors_due_at_each_due_moment() -> None:
    config, sensors, topics, groups = periodic_line()
    env = simpy.Environment()
    taken: list[tuple[float, str, tuple[str, ...]]] = []

    def publish(topic: str, probes: tuple[SensorProbe, ...]) -> None:
        taken.append((float(env.now), topic, tuple(sorted(name for name, _, _ in probes))))

    env.process(sampling_clock(env, groups, publish))
    env.run(until=HORIZON_S)

    expected: list[tuple[float, str, tuple[str, ...]]] = []
    for spec in config.stations:
        names = [name for station, name in sensors if station == spec.id]
        periods = {name: period_of(config, spec.id, name) for name in names}
        moments = sorted(
            {k * p for p in periods.values() for k in range(int(HORIZON_S // p) + 1)} - {HORIZON_S}
        )
        for moment in moments:
            due = tuple(sorted(n for n in names if math.isclose(moment % periods[n], 0)))
            expected.append((moment, topics.station(spec.id, "telemetry"), due))
    assert sorted(taken) == sorted(expected)
    # One message per station and moment, never two.
    assert len({(t, topic) for t, topic, _ in taken}) == len(taken)


def test_moments_are_multiples_of_the_period_without_drift() -> None:
    config = load_config()
    plant = Plant(config, seed=3)
    station = config.stations[0].id
    period = 0.1  # not exact in binary: adding it up would drift
    model = SensorModel.from_spec(config.stations[0].sensors.temperature_c, "temperature_c")
    sensors = {(station, "temperature_c"): Sensor(model)}
    groups = sampling_groups(plant, sensors, topics_of(config), period)
    env = simpy.Environment(initial_time=7.0)
    moments: list[float] = []
    env.process(sampling_clock(env, groups, lambda topic, probes: moments.append(env.now)))
    env.run(until=7.0 + 1000 * period)
    assert moments == [7.0 + k * period for k in range(len(moments))]
    assert len(moments) >= 999


def test_a_line_without_sensors_samples_nothing() -> None:
    env = simpy.Environment()
    called: list[str] = []
    env.process(sampling_clock(env, [], lambda topic, probes: called.append(topic)))
    env.run(until=100)
    assert called == []
