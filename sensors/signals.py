"""Measurement: how a sensor turns a true process value into a reading.

A reading is the true value plus Gaussian measurement noise, quantised to the
sensor's resolution. The true value comes from the plant's physics; the noise
comes from the sensors' own seeded generator, so measuring never perturbs the
plant's random stream.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SensorModel:
    noise_sd: float
    resolution: float
    minimum: float | None = None

    def measure(self, true_value: float, rng: random.Random) -> float:
        value = true_value + (rng.gauss(0.0, self.noise_sd) if self.noise_sd > 0 else 0.0)
        if self.minimum is not None and value < self.minimum:
            value = self.minimum
        if self.resolution > 0:
            value = round(round(value / self.resolution) * self.resolution, 6)
        return value
