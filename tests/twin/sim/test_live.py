"""Live mode runs the plant in scaled real time and stops promptly."""

from __future__ import annotations

import math
import time

import pytest
from helpers import wait_until

from twin.config.line import load_config
from twin.sim.live import SLICE_WALL_S, LiveRunner, realtime_environment
from twin.sim.plant import Plant


def test_live_plant_never_runs_ahead_of_scaled_wall_time() -> None:
    speed = 200.0
    env = realtime_environment(speed)
    plant = Plant(load_config(), seed=1, env=env)
    runner = LiveRunner(env, speed)
    ahead: list[tuple[float, float]] = []  # (line time, its bound) where it ran ahead

    def ran_a_while() -> bool:
        """Checks the bound at each look; true once a few line minutes went by."""
        now = plant.now
        bound = speed * (time.monotonic() - started + SLICE_WALL_S)
        if now > bound:
            ahead.append((now, bound))
        return now >= 300 and plant.stations[0].parts_started > 0

    started = time.monotonic()
    runner.start()
    try:
        assert wait_until(ran_a_while, timeout=120, interval=0.02)
    finally:
        runner.stop()
    elapsed = time.monotonic() - started
    assert not runner.running
    assert runner.error is None
    assert ahead == []
    assert 0 < plant.now <= speed * (elapsed + SLICE_WALL_S)


@pytest.mark.parametrize("speed", [0.0, -1.0, math.inf, math.nan])
def test_speed_must_be_positive_and_finite(speed: float) -> None:
    with pytest.raises(ValueError, match="speed must be > 0 and finite"):
        realtime_environment(speed)
