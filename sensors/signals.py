"""Measurement: how a sensor turns a true process value into a reading.

A reading is the true value plus a slow zero drift, Gaussian measurement noise
and any injected fault, quantised to the sensor's resolution and saturated at
the ends of its measuring range (the contract's bounds):

    reading = clip(quantise(true + drift_per_h * hours + Normal(0, noise_sd) + fault))

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

import math
import random
from dataclasses import dataclass, field

from twin.config.line import SensorFault, SensorSpec
from twin.contract import SENSOR_RANGES


@dataclass(frozen=True, slots=True)
class SensorModel:
    """Noise, drift, quantisation and measuring range of one kind of sensor.

    A reading saturates at the ends of the range, as a real sensor's does; the
    contract's bounds are the widest range, so every reading is a valid payload.
    """

    noise_sd: float
    resolution: float
    minimum: float = float("-inf")
    maximum: float = float("inf")
    drift_per_h: float = 0.0
    # A resolution of 10**-k quantises as round(value * 10**k) / 10**k: the double
    # nearest k decimals, as round(value, k) gives, at a third of its cost (a
    # backfill measures about a million readings a simulated week).
    decimals: int | None = field(init=False, default=None)
    scale: float = field(init=False, default=1.0)

    def __post_init__(self) -> None:
        if self.resolution > 0:
            decimals = -round(math.log10(self.resolution))
            if decimals >= 0 and math.isclose(10.0**-decimals, self.resolution):
                object.__setattr__(self, "decimals", decimals)
                object.__setattr__(self, "scale", 10.0**decimals)

    def measure(self, true_value: float, rng: random.Random, now_s: float = 0.0) -> float:
        """Drift and noise added, quantised to the resolution, saturated at the range."""
        value = true_value
        if self.drift_per_h:
            value += self.drift_per_h * now_s / 3600.0
        if self.noise_sd > 0:
            value += rng.gauss(0.0, self.noise_sd)
        if self.decimals is not None:
            # NaN and infinities fail the test and are left as they are (the publisher
            # sends null); beyond 1e15 a double holds no decimals to round anyway.
            if -1e15 < value < 1e15:
                scale = self.scale
                value = round(value * scale) / scale
        elif self.resolution > 0:
            value = round(round(value / self.resolution) * self.resolution, 6)
        if value < self.minimum:
            return self.minimum
        if value > self.maximum:
            return self.maximum
        return value

    @classmethod
    def from_spec(cls, spec: SensorSpec, sensor: str) -> SensorModel:
        """The model of ``sensor`` (a contract field name) as the config describes it."""
        low, high = SENSOR_RANGES[sensor]
        return cls(spec.noise_sd, spec.resolution, low, high, spec.drift_per_h)


@dataclass(slots=True)
class Sensor:
    """One fitted sensor with its faults: returns a reading, or None on dropout."""

    model: SensorModel
    faults: list[SensorFault] = field(default_factory=list)
    last: float | None = None

    def read(self, true_value: float, rng: random.Random, now_s: float) -> float | None:
        fault = self._active(now_s) if self.faults else None
        if fault is None:
            # The common case, on the telemetry hot path: no fault active.
            self.last = value = self.model.measure(true_value, rng, now_s)
            return value
        if fault.mode == "dropout":
            return None
        if fault.mode == "stuck" and self.last is not None:
            return self.last
        hit = fault.mode == "offset" or (fault.mode == "spike" and rng.random() < fault.probability)
        value = self.model.measure(true_value + (fault.magnitude if hit else 0.0), rng, now_s)
        if fault.mode != "stuck":
            self.last = value
        return value

    def _active(self, now_s: float) -> SensorFault | None:
        hours = now_s / 3600.0
        for fault in self.faults:
            if fault.start_h <= hours < fault.start_h + fault.duration_h:
                return fault
        return None
