"""Imported history: days of the line simulated at full speed, written beside the live line.

A first ``factory-twin up`` should not open on empty charts, and the models need
data to train on. So the backfill runs the same line config on a plain
(as-fast-as-possible) SimPy environment, with the same ``PlantPublisher``
measuring and encoding every message as it would for the broker. Each payload
then goes through an ``Ingest`` of its own, exactly as a message from the broker
would: decoded and validated against the contract, sequence-checked, applied to
a twin state, and handed to a ``HistoryRecorder``. What lands in history is
therefore what the live path would have recorded for such a run, message for
message (``tests/sensors/test_backfill.py`` checks it sample for sample).

Three processes share the work, so that a 2-core machine keeps both cores busy
and the calling process (the API, the live line) stays responsive:

- the *simulating* child runs the plant and its publisher and sends the encoded
  payloads, in order, in batches (a pipe stands in for the broker);
- the *recording* child decodes them through the ingest into its twin state and
  recorder, and sends the points as columns (series, time, value) with the
  series named once;
- the caller hands the columns to the store's bulk path
  (``HistoryWriter.write_columns``): SQLite inserts, with no Python object per
  sample.

Placement in time: the backfill ends where the live line starts. Simulated
time ``t`` is written at ``start_ms + t * 1000`` (one simulated second per
second), and every point is tagged ``origin=backfill``. KPI and loss snapshots
are taken every ``kpi_every_s`` of simulated time from the backfill's own twin
state, as the live sampler does from the live one: the simulating side marks
the moment in the stream, the recording side takes the snapshot when the mark
arrives, after exactly the messages published before it.

Stopping: ``backfill(stop=event)`` ends both children when the event is set
and raises ``BackfillCancelled``. The children ignore SIGINT (a Ctrl-C reaches
the whole process group; the caller decides), die quietly on SIGTERM, and end
quietly when the other end of a pipe is gone: a stopped backfill leaves no
traceback behind.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import random
import signal
import threading
import time
import traceback
from array import array
from collections import Counter
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, cast

import paho.mqtt.client as mqtt
import simpy

from sensors.ingest import Ingest
from sensors.publisher import PlantPublisher
from sensors.topics import LineTopics
from twin.config import LineConfig
from twin.history import Point, PointSink, SeriesKey
from twin.plant import Plant
from twin.recorder import HistoryRecorder
from twin.state import TwinState

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from twin.history import HistoryWriter

log = logging.getLogger(__name__)
DEFAULT_SPAN_S = 7 * 24 * 3600.0
DEFAULT_KPI_EVERY_S = 600.0
# Simulated seconds between progress reports.
CHUNK_S = 6 * 3600.0
# Payloads per message from the simulating child to the recording one.
BATCH_MESSAGES = 2000
# Samples per message from the recording child to the caller.
BATCH_SAMPLES = 20_000
# Distinct tags objects the columns remember by identity (see _Columns).
MAX_TAGS_BY_IDENTITY = 4096
# How often the caller looks at its stop event while it waits for the children.
POLL_S = 0.2
# How often a held backfill asks whether it may go on.
HOLD_S = 0.05

# Control items in the simulating child's stream, beside (topic, payload) items.
_KPI = 0  # take a KPI snapshot at this simulated time
_PROGRESS = 1  # this share of the span is done
_DONE = 2  # the span is done: (simulated seconds, the child's CPU seconds)
_FAILED = 3  # the simulating child failed: (traceback text)


class _Loopback:
    """Stands in for the paho client: every publish is handed to ``deliver``."""

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
    # CPU seconds of the simulating and the recording child (imports included).
    children_cpu_s: tuple[float, float] = (0.0, 0.0)


class BackfillError(RuntimeError):
    """The backfill failed; the message says where."""


class BackfillCancelled(RuntimeError):
    """The backfill was stopped before it finished (what it wrote stays written)."""


# -- the two halves of the pipeline ------------------------------------------------------
class _PlantSide:
    """The simulated line and its publisher: encoded payloads, in publishing order."""

    def __init__(
        self,
        config: LineConfig,
        topics: LineTopics,
        *,
        seed: int,
        kpi_every_s: float,
        deliver: Callable[[str, bytes], object],
        snapshot: Callable[[float], None],
    ) -> None:
        self.plant = Plant(config, env=simpy.Environment(), seed=seed)
        publisher = PlantPublisher(
            self.plant,
            cast(mqtt.Client, _Loopback(deliver)),
            topics,
            rng=random.Random(f"{seed}/backfill-sensors"),  # noqa: S311 - simulation noise
            source=f"backfill-{config.line.id}-{seed}",
        )
        publisher.attach()
        publisher.announce("online")
        env = self.plant.env

        def snapshots() -> Generator[simpy.Event, Any, None]:
            while True:
                yield env.timeout(kpi_every_s)
                snapshot(env.now)

        env.process(snapshots())

    def run(self, span_s: float, progress: Callable[[float], None] | None = None) -> float:
        """Simulate ``span_s``; the simulated seconds done."""
        plant = self.plant
        while plant.now < span_s:
            plant.run(until=min(span_s, plant.now + CHUNK_S))
            if progress is not None:
                progress(plant.now / span_s)
        return float(plant.now)


class _TwinSide:
    """Ingest, twin state and recorder: what the live path does with each payload."""

    def __init__(
        self, config: LineConfig, topics: LineTopics, sink: PointSink, *, start_ms: int
    ) -> None:
        line = config.line
        self.config = config
        self.start_ms = start_ms
        self.twin = TwinState(site=line.site, area=line.area, line=line.id)
        self.recorder = HistoryRecorder(
            sink,
            line.site,
            line.area,
            line.id,
            origin="backfill",
            time_of=lambda message: start_ms + int(message.sim_time_s * 1000),
        )
        self.ingest = Ingest(
            self.twin,
            topics,
            cast(mqtt.Client, _NoNetwork()),
            on_accepted=self.recorder.record,
        )
        self.handle = self.ingest.handle

    def snapshot(self, sim_time_s: float) -> None:
        self.recorder.record_kpis(
            self.twin.view(), self.config, self.start_ms + int(sim_time_s * 1000)
        )

    def counts(self) -> tuple[int, int]:
        """Messages received, and of those rejected by the contract."""
        health = self.ingest.health()
        rejected = sum(health["malformed"].values()) + health["unknown_topic"]
        return self.ingest.stats.received, rejected


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
    """Run the line for ``span_s`` through publisher, ingest and recorder into ``sink``,
    in this process. Returns (simulated seconds, messages, messages rejected by the
    contract)."""
    twin_side = _TwinSide(config, topics, sink, start_ms=start_ms)
    plant_side = _PlantSide(
        config,
        topics,
        seed=seed,
        kpi_every_s=kpi_every_s,
        deliver=twin_side.handle,
        snapshot=twin_side.snapshot,
    )
    simulated = plant_side.run(span_s, progress)
    # The last snapshot at the live start, so that KPIs in history are current.
    twin_side.snapshot(simulated)
    return (simulated, *twin_side.counts())


# -- points as columns ---------------------------------------------------------------------
class _Columns:
    """A point sink that keeps samples as three columns (series index, time, value).

    Each series is named once (``keys``, in order of first use) and then referred
    to by its index, so that a week of history crosses the pipe as a few arrays
    and the store inserts it without an object per sample.
    """

    def __init__(self) -> None:
        self.keys: list[SeriesKey] = []
        self._index: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, int]] = {}
        # The recorder shares one tags dict per station (and machine): a point's
        # series are found by the identity of its tags first. An entry holds its
        # tags, so that the identity cannot be reused while it is cached.
        self._by_identity: dict[tuple[str, int], tuple[object, dict[str, int]]] = {}
        self.sent_keys = 0
        self.points = 0
        self.points_by_measurement: Counter[str] = Counter()
        self._reset()

    def _reset(self) -> None:
        self.series = array("l")
        self.times = array("q")
        self.values = array("d")
        self.batch_points: Counter[str] = Counter()

    def _fields_of(self, measurement: str, tags: Mapping[str, str]) -> dict[str, int]:
        key = (measurement, tuple(tags.items()))
        by_field = self._index.get(key)
        if by_field is None:
            by_field = self._index[key] = {}
        if len(self._by_identity) >= MAX_TAGS_BY_IDENTITY:
            self._by_identity.clear()  # tags made afresh for each point: stop remembering
        self._by_identity[(measurement, id(tags))] = (tags, by_field)
        return by_field

    def write(self, points: Sequence[Point]) -> None:
        by_identity, keys = self._by_identity, self.keys
        series, times, values = self.series, self.times, self.values
        for point in points:
            found = by_identity.get((point.measurement, id(point.tags)))
            if found is not None and found[0] is point.tags:
                by_field = found[1]
            else:
                by_field = self._fields_of(point.measurement, point.tags)
            for name, value in point.fields.items():
                number = by_field.get(name)
                if number is None:
                    number = by_field[name] = len(keys)
                    keys.append(SeriesKey(point.measurement, name, dict(point.tags)))
                series.append(number)
                times.append(point.time_ms)
                values.append(value)
            self.batch_points[point.measurement] += 1

    def __len__(self) -> int:
        return len(self.values)

    def take(self) -> tuple[list[SeriesKey], array[int], array[int], array[float], Counter[str]]:
        """The new series names and the columns since the last take."""
        new_keys = self.keys[self.sent_keys :]
        self.sent_keys = len(self.keys)
        taken = (new_keys, self.series, self.times, self.values, self.batch_points)
        self.points += sum(self.batch_points.values())
        self.points_by_measurement.update(self.batch_points)
        self._reset()
        return taken


# -- the children -----------------------------------------------------------------------------
def _quiet_child() -> None:
    """A child leaves stopping to its parent: Ctrl-C reaches the whole process
    group, and the parent ends the children in order. SIGTERM keeps its default
    (the process ends at once, silently). SIGINT was blocked since the child was
    made (see ``_start_quietly``): one that came meanwhile is dropped here."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    # What the imports made lives as long as the child: keep it out of the cyclic
    # collector's full passes, which otherwise rescan it over and over.
    gc.freeze()


