"""What a line's messages say about its stations, gathered as they arrive.

``LineLearner.observe(station, message)`` takes each message the ingest accepted
(the ``Ingest.on_accepted`` hook: the contract's decoded payloads, never the
simulator's memory) and keeps, per station:

- the processing times of the latest ``window`` parts, per product, each times
  the speed setpoint in force (``process.speed``; a part processed at speed 1.2
  took 1/1.2 of its time at speed 1, which is what a line file holds);
- the parts' results (good, scrap, rework), each with the speed, temperature
  and wear it saw, for the quality curve;
- the setups: how long each stay in ``setup`` (a changeover) lasted, the
  latest ``window`` of them; a breakdown that cuts a changeover (the machine goes
  ``down`` and back to ``setup`` once repaired) pauses it, and the two pieces are
  one changeover (the same for a maintenance);
- the jams (microstops): a machine is in ``running`` through a jam, so the time
  it ran between a part's start and finish beyond the part's processing time is
  jam time; the share of parts with some, over their processing time, gives the
  processing time between jams (a part with two counts once);
- the maintenances: how long each stay in ``maintenance`` lasted, and the tool
  wear the parts report (``process.wear``, where the stream carries it): the
  wear each part adds, and where it stood when maintenance came, which brackets
  the level at which the line maintains (``preventive_at``) between the wear
  before the last part and after it;
- the release, at every station (the learnt line reads its first): each part
  taken by a machine that was starved (it came while the station waited, so the
  time starved is the time it took to come), with the parts the station had
  taken before it; the time at least one machine was starved; and, for the
  line, when each part left it (shipped or scrapped) and how many had;
- the highest buffer levels the parts report (a lower bound of the capacity);
- the breakdowns: each entry into ``down``, the state it came from and how long
  it lasted, and the exposure on two clocks, operation (the parts' processing
  times) and calendar (time not down). A machine whose failure clock runs only
  while it processes never breaks down from another state: one breakdown that
  came from starved, blocked, setup or a planned stop makes the basis calendar
  time.

A part that reports no processing time (0: a line followed over OPC UA without
a processing-time node, docs/opcua.md) counts as a part, for the products and
the quality, but says nothing of processing times, jams or the operating clock:
those stay unknown (the learnt line says so), and breakdowns are on calendar time.

``estimates()`` turns them into ``StationEstimates`` (``twin.learning.estimators``).
Durations (processing times, changeovers, jams, repairs) are estimated from
their latest regime: a step change of 5% or more that stands out by five
standard errors (``regime_start``) starts the estimate afresh, so it follows a
change within tens of parts instead of averaging it over the window. The
share of defective parts is split the same way by a binomial likelihood ratio
(``share_regime_start``), which needs hundreds of parts on each side. Rates
of rare events (MTBF, the jam rate) are split by a Poisson likelihood ratio on
the exposure between events (``rate_regime_start``): a tripled rate shows after
a few dozen events, so a handful of breakdowns cannot show a change.
"""

from __future__ import annotations

import copy
import threading
from bisect import bisect_right
from collections import defaultdict, deque
from dataclasses import dataclass, field, replace
from typing import Any

from twin.contract import CREW_ARRIVED_REASON, PartFinished, PartStarted, StateChanged
from twin.learning.estimators import (
    CONFIDENCE,
    DurationFit,
    Estimate,
    duration_mean,
    exponential_mean,
    exponential_sample_mean,
    fit_duration,
    mean_estimate,
    proportion,
    rate_regime_start,
    regime_start,
    share_regime_start,
)

# The latest parts a station's processing times and results are learnt from.
WINDOW = 5000
# A family fit or a failure basis needs at least this many observations.
MIN_SAMPLES = 5
# A part that ran this much longer than its processing time was jammed: the
# messages' clocks agree far closer than this (they are the plant's own).
MIN_JAM_S = 0.05


