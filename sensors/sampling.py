"""When the line's sensors are sampled: every sensor at its own period, on one clock.

A station's sensors are grouped by their sampling period (``sampling_groups``);
``sampling_clock`` is the SimPy process that, at each moment some period is due,
hands each station with a sensor due one sample of all of them to ``publish``
(``sensors.publisher.PlantPublisher.publish_telemetry``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import simpy

from sensors.signals import Sensor
from sensors.topics import LineTopics
from twin.sim.plant import Plant
from twin.sim.station import StationModel

# (contract field, sensor, the true value it measures as a function of time)
SensorProbe = tuple[str, Sensor, Callable[[float], float]]


@dataclass(frozen=True, slots=True)
class SamplingGroup:
    """The sensors of one station sampled at one period."""

    station: StationModel
    period: float
    topic: str
    sensors: tuple[SensorProbe, ...]


def sampling_groups(
    plant: Plant,
    sensors: Mapping[tuple[str, str], Sensor],
    topics: LineTopics,
    default_period_s: float,
) -> list[SamplingGroup]:
    """Each station's sensors grouped by sampling period (``default_period_s`` for a
    sensor that names none), resolved once."""
    default = default_period_s
    groups: dict[tuple[str, float], list[SensorProbe]] = {}
    for (station_id, name), sensor in sensors.items():
        station = plant.by_id[station_id]
        spec = getattr(station.spec.sensors, name)
        groups.setdefault((station_id, spec.period_s or default), []).append(
            (name, sensor, station.probe(name))
        )
    return [
        SamplingGroup(
            station=plant.by_id[station_id],
            period=period,
            topic=topics.station(station_id, "telemetry"),
            sensors=tuple(probes),
        )
        for (station_id, period), probes in groups.items()
    ]


def sampling_clock(
    env: simpy.Environment,
    groups: Sequence[SamplingGroup],
    publish: Callable[[str, tuple[SensorProbe, ...]], None],
) -> Generator[simpy.Event, Any, None]:
    """One clock for every sensor of the line. At each moment some sensor is due,
    each station with a sensor due gets one sample (``publish``) that carries all of its
    sensors due then (the contract's "the sensors due at ``sim_time_s``"): a
    station sampled every 5 s and every 10 s sends one message every 5 s, not
    two every 10 s. The moments are ``start + k * period`` for each period, so
    that periods meet exactly and never drift apart by rounding."""
    periods = sorted({group.period for group in groups})
    if not periods:
        return
    start = float(env.now)
    taken = dict.fromkeys(periods, 0)  # samples taken at each period
    # The samples of each combination of periods due together, made once.
    plans: dict[tuple[float, ...], list[tuple[str, tuple[SensorProbe, ...]]]] = {}
    at = start
    while True:
        due = tuple(period for period in periods if start + taken[period] * period == at)
        plan = plans.get(due)
        if plan is None:
            plan = plans[due] = _sampling_plan(groups, due)
        for topic, sensors in plan:
            publish(topic, sensors)
        for period in due:
            taken[period] += 1
        following = min(start + taken[period] * period for period in periods)
        yield env.timeout(following - at)
        at = following


def _sampling_plan(
    groups: Sequence[SamplingGroup], due: tuple[float, ...]
) -> list[tuple[str, tuple[SensorProbe, ...]]]:
    """(topic, sensors) of each station with a sensor of a ``due`` period, in the
    stations' order."""
    by_topic: dict[str, list[SensorProbe]] = {}
    for group in groups:
        if group.period in due:
            by_topic.setdefault(group.topic, []).extend(group.sensors)
    return [(topic, tuple(sensors)) for topic, sensors in by_topic.items()]
