"""The live clock's pace is set through a public setter, and SimPy keeps it.

No timing here: the wall clock SimPy's realtime environment reads and sleeps on
is replaced by a counter that a sleep advances, so the wall seconds a run takes
are exact, computed from the factors set, and the same on a busy machine.
"""

from __future__ import annotations

import math

import pytest
import simpy.rt

from twin.sim import realtime
from twin.sim.live import LiveRunner, realtime_environment
from twin.sim.pacing import MIN_SPEED
from twin.sim.realtime import LiveEnvironment


class FakeWall:
    """A monotonic clock that moves only when slept on (or told to)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> FakeWall:
    clock = FakeWall()
    monkeypatch.setattr(simpy.rt, "monotonic", clock.monotonic)
    monkeypatch.setattr(simpy.rt, "sleep", clock.sleep)
    monkeypatch.setattr(realtime.time, "monotonic", clock.monotonic)
    return clock


@pytest.mark.parametrize(("first", "second"), [(0.5, 2.0), (0.01, 1e-5), (3.0, 0.25)])
def test_a_new_factor_paces_the_line_time_from_now_on(
    wall: FakeWall, first: float, second: float
) -> None:
    env = LiveEnvironment(factor=first)
    start = wall.now
    env.run(until=10)
    assert wall.now - start == pytest.approx(10 * first)
    env.factor = second
    assert env.factor == second
    # Re-anchored: the ten line seconds already run keep the pace they ran at.
    assert (env.env_start, env.real_start) == (10, wall.now)
    env.run(until=13)
    assert wall.now - start == pytest.approx(10 * first + 3 * second)


def test_resync_keeps_the_line_time_and_forgives_the_wall_time_that_passed(
    wall: FakeWall,
) -> None:
    env = LiveEnvironment(factor=0.1)
    env.run(until=50)
    assert env.behind_s() == 0
    wall.now += 30.0  # a pause: the line stood still
    assert env.behind_s() == pytest.approx(30.0)
    env.resync()
    assert (env.now, env.env_start, env.real_start, env.behind_s()) == (50, 50, wall.now, 0)
    before = wall.now
    env.run(until=60)
    assert wall.now - before == pytest.approx(10 * 0.1)  # no rush to make up the pause


def test_the_runner_sets_its_speed_as_the_environments_factor(wall: FakeWall) -> None:
    env = realtime_environment(60.0)
    assert env.factor == pytest.approx(1 / 60)
    runner = LiveRunner(env, 60.0)
    env.run(until=120)
    for speed in (MIN_SPEED, 250.0, 60.0):
        runner.set_speed(speed)
        assert env.factor == pytest.approx(1 / speed)
        assert (env.env_start, env.real_start) == (env.now, wall.now)
        before, line_before = wall.now, env.now
        env.run(until=line_before + 30)
        assert wall.now - before == pytest.approx(30 / speed)


@pytest.mark.parametrize("factor", [0.0, -1.0, math.inf, math.nan])
def test_a_factor_that_is_no_pace_is_refused(wall: FakeWall, factor: float) -> None:
    env = LiveEnvironment(factor=1.0)
    with pytest.raises(ValueError, match=r"factor must be a finite number > 0"):
        env.factor = factor
    assert env.factor == 1.0
    with pytest.raises(ValueError, match=r"factor must be a finite number > 0"):
        LiveEnvironment(factor=factor)
