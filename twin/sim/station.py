"""Stations: what the line sees of a group of identical machines.

A station has one or more machines (``twin.sim.machine``) sharing its input
buffer. It holds what they share: the setpoints, which it checks and which set
its physics (``twin.sim.physics``) from the next part on; the tallies of parts,
losses and processing time that the run's report reads; the true process values
its sensors measure, from its machines; and the stop command, which each machine
obeys after the part in hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import simpy

from twin.config.line import Station
from twin.contract import STATE_RANK, STATION_STATES, StationStateName
from twin.sim.machine import Machine
from twin.sim.physics import StationPhysics, checked_setpoint
from twin.sim.streams import Streams

if TYPE_CHECKING:
    from twin.sim.parts import Buffer
    from twin.sim.plant import Plant


class StationModel:
    """One station: its machines, setpoints, physics and tallies."""

    def __init__(self, plant: Plant, spec: Station, position: int, streams: Streams) -> None:
        self.plant = plant
        self.spec = spec
        self.id = spec.id
        self.position = position
        self.streams = streams
        self.input: Buffer = plant.buffers[position]
        self.output: Buffer | None = None  # wired by the plant
        self.is_last = False
        process = spec.process
        self.setpoints: dict[str, float] = {"speed": process.speed.default}
        if process.temperature_c is not None:
            self.setpoints["temperature_c"] = process.temperature_c.default
        self.physics = StationPhysics(
            spec, plant.config, streams("processing", spec.id), streams("quality", spec.id)
        )
        self.rework_rng = streams("rework", spec.id)
        # PRU per product: the rated cycle, whatever the speed setpoint (docs/kpis.md).
        self.ideal_by_product = self._ideal_s = {
            product.id: spec.planned_runtime_per_unit_s(product.id)
            for product in plant.config.products
        }
        self.material_cost = {
            product.id: product.material_cost for product in plant.config.products
        }
        self.physics.set(self.setpoints)
        self.stopped = False
        self.stop_reason = ""
        self.restarted: simpy.Event = plant.env.event()
        self.machines = [Machine(self, index) for index in range(spec.machines)]
        self.reset_tallies()

    def reset_tallies(self) -> None:
        self.parts_started = 0
        self.parts_good = 0
        self.parts_scrap = 0
        self.parts_reworked = 0
        self.ideal_time_s = 0.0  # sum of PRU over finished parts (good, scrap or rework)
        self.processing_s = 0.0  # their processing time, microstops not included
        self.scrap_processing_s = 0.0
        self.scrap_material_cost = 0.0
        self.rework_processing_s = 0.0
        self.microstops = 0
        self.microstop_s = 0.0
        self.setups = 0
        self.maintenances = 0
        self.breakdowns = 0

    # -- setpoints -----------------------------------------------------------------------
    def set_setpoint(self, name: str, value: float) -> None:
        """Change a setpoint while the line runs; it applies from the next part on.

        Raises ``twin.sim.physics.SetpointError`` for a name or value the station refuses.
        """
        checked = checked_setpoint(self.spec, self.setpoints, name, value)
        for machine in self.machines:
            machine.account()  # energy so far at the old speed
        self.setpoints[name] = checked
        self.physics.set(self.setpoints)

    # -- true process values, for the sensors -------------------------------------------------
    def temperature_c(self, now: float) -> float:
        return sum(machine.temperature_c(now) for machine in self.machines) / len(self.machines)

    def vibration_mm_s(self) -> float:
        return max(machine.vibration_mm_s() for machine in self.machines)

    def spindle_rpm(self) -> float:
        return max(machine.spindle_rpm() for machine in self.machines)

    def power_kw(self) -> float:
        return sum(machine.power_kw() for machine in self.machines)

    def pressure_bar(self) -> float:
        return min(machine.pressure_bar() for machine in self.machines)

    def probe(self, sensor: str) -> Callable[[float], float]:
        """The true process value a sensor of this station measures, as a function of time.

        Resolved once per sensor, so that sampling does not dispatch on a name.
        """
        # A station of one machine measures that machine directly.
        source: StationModel | Machine = self.machines[0] if len(self.machines) == 1 else self
        if sensor == "temperature_c":
            return source.temperature_c
        timeless: dict[str, Callable[[], float]] = {
            "vibration_mm_s": source.vibration_mm_s,
            "spindle_rpm": source.spindle_rpm,
            "power_kw": source.power_kw,
            "pressure_bar": source.pressure_bar,
        }
        if sensor not in timeless:
            raise ValueError(f"unknown sensor {sensor!r}")
        value = timeless[sensor]
        return lambda now: value()

    @property
    def state(self) -> StationStateName:
        """The station's headline state: its most productive machine's."""
        return min((machine.state for machine in self.machines), key=STATE_RANK.__getitem__)

    def time_in_states(self, now: float) -> dict[StationStateName, float]:
        totals: dict[StationStateName, float] = dict.fromkeys(STATION_STATES, 0.0)
        for machine in self.machines:
            for state, seconds in machine.time_in_states(now).items():
                totals[state] += seconds
        return totals

    def request_maintenance(self) -> None:
        for machine in self.machines:
            machine.maintenance_due = True

    def stop(self, reason: str = "stop command") -> None:
        """Each machine finishes the part in hand, then stops until ``start``."""
        self.stopped = True
        self.stop_reason = reason

    def start(self) -> None:
        if not self.stopped:
            return
        self.stopped = False
        restarted, self.restarted = self.restarted, self.plant.env.event()
        restarted.succeed()
