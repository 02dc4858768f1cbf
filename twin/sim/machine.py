"""Machines: the processes that do the plant's work.

Each machine of a station (``twin.sim.station``) is a SimPy process that
repeats: wait for the line's calendar to be open, take a part (starved while the
buffer is empty), change over if the product differs from its last one (setup),
process it (running), and hand it on (blocked while the next buffer is full). A
part whose processing made a defect is scrapped, or sent back to an upstream
station's queue for rework.

Losses while processing are drawn from operation clocks: the time to the next
breakdown (operation-based failures) and to the next microstop run down only
while the machine processes. Time-based failures run on a clock of their own
and interrupt the machine wherever it is. Breakdowns need a repair crew member
when the line has a limited crew.

Every machine keeps its own time model: time in each state, energy, and its
active periods (running, setup, maintenance or down: not starved, blocked or
planned down), which the active-period bottleneck method uses. What happens to a
part and a machine physically (processing times, defects, wear, the sensors'
true values) is in ``twin.sim.physics``; this module runs it in time.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import simpy

from twin.config.distributions import sampler
from twin.contract import (
    ACTIVE_STATES,
    CREW_ARRIVED_REASON,
    CREW_WAITING_REASON,
    STATION_STATES,
    StationStateName,
)
from twin.sim import physics

if TYPE_CHECKING:
    from twin.sim.parts import Part
    from twin.sim.station import StationModel


class Machine:
    """One machine of a station, with its own state clock, wear and failures."""

    def __init__(self, station: StationModel, index: int) -> None:
        self.station = station
        self.index = index
        plant = station.plant
        self.plant = plant
        self.env: simpy.Environment = plant.env
        # Each source of randomness has its own stream (``twin.sim.streams``): the
        # k-th failure of this machine comes from the same number whatever else changed.
        streams = station.streams
        key = (station.spec.id, index)
        self._failure_rng = streams("failures", *key)
        self._repair_rng = streams("repairs", *key)
        self._jam_rng = streams("microstops", *key)
        spec = station.spec

        self.activity: StationStateName = "starved"
        self.broken = False
        self.state: StationStateName = "starved"
        self.state_reason = "not started"
        self.state_since = 0.0
        self._announced = False
        self.time_in_state: dict[StationStateName, float] = dict.fromkeys(STATION_STATES, 0.0)
        self.running_speed_s = 0.0  # integral of the speed setpoint over running time
        self.active_since: float | None = None
        self.active_total_s = 0.0
        self.active_periods = 0

        self.wear = 0.0
        self.maintenance_due = False
        self.last_product: str | None = None
        self.current_part: Part | None = None
        # The part being processed, and one whose processing began before the
        # statistics window (warm-up deletion) and is still under way.
        self._processing_part: Part | None = None
        self._part_before_window: Part | None = None
        self.process_seen: dict[str, float] | None = None
        # The true defect probability of the last part (no per-part noise): ground
        # truth for evaluating models, never published.
        self.defect_probability_seen: float | None = None
        self._temperature_anchor_c = spec.thermal.ambient_c
        self._temperature_since = 0.0
        self._interruptible = False
        self._repaired: simpy.Event | None = None

        failures = spec.failures
        self._failure_rate = 1.0 / failures.mtbf_s if failures else 0.0
        self._repair_rate = 1.0 / failures.mttr_s if failures else 0.0
        operation_failures = failures is not None and failures.basis == "operation"
        self._time_to_failure = (
            self._failure_rng.expovariate(self._failure_rate) if operation_failures else math.inf
        )
        jams = spec.microstops
        self._jam_rate = 1.0 / jams.mean_between_s if jams else 0.0
        self._jam_duration = (
            sampler(jams.duration, streams("microstop durations", *key)) if jams else None
        )
        self._time_to_jam = self._jam_rng.expovariate(self._jam_rate) if jams else math.inf
        self._setup_time = sampler(spec.setup.time, streams("setups", *key)) if spec.setup else None
        wear = spec.process.wear
        self._maintenance_time = (
            sampler(wear.maintenance_time, streams("maintenance", *key)) if wear else None
        )

        self.process = self.env.process(self.run())
        if failures is not None and failures.basis == "time":
            self.env.process(self.time_based_failures())

    # -- the state clock -----------------------------------------------------------------
    def _effective_state(self) -> StationStateName:
        if self.broken:
            return "down"
        if self.activity in ("running", "setup", "maintenance", "stopped"):
            return self.activity
        if self.plant.calendar_closed:
            return "planned_downtime"
        return self.activity

    def account(self) -> None:
        """Book the time since the last change to the current state."""
        now = self.env.now
        elapsed = now - self.state_since
        if elapsed > 0:
            self.time_in_state[self.state] += elapsed
            if self.state == "running":
                self.running_speed_s += elapsed * self.station.setpoints["speed"]
            self.state_since = now

    def refresh(self, reason: str) -> None:
        """Recompute the state after a change of activity, breakdown or calendar."""
        new_state = self._effective_state()
        if self._announced and new_state == self.state:
            return
        if new_state == "planned_downtime":
            # Idle in a planned stop, whatever made it idle (a part finished in the
            # break finds its output full): the stop is the reason.
            reason = self.plant.calendar_reason
        now = self.env.now
        # The temperature reached in the old state anchors the new curve; take
        # it before account() moves state_since.
        self._temperature_anchor_c = self.temperature_c(now)
        self._temperature_since = now
        self.account()
        previous: StationStateName | None = self.state if self._announced else None
        self._announced = True
        was_active = self.state in ACTIVE_STATES and previous is not None
        self.state = new_state
        self.state_reason = reason
        self.state_since = now
        is_active = new_state in ACTIVE_STATES
        if is_active and not was_active:
            self.active_since = now
        elif was_active and not is_active and self.active_since is not None:
            self.active_total_s += now - self.active_since
            self.active_periods += 1
            self.active_since = None
        self.plant.state_changed(self, previous, new_state, reason)

    def set_activity(self, activity: StationStateName, reason: str) -> None:
        self.activity = activity
        self.refresh(reason)

    def time_in_states(self, now: float) -> dict[StationStateName, float]:
        totals = dict(self.time_in_state)
        if self._announced:
            totals[self.state] += now - self.state_since
        return totals

    def reset_statistics(self) -> None:
        self.account()
        self._part_before_window = self._processing_part
        self.time_in_state = dict.fromkeys(STATION_STATES, 0.0)
        self.running_speed_s = 0.0
        self.active_total_s = 0.0
        self.active_periods = 0
        if self.active_since is not None:
            self.active_since = self.env.now

    def active_period_stats(self, now: float) -> tuple[float, int]:
        """(total active time, number of active periods), the open one included."""
        total, count = self.active_total_s, self.active_periods
        if self.active_since is not None:
            total += now - self.active_since
            count += 1
        return total, count

    # -- true process values, for the sensors --------------------------------------------
    def temperature_c(self, now: float) -> float:
        spec = self.station.spec
        target = physics.temperature_target_c(spec, self.state, self.station.setpoints)
        return physics.temperature_c(
            spec.thermal, target, self._temperature_anchor_c, self._temperature_since, now
        )

    def spindle_rpm(self) -> float:
        return physics.spindle_rpm(self.station.spec, self.state, self.station.setpoints["speed"])

    def power_kw(self) -> float:
        return physics.power_kw(self.station.spec, self.state, self.station.setpoints["speed"])

    def pressure_bar(self) -> float:
        return physics.pressure_bar(self.station.spec, self.state, self.wear)

    def vibration_mm_s(self) -> float:
        return physics.vibration_mm_s(self.station.spec, self.state, self.wear)

    # -- the process ---------------------------------------------------------------------
    def run(self) -> Generator[simpy.Event, Any, None]:
        station = self.station
        plant = self.plant
        env = self.env
        buffer = station.input
        output = station.output
        take = buffer.get
        saturated = plant.saturated_source and station.position == 0
        simple = station.spec.failures is None and self._jam_duration is None
        self.set_activity("running" if saturated else "starved", "start")
        while True:
            if plant.calendar_closed:
                self.set_activity("starved", plant.calendar_reason)
                yield plant.calendar_opened
            if station.stopped:
                self.set_activity("stopped", station.stop_reason)
                yield station.restarted
            if self.maintenance_due:
                yield from self._maintain("maintenance requested")
                # Look again: a planned stop that began meanwhile, or a stop command,
                # is what the machine is in now, not maintenance.
                continue

            if saturated:
                # Reworked parts sent back to a saturated first station go first.
                part = buffer.items.pop(0) if buffer.items else plant.release()
            else:
                if not buffer.items:
                    self.set_activity("starved", "input buffer empty")
                part = yield take()
                self.current_part = part
                if plant.calendar_closed:
                    yield plant.calendar_opened
            self.current_part = part
            station.parts_started += 1
            plant.part_started(self, part, None if saturated else len(buffer.items))
            if self.broken:
                yield from self._wait_for_repair()
            if self._setup_time is not None and part.product != self.last_product:
                if self.last_product is not None:
                    station.setups += 1
                    self.set_activity("setup", f"changeover to {part.product}")
                    yield from self._hold(self._setup_time())
                self.last_product = part.product
            self.set_activity("running", "processing")

            processing_time = station.physics.samplers[part.product]()
            self._processing_part = part
            if simple:
                yield env.timeout(processing_time)
            else:
                yield from self._process(processing_time)
            wear_spec = station.spec.process.wear
            wear_at_processing = self.wear
            if plant.listening:
                # What this part saw, for the part's event: the ML learns from it.
                self.process_seen = {**station.setpoints, "wear": round(wear_at_processing, 6)}
                self.defect_probability_seen = station.physics.defect_probability(
                    wear_at_processing
                )
            if wear_spec is not None:
                self.wear += physics.wear_per_part(wear_spec, station.setpoints["speed"])
                if wear_spec.preventive_at is not None and self.wear >= wear_spec.preventive_at:
                    self.maintenance_due = True
            share = self._share_in_window(part, processing_time)
            station.ideal_time_s += station._ideal_s[part.product] * share
            station.processing_s += processing_time * share
            self._processing_part = None
            self.current_part = None

            if station.physics.is_defective(wear_at_processing):
                rework = station.spec.rework
                if rework is not None and station.rework_rng.random() < rework.probability:
                    station.parts_reworked += 1
                    station.rework_processing_s += processing_time
                    plant.rework(self, part, processing_time, rework.to)
                else:
                    station.parts_scrap += 1
                    station.scrap_processing_s += processing_time
                    station.scrap_material_cost += station.material_cost[part.product]
                    plant.scrap(self, part, processing_time)
                continue

            output_level: int | None = None
            if output is not None:
                if len(output.items) >= output.capacity:
                    self.set_activity("blocked", "output buffer full")
                yield output.put(part)
                output_level = len(output.items)
            station.parts_good += 1
            plant.part_passed(self, part, processing_time, output_level)

    def _share_in_window(self, part: Part, processing_time: float) -> float:
        """The share of ``part``'s processing that lies inside the statistics window.

        A part in process when the warm-up ended brings only its remaining
        running time into APT; crediting its whole PRU would push effectiveness
        above 1 by up to a part per machine. The share is its running time since
        the window began (the machine has run nothing else since) over its
        processing time. A microstop inside the window counts as processing
        there; the share is capped at 1, so the part never brings more than its
        PRU.
        """
        if self._part_before_window is not part:
            return 1.0
        self._part_before_window = None
        if processing_time <= 0:
            return 1.0
        running_in_window = self.time_in_states(self.env.now)["running"]
        return min(1.0, running_in_window / processing_time)

    def _process(self, processing_time: float) -> Generator[simpy.Event, Any, None]:
        """Process, breaking down and jamming when their operation clocks run out."""
        remaining = processing_time
        while remaining > 0:
            step = remaining
            cause = None
            if self._time_to_failure < step:
                step, cause = self._time_to_failure, "failure"
            if self._time_to_jam < step:
                step, cause = self._time_to_jam, "jam"
            yield from self._hold(step)
            remaining -= step
            self._time_to_failure -= step
            self._time_to_jam -= step
            if cause == "failure":
                yield from self._breakdown()
                self._time_to_failure = self._failure_rng.expovariate(self._failure_rate)
                self.set_activity("running", "repaired")
            elif cause == "jam":
                assert self._jam_duration is not None  # noqa: S101 - cause implies it
                jam = self._jam_duration()
                self.station.microstops += 1
                self.station.microstop_s += jam
                yield from self._hold(jam)
                self._time_to_jam = self._jam_rng.expovariate(self._jam_rate)

    def _hold(self, duration: float) -> Generator[simpy.Event, Any, None]:
        """Be busy for ``duration``; a time-based failure pauses the clock for its repair."""
        env = self.env
        end = env.now + duration
        while True:
            self._interruptible = True
            try:
                yield env.timeout(end - env.now)
            except simpy.Interrupt:
                self._interruptible = False
                paused_at = env.now
                yield from self._wait_for_repair()
                end += env.now - paused_at
                continue
            self._interruptible = False
            return

    def _breakdown(self) -> Generator[simpy.Event, Any, None]:
        """An operation-based failure: down until a crew member has repaired it."""
        self.broken = True
        self.station.breakdowns += 1
        self.refresh("breakdown")
        yield from self._repair()
        self.broken = False

    def _repair(self) -> Generator[simpy.Event, Any, None]:
        crew = self.plant.repair_crew
        if crew is None:
            yield self.env.timeout(self._repair_rng.expovariate(self._repair_rate))
            return
        with crew.request() as request:
            if request.triggered:
                yield request
            else:  # every technician is busy: say so, and when one came
                self._say(CREW_WAITING_REASON)
                yield request
                self._say(CREW_ARRIVED_REASON)
            yield self.env.timeout(self._repair_rng.expovariate(self._repair_rate))

    def _say(self, reason: str) -> None:
        """A new reason for the state the machine stays in (down: waiting for the
        crew, then the crew at it), published as a change from it to itself."""
        self.state_reason = reason
        if self._announced:
            self.plant.state_changed(self, self.state, self.state, reason)

    def _wait_for_repair(self) -> Generator[simpy.Event, Any, None]:
        if self.broken and self._repaired is not None:
            yield self._repaired

    def time_based_failures(self) -> Generator[simpy.Event, Any, None]:
        """Failures on calendar time: they strike whatever the machine is doing."""
        env = self.env
        while True:
            yield env.timeout(self._failure_rng.expovariate(self._failure_rate))
            if self.broken:
                continue  # already down (an outage): a machine cannot fail twice
            self.broken = True
            self.station.breakdowns += 1
            self._repaired = env.event()
            if self._interruptible:
                self.process.interrupt("breakdown")
            self.refresh("breakdown")
            yield from self._repair()
            self.broken = False
            self._repaired.succeed()
            self._repaired = None
            self.refresh("repaired")

    def start_outage(self, duration_s: float | None, reason: str) -> simpy.Process:
        """Take the machine down from now, as a time-based failure does: for
        ``duration_s``, or, with ``None``, until a repair drawn from the station's
        MTTR (crew permitting) ends. For what-if forks (``twin.experiments.whatif``), which
        start a run with machines down; call it while the machine is up."""
        if self.broken:
            raise RuntimeError(f"{self.station.id}[{self.index}] is already down")
        if duration_s is None and self.station.spec.failures is None:
            raise ValueError(f"station {self.station.id!r} has no failures model to repair by")
        if duration_s is not None and not duration_s >= 0:
            raise ValueError(f"an outage lasts >= 0 s (got {duration_s})")
        self.broken = True
        self._repaired = self.env.event()
        if self._interruptible:
            self.process.interrupt(reason)
        self.refresh(reason)
        return self.env.process(self._outage(duration_s))

    def _outage(self, duration_s: float | None) -> Generator[simpy.Event, Any, None]:
        if duration_s is None:
            yield from self._repair()
        else:
            yield self.env.timeout(duration_s)
        self.broken = False
        repaired, self._repaired = self._repaired, None
        if repaired is not None:
            repaired.succeed()
        self.refresh("repaired")

    def _maintain(self, reason: str) -> Generator[simpy.Event, Any, None]:
        self.maintenance_due = False
        self.station.maintenances += 1
        self.set_activity("maintenance", reason)
        duration = self._maintenance_time() if self._maintenance_time is not None else 0.0
        yield from self._hold(duration)
        self.wear = 0.0
