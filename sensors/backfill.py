"""Imported history: days of the line simulated at full speed before it goes live.

A first ``factory-twin up`` should not open on empty charts, and the models need
data to train on. So, before the live line starts, the backfill runs the same
line config on a plain (as-fast-as-possible) SimPy environment, with the same
``PlantPublisher`` measuring and encoding every message as it would for the
broker. Each payload then goes through an ``Ingest`` of its own, exactly as a
message from the broker would: decoded and validated against the contract,
sequence-checked, applied to a twin state, and handed to a ``HistoryRecorder``.
Only the transport is skipped. What lands in history is therefore what the
live path would have recorded for such a run, message for message.

The simulation runs in a child process and sends its points in batches; this
process writes them, so simulating and storing each have a core.

Placement in time: the backfill ends where the live line starts. Simulated
time ``t`` is written at ``start_ms + t * 1000`` (one simulated second per
second), every point is tagged ``origin=backfill``, and the span starts where
stored history ends, so a restart fills the gap instead of overlapping it.
KPI and loss snapshots are taken every ``kpi_every_s`` of simulated time from
the backfill's own twin state, as the live sampler does from the live one.
"""

from __future__ import annotations

import logging
import multiprocessing
import random
import time
import traceback
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, cast

import paho.mqtt.client as mqtt
import simpy

from sensors.ingest import Ingest
from sensors.publisher import PlantPublisher
from sensors.topics import LineTopics
from twin.config import LineConfig
from twin.history import Point, PointSink
from twin.plant import Plant
from twin.recorder import HistoryRecorder
from twin.state import TwinState

log = logging.getLogger(__name__)
DEFAULT_SPAN_S = 7 * 24 * 3600.0
DEFAULT_KPI_EVERY_S = 600.0
# Simulated seconds between progress reports (and checks of the writer).
CHUNK_S = 6 * 3600.0
# Points per message from the simulating process to the writing one.
BATCH_POINTS = 5000


class _Loopback:
    """Stands in for the paho client: every publish goes straight to the ingest."""

    def __init__(self, deliver: Callable[[str, bytes], object]) -> None:
        self.deliver = deliver
        self.info = mqtt.MQTTMessageInfo(0)
        self._out_messages: dict[int, object] = {}  # the publisher's outbox: always empty

    def will_set(self, *args: Any, **kwargs: Any) -> None:
        pass

    def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        self.deliver(topic, payload)
        return self.info


class _NoNetwork:
    """The ingest's client: callbacks are set on it, nothing else is used."""

    on_connect: Any = None
    on_disconnect: Any = None
    on_subscribe: Any = None
    on_message: Any = None


@dataclass(frozen=True)
class BackfillResult:
    start_ms: int
    end_ms: int
    simulated_s: float
    messages: int
    rejected: int
    points: int
    wall_s: float


class BackfillError(RuntimeError):
    """The backfill failed; the message says where."""


class _Batcher:
    """Collects points and hands them on in batches (one pipe message per batch)."""

    def __init__(self, send: Callable[[list[Point]], None], size: int = BATCH_POINTS) -> None:
        self.send, self.size = send, size
        self.points: list[Point] = []
        self.total = 0

    def write(self, points: Sequence[Point]) -> None:
        self.points.extend(points)
        if len(self.points) >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.points:
            self.total += len(self.points)
            self.send(self.points)
            self.points = []


