"""The twin keeps up with the bottling line at its default speed, on the default
embedded broker, as ``up`` runs it.

The bottling template publishes about 2,500 messages a second at 60x. The
in-process amqtt carried about half of that, and the twin fell minutes behind
while showing its figures as live (issue 21). Here the line runs for at least a
minute of wall time; at every look the twin's good parts equal the plant's own
count within the parts in flight (the WIP the plant reports then), and the lag
(messages published and not yet taken; the plant's clock ahead of the twin's;
paho's outbox) does not grow. Then the line stops and the twin must come to
exactly the plant's count: nothing was lost on the way.

The second test is the first start with the default week of backfill: the API
answers while the history is still being written, the live twin keeps
tracking the plant meanwhile, and the backfill gets on with the week.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
import uvicorn
from helpers import REPO, get_free_port, wait_until

from api.app import create_app
from api.runtime.line import LIVE_BACKLOG_HOLD, Stack
from api.runtime.options import StackOptions
from twin.config.line import load_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BOTTLING = REPO / "examples" / "lines" / "bottling.yaml"
WATCH_WALL_S = 60.0
LOOK_EVERY_S = 3.0


@dataclass(frozen=True)
class Look:
    """One look at the plant and its twin."""

    published: int
    plant_good: int
    twin_good: int
    in_flight: int
    message_lag: int
    clock_lag_s: float
    outbox: int


def look(stack: Stack) -> Look:
    plant, publisher, ingest = stack.plant, stack.publisher, stack.ingest
    assert plant is not None
    assert publisher is not None
    assert ingest is not None
    # The twin first, the plant after: the plant only gains meanwhile, so a twin
    # ahead of it would be a real fault, not a race of the two reads.
    twin_good = stack.twin.counters()[0]
    twin_clock = stack.twin.view().sim_time_s or 0.0
    accepted = ingest.stats.accepted
    published = sum(publisher.published.values())
    return Look(
        published=published,
        plant_good=plant.parts_shipped,
        twin_good=twin_good,
        in_flight=plant.work_in_process,
        message_lag=published - accepted,
        clock_lag_s=float(plant.now) - twin_clock,
        outbox=publisher.pending(),
    )


def watch(stack: Stack, wall_s: float, while_: threading.Event | None = None) -> list[Look]:
    """Look every few seconds for ``wall_s`` of wall time (the observation's length,
    not a wait for an event); stop early once ``while_`` is cleared."""
    looks: list[Look] = []
    until = time.monotonic() + wall_s
    pause = threading.Event()
    while time.monotonic() < until:
        pause.wait(LOOK_EVERY_S)
        looks.append(look(stack))
        if while_ is not None and not while_.is_set():
            break
    return looks


def assert_kept_up(looks: list[Look], speed: float, slack_looks: int = 0) -> None:
    """``slack_looks``: the twin may also be this many looks' worth of shipped parts
    behind (a backlog the stack tolerates by design)."""
    shipped_per_look = max(
        after.plant_good - before.plant_good for before, after in pairwise(looks)
    )
    for seen in looks:
        assert seen.twin_good <= seen.plant_good, seen
        assert (
            seen.plant_good - seen.twin_good <= seen.in_flight + slack_looks * shipped_per_look
        ), (
            seen,
            shipped_per_look,
        )
    # The lag does not grow: the last third's worst is within the first third's
    # worst plus what the line publishes between two looks (in messages; in line
    # time, the line time of one look), whatever the machine's speed. A twin
    # falling behind gains that much lag every look.
    third = max(1, len(looks) // 3)
    head, tail = looks[:third], looks[-third:]
    traffic = max(after.published - before.published for before, after in pairwise(looks))
    for name in ("message_lag", "outbox"):
        before = max(getattr(seen, name) for seen in head)
        after = max(getattr(seen, name) for seen in tail)
        assert after <= before + traffic, (name, before, after, traffic, looks)
    clock_before = max(seen.clock_lag_s for seen in head)
    clock_after = max(seen.clock_lag_s for seen in tail)
    assert clock_after <= clock_before + LOOK_EVERY_S * speed, (clock_before, clock_after, looks)


def settle_exactly(stack: Stack) -> None:
    """Stop the line: every part it shipped reaches the twin, none more."""
    stack.stop_plant(flush_timeout=30)
    plant = stack.plant
    assert plant is not None
    assert wait_until(lambda: stack.twin.counters()[0] == plant.parts_shipped, timeout=60), (
        stack.twin.counters(),
        plant.parts_shipped,
    )


@pytest.fixture
def bottling() -> Iterator[Stack]:
    stack = Stack(
        load_config(BOTTLING),
        StackOptions(
            speed=60, seed=21, mqtt_port=get_free_port(), scoring_period_s=0, first_training=False
        ),
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def test_bottling_at_60x_on_the_embedded_broker_keeps_up(bottling: Stack) -> None:
    assert bottling.broker is not None
    assert bottling.broker.kind == "rumqttd"
    plant = bottling.plant
    assert plant is not None
    assert wait_until(lambda: bottling.twin.counters()[0] > 0, timeout=60)
    looks = watch(bottling, WATCH_WALL_S)
    assert looks[-1].plant_good > looks[0].plant_good, "the line shipped nothing"
    assert_kept_up(looks, bottling.options.speed)
    settle_exactly(bottling)


@pytest.mark.timeout(900)
def test_the_first_start_of_bottling_answers_and_keeps_tracking_during_the_backfill(
    tmp_path: Path,
) -> None:
    stack = Stack(
        load_config(BOTTLING),
        StackOptions(
            speed=60,
            seed=22,
            mqtt_port=get_free_port(),
            history_path=str(tmp_path / "history.sqlite3"),
            backfill_s=7 * 86400.0,  # the default week
            models_path=str(tmp_path / "models"),
            first_training=False,
        ),
    )
    # As up does: the backfill begins once the API is up (the app's lifespan).
    stack.defer_backfill()
    port = get_free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(stack=stack), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: server.started, timeout=120), "the API did not start"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            # The API answers, with the live line's twin, while the week is written.
            assert client.get("/twin").status_code == 200
            status = stack.backfill_status()
            assert status is not None
            assert not status.ready, "the history was filled before the API answered"
            assert wait_until(lambda: stack.twin.counters()[0] > 0, timeout=60)
            before = stack.backfill_status()
            assert before is not None
            backfilling = threading.Event()
            backfilling.set()

            def follow() -> None:
                stack.history_ready.wait()
                backfilling.clear()

            threading.Thread(target=follow, daemon=True).start()
            # The live twin keeps tracking the plant while the backfill runs...
            looks = watch(stack, WATCH_WALL_S, while_=backfilling)
            assert len(looks) >= 3, "the backfill ended before the twin could be watched"
            # The backfill yields only once LIVE_BACKLOG_HOLD (2,000) QoS 1 messages wait,
            # about a second of this line: the twin may be that much behind meanwhile.
            assert looks[-1].published / len(looks) >= LIVE_BACKLOG_HOLD
            assert_kept_up(looks, stack.options.speed, slack_looks=1)
            # ...and the history fills in the background: points older than the live
            # line's start reach the store (the backfill yields while the live line is
            # behind, so this may take a while on a busy machine).
            store, fill = stack.store, stack.history_fill
            assert store is not None
            assert fill is not None
            live_start_ms = min(gap.end_ms for gap in fill.gaps)

            def backfilled() -> bool:
                held = store.time_range()
                return held is not None and held[0] < live_start_ms

            assert wait_until(backfilled, timeout=400), stack.backfill_status()
            assert (stack.backfill_status() or before).state != "failed"
            assert client.get("/twin").status_code == 200
        settle_exactly(stack)
    finally:
        server.should_exit = True
        thread.join(30)
        if stack.started:
            stack.stop()
