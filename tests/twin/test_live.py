"""Live mode runs the plant in scaled real time and stops promptly."""

from __future__ import annotations

import time

import pytest

from twin.config import load_config
from twin.live import SLICE_WALL_S, LiveRunner, realtime_environment
from twin.plant import Plant


def test_live_plant_never_runs_ahead_of_scaled_wall_time() -> None:
    speed = 200.0
    env = realtime_environment(speed)
    plant = Plant(load_config(), seed=1, env=env)
    runner = LiveRunner(env, speed)
    started = time.monotonic()
    runner.start()
    time.sleep(1.0)
    runner.stop()
    elapsed = time.monotonic() - started
    assert not runner.running
    assert runner.error is None
    assert 0 < plant.now <= speed * (elapsed + SLICE_WALL_S)
    assert plant.stations[0].parts_started > 0


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="speed must be > 0"):
        realtime_environment(0)