def simulate_history(
    config: LineConfig,
    sink: PointSink,
    topics: LineTopics,
    *,
    start_ms: int,
    span_s: float,
    seed: int,
    kpi_every_s: float = DEFAULT_KPI_EVERY_S,
    progress: Callable[[float], None] | None = None,
) -> tuple[float, int, int]:
    """Run the line for ``span_s`` through publisher, ingest and recorder into ``sink``.

    Returns (simulated seconds, messages, messages rejected by the contract).
    """
    line = config.line
    twin = TwinState(site=line.site, area=line.area, line=line.id)
    recorder = HistoryRecorder(
        sink,
        line.site,
        line.area,
        line.id,
        origin="backfill",
        time_of=lambda message: start_ms + int(message.sim_time_s * 1000),
    )
    ingest = Ingest(
        twin,
        topics,
        cast(mqtt.Client, _NoNetwork()),
        on_accepted=recorder.record,
    )
    plant = Plant(config, env=simpy.Environment(), seed=seed)
    publisher = PlantPublisher(
        plant,
        cast(mqtt.Client, _Loopback(ingest.handle)),
        topics,
        rng=random.Random(f"{seed}/backfill-sensors"),  # noqa: S311 - simulation noise
        source=f"backfill-{line.id}-{seed}",
    )
    publisher.attach()
    publisher.announce("online")

    def snapshots() -> Generator[simpy.Event, Any, None]:
        while True:
            yield plant.env.timeout(kpi_every_s)
            recorder.record_kpis(twin.view(), config, start_ms + int(plant.env.now * 1000))

    plant.env.process(snapshots())
    while plant.now < span_s:
        plant.run(until=min(span_s, plant.now + CHUNK_S))
        if progress is not None:
            progress(plant.now / span_s)
    # The last snapshot at the live start, so that KPIs in history are current.
    recorder.record_kpis(twin.view(), config, start_ms + int(plant.env.now * 1000))
    health = ingest.health()
    rejected = sum(health["malformed"].values()) + health["unknown_topic"]
    return plant.now, ingest.stats.received, rejected


def _child(
    connection: Connection,
    config: LineConfig,
    topics: LineTopics,
    start_ms: int,
    span_s: float,
    seed: int,
    kpi_every_s: float,
) -> None:
    """The simulating side: runs in a process of its own, sends points in batches."""
    try:
        # Plain tuples cross the pipe: pickling a slotted dataclass costs several
        # times more, and the tags dicts of a station are shared (pickled once).
        batcher = _Batcher(
            lambda points: connection.send(
                ("points", [(p.measurement, p.tags, p.fields, p.time_ms) for p in points])
            )
        )
        simulated, messages, rejected = simulate_history(
            config,
            batcher,
            topics,
            start_ms=start_ms,
            span_s=span_s,
            seed=seed,
            kpi_every_s=kpi_every_s,
            progress=lambda done: connection.send(("progress", done)),
        )
        batcher.flush()
        connection.send(("done", (simulated, messages, rejected)))
    except BaseException:
        connection.send(("error", traceback.format_exc()))
        raise
    finally:
        connection.close()


def backfill(
    config: LineConfig,
    writer: PointSink,
    topics: LineTopics,
    *,
    end_ms: int,
    span_s: float = DEFAULT_SPAN_S,
    seed: int = 42,
    kpi_every_s: float = DEFAULT_KPI_EVERY_S,
    progress: Callable[[float], None] | None = None,
) -> BackfillResult:
    """Simulate ``span_s`` of the line ending at ``end_ms`` into history.

    The simulation runs in a child process and this one writes what it sends,
    so that simulating and storing use a core each.
    """
    started = time.perf_counter()
    start_ms = end_ms - int(span_s * 1000)
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_child,
        args=(sender, config, topics, start_ms, span_s, seed, kpi_every_s),
        name="factory-twin-backfill",
        daemon=True,
    )
    child.start()
    sender.close()
    points = 0
    try:
        while True:
            try:
                kind, payload = receiver.recv()
            except EOFError:
                raise BackfillError(
                    f"the backfill process ended without finishing (exit code {child.exitcode})"
                ) from None
            if kind == "points":
                writer.write([Point(*fields) for fields in payload])
                points += len(payload)
            elif kind == "progress" and progress is not None:
                progress(payload)
            elif kind == "error":
                raise BackfillError(f"the backfill failed:\n{payload}")
            elif kind == "done":
                simulated, messages, rejected = payload
                break
    finally:
        receiver.close()
        child.join(10)
        if child.is_alive():
            child.terminate()
    if rejected:
        log.warning("backfill: %d messages were rejected by the contract", rejected)
    return BackfillResult(
        start_ms=start_ms,
        end_ms=end_ms,
        simulated_s=simulated,
        messages=messages,
        rejected=rejected,
        points=points,
        wall_s=time.perf_counter() - started,
    )
