"""The live watch takes the line in line-time order: a broker delivers telemetry and
events on paths of their own, so a reading can come before the state change that
came before it on the line. Held until the twin's watermark passes them, the
readings meet the state they were taken in, and a fault-free line raises nothing."""

from __future__ import annotations

import heapq
import itertools
from pathlib import Path

import pytest
from pydantic import BaseModel

from models.anomaly.live_watch import LiveSensorWatch
from models.anomaly.watch import SensorAlarm
from sensors.loopback import run_through_ingest
from twin.config.line import load_config
from twin.contract import StateChanged, Telemetry

ROOT = Path(__file__).resolve().parents[3]
BOTTLING = ROOT / "examples/lines/bottling.yaml"
# Bottling changes state every few seconds; its events reach the twin this many line
# seconds after the telemetry of their time (a QoS 1 outbox behind a busy broker).
DELAY_S = 8.0
LEARN_H, HOURS = 3.0, 5.0
Stream = list[tuple[str | None, BaseModel]]


@pytest.fixture(scope="module")
def bottling() -> Stream:
    stream: Stream = []
    run_through_ingest(load_config(BOTTLING), HOURS, 7, lambda s, m: stream.append((s, m)))
    return stream


def _delivered(stream: Stream) -> tuple[list[tuple[str | None, BaseModel]], list[float]]:
    """The stream as the broker delivers it: each event ``DELAY_S`` behind the
    telemetry, and beside each message the line time up to which every path has
    arrived (the watermark)."""
    out: list[tuple[str | None, BaseModel]] = []
    marks: list[float] = []
    late: list[tuple[float, int, str | None, BaseModel]] = []
    order = itertools.count()
    newest = 0.0
    for station, message in stream:
        at = float(getattr(message, "sim_time_s", 0.0))
        if not isinstance(message, Telemetry):
            heapq.heappush(late, (at, next(order), station, message))
            continue
        while late and late[0][0] + DELAY_S <= at:
            _, _, late_station, late_message = heapq.heappop(late)
            out.append((late_station, late_message))
            marks.append(newest - DELAY_S)
        newest = max(newest, at)
        out.append((station, message))
        marks.append(newest - DELAY_S)
    return out, marks


def _run(stream: Stream, *, hold: bool) -> tuple[LiveSensorWatch, list[SensorAlarm]]:
    delivered, marks = _delivered(stream)
    at = [0]
    watch = LiveSensorWatch(
        "bottling", None, learn_hours=LEARN_H, as_of=(lambda: marks[at[0]]) if hold else None
    )
    raised: list[SensorAlarm] = []
    for i, (station, message) in enumerate(delivered):
        at[0] = i
        raised.extend(a for a in watch.observe(station, message) if a.cleared_s is None)
        if watch.status().state == "fitting":
            assert watch.wait_fitted(timeout=300)
    assert watch.status().state == "watching"
    return watch, [a for a in raised if a.kind != "wear"]


def test_the_stream_is_delivered_out_of_order(bottling: Stream) -> None:
    delivered, _ = _delivered(bottling)
    times = [
        (float(m.sim_time_s), isinstance(m, StateChanged))
        for _, m in delivered
        if isinstance(m, Telemetry | StateChanged)
    ]
    # A state change arrives after readings taken after it.
    assert any(later and before > now for (before, _), (now, later) in itertools.pairwise(times))


@pytest.mark.slow
def test_held_to_the_watermark_a_fault_free_line_raises_nothing(bottling: Stream) -> None:
    watch, raised = _run(bottling, hold=True)
    assert raised == []
    status = watch.status()
    assert status.sensors >= 10
    assert status.held_forced == 0


@pytest.mark.slow
def test_judged_on_arrival_the_same_stream_raises_false_alarms(bottling: Stream) -> None:
    """What the hold prevents: readings met with the state the station left."""
    _, raised = _run(bottling, hold=False)
    assert len(raised) >= 3
    assert len({a.station for a in raised}) >= 2


def test_what_waits_is_bounded_and_a_line_that_starts_over_is_taken_as_it_came(
    bottling: Stream,
) -> None:
    """A watermark that never moves (a stream that never completes) holds at most
    ``max_held``, the rest taken beyond it and counted; a watermark that goes back
    (a new birth, its clock from zero) lets every held message go."""
    mark: list[float | None] = [None]
    watch = LiveSensorWatch(
        "bottling", None, learn_hours=LEARN_H, as_of=lambda: mark[0], max_held=50
    )
    events = [(s, m) for s, m in bottling[:2000] if s is not None][:120]
    for station, message in events:
        watch.observe(station, message)
    status = watch.status()
    assert (status.held, status.held_forced) == (50, len(events) - 50)
    assert status.learned_hours > 0  # the forced ones were taken
    mark[0] = 10_000.0
    watch.observe(None, bottling[0][1])
    assert watch.status().held == 0
    # The line starts over: the watermark goes back, below what is then held.
    later = [(s, m) for s, m in bottling[2000:2100] if s is not None]
    mark[0] = 1.0
    station, message = later[0]
    assert float(getattr(message, "sim_time_s", 0.0)) > mark[0]
    watch.observe(station, message)
    assert watch.status().held == 0
    # From then on it waits for the new run's watermark again.
    for station, message in later[1:11]:
        watch.observe(station, message)
    assert watch.status().held == 10
