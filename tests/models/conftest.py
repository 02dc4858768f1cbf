"""Shared fixtures: history fed through the real publisher and ingest, and its twin run.

``mqtt_history`` runs the default line with explored setpoints through the
plant's ``PlantPublisher`` (measurement noise, drift, JSON), an ``Ingest``
(decode, validate against the contract, sequence checks), the twin state and
the ``HistoryRecorder`` into a ``SqliteStore``: the backfill's path, which is
the live path minus the broker. ``sensors.backfill.backfill`` itself cannot
change setpoints while it runs, so the pipeline is wired here as
``tests/sensors/test_backfill.py`` wires it. ``simulated_twin`` is
``models.dataset.from_simulation`` of the same run (same seed, same setpoint
exploration, same clock), so the two must describe the same parts.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import paho.mqtt.client as mqtt
import pytest
from threadpoolctl import threadpool_limits

from models.dataset import PartDataset, explore_setpoints, from_simulation
from sensors.backfill import _Loopback, _NoNetwork  # the backfill's client stand-ins
from sensors.ingest import Ingest
from sensors.publisher import PlantPublisher
from sensors.topics import LineTopics
from twin.config import LineConfig, load_config
from twin.history import HistoryWriter
from twin.plant import Plant
from twin.recorder import HistoryRecorder
from twin.state import TwinState
from twin.store import SqliteStore

START_MS = 1_700_000_000_000
FED_HOURS = 4 * 24.0
FED_SEED = 2
EXPLORE_EVERY_S = 900.0


@pytest.fixture
def one_thread() -> Iterator[None]:
    """On the 2-core test machines the gradient boosting's OpenMP threads fight the
    simulation and each other: one thread fits several times faster there. Opt-in
    (``pytest.mark.usefixtures``), so other tests here keep their own settings."""
    with threadpool_limits(limits=1):
        yield


@dataclass(frozen=True)
class FedHistory:
    store: SqliteStore
    config: LineConfig
    start_ms: int
    end_ms: int
    rejected: int


def feed_history(
    config: LineConfig, store: SqliteStore, *, hours: float, seed: int, start_ms: int
) -> int:
    """Run the line with explored setpoints through publisher, ingest and recorder into
    ``store``, simulated time placed from ``start_ms`` as the backfill places it.
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
    # The exploration from_simulation runs for the same seed.
    explorer = random.Random(f"{seed}/setpoints")
    plant.env.process(explore_setpoints(plant, EXPLORE_EVERY_S, explorer))
    plant.run(until=hours * 3600.0)
    assert writer.flush(120)
    health = ingest.health()
    return int(sum(health["malformed"].values()) + health["unknown_topic"])


@pytest.fixture(scope="session")
def mqtt_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FedHistory]:
    config = load_config()
    path: Path = tmp_path_factory.mktemp("history") / "history.sqlite3"
    store = SqliteStore(path, retention_ms=None)
    try:
        rejected = feed_history(config, store, hours=FED_HOURS, seed=FED_SEED, start_ms=START_MS)
        end_ms = START_MS + int(FED_HOURS * 3_600_000)
        yield FedHistory(store, config, START_MS, end_ms, rejected)
    finally:
        store.close()


@pytest.fixture(scope="session")
def simulated_twin(mqtt_history: FedHistory) -> PartDataset:
    """The batch simulation of the run in ``mqtt_history``."""
    return from_simulation(
        mqtt_history.config,
        FED_HOURS,
        FED_SEED,
        start_ms=mqtt_history.start_ms,
        explore_every_s=EXPLORE_EVERY_S,
    )