@dataclass
class _Stay:
    """A stay in setup or maintenance, which a breakdown pauses: the machine goes
    ``down`` and, once repaired, back to finish it (a time-based failure strikes
    whatever the machine is doing). The pieces on either side of the repair are one
    changeover, not two."""

    since_s: float | None = None
    done_s: float = 0.0  # the time in it before a breakdown paused it

    @property
    def paused(self) -> bool:
        return self.since_s is None and self.done_s > 0.0

    def change(self, inside: bool, to_state: str, now: float) -> float | None:
        """Follow one change of state (``inside``: into this stay's state); the
        stay's whole length when the change ends it, else None."""
        if inside:
            if self.since_s is None:
                self.since_s = now
            return None
        if self.since_s is None:
            if to_state != "down":
                self.done_s = 0.0  # paused and not taken up again: no whole stay seen
            return None
        length = self.done_s + now - self.since_s
        self.since_s = None
        self.done_s = length if to_state == "down" else 0.0
        return None if to_state == "down" else length

    def drop(self) -> None:
        self.since_s = None
        self.done_s = 0.0


@dataclass
class _Machine:
    """When one machine was last heard of, and its open down period."""

    last_seen_s: float | None = None
    down_since_s: float | None = None
    repair_since_s: float | None = None  # the crew reached it (CREW_ARRIVED_REASON)
    setup: _Stay = field(default_factory=_Stay)
    maintenance: _Stay = field(default_factory=_Stay)
    starved: bool = False
    # The wear the latest part saw (process.wear) and the speed it ran at.
    wear: float | None = None
    wear_speed: float = 1.0
    # The part in process: when it started, and its time running so far.
    part_started_s: float | None = None
    running_since_s: float | None = None
    running_in_part_s: float = 0.0


@dataclass
class _Station:
    times: dict[str, deque[float]] = field(default_factory=dict)
    results: deque[str] = field(default_factory=lambda: deque(maxlen=WINDOW))
    # Each part: defective (scrap or rework), and the speed, temperature and wear
    # it saw (None where the part did not report it).
    quality: deque[tuple[bool, float, float | None, float | None]] = field(
        default_factory=lambda: deque(maxlen=WINDOW)
    )
    machines: dict[int, _Machine] = field(default_factory=lambda: defaultdict(_Machine))
    breakdowns: int = 0
    # The exposure on both clocks (operation, calendar) at each breakdown.
    breakdown_marks: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=WINDOW)
    )
    breakdowns_not_running: int = 0  # entered down from a state other than running
    # Each stay down: the repair itself (from the crew's arrival, where the line
    # reports it, else the whole stay), the whole stay, and the wait for the crew.
    repairs: list[float] = field(default_factory=list)
    downs: list[float] = field(default_factory=list)
    crew_waits: list[float] = field(default_factory=list)
    setups: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    maintenances: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    # The wear one part added, with the speed it ran at; and the latest part's
    # (wear, speed) when maintenance began.
    wear_steps: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=WINDOW))
    wear_at_maintenance: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=WINDOW)
    )
    jams: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    jam_exposure_s: float = 0.0  # processing time of the parts seen from start to finish
    jams_seen: int = 0
    jam_marks: deque[float] = field(
        default_factory=lambda: deque(maxlen=WINDOW)
    )  # exposure at each
    # Products as they came: how many of each, and how often the product changed.
    products: dict[str, int] = field(default_factory=dict)
    product_changes: int = 0
    last_product: str | None = None
    # The lengths of the runs of one product seen whole (the first, which may have
    # begun before the stream, left out), and of the run going on.
    runs: deque[int] = field(default_factory=lambda: deque(maxlen=WINDOW))
    run: int = 0
    runs_begun: int = 0
    # The release: parts taken (all machines), each one taken by a starved machine
    # as (time, parts taken before it), and the time at least one machine starved.
    taken: int = 0
    taken_when_starved: deque[tuple[float, int]] = field(
        default_factory=lambda: deque(maxlen=WINDOW)
    )
    starved_machines: int = 0
    starved_since_s: float | None = None
    starved_s: float = 0.0
    # The highest input buffer level seen when a part was taken (after it was),
    # and the highest level of the next buffer after a part was handed on.
    highest_input: int | None = None
    highest_output: int | None = None
    operation_s: float = 0.0  # processing time, all machines
    calendar_s: float = 0.0  # time not down, all machines
    untimed_parts: int = 0  # parts that reported no processing time


