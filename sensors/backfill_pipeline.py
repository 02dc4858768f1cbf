"""The backfill's pipeline: the simulated line and its publisher on one side,
ingest, twin and recorder on the other, and the two child processes that run them.

``sensors.backfill`` runs the two halves in this process (``simulate_history``)
or, for ``backfill``, each in a child process of its own: the *simulating*
child pipes the encoded payloads, in order and in batches, to the *recording*
child, which sends the points to the caller as columns
(``sensors.backfill_columns``: series named once, then (series, time, value)
arrays), so that a week of history crosses the pipe as a few arrays and the
store inserts it with no Python object per sample. KPI snapshots are marked in
the payload stream, so that the recording side takes each after exactly the
messages published before it.

The children leave stopping to their parent: they ignore SIGINT (blocked from
the moment they are made, ``start_quietly``), keep SIGTERM's default (they end
at once, silently), and end quietly when the other end of a pipe is gone.
"""

from __future__ import annotations

import contextlib
import gc
import random
import signal
import time
import traceback
from collections.abc import Callable, Generator, Sequence
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, cast

import paho.mqtt.client as mqtt
import simpy

from sensors.backfill_columns import Columns
from sensors.ingest import Ingest
from sensors.paho_internals import NothingWaits
from sensors.publisher import PlantPublisher
from sensors.topics import LineTopics
from twin.config.line import LineConfig
from twin.history.points import PointSink
from twin.history.recorder import HistoryRecorder
from twin.sim.plant import Plant
from twin.state.admission import Admission
from twin.state.line import TwinState

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

# Simulated seconds between progress reports.
CHUNK_S = 6 * 3600.0
# Payloads per message from the simulating child to the recording one.
BATCH_MESSAGES = 2000
# Samples per message from the recording child to the caller.
BATCH_SAMPLES = 20_000

# Control items in the simulating child's stream, beside (topic, payload) items.
_KPI = 0  # take a KPI snapshot at this simulated time
_PROGRESS = 1  # this share of the span is done
_DONE = 2  # the span is done: (simulated seconds, the child's CPU seconds)
_FAILED = 3  # the simulating child failed: (traceback text)


class _Loopback:
    """Stands in for the paho client: every publish is handed to ``deliver`` at once,
    so the publisher's outbox is always empty (``NothingWaits``)."""

    def __init__(self, deliver: Callable[[str, bytes], object]) -> None:
        self.deliver = deliver
        self.info = mqtt.MQTTMessageInfo(0)

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


# -- the two halves of the pipeline ------------------------------------------------------
class PlantSide:
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
            outbox=NothingWaits(),
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


class TwinSide:
    """Ingest, twin state and recorder: what the live path does with each payload."""

    def __init__(
        self, config: LineConfig, topics: LineTopics, sink: PointSink, *, start_ms: int
    ) -> None:
        line = config.line
        self.config = config
        self.start_ms = start_ms
        # The backfill runs the line thousands of times faster than its wall clock
        # stamps: no time check here; its stations are the line file's.
        self.twin = TwinState(
            site=line.site,
            area=line.area,
            line=line.id,
            stations=[station.id for station in config.stations],
            admission=Admission(future_tolerance_s=None),
        )
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
            self.twin.kpi_view(), self.config, self.start_ms + int(sim_time_s * 1000)
        )

    def counts(self) -> tuple[int, int]:
        """Messages received, and of those rejected by the contract."""
        health = self.ingest.health()
        rejected = sum(health["malformed"].values()) + health["unknown_topic"]
        return self.ingest.stats.received, rejected


# -- the children -----------------------------------------------------------------------------
def quiet_child() -> None:
    """A child leaves stopping to its parent: Ctrl-C reaches the whole process
    group, and the parent ends the children in order. SIGTERM keeps its default
    (the process ends at once, silently). SIGINT was blocked since the child was
    made (see ``start_quietly``): one that came meanwhile is dropped here."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    # What the imports made lives as long as the child: keep it out of the cyclic
    # collector's full passes, which otherwise rescan it over and over.
    gc.freeze()


def start_quietly(child: BaseProcess) -> None:
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


def simulating_child(
    out: Connection,
    config: LineConfig,
    topics: LineTopics,
    span_s: float,
    seed: int,
    kpi_every_s: float,
) -> None:
    quiet_child()
    # A batch crosses the pipe as its topics (and control items, in stream order)
    # and its payloads joined by newlines, which compact JSON never holds: one
    # bytes object to pickle, and one split on the other side, not one per message.
    items: list[Any] = []
    payloads: list[bytes] = []

    def send() -> None:
        out.send((items, b"\n".join(payloads), len(payloads)))
        items.clear()
        payloads.clear()

    def deliver(topic: str, payload: bytes) -> None:
        items.append(topic)
        payloads.append(payload)
        if len(payloads) >= BATCH_MESSAGES:
            send()

    def progress(done: float) -> None:
        items.append((_PROGRESS, done))
        send()

    try:
        plant_side = PlantSide(
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
            out.send(([(_FAILED, traceback.format_exc())], b"", 0))
        raise SystemExit(1) from None
    finally:
        out.close()


def recording_child(
    inbox: Connection,
    out: Connection,
    config: LineConfig,
    topics: LineTopics,
    start_ms: int,
) -> None:
    quiet_child()
    columns = Columns()

    def send_rows() -> None:
        if len(columns):
            out.send(("rows", columns.take()))

    try:
        twin_side = TwinSide(config, topics, columns, start_ms=start_ms)
        handle, snapshot = twin_side.handle, twin_side.snapshot
        while True:
            items, joined, count = inbox.recv()
            payloads = joined.split(b"\n") if count else []
            if len(payloads) != count:
                raise ValueError(f"a batch of {count} payloads split into {len(payloads)}")
            next_payload = iter(payloads).__next__
            for item in items:
                if type(item) is str:
                    handle(item, next_payload())
                    continue
                first, second = item
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


def end_children(children: Sequence[BaseProcess], *, finished: bool) -> None:
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
