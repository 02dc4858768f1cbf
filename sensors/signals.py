"""Measurement: how a sensor turns a true process value into a reading.

A reading is the true value plus a slow zero drift, Gaussian measurement noise
and any injected fault, quantised to the sensor's resolution:

    reading = quantise(true + drift_per_h * hours + Normal(0, noise_sd) + fault)

The fault modes engineers meet on real lines can be injected for a window of
simulation time:

- ``stuck``: the sensor repeats the last reading it gave before the fault;
- ``spike``: a share (``probability``) of the samples jump by ``magnitude``;
- ``dropout``: the sensor sends nothing;
- ``offset``: a calibration error, ``magnitude`` added to every reading.

The true value comes from the plant's physics; the noise from the sensors' own
seeded generator, so measuring never perturbs the plant's random stream.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from twin.config import SensorFault, SensorSpec


@dataclass(frozen=True, slots=True)
class SensorModel:
    """Noise, drift and quantisation of one kind of sensor."""

    noise_sd: float
    resolution: float
    minimum: float | None = None
    drift_per_h: float = 0.0

    def measure(self, true_value: float, rng: random.Random, now_s: float = 0.0) -> float:
        value = true_value + self.drift_per_h * now_s / 3600.0
        if self.noise_sd > 0:
            value += rng.gauss(0.0, self.noise_sd)
        if self.minimum is not None and value < self.minimum:
            value = self.minimum
        if self.resolution > 0:
            value = round(round(value / self.resolution) * self.resolution, 6)
        return value

    @classmethod
    def from_spec(cls, spec: SensorSpec, minimum: float | None = None) -> SensorModel:
        return cls(spec.noise_sd, spec.resolution, minimum, spec.drift_per_h)


@dataclass(slots=True)
class Sensor:
    """One fitted sensor with its faults: returns a reading, or None on dropout."""

    model: SensorModel
    faults: list[SensorFault] = field(default_factory=list)
    last: float | None = None

    def read(self, true_value: float, rng: random.Random, now_s: float) -> float | None:
        fault = self._active(now_s)
        if fault is not None and fault.mode == "dropout":
            return None
        if fault is not None and fault.mode == "stuck" and self.last is not None:
            return self.last
        value = self.model.measure(true_value, rng, now_s)
        if fault is not None and (
            fault.mode == "offset" or (fault.mode == "spike" and rng.random() < fault.probability)
        ):
            value = self._quantise(value + fault.magnitude)
        if fault is None or fault.mode != "stuck":
            self.last = value
        return value

    def _active(self, now_s: float) -> SensorFault | None:
        hours = now_s / 3600.0
        for fault in self.faults:
            if fault.start_h <= hours < fault.start_h + fault.duration_h:
                return fault
        return None

    def _quantise(self, value: float) -> float:
        resolution = self.model.resolution
        if resolution > 0:
            return round(round(value / resolution) * resolution, 6)
        return value