@dataclass(frozen=True)
class Failures:
    """Time between failures on its clock (``basis``: operation or time, as a line
    file says it), the breakdowns that came from a state other than running, the
    time to repair (``mttr_s``: the repair itself, from the crew's arrival, where
    the line reports it, else the whole stay down; its interval takes repairs as
    exponential, as a line file has them), the whole stay down (``down_s``, the
    crew's wait included) and, where the line reports its crew's arrivals, the
    mean wait for the crew per breakdown (``crew_wait_s``: Student's t)."""

    basis: str
    mtbf_s: Estimate
    mttr_s: Estimate | None
    not_running: int
    down_s: Estimate | None = None
    crew_wait_s: Estimate | None = None


@dataclass(frozen=True)
class Maintenance:
    """Maintenance: how long one takes (``time``), the tool wear a part adds at
    speed 1 (``per_part``, for the wear exponent given) and the wear level at which
    the line maintains (``preventive_at``: between the wear before the last part
    and after it, over the maintenances that came near the highest level seen)."""

    time: DurationFit | None
    per_part: Estimate | None
    preventive_at: Estimate | None
    # The mean of the maintenances seen, however few (``time`` needs MIN_SAMPLES).
    time_seen: Estimate | None = None


@dataclass(frozen=True)
class StationEstimates:
    """One station's learnt parameters; None where the stream has shown too little."""

    processing_time: dict[str, DurationFit]
    scrap: Estimate | None
    rework: Estimate | None
    # Scrap and rework together: the parts found defective, what a line file's
    # defect_probability draws.
    defects: Estimate | None
    failures: Failures | None
    # The changeover time (None: fewer than MIN_SAMPLES changeovers seen).
    setup: DurationFit | None = None
    microstops: Microstops | None = None
    maintenance: Maintenance | None = None


@dataclass(frozen=True)
class Microstops:
    """Jams: the processing time between them (``mean_between_s``, as a line file
    counts it) and how long one lasts."""

    mean_between_s: Estimate
    duration: DurationFit


@dataclass(frozen=True)
class ReleaseSeen:
    """What a station's takes say about how parts reach it (``LineLearner.release``)."""

    # Parts taken by a machine that was starved, and the time at least one was.
    arrivals: int
    starved_s: float
    # Of those, taken at the moment a part left the line (a CONWIP loop releases a
    # part as one leaves), and the parts in the line just after each such take.
    at_a_leave: int
    wip_at_leave: list[int]


