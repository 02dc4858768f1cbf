"""The plant: a SimPy model of a serial production line.

Stations sit in series with finite buffers between them. The first station
draws from an unlimited stock of raw material. A station takes a part from its
input buffer, processes it for a random time, and then either scraps it (with
the station's defect probability) or puts it into the next buffer. When that
buffer is full the station holds the part and is *blocked* (blocking after
service); when its input buffer is empty it is *starved*.

Breakdowns are operation-dependent: a station's clock to failure runs only
while it processes, failures arrive with mean ``mtbf_s`` of processing time and
take an exponential repair time with mean ``mttr_s``. The interrupted part
resumes where it stopped. This is the classic model behind the effective
process time te = t0 / A with A = MTBF / (MTBF + MTTR).

The plant knows its true physical state (temperature, vibration). Sensors in
``sensors/`` measure it; nothing downstream of MQTT reads this module's memory.
Observers receive plant events through ``Plant.add_listener``.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import simpy

from twin.config import LineConfig, Station
from twin.contract import STATION_STATES, StationStateName
from twin.distributions import sampler

SimTime = float
StationId = str
PartId = int


log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PartStartedEvent:
    time: SimTime
    station: StationId
    part_id: PartId
    input_buffer_level: int | None


@dataclass(frozen=True, slots=True)
class PartFinishedEvent:
    time: SimTime
    station: StationId
    part_id: PartId
    good: bool
    processing_time_s: float
    exits_line: bool
    output_buffer_level: int | None


@dataclass(frozen=True, slots=True)
class StateChangedEvent:
    time: SimTime
    station: StationId
    from_state: StationStateName | None
    to_state: StationStateName
    reason: str


PlantEvent = PartStartedEvent | PartFinishedEvent | StateChangedEvent
PlantListener = Callable[[PlantEvent], None]


class StationModel:
    """One station: its process, its state clock and its true physics."""

    def __init__(
        self,
        plant: Plant,
        spec: Station,
        position: int,
        input_buffer: simpy.Store | None,
        output_buffer: simpy.Store | None,
        rng: random.Random,
    ) -> None:
        self.plant = plant
        self.spec = spec
        self.id: StationId = spec.id
        self.position = position
        self.input_buffer = input_buffer
        self.output_buffer = output_buffer
        self.rng = rng
        self._draw_processing_time = sampler(spec.processing_time, rng)

        self.state: StationStateName = "starved"
        self.state_reason = "not started"
        self.state_since: SimTime = 0.0
        self.time_in_state: dict[StationStateName, float] = dict.fromkeys(STATION_STATES, 0.0)
        self._announced = False

        self.parts_started = 0
        self.parts_good = 0
        self.parts_scrap = 0
        self.current_part: PartId | None = None

        # Temperature is first-order: anchored at each state change.
        self._temperature_anchor_c = spec.thermal.ambient_c
        self._failure_rates: tuple[float, float] | None = None
        self._time_to_failure: float | None = None
        if spec.mtbf_s is not None and spec.mttr_s is not None:
            self._failure_rates = (1.0 / spec.mtbf_s, 1.0 / spec.mttr_s)
            self._time_to_failure = rng.expovariate(self._failure_rates[0])

    # -- state ---------------------------------------------------------------
    def set_state(self, new_state: StationStateName, reason: str) -> None:
        if self._announced and new_state == self.state:
            return
        now = self.plant.env.now
        self._temperature_anchor_c = self.temperature_c(now)
        previous: StationStateName | None = self.state if self._announced else None
        if self._announced:
            self.time_in_state[self.state] += now - self.state_since
        self._announced = True
        self.state = new_state
        self.state_reason = reason
        self.state_since = now
        self.plant.emit(StateChangedEvent(now, self.id, previous, new_state, reason))

    def time_in_states(self, now: SimTime) -> dict[StationStateName, float]:
        """Time spent in each state up to ``now``, including the open interval."""
        totals = dict(self.time_in_state)
        if self._announced:
            totals[self.state] += now - self.state_since
        return totals

    # -- physics -------------------------------------------------------------
    def temperature_c(self, now: SimTime) -> float:
        thermal = self.spec.thermal
        target = thermal.operating_c if self.state == "running" else thermal.ambient_c
        decay = math.exp(-(now - self.state_since) / thermal.time_constant_s)
        return target + (self._temperature_anchor_c - target) * decay

    def vibration_mm_s(self) -> float:
        vibration = self.spec.vibration
        return vibration.running_mm_s if self.state == "running" else vibration.idle_mm_s

    # -- processes -----------------------------------------------------------
    def run(self) -> Generator[simpy.Event, Any, None]:
        """Take, process, and hand on parts, forever."""
        env = self.plant.env
        emit = self.plant.emit
        listening = self.plant.has_listeners
        self.set_state("running" if self.input_buffer is None else "starved", "start")
        while True:
            input_level: int | None
            if self.input_buffer is None:
                part_id = self.plant.release_part()
                input_level = None
            else:
                if not self.input_buffer.items:
                    self.set_state("starved", "input buffer empty")
                part_id = yield self.input_buffer.get()
                input_level = len(self.input_buffer.items)
            self.parts_started += 1
            self.current_part = part_id
            self.set_state("running", "processing")
            if listening():
                emit(PartStartedEvent(env.now, self.id, part_id, input_level))

            processing_time = self._draw_processing_time()
            yield from self._process(processing_time)

            if self.spec.defect_probability and self.rng.random() < self.spec.defect_probability:
                self.parts_scrap += 1
                self.current_part = None
                self.plant.scrap_part()
                if listening():
                    emit(
                        PartFinishedEvent(
                            env.now, self.id, part_id, False, processing_time, False, None
                        )
                    )
                continue

            output_level: int | None = None
            if self.output_buffer is not None:
                if len(self.output_buffer.items) >= self.output_buffer.capacity:
                    self.set_state("blocked", "output buffer full")
                yield self.output_buffer.put(part_id)
                output_level = len(self.output_buffer.items)
            else:
                self.plant.ship_part()
            self.parts_good += 1
            self.current_part = None
            if listening():
                emit(
                    PartFinishedEvent(
                        env.now,
                        self.id,
                        part_id,
                        True,
                        processing_time,
                        self.output_buffer is None,
                        output_level,
                    )
                )

    def _process(self, processing_time: float) -> Generator[simpy.Event, Any, None]:
        """Process for ``processing_time``, breaking down when the failure clock runs out."""
        env = self.plant.env
        remaining = processing_time
        rates = self._failure_rates
        if rates is not None and self._time_to_failure is not None:
            failure_rate, repair_rate = rates
            while remaining > self._time_to_failure:
                yield env.timeout(self._time_to_failure)
                remaining -= self._time_to_failure
                self.set_state("down", "breakdown")
                yield env.timeout(self.rng.expovariate(repair_rate))
                self._time_to_failure = self.rng.expovariate(failure_rate)
                self.set_state("running", "repaired")
            self._time_to_failure -= remaining
        yield env.timeout(remaining)


class Plant:
    """The whole line: stations, buffers, and line-level tallies."""

    def __init__(
        self,
        config: LineConfig,
        *,
        seed: int | None = None,
        rng: random.Random | None = None,
        env: simpy.Environment | None = None,
    ) -> None:
        self.config = config
        self.env = env if env is not None else simpy.Environment()
        self.rng = rng if rng is not None else random.Random(seed)  # noqa: S311 - simulation, not crypto
        self._listeners: list[PlantListener] = []

        self.parts_released = 0
        self.parts_shipped = 0
        self.parts_scrapped = 0

        buffers: list[simpy.Store | None] = [None]
        for index in range(1, len(config.stations)):
            buffers.append(simpy.Store(self.env, capacity=config.buffer_capacity(index)))
        self.buffers = buffers
        self.stations: list[StationModel] = []
        for index, spec in enumerate(config.stations):
            output = buffers[index + 1] if index + 1 < len(buffers) else None
            self.stations.append(StationModel(self, spec, index, buffers[index], output, self.rng))
        self.by_id = {station.id: station for station in self.stations}
        for station in self.stations:
            self.env.process(station.run())

    # -- observers -------------------------------------------------------------
    def add_listener(self, listener: PlantListener) -> None:
        self._listeners.append(listener)

    def has_listeners(self) -> bool:
        return bool(self._listeners)

    def emit(self, event: PlantEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                # An observer's bug must never stop the line.
                log.exception("plant listener %r failed on %r", listener, event)

    # -- line tallies ------------------------------------------------------------
    def release_part(self) -> PartId:
        part_id = self.parts_released
        self.parts_released += 1
        return part_id

    def ship_part(self) -> None:
        self.parts_shipped += 1

    def scrap_part(self) -> None:
        self.parts_scrapped += 1

    @property
    def work_in_process(self) -> int:
        return self.parts_released - self.parts_shipped - self.parts_scrapped

    @property
    def now(self) -> SimTime:
        return float(self.env.now)

    def run(self, until: SimTime) -> None:
        """Advance the simulation to ``until`` (absolute simulation time)."""
        self.env.run(until=until)
