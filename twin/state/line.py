"""The twin state: a live shadow of the line, built from messages only.

The ingest hands in typed contract payloads (never raw JSON) together with the
station they came from. The state keeps each station's current state and the
time it has spent in each, the buffer levels as the events report them, the
part counters, the latest sensor readings, and computes KPIs on demand.

Time is simulation time as the payloads report it. The twin computes every
KPI, counter and ratio as of its watermark (``twin.state.watermark``): the line time up
to which every stream has arrived, not the newest ``sim_time_s`` seen. Events and
state snapshots that arrive beyond it are held back and applied, in line-time
order, once it passes them; telemetry (the latest readings) is applied at once.
Accounting for a station begins when its first state arrives. All methods are
thread-safe: MQTT callbacks write while API requests read.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from twin.contract import (
    ACTIVE_STATES,
    SENSOR_FIELDS,
    STATE_RANK,
    STATION_STATES,
    CalendarDescription,
    LineStatus,
    PartFinished,
    PartStarted,
    StateChanged,
    StationState,
    StationStateName,
    Telemetry,
)
from twin.state.admission import Admission
from twin.state.clock import clock_view
from twin.state.kpi import StationFacts, line_kpis, station_kpis
from twin.state.views import (
    BufferView,
    LineKpis,
    LineStatusName,
    LineView,
    LiveScoringView,
    MachineView,
    StationKpis,
    StationView,
    TelemetryView,
)
from twin.state.watermark import Watermark

# Held-back messages past which the twin settles at once rather than wait for the
# next heartbeat or view; and past which it applies the oldest beyond its
# watermark (a stream that never completes must not grow the memory).
SETTLE_EVERY = 4096
MAX_HELD = 200_000


_Held = PartStarted | PartFinished | StateChanged | StationState


class Lag(NamedTuple):
    """How far the twin is behind its line."""

    as_of_s: float | None  # the watermark: the line time the figures are as of
    newest_s: float | None  # the newest line time known (a heartbeat's or a message's)
    lag_s: float | None  # line seconds between them; None: the line sends no heartbeat
    lag_messages: int | None  # published, not received yet (the newest heartbeat's counts)
    held: int  # received beyond the watermark, not counted yet
    # Applied beyond the watermark since the start, because too many were held
    # (``MAX_HELD``: a stream that never completes): figures no longer all as of one time.
    held_forced: int = 0


class StationKpiView(NamedTuple):
    id: str
    kpis: StationKpis


class KpiView(NamedTuple):
    """The KPIs of ``TwinState.view()`` alone (``TwinState.kpi_view``)."""

    kpis: LineKpis
    stations: list[StationKpiView]


@dataclass(frozen=True, slots=True)
class LineAnnouncement:
    """What the line said about itself in its retained status: for health checks."""

    status: LineStatusName
    paused: bool | None
    speed_factor: float | None
    telemetry_period_s: float | None
    speed_asked: float | None = None


@dataclass
class _MachineClock:
    """State and time-in-state of one machine, from its state_changed events."""

    state: StationStateName | None = None
    reason: str | None = None
    # Time in state is counted from ``since``; ``began`` is when the state began,
    # earlier where a retained snapshot told of a state older than the twin's window.
    since: float | None = None
    began: float | None = None
    time_in_state: dict[StationStateName, float] = field(
        default_factory=lambda: dict.fromkeys(STATION_STATES, 0.0)
    )
    active_since: float | None = None
    active_total_s: float = 0.0
    active_periods: int = 0

    def enter(
        self, state: StationStateName, reason: str, since: float, counted_from: float | None = None
    ) -> None:
        """Enter ``state`` at ``since``; its time counted from ``counted_from`` if later."""
        began = since
        if counted_from is not None:
            since = max(since, counted_from)
        if self.state is not None and self.since is not None:
            if since < self.since:
                return  # an older report arriving late must not rewind the state
            self.time_in_state[self.state] += since - self.since
        was_active = self.state in ACTIVE_STATES
        if state in ACTIVE_STATES and not was_active:
            self.active_since = since
        elif was_active and state not in ACTIVE_STATES and self.active_since is not None:
            self.active_total_s += since - self.active_since
            self.active_periods += 1
            self.active_since = None
        self.state = state
        self.reason = reason
        self.since = since
        self.began = began

    def time_in_states(self, now: float) -> dict[StationStateName, float]:
        totals = dict(self.time_in_state)
        if self.state is not None and self.since is not None:
            totals[self.state] += max(0.0, now - self.since)
        return totals

    def active(self, now: float) -> tuple[float, int]:
        total, count = self.active_total_s, self.active_periods
        if self.active_since is not None:
            total += max(0.0, now - self.active_since)
            count += 1
        return total, count


@dataclass
class _StationShadow:
    id: str
    name: str = ""
    position: int | None = None
    ideal_cycle_time_s: float | None = None
    input_buffer_capacity: int | None = None
    machine_count: int = 1
    described: bool = False
    ideal_by_product: dict[str, float] | None = None
    ideal_time_s: float = 0.0
    machines: dict[int, _MachineClock] = field(default_factory=dict)
    headline: StationState | None = None
    started: int = 0
    good: int = 0
    scrap: int = 0
    rework: int = 0
    current_part: int | None = None
    input_buffer_level: int | None = None
    input_buffer_level_at_s: float = -1.0
    # The latest reading of each sensor, and the simulation time of the latest sample.
    readings: dict[str, float] = field(default_factory=dict)
    readings_at_s: float | None = None
    # The process values (setpoints, wear) of the latest part finished here, and
    # every name seen (bounded by the admission).
    process: dict[str, float] = field(default_factory=dict)
    process_names: set[str] = field(default_factory=set)

    def clock(self, machine: int) -> _MachineClock:
        found = self.machines.get(machine)
        if found is None:
            found = self.machines[machine] = _MachineClock()
        return found

    def state(self) -> tuple[StationStateName | None, str | None, float | None]:
        """The headline state: the most productive machine's, as the plant ranks them."""
        known = [clock for clock in self.machines.values() if clock.state is not None]
        if known:
            best = min(known, key=lambda clock: STATE_RANK[clock.state])  # type: ignore[index]
            return best.state, best.reason, best.began
        if self.headline is not None:
            return self.headline.state, self.headline.reason, self.headline.since_sim_time_s
        return None, None, None

    def time_in_states(self, now: float) -> dict[StationStateName, float]:
        totals: dict[StationStateName, float] = dict.fromkeys(STATION_STATES, 0.0)
        for clock in self.machines.values():
            for state, seconds in clock.time_in_states(now).items():
                totals[state] += seconds
        return totals