class LineLearner:
    """Gathers each station's observations from accepted messages (module doc)."""

    def __init__(self, window: int = WINDOW) -> None:
        if window < MIN_SAMPLES:
            raise ValueError(f"window must be >= {MIN_SAMPLES} parts (got {window})")
        self.window = window
        self._stations: dict[str, _Station] = defaultdict(_Station)
        # When parts left the line (shipped or scrapped), and how many had by then.
        self._leaves: deque[tuple[float, int]] = deque(maxlen=window)
        self._left = 0
        # observe() runs on the ingest's thread, estimates() on the API's.
        self._lock = threading.Lock()
        # The line reports its repair crew's arrivals (one seen at any station).
        self._crew_reported = False

    def observe(self, station: str | None, message: Any) -> None:
        """Take one accepted message (``Ingest.on_accepted``); others are ignored."""
        if station is None:
            return
        if isinstance(message, PartFinished):
            with self._lock:
                self._finished(self._stations[station], message)
        elif isinstance(message, PartStarted):
            with self._lock:
                state = self._stations[station]
                machine = state.machines[message.machine]
                if machine.starved:
                    state.taken_when_starved.append((message.sim_time_s, state.taken))
                    self._starved(state, machine, False, message.sim_time_s)
                state.taken += 1
                level = message.input_buffer_level
                if level is not None:
                    # Parts left after the take: a part waiting upstream may have
                    # taken the freed place already, so not one more.
                    state.highest_input = max(state.highest_input or 0, level)
                machine.part_started_s = message.sim_time_s
                machine.running_in_part_s = 0.0
                if machine.running_since_s is not None:
                    machine.running_since_s = message.sim_time_s
        elif isinstance(message, StateChanged):
            with self._lock:
                self._state(self._stations[station], message)

    def _clock(self, state: _Station, machine: _Machine, now: float) -> None:
        """Advance ``machine``'s calendar clock to ``now`` (not while down)."""
        if machine.last_seen_s is not None and machine.down_since_s is None:
            state.calendar_s += max(0.0, now - machine.last_seen_s)
        machine.last_seen_s = now

    @staticmethod
    def _starved(state: _Station, machine: _Machine, starved: bool, now: float) -> None:
        """``machine`` starts or stops waiting for parts: keep the time at least one
        machine of the station waited."""
        if starved == machine.starved:
            return
        machine.starved = starved
        if starved:
            if state.starved_machines == 0:
                state.starved_since_s = now
            state.starved_machines += 1
            return
        state.starved_machines -= 1
        if state.starved_machines == 0 and state.starved_since_s is not None:
            state.starved_s += max(0.0, now - state.starved_since_s)
            state.starved_since_s = None

    def _finished(self, state: _Station, message: PartFinished) -> None:
        if message.exits_line or message.result == "scrap":
            self._left += 1
            self._leaves.append((message.sim_time_s, self._left))
        if message.output_buffer_level is not None:
            state.highest_output = max(state.highest_output or 0, message.output_buffer_level)
        speed = (message.process or {}).get("speed", 1.0)
        product = message.product or "default"
        state.products[product] = state.products.get(product, 0) + 1
        if state.last_product is not None and product != state.last_product:
            state.product_changes += 1
            if state.runs_begun > 1:
                state.runs.append(state.run)
            state.run = 0
        if state.run == 0:
            state.runs_begun += 1
        state.run += 1
        state.last_product = product
        timed = message.processing_time_s > 0.0
        if timed:
            times = state.times.setdefault(product, deque(maxlen=self.window))
            times.append(message.processing_time_s * speed)
        else:
            state.untimed_parts += 1
        state.results.append(message.result)
        machine = state.machines[message.machine]
        process = message.process or {}
        wear = process.get("wear")
        state.quality.append((message.result != "good", speed, process.get("temperature_c"), wear))
        if wear is not None:
            if machine.wear is not None and wear > machine.wear:
                state.wear_steps.append((wear - machine.wear, machine.wear_speed))
            machine.wear, machine.wear_speed = wear, speed
        self._clock(state, machine, message.sim_time_s)
        state.operation_s += message.processing_time_s
        if machine.part_started_s is not None:
            if timed:  # without a processing time, no jam can be told
                # Time running beyond the processing time the part reports: jams.
                running = machine.running_in_part_s
                if machine.running_since_s is not None:
                    running += message.sim_time_s - machine.running_since_s
                    machine.running_since_s = message.sim_time_s
                jam = running - message.processing_time_s
                state.jam_exposure_s += message.processing_time_s
                if jam > MIN_JAM_S:
                    state.jams.append(jam)
                    state.jams_seen += 1
                    state.jam_marks.append(state.jam_exposure_s)
            machine.part_started_s = None
            machine.running_in_part_s = 0.0

    def _state(self, state: _Station, message: StateChanged) -> None:
        machine = state.machines[message.machine]
        now = message.sim_time_s
        self._clock(state, machine, now)
        self._starved(state, machine, message.to_state == "starved", now)
        if machine.running_since_s is not None and machine.part_started_s is not None:
            machine.running_in_part_s += now - machine.running_since_s
        machine.running_since_s = now if message.to_state == "running" else None
        self._down(state, machine, message, now)
        to_maintenance = message.to_state == "maintenance"
        if to_maintenance and machine.maintenance.since_s is None:
            if machine.wear is not None and not machine.maintenance.paused:
                state.wear_at_maintenance.append((machine.wear, machine.wear_speed))
            machine.wear = None  # maintenance resets the tool: no step across it
        maintained = machine.maintenance.change(to_maintenance, message.to_state, now)
        if maintained is not None:
            state.maintenances.append(maintained)
        changed_over = machine.setup.change(message.to_state == "setup", message.to_state, now)
        if changed_over is not None:
            state.setups.append(changed_over)

    def _down(self, state: _Station, machine: _Machine, message: StateChanged, now: float) -> None:
        """Breakdowns and repairs: an entry into ``down`` from another state is a
        breakdown; ``down`` to ``down`` with CREW_ARRIVED_REASON, the crew reaching
        it; leaving ``down`` ends the stay (one joined half-way is not measured)."""
        if message.to_state == "down":
            if message.from_state == "down":
                arrived = message.reason == CREW_ARRIVED_REASON
                if arrived and machine.down_since_s is not None and machine.repair_since_s is None:
                    machine.repair_since_s = now
                    self._crew_reported = True
                return
            if machine.down_since_s is None:
                state.breakdowns += 1
                state.breakdown_marks.append((state.operation_s, state.calendar_s))
                if message.from_state is not None and message.from_state != "running":
                    state.breakdowns_not_running += 1
                machine.down_since_s = now
            return
        if machine.down_since_s is not None:
            came = (
                machine.repair_since_s
                if machine.repair_since_s is not None
                else machine.down_since_s
            )
            state.repairs.append(now - came)
            state.downs.append(now - machine.down_since_s)
            state.crew_waits.append(came - machine.down_since_s)
            machine.down_since_s = machine.repair_since_s = None

    def restart(self) -> None:
        """The line's clock starts again (a new run of it, from history): what was
        open (a machine down, in setup, a part in process) is dropped, not
        measured across the gap; what was learnt stays."""
        with self._lock:
            for state in self._stations.values():
                for machine in state.machines.values():
                    machine.last_seen_s = None
                    machine.down_since_s = None
                    machine.repair_since_s = None
                    machine.setup.drop()
                    machine.maintenance.drop()
                    machine.wear = None
                    machine.part_started_s = None
                    machine.running_since_s = None
                    machine.running_in_part_s = 0.0
                    machine.starved = False
                state.last_product = None
                state.run = state.runs_begun = 0  # a run across the gap is not seen whole
                state.starved_machines = 0
                state.starved_since_s = None

    @property
    def stations(self) -> list[str]:
        with self._lock:
            return list(self._stations)

    def products(self, station: str) -> tuple[dict[str, int], int]:
        """The parts of each product ``station`` finished, and how many times the
        product changed from one part to the next."""
        with self._lock:
            state = self._stations.get(station)
            return ({}, 0) if state is None else (dict(state.products), state.product_changes)

    def quality(self, station: str) -> list[tuple[bool, float, float | None, float | None]]:
        """The latest ``window`` parts of ``station``: (defective, speed, temperature,
        wear), the last two None where the part did not report them."""
        with self._lock:
            state = self._stations.get(station)
            return [] if state is None else list(state.quality)

    def runs(self, station: str) -> list[int]:
        """The lengths of the runs of one product ``station`` finished, seen whole:
        from one product change to the next."""
        with self._lock:
            state = self._stations.get(station)
            return [] if state is None else list(state.runs)

    def release(self, station: str) -> ReleaseSeen | None:
        """How parts reached ``station`` (the first, for the line's release): None
        before any message from it."""
        with self._lock:
            state = self._stations.get(station)
            if state is None:
                return None
            takes = list(state.taken_when_starved)
            leaves = list(self._leaves)
            starved_s = state.starved_s
        times = [time for time, _ in leaves]
        at_leave: list[int] = []
        for time, before in takes:
            index = bisect_right(times, time + LEAVE_TOLERANCE_S)
            if index and times[index - 1] >= time - LEAVE_TOLERANCE_S:
                left = leaves[index - 1][1]
                at_leave.append(before + 1 - left)
        return ReleaseSeen(len(takes), starved_s, len(at_leave), at_leave)

    def buffer_levels(self, station: str) -> tuple[int | None, int | None]:
        """The highest level seen of ``station``'s input buffer (just after a part was
        taken) and of the buffer after it (just after a part was handed on); None:
        not reported."""
        with self._lock:
            state = self._stations.get(station)
            return (None, None) if state is None else (state.highest_input, state.highest_output)

    def processing_times(self, station: str) -> dict[str, list[float]]:
        """The processing times of ``station`` per product, at speed 1 (s), of the
        latest regime: since the last change-point (``regime_start``), within the
        latest ``window`` parts."""
        with self._lock:
            state = self._stations.get(station)
            kept = {} if state is None else {p: list(t) for p, t in state.times.items()}
        return {product: _latest(times) for product, times in kept.items()}

    def untimed_parts(self, station: str) -> int:
        """Parts of ``station`` that reported no processing time."""
        with self._lock:
            state = self._stations.get(station)
            return 0 if state is None else state.untimed_parts

    def estimates(
        self,
        station: str,
        confidence: float = CONFIDENCE,
        *,
        processing: bool = True,
        wear_exponent: float = 1.0,
    ) -> StationEstimates:
        """What the stream says of ``station`` so far, intervals at ``confidence``;
        ``processing`` False leaves the per-product processing-time fits out (the
        learnt line pools products itself); a part adds wear times its speed to the
        ``wear_exponent`` (the line file's, else 1: the stream cannot tell it at one
        speed). Raises KeyError for a station no message has named. The fits run on
        a copy, so the ingest never waits."""
        with self._lock:
            if station not in self._stations:
                raise KeyError(f"no message from station {station!r} yet")
            state = copy.deepcopy(self._stations[station])
        fits = {
            product: fit_duration(_latest(list(times)), confidence)
            for product, times in state.times.items()
            if processing and len(times) >= MIN_SAMPLES
        }
        results = list(state.results)
        # The latest regime of the defects (share_regime_start): a share that
        # changed is estimated from after the change.
        results = results[share_regime_start([r != "good" for r in results]) :]
        scrap = rework = defects = None
        if results:
            scrapped, reworked = results.count("scrap"), results.count("rework")
            scrap = proportion(scrapped, len(results), confidence)
            rework = proportion(reworked, len(results), confidence)
            defects = proportion(scrapped + reworked, len(results), confidence)
        setups = _latest(list(state.setups))
        setup = fit_duration(setups, confidence) if len(setups) >= MIN_SAMPLES else None
        jams = _latest(list(state.jams))
        microstops = None
        if len(jams) >= MIN_SAMPLES:
            microstops = Microstops(
                _latest_rate(
                    list(state.jam_marks), state.jams_seen, state.jam_exposure_s, confidence
                ),
                fit_duration(jams, confidence),
            )
        return StationEstimates(
            fits,
            scrap,
            rework,
            defects,
            _failures(state, confidence, crew_reported=self._crew_reported),
            setup,
            microstops,
            _maintenance(state, confidence, wear_exponent),
        )