def _start_quietly(child: BaseProcess) -> None:
    """Start ``child`` with SIGINT blocked: the mask is inherited, so a Ctrl-C
    while the child is still importing cannot raise KeyboardInterrupt in it. The
    mask is this thread's only; the process's signals go to its main thread."""
    # The first start of a spawned child starts multiprocessing's resource tracker,
    # which unblocks SIGINT in the calling thread when it is up: start it first.
    resource_tracker.ensure_running()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        child.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _simulating_child(
    out: Connection,
    config: LineConfig,
    topics: LineTopics,
    span_s: float,
    seed: int,
    kpi_every_s: float,
) -> None:
    _quiet_child()
    items: list[tuple[Any, Any]] = []

    def send() -> None:
        out.send(items)
        items.clear()

    def deliver(topic: str, payload: bytes) -> None:
        items.append((topic, payload))
        if len(items) >= BATCH_MESSAGES:
            send()

    def progress(done: float) -> None:
        items.append((_PROGRESS, done))
        send()

    try:
        plant_side = _PlantSide(
            config,
            topics,
            seed=seed,
            kpi_every_s=kpi_every_s,
            deliver=deliver,
            snapshot=lambda sim_time: items.append((_KPI, sim_time)),
        )
        simulated = plant_side.run(span_s, progress)
        items.append((_KPI, simulated))  # the last snapshot, at the live start
        items.append((_DONE, (simulated, time.process_time())))
        send()
    except (BrokenPipeError, ConnectionResetError):
        return  # the recording side is gone: it was stopped, nobody to tell
    except Exception:
        with contextlib.suppress(OSError):
            out.send([(_FAILED, traceback.format_exc())])
        raise SystemExit(1) from None
    finally:
        out.close()


