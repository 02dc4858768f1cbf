"""Station physics: how long a part takes, whether it comes out defective, how a
machine wears, and what its sensors would read.

Nothing here knows about SimPy or the clock of a run. A station's setpoints set
its physics (``StationPhysics``): the speed scales the processing-time draws, and
the distance of speed and temperature from the quality optimum raises the log-odds
of a defect, as does the square of the tool's wear. Each part adds wear in
proportion to a power of the speed. The true process values a sensor measures
are functions of a machine's state, its setpoints and its wear; the temperature
relaxes towards its target with the thermal time constant (docs/physics.md).

Processing times and defects draw from two generators of the station's own
(``twin.sim.streams``), in the order the machines ask for them, so a seed gives
the same run, and a changed setpoint scales the same draws.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from twin.config.distributions import Sampler, sampler
from twin.config.line import LineConfig, Station, Thermal, Wear
from twin.contract import StationStateName


class SetpointError(ValueError):
    """A setpoint change that the station refuses, with the reason."""


def checked_setpoint(
    spec: Station, setpoints: Mapping[str, float], name: str, value: float
) -> float:
    """``value`` as setpoint ``name`` of ``spec``, or a ``SetpointError`` saying why not."""
    process = spec.process
    limits = {"speed": process.speed, "temperature_c": process.temperature_c}.get(name)
    if limits is None:
        known = ", ".join(sorted(setpoints))
        raise SetpointError(f"station {spec.id!r} has no setpoint {name!r}; it has: {known}")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SetpointError(f"{name} must be a finite number (got {value!r})")
    if not limits.min <= value <= limits.max:
        raise SetpointError(
            f"{name} {value:g} is out of range for station {spec.id!r}: "
            f"{limits.min:g} to {limits.max:g}"
        )
    return float(value)


def _logit(probability: float) -> float:
    return math.log(probability / (1.0 - probability))


class StationPhysics:
    """A station's processing times and defects at its current setpoints."""

    def __init__(
        self,
        spec: Station,
        config: LineConfig,
        rng: random.Random,
        quality_rng: random.Random,
    ) -> None:
        self.spec = spec
        # Processing times draw from ``rng``, defects from ``quality_rng``.
        self.rng = rng
        self.quality_rng = quality_rng
        self._nominal = {
            product.id: spec.processing_time_by_product.get(product.id, spec.processing_time)
            for product in config.products
        }
        # One processing-time draw per product, at the current speed.
        self.samplers: dict[str, Sampler] = {}
        self._defect_log_odds: float | None = None

    def set(self, setpoints: Mapping[str, float]) -> None:
        """Take new setpoints: they apply from the next draw on."""
        speed = setpoints["speed"]
        self.samplers = {
            product: sampler(duration, self.rng, scale=1.0 / speed)
            for product, duration in self._nominal.items()
        }
        quality = self.spec.process.quality
        if quality is None:
            self._defect_log_odds = None
            return
        log_odds = _logit(quality.base_defect_probability)
        log_odds += ((speed - quality.best_speed) / quality.speed_tolerance) ** 2
        if quality.best_temperature_c is not None:
            temperature = setpoints["temperature_c"]
            log_odds += (
                (temperature - quality.best_temperature_c) / quality.temperature_tolerance_c
            ) ** 2
        self._defect_log_odds = log_odds

    def defect_probability(self, wear: float) -> float:
        """Probability that the next part is defective, without the per-part noise."""
        if self._defect_log_odds is None:
            return self.spec.defect_probability
        quality = self.spec.process.quality
        assert quality is not None  # noqa: S101 - set together with the log-odds
        log_odds = self._defect_log_odds + quality.wear_sensitivity * wear * wear
        return 1.0 / (1.0 + math.exp(-log_odds))

    def is_defective(self, wear: float) -> bool:
        """Draw whether a part processed at ``wear`` is defective, per-part noise included."""
        if self._defect_log_odds is None:
            probability = self.spec.defect_probability
            return probability > 0 and self.quality_rng.random() < probability
        quality = self.spec.process.quality
        assert quality is not None  # noqa: S101
        log_odds = self._defect_log_odds + quality.wear_sensitivity * wear * wear
        if quality.noise_sd:
            log_odds += self.quality_rng.gauss(0.0, quality.noise_sd)
        return self.quality_rng.random() < 1.0 / (1.0 + math.exp(-log_odds))


def wear_per_part(wear: Wear, speed: float) -> float:
    """The wear one part adds at ``speed``: faster cuts wear the tool more than in proportion."""
    return float(wear.per_part * speed**wear.speed_exponent)


# -- true process values, for the sensors ------------------------------------------------------
def temperature_c(
    thermal: Thermal,
    target_c: float,
    anchor_c: float,
    since: float,
    now: float,
) -> float:
    """The temperature at ``now``, relaxing from ``anchor_c`` at ``since`` to ``target_c``."""
    decay = math.exp(-(now - since) / thermal.time_constant_s)
    return target_c + (anchor_c - target_c) * decay


def temperature_target_c(
    spec: Station, state: StationStateName, setpoints: Mapping[str, float]
) -> float:
    """What the temperature tends to in ``state``: the setpoint while running, else ambient."""
    thermal = spec.thermal
    if state == "running":
        return setpoints.get("temperature_c", thermal.operating_c)
    return thermal.ambient_c


def spindle_rpm(spec: Station, state: StationStateName, speed: float) -> float:
    if state != "running":
        return 0.0
    return spec.sensors.nominal_rpm * speed


def power_kw(spec: Station, state: StationStateName, speed: float) -> float:
    power = spec.costs.power_kw
    if state == "running":
        return power.running * speed
    if state == "planned_downtime":
        return 0.0
    return power.by_state(state)


def pressure_bar(spec: Station, state: StationStateName, wear: float) -> float:
    sensors = spec.sensors
    if state == "running":
        # Leaks grow with wear: the line pressure sags as the tool wears.
        return sensors.pressure_running_bar * (1.0 - 0.05 * min(wear, 2.0))
    return sensors.pressure_idle_bar


def vibration_mm_s(spec: Station, state: StationStateName, wear: float) -> float:
    vibration = spec.vibration
    if state == "running":
        return vibration.running_mm_s * (1.0 + vibration.wear_gain * wear)
    return vibration.idle_mm_s
