"""Imported history: the backfill writes what the live path would have recorded."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from helpers import MemoryClient

from sensors.backfill import backfill
from sensors.ingest import Ingest
from sensors.publisher import PlantPublisher
from sensors.topics import LineTopics
from twin.config.line import load_config
from twin.history.points import HistoryWriter
from twin.history.recorder import HistoryRecorder
from twin.history.store import SqliteStore
from twin.sim.plant import Plant
from twin.state.line import TwinState

HOUR_MS = 3_600_000


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    opened = SqliteStore(tmp_path / "history.sqlite3", retention_ms=None)
    yield opened  # type: ignore[misc]
    opened.close()


def test_backfill_covers_its_span_ending_at_the_live_start(store: SqliteStore) -> None:
    config = load_config()
    topics = LineTopics(config.line.site, config.line.area, config.line.id)
    writer = HistoryWriter(store)
    end_ms = 1_800_000_000_000
    result = backfill(
        config, writer, topics, end_ms=end_ms, span_s=4 * 3600, seed=3, kpi_every_s=600
    )
    writer.flush(30)
    assert result.rejected == 0
    assert result.start_ms == end_ms - 4 * HOUR_MS
    oldest, newest = store.time_range()  # type: ignore[misc]
    assert result.start_ms <= oldest < result.start_ms + 60_000
    assert end_ms - 60_000 < newest <= end_ms
    # Every point is marked as imported history.
    assert {key.tags.get("origin") for key in store.series()} == {"backfill"}
    # Every station's sensors, parts, state changes, KPIs and losses are there.
    stations = {spec.id for spec in config.stations}
    measured = {key.tags["station"] for key in store.series("telemetry")}
    assert measured == stations
    assert {key.tags["station"] for key in store.series("part")} == stations
    assert {key.tags["station"] for key in store.series("state")} == stations
    assert {key.tags.get("category") for key in store.series("loss")} >= {"unplanned", "external"}
    line_oee = store.query(
        "kpi", "oee", result.start_ms, end_ms + 1, tags={"station": ""}
    )  # no station tag: nothing matches an empty station
    assert line_oee == []
    kpis = [
        result
        for result in store.query("kpi", "produced", result.start_ms, end_ms + 1)
        if "station" not in result.key.tags
    ]
    assert len(kpis) == 1
    assert len(kpis[0].windows) == 4 * 3600 // 600  # one snapshot every 10 simulated minutes


def test_backfill_records_what_the_live_ingest_records(store: SqliteStore, tmp_path: Path) -> None:
    """The same plant, seed and messages: the backfill's points equal those of an
    ingest fed by a publisher through a client stand-in, point for point."""
    config = load_config()
    topics = LineTopics(config.line.site, config.line.area, config.line.id)
    span_s, end_ms, seed = 1800.0, 1_800_000_000_000, 9
    writer = HistoryWriter(store)
    backfill(config, writer, topics, end_ms=end_ms, span_s=span_s, seed=seed, kpi_every_s=1e9)
    writer.flush(30)

    live_store = SqliteStore(tmp_path / "live.sqlite3", retention_ms=None)
    try:
        live_writer = HistoryWriter(live_store)
        start_ms = end_ms - int(span_s * 1000)
        recorder = HistoryRecorder(
            live_writer,
            config.line.site,
            config.line.area,
            config.line.id,
            origin="backfill",
            time_of=lambda message: start_ms + int(message.sim_time_s * 1000),
        )
        twin = TwinState(config.line.site, config.line.area, config.line.id)
        ingest = Ingest(twin, topics, MemoryClient(), on_accepted=recorder.record)  # type: ignore[arg-type]
        plant = Plant(config, seed=seed)
        publisher = PlantPublisher(
            plant,
            MemoryClient(forward=ingest.handle),  # type: ignore[arg-type]
            topics,
            rng=random.Random(f"{seed}/backfill-sensors"),
            source=f"backfill-{config.line.id}-{seed}",
        )
        publisher.attach()
        publisher.announce("online")
        plant.run(until=span_s)
        live_writer.flush(30)

        def everything(target: SqliteStore) -> Counter[tuple[str, str, str, int, float]]:
            # What came from messages (the KPI snapshots are the sampler's).
            return Counter(
                (s.measurement, s.field, s.tags.get("station", ""), s.time_ms, s.value)
                for s in target.read_after(0, 10_000_000)
                if s.measurement not in ("kpi", "loss")
            )

        assert everything(store) == everything(live_store)
        assert sum(everything(store).values()) > 1000
    finally:
        live_store.close()