def _recording_child(
    inbox: Connection,
    out: Connection,
    config: LineConfig,
    topics: LineTopics,
    start_ms: int,
) -> None:
    _quiet_child()
    columns = _Columns()

    def send_rows() -> None:
        if len(columns):
            out.send(("rows", columns.take()))

    try:
        twin_side = _TwinSide(config, topics, columns, start_ms=start_ms)
        handle, snapshot = twin_side.handle, twin_side.snapshot
        while True:
            for first, second in inbox.recv():
                if type(first) is str:
                    handle(first, second)
                    continue
                if first == _KPI:
                    snapshot(second)
                elif first == _PROGRESS:
                    send_rows()
                    out.send(("progress", second))
                elif first == _DONE:
                    send_rows()
                    simulated, simulating_cpu_s = second
                    counts = twin_side.counts()
                    cpu_s = (simulating_cpu_s, time.process_time())
                    out.send(("done", (simulated, *counts, columns.points, cpu_s)))
                    return
                elif first == _FAILED:
                    out.send(("error", second))
                    return
                if len(columns) >= BATCH_SAMPLES:
                    send_rows()
            if len(columns) >= BATCH_SAMPLES:
                send_rows()
    except (BrokenPipeError, ConnectionResetError, EOFError):
        return  # a neighbour is gone: the backfill was stopped
    except Exception:
        with contextlib.suppress(OSError):
            out.send(("error", traceback.format_exc()))
        raise SystemExit(1) from None
    finally:
        inbox.close()
        out.close()


