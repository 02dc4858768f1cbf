"""Shared fixtures: history fed through the real publisher and ingest, and its twin run.

``mqtt_history`` runs the default line with explored setpoints through the
plant's publisher, an ingest and the recorder into a ``SqliteStore``
(``feeding.feed_history``: the live path minus the broker). ``simulated_twin`` is
``models.dataset.parts.from_simulation`` of the same run (same seed, same setpoint
exploration, same clock), so the two must describe the same parts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from feeding import feed_history
from threadpoolctl import threadpool_limits

from models.dataset.parts import from_simulation
from models.dataset.rows import PartDataset
from twin.config.line import LineConfig, load_config
from twin.history.store import SqliteStore

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


@pytest.fixture(scope="session")
def mqtt_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FedHistory]:
    config = load_config()
    path: Path = tmp_path_factory.mktemp("history") / "history.sqlite3"
    store = SqliteStore(path, retention_ms=None)
    try:
        rejected = feed_history(
            config,
            store,
            hours=FED_HOURS,
            seed=FED_SEED,
            start_ms=START_MS,
            explore_every_s=EXPLORE_EVERY_S,
        )
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
