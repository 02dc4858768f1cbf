"""The plant: a SimPy model of a production line, the twin's source of truth.

The plant wires stations (``twin.sim.station``) to buffers, releases parts by the
line's release policy, runs the shift calendar, and keeps the line-level
tallies: parts released, shipped, scrapped and reworked, time-weighted WIP and
the cycle time of every part that leaves, so that Little's law (L = lambda W)
can be checked on every run.

The parts and buffers are ``twin.sim.parts``, the events the plant tells its
listeners ``twin.sim.events``.

The plant knows its true physical state (temperature, vibration, wear).
Sensors in ``sensors/`` measure it; nothing downstream of MQTT reads this
module's memory. Observers receive plant events through ``Plant.add_listener``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Generator
from typing import Any, Protocol

import simpy

from twin.config.distributions import sampler
from twin.config.line import LineConfig
from twin.contract import StationStateName
from twin.sim.events import (
    PartFinishedEvent,
    PartId,
    PartOutcome,
    PartStartedEvent,
    PlantEvent,
    PlantListener,
    SimTime,
    StateChangedEvent,
)
from twin.sim.machine import Machine
from twin.sim.parts import Buffer, Part
from twin.sim.physics import SetpointError
from twin.sim.station import StationModel
from twin.sim.streams import Streams

log = logging.getLogger(__name__)


def _planned_stop_at(config: LineConfig, now: SimTime) -> str | None:
    """The reason of the calendar's planned stop in force at ``now``, if any."""
    calendar = config.calendar
    if calendar is None:
        return None
    period = calendar.period_h * 3600.0
    hour_s = (calendar.start_at_h * 3600.0 + now) % period
    for start, end, reason in calendar.segments_h():
        if start * 3600.0 <= hour_s < end * 3600.0:
            return reason
    return None


class RepairCrewPool(Protocol):
    """Where a broken machine asks for a technician: a ``simpy.Resource``, or a
    line's share of a crew that several lines use (``twin.sim.site_plant.CrewShare``)."""

    def request(self) -> simpy.resources.resource.Request: ...


