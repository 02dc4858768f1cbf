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
and the calling process (the API, the live line) stays responsive: a
*simulating* child runs the plant and its publisher, a *recording* child the
ingest, twin state and recorder (``sensors.backfill_pipeline``), and the caller
hands the points, which arrive as columns, to the store's bulk path
(``HistoryWriter.write_columns``: SQLite inserts, with no Python object per
sample).

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

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sensors.backfill_pipeline import (
    PlantSide,
    TwinSide,
    end_children,
    recording_child,
    simulating_child,
    start_quietly,
)
from sensors.topics import LineTopics
from twin.config.line import LineConfig
from twin.history.points import PointSink, SeriesKey

if TYPE_CHECKING:
    from twin.history.points import HistoryWriter

log = logging.getLogger(__name__)
DEFAULT_SPAN_S = 7 * 24 * 3600.0
DEFAULT_KPI_EVERY_S = 600.0
# How often the caller looks at its stop event while it waits for the children.
POLL_S = 0.2
# How often a held backfill asks whether it may go on.
HOLD_S = 0.05


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
    twin_side = TwinSide(config, topics, sink, start_ms=start_ms)
    plant_side = PlantSide(
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
            target=simulating_child,
            args=(payloads_out, config, topics, span_s, seed, kpi_every_s),
            name="factory-twin-backfill-plant",
            daemon=True,
        ),
        context.Process(
            target=recording_child,
            args=(payloads_in, rows_out, config, topics, start_ms),
            name="factory-twin-backfill-twin",
            daemon=True,
        ),
    ]
    finished = False
    try:
        for child in children:
            start_quietly(child)
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
        end_children(children, finished=finished)
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
