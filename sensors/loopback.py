"""A line run through its publisher into an ingest, in memory, no broker.

``run_through_ingest`` is the live path minus the network: the plant's
``PlantPublisher`` (measurement noise, JSON) hands each message at once to an
``Ingest`` (decoding, the contract's checks, sequence checks) that feeds a
twin state and calls ``on_accepted`` with each message it took. What listens
there sees exactly what it would see behind a broker, so the line learnt from
the stream (``twin.learning``) can be measured against the line file the plant
ran (``bench/calibration.py``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import cast

import paho.mqtt.client as mqtt
from pydantic import BaseModel

from sensors.backfill_pipeline import _Loopback, _NoNetwork
from sensors.ingest import Ingest
from sensors.publisher import PlantPublisher
from sensors.topics import LineTopics
from twin.config.line import LineConfig
from twin.sim.plant import Plant
from twin.state.line import TwinState


class LoopbackLine:
    """A line wired through its publisher to an ingest, run in steps: ``run_until``
    moves the plant on, and ``twin`` holds what the ingest made of it so far, so a
    forecast forked from the twin can be set beside what the line then did."""

    def __init__(
        self,
        config: LineConfig,
        seed: int,
        on_accepted: Callable[[str | None, BaseModel], None],
        *,
        speeds: Mapping[str, float] | None = None,
    ) -> None:
        line = config.line
        topics = LineTopics(line.site, line.area, line.id)
        self.twin = TwinState(line.site, line.area, line.id)
        self.ingest = Ingest(
            self.twin, topics, cast(mqtt.Client, _NoNetwork()), on_accepted=on_accepted
        )
        self.plant = Plant(config, seed=seed)
        client = cast(mqtt.Client, _Loopback(self.ingest.handle))
        sensors = random.Random(seed)  # noqa: S311 - measurement noise, not secrets
        publisher = PlantPublisher(self.plant, client, topics, rng=sensors, source="loopback")
        publisher.attach()
        publisher.announce("online")
        for station, speed in (speeds or {}).items():
            self.plant.set_setpoint(station, "speed", speed)

    def run_until(self, sim_time_s: float) -> None:
        """Run the plant to ``sim_time_s`` (simulated seconds from its start)."""
        self.plant.run(until=sim_time_s)


def run_through_ingest(
    config: LineConfig,
    hours: float,
    seed: int,
    on_accepted: Callable[[str | None, BaseModel], None],
    *,
    speeds: Mapping[str, float] | None = None,
) -> tuple[TwinState, Ingest]:
    """Run ``config`` for ``hours`` (simulated) on ``seed``; every message the ingest
    accepts goes to ``on_accepted``. ``speeds`` (station: speed setpoint) are set
    before it runs, as commands would set them. Returns the twin and the ingest."""
    if not hours > 0:
        raise ValueError(f"hours must be > 0 (got {hours})")
    line = LoopbackLine(config, seed, on_accepted, speeds=speeds)
    line.run_until(hours * 3600.0)
    return line.twin, line.ingest


__all__ = ["LoopbackLine", "run_through_ingest"]
