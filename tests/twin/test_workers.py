"""The background workers: a stop wakes them at once, a failing tick is logged and
the loop goes on, and stopping is safe at any moment."""

from __future__ import annotations

import logging
import threading

import pytest
from helpers import wait_until

from twin.workers import Periodic, Worker

# Far longer than any test waits: a worker that ends must have been woken by stop.
LONG_S = 3600.0


def test_stop_wakes_a_waiting_worker_and_joins_it() -> None:
    woke = threading.Event()

    def run(stop: threading.Event) -> None:
        stop.wait(LONG_S)
        woke.set()

    worker = Worker("sleeper", run)
    worker.start()
    assert worker.alive
    assert worker.stop(timeout=LONG_S)
    assert woke.is_set()
    assert not worker.alive


def test_a_periodic_worker_ticks_until_stopped_and_never_after() -> None:
    ticks: list[int] = []
    worker = Periodic("ticker", 0.01, lambda: ticks.append(len(ticks)))
    worker.start()
    assert wait_until(lambda: len(ticks) >= 3, 60)
    assert worker.stop(timeout=LONG_S)
    seen = len(ticks)
    assert not worker.alive
    threading.Event().wait(0.05)
    assert len(ticks) == seen


def test_a_failing_tick_is_logged_with_the_name_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    def tick() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("bad sample")

    worker = Periodic("kpi-test", 0.01, tick)
    with caplog.at_level(logging.ERROR, logger="twin.workers"):
        worker.start()
        assert wait_until(lambda: len(calls) >= 3, 60)
        worker.stop(timeout=LONG_S)
    failures = [record for record in caplog.records if record.exc_info]
    assert len(failures) == 1
    assert "kpi-test" in failures[0].getMessage()
    assert "bad sample" in str(failures[0].exc_info[1])  # type: ignore[index]


def test_stop_is_safe_before_start_twice_and_from_the_worker_itself() -> None:
    never = Worker("never", lambda stop: None)
    assert never.stop()
    assert never.stop()

    stopped_itself: list[bool] = []
    holder: list[Worker] = []

    def run(stop: threading.Event) -> None:
        stopped_itself.append(holder[0].stop())
        assert stop.is_set()

    worker = Worker("self-stopper", run)
    holder.append(worker)
    worker.start()
    assert worker.stop(timeout=LONG_S)
    # From its own thread stop cannot join itself: it sets the signal and says so.
    assert stopped_itself == [False]


def test_a_worker_runs_once_and_a_period_must_be_positive() -> None:
    worker = Worker("once", lambda stop: None)
    worker.start()
    with pytest.raises(RuntimeError, match="'once' was started already"):
        worker.start()
    worker.stop(timeout=LONG_S)
    for period in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="period_s must be > 0"):
            Periodic("bad", period, lambda: None)


def test_a_worker_that_does_not_stop_in_time_says_so(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    worker = Worker("stubborn", lambda stop: release.wait(LONG_S))
    worker.start()
    with caplog.at_level(logging.WARNING, logger="twin.workers"):
        assert not worker.stop(timeout=0.01)
    assert any("'stubborn' did not stop" in record.getMessage() for record in caplog.records)
    release.set()
    assert worker.stop(timeout=LONG_S)