class TwinState:
    """Live shadow of one line."""

    def __init__(
        self,
        site: str,
        area: str,
        line: str,
        *,
        stations: Iterable[str] | None = None,
        admission: Admission | None = None,
    ) -> None:
        """``stations``: the line file's, when the twin has one (a birth message's
        description replaces them); ``admission``: what the twin lets in
        (``twin.state.admission``; its defaults when not given)."""
        self.site = site
        self.area = area
        self.line = line
        self._lock = threading.Lock()
        self.admission = admission or Admission()
        if stations is not None:
            self.admission.set_stations(stations)
        self._name = line
        self._status: LineStatusName = "unknown"
        self._paused: bool | None = None
        self._speed_factor: float | None = None
        self._speed_asked: float | None = None
        self._calendar: CalendarDescription | None = None
        self._telemetry_period_s: float | None = None
        self.streams = 0
        # False: this twin sees a share of the line's stream (an MQTT 5 shared
        # subscription), so the heartbeats' counts say nothing of what it has: no
        # watermark from them, nothing held back (its lag is not known).
        self.whole_stream = True
        self._reset_stream()
        self._scoring = LiveScoringView()
        self._defect_risk: dict[str, float] = {}
        self.updates = 0
        self._scoring_revision = 0
        self._json: tuple[tuple[int, int], bytes] | None = None

    def _reset_stream(self) -> None:
        """Forget what was measured: a new stream (a restarted plant) starts over."""
        self._stations: dict[str, _StationShadow] = {}
        self._by_position: dict[int, _StationShadow] = {}
        self._first_sim_time: float | None = None
        self._sim_time: float | None = None
        self._shipped = 0
        self._scrapped = 0
        self._released = 0
        self._reworked = 0
        self._newest_part = -1
        # A twin that joins a running line (a restart, --twin-only) does not see the
        # parts already inside. Part ids grow with release: one that leaves with an
        # id below the first release the twin saw was inside when it began, and is
        # counted in WIP from then on (``_inside_at_start``) once it shows itself.
        self._first_release: int | None = None
        self._inside_at_start = 0
        # Little's law on the twin's own counts: the integral of WIP over the
        # twin's clock, up to ``_wip_since``.
        self._wip_area = 0.0
        self._wip_since: float | None = None
        self._mark = Watermark()
        # Events and state snapshots beyond the watermark: (sim time, arrival, station,
        # message), applied in that order once the watermark passes them.
        self._held: list[tuple[float, int, _StationShadow, _Held]] = []
        self._arrivals = itertools.count()
        self.held_forced = 0
        # The newest status seq of the live source: a heartbeat (QoS 0) overtakes a
        # status waiting in the outbox, which must not turn the speed back then.
        self._status_seq = -1

    # -- input ----------------------------------------------------------------
    def _station(self, station_id: str) -> _StationShadow:
        shadow = self._stations.get(station_id)
        if shadow is None:
            shadow = self._stations[station_id] = _StationShadow(id=station_id)
        return shadow

    def _admit(
        self,
        station_id: str,
        message: Telemetry | StationState | PartStarted | PartFinished | StateChanged,
    ) -> _StationShadow | None:
        """The station's shadow if the message may change the twin (the lock held):
        of the live stream, at a plausible time, about a station the line has."""
        admission = self.admission
        if not admission.from_stream(message.source):
            return None
        if not admission.plausible(message.sim_time_s, message.ts_ms, self._pace()):
            return None
        if isinstance(message, StationState) and not admission.plausible(
            message.since_sim_time_s, message.ts_ms, self._pace()
        ):
            return None
        shadow = self._stations.get(station_id)
        if not admission.admits_station(station_id, len(self._stations), shadow is not None):
            return None
        admission.reference(message.ts_ms, message.sim_time_s)
        return shadow if shadow is not None else self._station(station_id)

    def _pace(self) -> float | None:
        """Simulated seconds per wall second as the line announced it (0 paused)."""
        if self._paused:
            return 0.0
        return self._speed_factor

    def _admit_machine(self, shadow: _StationShadow, machine: int) -> bool:
        described = shadow.machine_count if shadow.described else None
        return machine in shadow.machines or self.admission.admits_machine(machine, described)

    def rejected(self) -> dict[str, int]:
        """Messages left out, by reason (``twin.state.admission``): for /healthz."""
        with self._lock:
            return self.admission.counts()

    def _advance_clock(self, sim_time: float) -> None:
        first = self._first_sim_time
        if first is None or sim_time < first:
            self._first_sim_time = sim_time
            if first is None:
                self._open_window(sim_time)
        if self._sim_time is None or sim_time > self._sim_time:
            self._sim_time = sim_time

    def _open_window(self, start: float) -> None:
        """The twin's first message of the live stream opens its window at ``start``:
        a machine whose state came from a retained snapshot (the time it entered
        that state, maybe hours before the twin began) is counted from here, as
        are the parts, so that every ratio is over the time the twin watched."""
        for shadow in self._stations.values():
            for clock in shadow.machines.values():
                if clock.since is not None and clock.since < start:
                    clock.since = start
                if clock.active_since is not None and clock.active_since < start:
                    clock.active_since = start

    def _wip(self) -> int:
        return max(0, self._released + self._inside_at_start - self._shipped - self._scrapped)

    def _leaves(self, part_id: int, at: float) -> None:
        """A part leaves the line (shipped or scrapped) at ``at``: the WIP held so far
        is booked first. A part released before the twin began was in the line all
        along: its time since the start is booked too, and it counts as found."""
        self._integrate_wip(at)
        first = self._first_release
        if 0 in self._by_position and (first is None or part_id < first):
            start = self._first_sim_time if self._first_sim_time is not None else at
            self._wip_area += max(0.0, at - start)
            self._inside_at_start += 1

    def _integrate_wip(self, at: float) -> None:
        """Book the WIP held since the last change, before the counts change at ``at``.

        An event older than the last change (another topic's message arriving
        late) is booked at the last change: the clock never runs backwards.
        """
        since = self._wip_since if self._wip_since is not None else self._first_sim_time
        if since is None:
            since = at
        at = max(at, since)
        self._wip_area += self._wip() * (at - since)
        self._wip_since = at

    def apply_line_status(self, status: LineStatus) -> bool:
        """The line's retained status. A birth (``online``) from a new source starts
        a new stream: the restarted line's clock and accounting replace the old.
        A status of another source than the live one changes nothing."""
        with self._lock:
            admission = self.admission
            if status.status == "online":
                if admission.is_new_stream(status.source):
                    self._reset_stream()
                    self.streams += 1
                if status.sim_time_s is not None:
                    # Every announcement (birth, pause, speed) is a reference point
                    # of the stream's time: a wild first message is judged against it.
                    admission.reference(status.ts_ms, status.sim_time_s)
            elif not admission.from_stream(status.source):
                return False  # an earlier run's last will: stale
            self.updates += 1
            online = status.status == "online"
            if not (online and status.seq < self._status_seq):
                self._status_seq = max(self._status_seq, status.seq)
                self._status = status.status
                # The last will says nothing of a pause: an offline line is not paused.
                self._paused = status.paused if online else None
                self._speed_factor = status.speed_factor
                self._speed_asked = status.speed_asked
            if (
                online
                and self.whole_stream
                and status.sim_time_s is not None
                and (status.published_events is not None or status.published_telemetry is not None)
            ):
                self._mark.heartbeat(
                    status.sim_time_s, status.published_events, status.published_telemetry
                )
                self._settle()
            elif not online:
                self._mark.close()  # all it sent is in: nothing is held back any more
                self._settle()
            if status.description is None:
                return True
            description = status.description
            self._name = description.name
            self._calendar = description.calendar
            self._telemetry_period_s = description.telemetry_period_s
            # The description is the line: its stations, and no others.
            admission.set_stations(described.id for described in description.stations)
            for ghost in set(self._stations) - admission.known_stations:  # type: ignore[operator]
                del self._stations[ghost]
            self._by_position.clear()
            for described in description.stations:
                shadow = self._station(described.id)
                shadow.name = described.name
                shadow.position = described.position
                self._by_position[described.position] = shadow
                shadow.ideal_cycle_time_s = described.ideal_cycle_time_s
                shadow.input_buffer_capacity = described.input_buffer_capacity
                shadow.machine_count = described.machines
                shadow.described = True
                shadow.ideal_by_product = described.ideal_cycle_time_by_product_s
            return True

    def apply_telemetry(self, station_id: str, sample: Telemetry) -> bool:
        # The bulk of the stream: kept to a few lookups (a backfill applies millions).
        sim_time = sample.sim_time_s
        with self._lock:
            shadow = self._admit(station_id, sample)
            if shadow is None:
                return False
            self.updates += 1
            self._advance_clock(sim_time)
            self._mark.saw(station_id, "telemetry", sample.seq, sim_time)
            at = shadow.readings_at_s
            if at is not None and sim_time < at:
                return True  # a late sample must not overwrite newer readings
            values = shadow.readings
            fields = sample.__dict__
            for name in SENSOR_FIELDS:
                value = fields[name]
                if value is not None:
                    values[name] = value
            shadow.readings_at_s = sim_time
            return True

    def apply_station_state(self, station_id: str, snapshot: StationState) -> bool:
        """A retained state snapshot: adopt it only if it is news."""
        with self._lock:
            shadow = self._admit(station_id, snapshot)
            if shadow is None:
                return False
            self.updates += 1
            # A snapshot, retained: its time is when the state began, not when the twin
            # heard of it. It moves the newest time, never opens the window.
            if self._sim_time is None or snapshot.sim_time_s > self._sim_time:
                self._sim_time = snapshot.sim_time_s
            self._take(shadow, snapshot)
            return True

    def _apply_state_now(self, shadow: _StationShadow, snapshot: StationState) -> None:
        if shadow.headline is None or snapshot.since_sim_time_s >= (
            shadow.headline.since_sim_time_s
        ):
            shadow.headline = snapshot
        if len(shadow.machines) <= 1:
            # Joining mid-run: the headline seeds machine 0's clock until its
            # own events arrive (exact for single-machine stations).
            clock = shadow.clock(0)
            if clock.began is None or snapshot.since_sim_time_s > clock.began:
                # Counted from the twin's window (the live stream's first message).
                clock.enter(
                    snapshot.state,
                    snapshot.reason,
                    snapshot.since_sim_time_s,
                    counted_from=self._first_sim_time,
                )

    def _take(self, shadow: _StationShadow, message: _Held) -> None:
        """Apply an event or state snapshot now, or hold it back until the watermark
        passes it (the lock held)."""
        mark = self._mark
        if mark.heartbeats and (mark.value is None or message.sim_time_s > mark.value):
            held = self._held
            heapq.heappush(held, (message.sim_time_s, next(self._arrivals), shadow, message))
            if len(held) >= SETTLE_EVERY and len(held) % SETTLE_EVERY == 0:
                self._settle()
            while len(held) > MAX_HELD:
                # A stream that never completes: the oldest go in beyond the watermark,
                # counted (the figures are then no longer all as of one time).
                _, _, oldest_shadow, oldest = heapq.heappop(held)
                self.held_forced += 1
                self._apply_now(oldest_shadow, oldest)
            return
        self._apply_now(shadow, message)

    def _apply_now(self, shadow: _StationShadow, message: _Held) -> None:
        if isinstance(message, StationState):
            self._apply_state_now(shadow, message)
        else:
            self._apply_event_now(shadow, message)

    def _settle(self) -> None:
        """Move the watermark on and apply what it passed (the lock held)."""
        value = self._mark.update()
        held = self._held
        if value is None:
            return
        while held and held[0][0] <= value:
            _, _, shadow, message = heapq.heappop(held)
            self._apply_now(shadow, message)

    def _as_of(self) -> float | None:
        """The line time the figures are as of (the lock held, settled): the
        watermark; without heartbeats, the newest message's time."""
        mark = self._mark
        if not mark.heartbeats:
            return self._sim_time
        return mark.value if mark.value is not None else self._first_sim_time

    def apply_event(
        self, station_id: str, event: PartStarted | PartFinished | StateChanged
    ) -> bool:
        with self._lock:
            shadow = self._admit(station_id, event)
            if shadow is None:
                return False
            if not self._admit_machine(shadow, event.machine):
                return False
            if (
                isinstance(event, PartFinished)
                and event.process
                and not self.admission.admits_process_names(shadow.process_names, event.process)
            ):
                return False
            self.updates += 1
            self._advance_clock(event.sim_time_s)
            self._mark.saw(station_id, "event", event.seq, event.sim_time_s)
            self._take(shadow, event)
            return True

    def _apply_event_now(
        self, shadow: _StationShadow, event: PartStarted | PartFinished | StateChanged
    ) -> None:
        if isinstance(event, StateChanged):
            shadow.clock(event.machine).enter(event.to_state, event.reason, event.sim_time_s)
        elif isinstance(event, PartStarted):
            shadow.started += 1
            shadow.current_part = event.part_id
            if shadow.position == 0 and event.part_id > self._newest_part:
                # Part ids grow with release; a lower id is a part back for rework.
                self._newest_part = event.part_id
                self._integrate_wip(event.sim_time_s)
                self._released += 1
                if self._first_release is None:
                    self._first_release = event.part_id
            if event.input_buffer_level is not None:
                self._set_buffer(shadow, event.input_buffer_level, event.sim_time_s)
        else:
            if shadow.current_part == event.part_id:
                shadow.current_part = None
            if event.process:
                shadow.process = dict(event.process)
            ideal = shadow.ideal_cycle_time_s or 0.0
            if shadow.ideal_by_product and event.product in shadow.ideal_by_product:
                ideal = shadow.ideal_by_product[event.product]
            shadow.ideal_time_s += ideal
            if event.result == "good":
                shadow.good += 1
                if event.exits_line:
                    self._leaves(event.part_id, event.sim_time_s)
                    self._shipped += 1
                elif event.output_buffer_level is not None:
                    downstream = self._downstream_of(shadow)
                    if downstream is not None:
                        self._set_buffer(downstream, event.output_buffer_level, event.sim_time_s)
            elif event.result == "rework":
                shadow.rework += 1
                self._reworked += 1
            else:
                shadow.scrap += 1
                self._leaves(event.part_id, event.sim_time_s)
                self._scrapped += 1

    @staticmethod
    def _facts(shadow: _StationShadow, now: float) -> StationFacts:
        active_total, active_count = 0.0, 0
        for clock in shadow.machines.values():
            total, count = clock.active(now)
            active_total += total
            active_count += count
        return StationFacts(
            id=shadow.id,
            ideal_cycle_time_s=shadow.ideal_cycle_time_s or 0.0,
            time_in_state=shadow.time_in_states(now),
            good=shadow.good,
            scrap=shadow.scrap,
            rework=shadow.rework,
            machines=shadow.machine_count,
            ideal_time_s=shadow.ideal_time_s if shadow.ideal_by_product else None,
            active_time_s=active_total,
            active_periods=active_count,
        )

    @staticmethod
    def _set_buffer(shadow: _StationShadow, level: int, at: float) -> None:
        if at >= shadow.input_buffer_level_at_s:
            shadow.input_buffer_level = level
            shadow.input_buffer_level_at_s = at

    def _downstream_of(self, shadow: _StationShadow) -> _StationShadow | None:
        if shadow.position is None:
            return None
        return self._by_position.get(shadow.position + 1)

    def set_live_scoring(
        self,
        summary: LiveScoringView,
        defect_risk: Mapping[str, float] | None = None,
    ) -> None:
        """What live scoring found (``models.live``): the line's summary and, per
        station, the defect risk; a station left out shows null."""
        with self._lock:
            self._scoring = summary
            self._defect_risk = dict(defect_risk or {})
            self._scoring_revision += 1

    def live_scoring(self) -> LiveScoringView:
        with self._lock:
            return self._scoring

    # -- output ---------------------------------------------------------------
    @property
    def status(self) -> LineStatusName:
        return self._status

    def announcement(self) -> LineAnnouncement:
        with self._lock:
            return LineAnnouncement(
                status=self._status,
                paused=self._paused,
                speed_factor=self._speed_factor,
                telemetry_period_s=self._telemetry_period_s,
                speed_asked=self._speed_asked,
            )

    def counters(self) -> tuple[int, int, int]:
        """(shipped, scrapped, released) as of the watermark."""
        with self._lock:
            self._settle()
            return self._shipped, self._scrapped, self._released

    def as_of(self) -> float | None:
        """The line time the twin's figures are as of: its watermark (what a
        consumer that must see the line in order waits for)."""
        with self._lock:
            self._settle()
            return self._as_of()

    def lag(self) -> Lag:
        """How far the twin is behind its line (``twin.state.watermark``)."""
        with self._lock:
            self._settle()
            return self._lag()

    def _lag(self) -> Lag:
        mark = self._mark
        return Lag(
            as_of_s=self._as_of(),
            newest_s=mark.newest_s if mark.heartbeats else self._sim_time,
            lag_s=mark.lag_s(),
            lag_messages=mark.lag_messages(),
            held=len(self._held),
            held_forced=self.held_forced,
        )

    def _ordered(self) -> list[_StationShadow]:
        """The stations in flow order (the lock held)."""
        return sorted(
            self._stations.values(), key=lambda s: (s.position is None, s.position or 0, s.id)
        )

    def station_ids(self) -> list[str]:
        """The stations seen so far, in flow order: cheaper than ``view()`` when the ids
        are all that is needed (checking a request)."""
        with self._lock:
            return [shadow.id for shadow in self._ordered()]

    def view_json(self) -> bytes:
        """``view()`` as JSON, made once per change of the twin: many readers (the
        API under load) between two messages share one body."""
        key = (self.updates, self._scoring_revision)
        cached = self._json
        if cached is not None and cached[0] == key:
            return cached[1]
        # A message may land between reading the key and the view: the body is
        # then newer than its key, and the next reader makes it again.
        body = self.view().model_dump_json().encode()
        self._json = (key, body)
        return body

    def _littles_law(self, now: float, observed: float) -> tuple[float | None, float | None]:
        """(L, W) from the twin's counts (the lock held; docs/kpis.md).

        L is the time-average of released - shipped - scrapped over the twin's
        clock; the throughput of parts leaving is lambda = (shipped + scrapped) /
        observed, so W = L / lambda = the WIP integral / the parts that left.
        """
        if observed <= 0 or 0 not in self._by_position:
            # No first station known (no description of the line): no release is
            # seen, so neither WIP over time nor lead time can be told.
            return None, None
        since = self._wip_since if self._wip_since is not None else now
        area = self._wip_area + self._wip() * max(0.0, now - since)
        exits = self._shipped + self._scrapped
        return area / observed, (area / exits if exits else None)

    def _line_kpis(self, now: float, observed: float, facts: list[StationFacts]) -> LineKpis:
        """The line's KPIs from its stations' facts (the lock held)."""
        mean_wip, lead_time = self._littles_law(now, observed)
        lag = self._lag()
        kpis = line_kpis(
            observed_s=observed,
            # Every station: the constraint leaves out those without a PRU itself,
            # and the bottleneck needs none (the state changes alone).
            stations=facts,
            shipped=self._shipped,
            scrapped=self._scrapped,
            reworked=self._reworked,
            work_in_process=self._wip(),
            mean_wip=mean_wip,
            cycle_time_s=lead_time,
        )
        return kpis.model_copy(
            update={
                "as_of_s": lag.as_of_s,
                "lag_s": lag.lag_s,
                "lag_messages": lag.lag_messages,
            }
        )

    def _observed(self) -> tuple[float, float]:
        """(now, the observed span) of the figures (the lock held): settles first."""
        self._settle()
        as_of = self._as_of()
        now = as_of if as_of is not None else 0.0
        first = self._first_sim_time
        return now, (max(0.0, now - first) if first is not None else 0.0)

    def kpi_view(self) -> KpiView:
        """The line's and each station's KPIs, as ``view()`` has them, without the rest
        of the view: what a KPI snapshot records (a backfill takes a thousand)."""
        with self._lock:
            now, observed = self._observed()
            ordered = self._ordered()
            facts = [self._facts(shadow, now) for shadow in ordered]
            return KpiView(
                kpis=self._line_kpis(now, observed, facts),
                stations=[
                    StationKpiView(shadow.id, station_kpis(fact))
                    for shadow, fact in zip(ordered, facts, strict=True)
                ],
            )

    def view(self) -> LineView:
        with self._lock:
            now, observed = self._observed()
            as_of = self._as_of()
            ordered = self._ordered()
            facts = [self._facts(shadow, now) for shadow in ordered]
            line_clock = clock_view(self._calendar, as_of)
            stations = []
            for shadow, fact in zip(ordered, facts, strict=True):
                state, reason, since = shadow.state()
                planned_stop = None
                if state == "planned_downtime":
                    planned_stop = line_clock.planned_stop or reason
                stations.append(
                    StationView(
                        id=shadow.id,
                        name=shadow.name or shadow.id,
                        position=shadow.position,
                        state=state,
                        state_reason=reason,
                        state_since_s=since,
                        started=shadow.started,
                        good=shadow.good,
                        scrap=shadow.scrap,
                        rework=shadow.rework,
                        current_part=shadow.current_part,
                        process=dict(shadow.process),
                        input_buffer=(
                            None
                            if shadow.position == 0
                            else BufferView(
                                level=shadow.input_buffer_level,
                                capacity=shadow.input_buffer_capacity,
                            )
                        ),
                        telemetry=(
                            None
                            if shadow.readings_at_s is None
                            else TelemetryView(sim_time_s=shadow.readings_at_s, **shadow.readings)
                        ),
                        machines=[
                            MachineView(
                                index=index,
                                state=clock.state,
                                state_reason=clock.reason,
                                state_since_s=clock.began,
                            )
                            for index, clock in sorted(shadow.machines.items())
                        ],
                        planned_stop=planned_stop,
                        kpis=station_kpis(fact),
                        defect_risk=self._defect_risk.get(shadow.id),
                    )
                )
            kpis = self._line_kpis(now, observed, facts)
            lag = self._lag()
            return LineView(
                site=self.site,
                area=self.area,
                line=self.line,
                name=self._name,
                status=self._status,
                paused=self._paused,
                speed_factor=self._speed_factor,
                speed_asked=self._speed_asked,
                sim_time_s=as_of,
                newest_sim_time_s=lag.newest_s,
                lag_s=lag.lag_s,
                lag_messages=lag.lag_messages,
                held_messages=lag.held,
                clock=line_clock,
                calendar=self._calendar,
                stations=stations,
                kpis=kpis,
                models=self._scoring,
            )