def _end(children: Sequence[BaseProcess], *, finished: bool) -> None:
    """Reap the children; unless they finished, stop them first (SIGTERM: they die
    quietly)."""
    children = [child for child in children if child.pid is not None]  # started ones
    for child in children:
        if finished:
            child.join(10)
        if child.is_alive():
            child.terminate()
    for child in children:
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join(5)


def backfill(
    config: LineConfig,
    writer: HistoryWriter,
    topics: LineTopics,
    *,
    end_ms: int,
    span_s: float = DEFAULT_SPAN_S,
    seed: int = 42,
    kpi_every_s: float = DEFAULT_KPI_EVERY_S,
    progress: Callable[[float], None] | None = None,
    stop: threading.Event | None = None,
    hold: Callable[[], bool] | None = None,
) -> BackfillResult:
    """Simulate ``span_s`` of the line ending at ``end_ms`` into history.

    Blocks until every point is handed to ``writer`` (``writer.flush()`` makes it
    durable). Raises ``BackfillCancelled`` when ``stop`` is set first, and
    ``BackfillError`` when a child fails. While ``hold()`` is true the backfill
    waits (its children block on their full pipes): the live line comes first.
    """
    started = time.perf_counter()
    start_ms = end_ms - int(span_s * 1000)
    context = multiprocessing.get_context("spawn")
    payloads_in, payloads_out = context.Pipe(duplex=False)
    rows_in, rows_out = context.Pipe(duplex=False)
    children = [
        context.Process(
            target=_simulating_child,
            args=(payloads_out, config, topics, span_s, seed, kpi_every_s),
            name="factory-twin-backfill-plant",
            daemon=True,
        ),
        context.Process(
            target=_recording_child,
            args=(payloads_in, rows_out, config, topics, start_ms),
            name="factory-twin-backfill-twin",
            daemon=True,
        ),
    ]
    finished = False
    try:
        for child in children:
            _start_quietly(child)
        # Only the children hold their ends now: when one ends, the next sees EOF.
        for end in (payloads_in, payloads_out, rows_out):
            end.close()
        keys: list[SeriesKey] = []
        while True:
            if stop is not None and stop.is_set():
                raise BackfillCancelled("the backfill was stopped")
            if hold is not None and hold():
                time.sleep(HOLD_S)
                continue
            if not rows_in.poll(POLL_S):
                continue
            try:
                kind, payload = rows_in.recv()
            except EOFError:
                codes = ", ".join(f"{child.name}: {child.exitcode}" for child in children)
                raise BackfillError(
                    f"the backfill processes ended without finishing (exit codes {codes})"
                ) from None
            if kind == "rows":
                new_keys, series, times, values, points_by_measurement = payload
                keys.extend(new_keys)
                writer.write_columns(keys, series, times, values, points_by_measurement)
            elif kind == "progress":
                if progress is not None:
                    progress(payload)
            elif kind == "error":
                raise BackfillError(f"the backfill failed:\n{payload}")
            elif kind == "done":
                simulated, messages, rejected, points, children_cpu_s = payload
                finished = True
                break
    finally:
        for end in (rows_in, payloads_in, payloads_out, rows_out):
            end.close()  # closing twice is harmless
        _end(children, finished=finished)
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
        children_cpu_s=children_cpu_s,
    )


__all__ = [
    "DEFAULT_KPI_EVERY_S",
    "DEFAULT_SPAN_S",
    "BackfillCancelled",
    "BackfillError",
    "BackfillResult",
    "backfill",
    "simulate_history",
]
