"""Feeding a twin as it is fed in service: the plant's publisher into an ingest.

``feed_history`` runs a line through the plant's ``PlantPublisher`` (measurement
noise, drift, injected faults, JSON), an ``Ingest`` (decode, validate against the
contract, sequence checks), a twin state and the ``HistoryRecorder`` into a
store: the backfill's path, which is the live path minus the broker.
``sensors.backfill.backfill`` itself cannot change setpoints while it runs, so
the pipeline is wired here as ``tests/sensors/test_backfill.py`` wires it.
``feed_twin`` does the same into a twin state alone, for API tests;
``feed_learner`` into a twin and a ``LineLearner`` (the live stack's wiring).
Importable from any test (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import paho.mqtt.client as mqtt

from models.dataset.parts import explore_setpoints
from sensors.backfill_pipeline import _Loopback, _NoNetwork  # the backfill's client stand-ins
from sensors.ingest import Ingest
from sensors.loopback import LoopbackLine, run_through_ingest
from sensors.mqtt import new_client
from sensors.publisher import PlantPublisher
from sensors.topics import LineTopics
from twin.config.line import LineConfig, load_config
from twin.history.points import HistoryStore, HistoryWriter
from twin.history.recorder import HistoryRecorder
from twin.learning.observer import LineLearner
from twin.sim.plant import Plant
from twin.state.line import TwinState


def feed_history(
    config: LineConfig,
    store: HistoryStore,
    *,
    hours: float,
    seed: int,
    start_ms: int,
    explore_every_s: float | None = None,
) -> int:
    """Run the line for ``hours`` into ``store``, simulated time placed from
    ``start_ms`` as the backfill places it; with ``explore_every_s``, setpoints are
    explored as ``models.dataset.parts.from_simulation`` explores them for the same seed.
    Returns the number of messages the contract rejected."""
    line = config.line
    topics = LineTopics(line.site, line.area, line.id)
    writer = HistoryWriter(store)
    recorder = HistoryRecorder(
        writer,
        line.site,
        line.area,
        line.id,
        origin="backfill",
        time_of=lambda message: start_ms + int(message.sim_time_s * 1000),
    )
    twin = TwinState(line.site, line.area, line.id)
    ingest = Ingest(twin, topics, cast(mqtt.Client, _NoNetwork()), on_accepted=recorder.record)
    plant = Plant(config, seed=seed)
    publisher = PlantPublisher(
        plant,
        cast(mqtt.Client, _Loopback(ingest.handle)),
        topics,
        rng=random.Random(f"{seed}/sensors"),
        source=f"test-{seed}",
    )
    publisher.attach()
    publisher.announce("online")
    if explore_every_s is not None:
        explorer = random.Random(f"{seed}/setpoints")
        plant.env.process(explore_setpoints(plant, explore_every_s, explorer))
    plant.run(until=hours * 3600.0)
    assert writer.flush(120)
    health = ingest.health()
    return int(sum(health["malformed"].values()) + health["unknown_topic"])


@dataclass
class FedTwin:
    """A twin fed in memory: the plant's publisher hands each message to an ingest."""

    topics: LineTopics
    twin: TwinState
    ingest: Ingest
    plant: Plant
    publisher: PlantPublisher
    client: Any


def feed_twin(
    hours: float,
    *,
    seed: int,
    twin: TwinState | None = None,
    client: Callable[[Callable[[str, bytes], object]], Any] | None = None,
    config: LineConfig | None = None,
    setpoints: dict[str, dict[str, float]] | None = None,
) -> FedTwin:
    """Run the line for ``hours`` into ``twin`` (a new one by default) through the
    plant's publisher and an ingest, no broker. ``client`` makes the publisher's
    client from the ingest's handler (default: ``helpers.MemoryClient``).
    ``setpoints`` (station: {name: value}) are changed on the plant before it
    runs, as commands would change them: the line file's defaults stay."""
    from helpers import MemoryClient

    config = config or load_config()
    line = config.line
    topics = LineTopics(site=line.site, area=line.area, line=line.id)
    state = twin if twin is not None else TwinState(line.site, line.area, line.id)
    ingest = Ingest(state, topics, new_client("unused"))
    sender = (client or MemoryClient)(ingest.handle)
    plant = Plant(config, seed=seed)
    publisher = PlantPublisher(plant, cast(mqtt.Client, sender), topics, rng=random.Random(seed))
    publisher.attach()
    publisher.announce()
    for station, values in (setpoints or {}).items():
        for name, value in values.items():
            plant.set_setpoint(station, name, value)
    plant.run(until=hours * 3600)
    return FedTwin(topics, state, ingest, plant, publisher, sender)


def feed_learner(
    config: LineConfig,
    hours: float,
    seed: int,
    speeds: dict[str, float] | None = None,
    *,
    explore_every_s: float | None = None,
) -> tuple[TwinState, LineLearner]:
    """Run ``config`` for ``hours`` into a twin and a learner fed only by the ingest,
    as the live stack wires them (``sensors.loopback``), with the speed setpoints
    ``speeds`` (station: speed) changed before it runs; with ``explore_every_s``,
    every station's setpoints jump to values drawn within their ranges that often
    (``models.dataset.parts.explore_setpoints``, as commands would set them)."""
    learner = LineLearner()
    if explore_every_s is None:
        twin, _ = run_through_ingest(config, hours, seed, learner.observe, speeds=speeds)
        return twin, learner
    line = LoopbackLine(config, seed, learner.observe, speeds=speeds)
    explorer = random.Random(f"{seed}/setpoints")
    line.plant.env.process(explore_setpoints(line.plant, explore_every_s, explorer))
    line.run_until(hours * 3600.0)
    return line.twin, learner