def _latest(values: list[float]) -> list[float]:
    """The durations since the latest change-point (``regime_start``)."""
    return values[regime_start(values) :]


# A part taken this close to a part leaving the line was released by that leave
# (the messages carry the plant's own clock: the two are the same instant).
LEAVE_TOLERANCE_S = 1e-6
# A maintenance counts towards preventive_at when the wear then was at least this
# share of the highest seen: one asked for early (a command) says nothing of it.
PREVENTIVE_SHARE = 0.5
# The resolution of the wear parts report (the simulator rounds it to 6 decimals).
WEAR_RESOLUTION = 1e-6


def _maintenance(state: _Station, confidence: float, exponent: float) -> Maintenance | None:
    """Maintenance time, wear per part and the level maintained at (``Maintenance``);
    None before the first maintenance or wear step."""
    if not state.maintenances and not state.wear_steps:
        return None
    durations = _latest(list(state.maintenances))
    time = fit_duration(durations, confidence) if len(durations) >= MIN_SAMPLES else None
    time_seen = mean_estimate(durations, confidence) if durations else None
    steps = [step / speed**exponent for step, speed in state.wear_steps]
    per_part = None
    if len(steps) >= MIN_SAMPLES:
        mean = mean_estimate(steps, confidence)
        # The stream's wear is rounded (the simulator: to WEAR_RESOLUTION); a step
        # of two rounded values is off by up to that much, however many are averaged.
        per_part = replace(
            mean, low=max(0.0, mean.low - WEAR_RESOLUTION), high=mean.high + WEAR_RESOLUTION
        )
    preventive_at = None
    if per_part is not None and state.wear_at_maintenance:
        # The wear before and after the last part before each maintenance.
        brackets = [
            (wear, wear + per_part.value * speed**exponent)
            for wear, speed in state.wear_at_maintenance
        ]
        highest = max(after for _, after in brackets)
        kept = [b for b in brackets if b[1] >= PREVENTIVE_SHARE * highest]
        # The level lies above every "before" and at or below every "after".
        low, high = max(b[0] for b in kept), min(b[1] for b in kept)
        if low > high:  # wear that varies part to part: the middle of the spread
            low, high = min(b[0] for b in kept), max(b[1] for b in kept)
        preventive_at = Estimate((low + high) / 2, low, high, len(kept))
    return Maintenance(time, per_part, preventive_at, time_seen)


