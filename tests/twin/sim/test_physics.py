"""Station physics: the quality law a station's setpoints and its wear set."""

from __future__ import annotations

import pytest

from twin.config.line import load_config
from twin.sim.plant import Plant


def test_defect_probability_is_lowest_at_the_quality_optimum_and_rises_with_wear() -> None:
    plant = Plant(load_config(), seed=1)
    station = plant.by_id["machining"]
    quality = station.spec.process.quality
    assert quality is not None
    at_best = []
    for speed in (0.7, quality.best_speed, 1.4):
        station.set_setpoint("speed", speed)
        at_best.append(station.physics.defect_probability(wear=0.0))
    assert at_best[1] == pytest.approx(quality.base_defect_probability)
    assert at_best[1] < at_best[0]
    assert at_best[1] < at_best[2]
    assert station.physics.defect_probability(wear=0.8) > station.physics.defect_probability(
        wear=0.0
    )