class Plant:
    """The whole line: stations, buffers, release, calendar and line tallies."""

    def __init__(
        self,
        config: LineConfig,
        *,
        seed: int | None = None,
        rng: random.Random | None = None,
        env: simpy.Environment | None = None,
        repair_crew: RepairCrewPool | None = None,
    ) -> None:
        self.config = config
        self.env = env if env is not None else simpy.Environment()
        # Every source of randomness draws from its own stream (``twin.sim.streams``),
        # all derived from ``rng`` or ``seed``.
        base = rng if rng is not None else random.Random(seed)  # noqa: S311 - simulation
        self.streams = Streams(base.getrandbits(64))
        self._mix_rng = self.streams("mix")
        self._listeners: list[PlantListener] = []
        self.listening = False

        release = config.release
        self.saturated_source = release.policy == "saturated"
        # A plant that starts inside a planned stop (a what-if forked at 22:05) starts
        # closed, before any machine takes a part; the stop's reason labels the state.
        stop = _planned_stop_at(config, self.env.now)
        self.calendar_closed = stop is not None
        self.calendar_reason = stop or "planned downtime"
        self.calendar_opened: simpy.Event = self.env.event()
        # A site (``twin.sim.site_plant``) passes its share of a crew that several lines
        # use, in this plant's environment; otherwise the line has its own, or none.
        self.repair_crew: RepairCrewPool | None
        if repair_crew is not None:
            self.repair_crew = repair_crew
        else:
            self.repair_crew = (
                simpy.Resource(self.env, capacity=config.repair_crew.size)
                if config.repair_crew is not None
                else None
            )
        self._products = [product.id for product in config.products]
        self._product_weights = [product.mix for product in config.products]
        self._batch_left = 0
        self._batch_product = self._products[0]
        self._next_part_id = 0
        self._in_system: dict[PartId, SimTime] = {}
        self._wip = 0
        self._wip_freed: simpy.Event | None = None

        self.buffers = [
            Buffer(self.env, capacity=config.buffer_capacity(index))
            for index in range(len(config.stations))
        ]
        self.stations: list[StationModel] = []
        for index, spec in enumerate(config.stations):
            self.stations.append(StationModel(self, spec, index, self.streams))
        for station in self.stations[:-1]:
            station.output = self.buffers[station.position + 1]
        self.stations[-1].is_last = True
        self.by_id = {station.id: station for station in self.stations}
        self.statistics_since: SimTime = 0.0
        self.reset_tallies()

        if release.policy == "open":
            self.env.process(self._open_arrivals())
        elif release.policy == "conwip":
            self.env.process(self._conwip_start())
        if config.calendar is not None and config.calendar.planned_downtime:
            self.env.process(self._calendar())

    # -- observers ------------------------------------------------------------------------
    def add_listener(self, listener: PlantListener) -> None:
        self._listeners.append(listener)
        self.listening = True

    def emit(self, event: PlantEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                # An observer's bug must never stop the line.
                log.exception("plant listener %r failed on %r", listener, event)

    # -- tallies --------------------------------------------------------------------------
    def reset_tallies(self) -> None:
        self.parts_released = 0
        self.parts_shipped = 0
        self.shipped_first_pass = 0
        self.parts_scrapped = 0
        self.parts_reworked = 0
        self.released_by_product = dict.fromkeys(self._products, 0)
        self.shipped_by_product = dict.fromkeys(self._products, 0)
        self.scrapped_by_product = dict.fromkeys(self._products, 0)
        self.cycle_time_sum_s = 0.0  # shipped parts
        self.exit_time_sum_s = 0.0  # every part that left: shipped or scrapped
        # Time that parts leaving in the window spent in the line before it began.
        self.exit_time_before_window_s = 0.0
        self.planned_downtime_s = 0.0
        self._calendar_closed_since: SimTime | None = self.env.now if self.calendar_closed else None
        self._wip_area = 0.0
        self._wip_since = self.env.now

    def reset_statistics(self) -> None:
        """Forget everything measured so far (warm-up deletion); the line state stays."""
        self.statistics_since = self.env.now
        self.reset_tallies()
        for station in self.stations:
            station.reset_tallies()
            for machine in station.machines:
                machine.reset_statistics()

    def _change_wip(self, delta: int) -> None:
        now = self.env.now
        self._wip_area += self._wip * (now - self._wip_since)
        self._wip_since = now
        self._wip += delta

    @property
    def work_in_process(self) -> int:
        return self._wip

    def mean_wip(self) -> float:
        """Time-average WIP since the statistics began (L in Little's law)."""
        span = self.env.now - self.statistics_since
        if span <= 0:
            return 0.0
        area = self._wip_area + self._wip * (self.env.now - self._wip_since)
        return area / span

    def littles_law_boundary_s(self) -> float:
        """The boundary terms by which L x T and the exits' total time may differ.

        Over a window [t0, T], the WIP area equals the time in system of the
        parts that left, minus what they spent before t0, plus the age within
        the window of the parts still inside. So |L - lambda W| x (T - t0) is at
        most the larger of those two sums: an exact bound, not a tolerance.
        """
        now, since = self.env.now, self.statistics_since
        inside = sum(now - max(released, since) for released in self._in_system.values())
        return max(inside, self.exit_time_before_window_s)

    def planned_downtime_so_far(self) -> float:
        total = self.planned_downtime_s
        if self._calendar_closed_since is not None:
            total += self.env.now - self._calendar_closed_since
        return total

    @property
    def now(self) -> SimTime:
        return float(self.env.now)

    # -- release ----------------------------------------------------------------------------
    def _next_product(self) -> str:
        if len(self._products) == 1:
            return self._products[0]
        if self._batch_left == 0:
            self._batch_product = self._mix_rng.choices(self._products, self._product_weights)[0]
            self._batch_left = self.config.release.batch_size
        self._batch_left -= 1
        return self._batch_product

    def release(self) -> Part:
        """A new part enters the line."""
        part = Part(self._next_part_id, self._next_product(), self.env.now)
        self._next_part_id += 1
        self.parts_released += 1
        self.released_by_product[part.product] += 1
        self._in_system[part.id] = part.released_at
        self._change_wip(+1)
        return part

    def _open_arrivals(self) -> Generator[simpy.Event, Any, None]:
        interarrival = self.config.release.interarrival
        assert interarrival is not None  # noqa: S101 - validated by the config
        draw = sampler(interarrival, self.streams("arrivals"))
        cap = self.config.release.wip_cap
        first = self.buffers[0]
        while True:
            yield self.env.timeout(draw())
            if cap is not None:
                while self._wip >= cap:
                    freed = self.env.event()
                    self._wip_freed = freed
                    yield freed
            yield first.put(self.release())

    def _conwip_start(self) -> Generator[simpy.Event, Any, None]:
        cap = self.config.release.wip_cap
        assert cap is not None  # noqa: S101 - validated by the config
        # A forked run (``twin.experiments.whatif``) starts with parts already inside: top up.
        for _ in range(cap - self._wip):
            yield self.buffers[0].put(self.release())

    def _part_left(self, part: Part) -> None:
        self._change_wip(-1)
        del self._in_system[part.id]
        self.exit_time_sum_s += self.env.now - part.released_at
        if part.released_at < self.statistics_since:
            self.exit_time_before_window_s += self.statistics_since - part.released_at
        policy = self.config.release.policy
        if policy == "conwip":
            # A finished part's card releases the next one at once; a fork that
            # starts above the cap (``twin.experiments.whatif``) lets its cards go until it is back.
            if self._wip < (self.config.release.wip_cap or 0):
                self.buffers[0].put(self.release())
        elif policy == "open":
            freed = self._wip_freed
            if freed is not None and not freed.triggered:
                freed.succeed()

    def preload(self, position: int, count: int) -> None:
        """Put ``count`` parts, released now, into station ``position``'s input buffer,
        capacity or not: the initial WIP of a forked run (``twin.experiments.whatif``). Call it
        before the run starts; ``reset_statistics`` then forgets the releases."""
        buffer = self.buffers[position]
        for _ in range(count):
            buffer.items.append(self.release())

    # -- calendar ---------------------------------------------------------------------------
    def _calendar(self) -> Generator[simpy.Event, Any, None]:
        calendar = self.config.calendar
        assert calendar is not None  # noqa: S101
        period = calendar.period_h * 3600.0
        # Simulation time 0 is start_at_h into the period.
        offset = calendar.start_at_h * 3600.0
        stops = [
            (start * 3600.0, end * 3600.0, reason) for start, end, reason in calendar.segments_h()
        ]
        cycle_start = -offset
        while True:
            for start, end, reason in stops:
                if cycle_start + end <= self.env.now:
                    continue  # already over (only in the first, partial period)
                yield self.env.timeout(max(0.0, cycle_start + start - self.env.now))
                if not self.calendar_closed:
                    self._set_calendar(True, reason)
                yield self.env.timeout(cycle_start + end - self.env.now)
                # A stop that runs into the next period's first stop stays closed.
                wraps = end >= period and stops[0][0] == 0.0
                if not wraps:
                    self._set_calendar(False, "shift start")
            cycle_start += period
            yield self.env.timeout(max(0.0, cycle_start - self.env.now))

    def _set_calendar(self, closed: bool, reason: str) -> None:
        now = self.env.now
        if closed:
            self.calendar_closed = True
            self.calendar_reason = reason
            self._calendar_closed_since = now
        else:
            self.calendar_closed = False
            if self._calendar_closed_since is not None:
                self.planned_downtime_s += now - self._calendar_closed_since
            self._calendar_closed_since = None
            opened = self.calendar_opened
            self.calendar_opened = self.env.event()
            opened.succeed()
        for station in self.stations:
            for machine in station.machines:
                machine.refresh(reason)

    # -- callbacks from machines -------------------------------------------------------------
    def state_changed(
        self,
        machine: Machine,
        previous: StationStateName | None,
        state: StationStateName,
        reason: str,
    ) -> None:
        if self.listening:
            self.emit(
                StateChangedEvent(
                    self.env.now, machine.station.id, machine.index, previous, state, reason
                )
            )

    def part_started(self, machine: Machine, part: Part, input_level: int | None) -> None:
        if self.listening:
            self.emit(
                PartStartedEvent(
                    self.env.now,
                    machine.station.id,
                    machine.index,
                    part.id,
                    part.product,
                    input_level,
                )
            )

    def _finished(
        self,
        machine: Machine,
        part: Part,
        outcome: PartOutcome,
        processing_time: float,
        exits_line: bool,
        level: int | None,
    ) -> None:
        self.emit(
            PartFinishedEvent(
                self.env.now,
                machine.station.id,
                machine.index,
                part.id,
                part.product,
                outcome,
                processing_time,
                exits_line,
                level,
                machine.process_seen,
                machine.defect_probability_seen,
            )
        )

    def part_passed(
        self, machine: Machine, part: Part, processing_time: float, output_level: int | None
    ) -> None:
        last = machine.station.is_last
        if last:
            self.parts_shipped += 1
            if part.reworks == 0:
                self.shipped_first_pass += 1
            self.shipped_by_product[part.product] += 1
            self.cycle_time_sum_s += self.env.now - part.released_at
            self._part_left(part)
        if self.listening:
            self._finished(machine, part, "good", processing_time, last, output_level)

    def scrap(self, machine: Machine, part: Part, processing_time: float) -> None:
        self.parts_scrapped += 1
        self.scrapped_by_product[part.product] += 1
        self._part_left(part)
        if self.listening:
            self._finished(machine, part, "scrap", processing_time, False, None)

    def rework(self, machine: Machine, part: Part, processing_time: float, to: str) -> None:
        self.parts_reworked += 1
        part.reworks += 1
        target = self.by_id[to]
        target.input.put_rework(part)
        if self.listening:
            self._finished(machine, part, "rework", processing_time, False, len(target.input.items))

    # -- commands -----------------------------------------------------------------------------
    def set_setpoint(self, station_id: str, name: str, value: float) -> None:
        """Change a station's setpoint while the line runs; raises SetpointError."""
        station = self.by_id.get(station_id)
        if station is None:
            raise SetpointError(f"unknown station {station_id!r}; stations are {list(self.by_id)}")
        station.set_setpoint(name, value)

    def station(self, station_id: str) -> StationModel:
        station = self.by_id.get(station_id)
        if station is None:
            raise SetpointError(f"unknown station {station_id!r}; stations are {list(self.by_id)}")
        return station

    def request_maintenance(self, station_id: str) -> None:
        """Maintenance before the next part: resets tool wear."""
        self.station(station_id).request_maintenance()

    def stop_station(self, station_id: str) -> None:
        self.station(station_id).stop()

    def start_station(self, station_id: str) -> None:
        self.station(station_id).start()

    def run(self, until: SimTime) -> None:
        """Advance the simulation to ``until`` (absolute simulation time)."""
        if until > self.env.now:
            self.env.run(until=until)