def _latest_rate(marks: list[float], events: int, exposure: float, confidence: float) -> Estimate:
    """The mean exposure between events of the latest regime (``rate_regime_start``):
    ``marks`` the exposure at each of the latest events (all ``events`` of them,
    unless the window dropped the oldest), ``exposure`` the total now; the time
    since the last event counts in the latest regime."""
    whole = len(marks) == events
    origin = 0.0 if whole else marks[0]
    seen = marks if whole else marks[1:]
    gaps = [later - earlier for earlier, later in zip([origin, *seen], seen, strict=False)]
    split = rate_regime_start(gaps)
    if split == 0 and whole:
        return exponential_mean(exposure, events, confidence)
    start = origin if split == 0 else seen[split - 1]
    return exponential_mean(exposure - start, len(seen) - split, confidence)


def _failures(state: _Station, confidence: float, *, crew_reported: bool) -> Failures | None:
    """MTBF on the clock the breakdowns show (module doc) and MTTR; None before the
    first breakdown."""
    if state.breakdowns == 0:
        return None
    # Without the parts' processing times there is no operating clock to count on.
    basis = "time" if state.breakdowns_not_running or state.operation_s <= 0.0 else "operation"
    clock = 0 if basis == "operation" else 1
    exposure = state.operation_s if basis == "operation" else state.calendar_s
    repairs = exponential_sample_mean(_latest(state.repairs), confidence) if state.repairs else None
    downs = exponential_sample_mean(_latest(state.downs), confidence) if state.downs else None
    waits = None
    if crew_reported and len(state.crew_waits) >= 2:
        waits = duration_mean(state.crew_waits, confidence)
    marks = [mark[clock] for mark in state.breakdown_marks]
    mtbf = _latest_rate(marks, state.breakdowns, exposure, confidence)
    return Failures(basis, mtbf, repairs, state.breakdowns_not_running, downs, waits)


__all__ = [
    "MIN_SAMPLES",
    "WINDOW",
    "Failures",
    "LineLearner",
    "Maintenance",
    "Microstops",
    "ReleaseSeen",
    "StationEstimates",
]
