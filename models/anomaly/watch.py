"""Sensor alarms from the stream: each reading against where it should be.

``SensorWatch`` follows the stream message by message, as the twin takes it. For
every sensor with a learned expectation (``models.anomaly.expected``) it
standardises each reading's residual by the sensor's clean spread and runs:

- a two-sided **CUSUM** on the residual (each sample's step clipped, so that one
  wild sample cannot raise it alone): an *offset*, or a *stuck* sensor when the
  readings have not moved meanwhile while the expectation has;
- a **spike** count: ``spikes`` samples at least ``spike_sd`` from the expectation
  among the last ``spike_window``;
- a **stuck** run: equal readings in a row that clean history makes less likely
  than ``stuck_chance`` (the share of repeats is learned per station state);
- a **dropout** check: a sensor silent for ``dropout_periods`` of its sampling
  period while the rest of the line kept sending (a silent line is an outage,
  which the ingest reports, not a sensor fault);
- **wear**: the tool wear the stream reports (``part_finished`` process values)
  at or above ``wear_level``, until maintenance renews the tool.

Each alarm names the station, the sensor and the kind, when it started (the CUSUM
left zero, the first spike, the first repeated reading, the last sample), when it
was raised and cleared, and its evidence: the reading expected against the one
seen and how many standard deviations apart they were.

After a gap in the whole stream (an outage, a restart of the twin) each
temperature-like response is re-anchored on its next reading and the sequential
statistics start over: what the line did meanwhile is not known.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from pydantic import BaseModel

from models.anomaly.expected import (
    SETTLE_S,
    WEAR,
    FloatArray,
    LineExpectation,
    SensorExpectation,
    StationInputs,
)
from models.anomaly.trace import SensorTrace, TracePoint
from twin.contract import (
    SENSOR_FIELDS,
    SENSOR_RANGES,
    SENSOR_UNITS,
    PartFinished,
    StateChanged,
    StationState,
    Telemetry,
)

# Readings after a fresh anchor that refine it before any is judged.
ANCHOR_READINGS = 5
# Alarms kept in ``SensorWatch.history`` (the oldest go first).
MAX_HISTORY = 10_000
SensorAlarmKind = Literal["offset", "spike", "stuck", "dropout", "wear", "out_of_range"]


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """The detector's settings: chosen on tuning seeds by ``bench/alarms.py``."""

    cusum_k: float = 1.5  # slack, in standard deviations
    cusum_h: float = 10.0  # decision level, in standard deviations
    clip_sd: float = 5.0  # one sample moves the CUSUM by at most this
    spike_sd: float = 8.0
    spikes: int = 2
    # One reading this far off is a spike on its own (inf: never).
    single_spike_sd: float = 25.0
    spike_window: int = 30
    stuck_chance: float = 1e-10
    stuck_min: int = 6
    dropout_periods: float = 3.0
    dropout_min_s: float = 20.0
    wear_level: float | None = 0.5
    clear_sd: float = 3.0
    clear_samples: int = 6
    # The residual's slow level (a sensor's zero drift, a slight misfit): followed
    # with this time constant while no alarm is up, and taken off before the tests.
    baseline_s: float = 3 * 3600.0

    def __post_init__(self) -> None:
        for name in (
            "cusum_h",
            "clip_sd",
            "spike_sd",
            "single_spike_sd",
            "dropout_periods",
            "clear_sd",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 (got {getattr(self, name)!r})")
        if not 0 < self.stuck_chance < 1:
            raise ValueError(f"stuck_chance must be in (0, 1) (got {self.stuck_chance!r})")
        for name in ("spikes", "spike_window", "stuck_min", "clear_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 (got {getattr(self, name)!r})")


@dataclass(frozen=True, slots=True)
class SensorAlarm:
    """A sensor's alarm: what, since when, and the evidence when it was raised."""

    station: str
    sensor: str
    kind: SensorAlarmKind
    started_s: float
    raised_s: float
    expected: float | None
    seen: float | None
    sd_apart: float | None
    cleared_s: float | None = None
    peak_sd: float | None = None
    # Wear: the level at which the line's own maintenance renews the tool (learnt),
    # and whether the wear is still within it (the plan will take care of it).
    renewed_at: float | None = None
    on_plan: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return self.station, self.sensor

    def describe(self) -> str:
        what = f"{self.sensor} at {self.station}: {self.kind.replace('_', ' ')}"
        if self.kind == "wear" and self.seen is not None:
            if self.renewed_at is None:
                return f"{what}, tool wear {self.seen:.2f}"
            plan = "within" if self.on_plan else "past"
            return (
                f"{what}, tool wear {self.seen:.2f}, {plan} the {self.renewed_at:.2f} at which "
                "the line's maintenance renews the tool"
            )
        if self.kind == "dropout":
            return f"{what}, no reading since {self.started_s:.0f} s"
        if self.expected is None or self.seen is None or self.sd_apart is None:
            return what
        unit = SENSOR_UNITS.get(self.sensor, "")
        return (
            f"{what}, read {self.seen:.4g} {unit} where {self.expected:.4g} {unit} was "
            f"expected ({self.sd_apart:+.1f} sd)"
        )


@dataclass
class _Track:
    """One sensor's running state."""

    model: SensorExpectation
    expected: float | None = None  # None until anchored on a reading
    at_s: float = 0.0
    anchored: float | None = None  # the reading the response was last anchored on
    anchored_s: float = -math.inf  # and when
    target: float | None = None  # the weights times the inputs in force
    previous_target: float | None = None
    inputs: FloatArray | None = None  # the station's features in force
    # The features' first-order response, and the anchor's share of the reading
    # that decays with it: expected = weights . filtered + deviation.
    filtered: FloatArray | None = None
    deviation: float = 0.0
    # How uncertain the expectation is (a variance): at the inputs in force, and,
    # for a response that lags them, relaxing from what it was at the last ones.
    uncertainty: float = 0.0
    settled_uncertainty: float = 0.0
    judged: bool = True  # False while the station is in a state clean history lacks
    previous_z: float | None = None  # the last reading's, when it was far off
    settling: int = 0  # readings left that refine a fresh anchor, unjudged
    high: float = 0.0
    low: float = 0.0
    rise_s: float | None = None  # when the CUSUM last left zero
    # Each of the latest readings: (time, expected, reading, z) if it was far off.
    spikes: deque[tuple[float, float, float, float] | None] = field(default_factory=deque)
    last_value: float | None = None
    run: int = 0
    run_s: float = 0.0
    last_seen_s: float | None = None
    quiet: int = 0
    baseline: float = 0.0  # the residual's slow level
    judged_s: float | None = None  # the last reading's time
    alarm: SensorAlarm | None = None
    dropout: SensorAlarm | None = None
    trace: SensorTrace | None = None  # kept for charts, when the watch keeps them

    def restart(self) -> None:
        self.high = self.low = 0.0
        self.rise_s = None
        self.spikes.clear()
        self.previous_z = None
        self.quiet = 0

    def advance(self, now: float) -> None:
        """The response moved on to ``now`` under the inputs in force."""
        if self.filtered is None or self.inputs is None:
            return
        tau = self.model.tau_s
        if tau == 0.0:
            self.filtered = self.inputs
        elif now > self.at_s:
            decay = math.exp(-(now - self.at_s) / tau)
            self.filtered = self.inputs + (self.filtered - self.inputs) * decay
            self.deviation *= decay
            settled = self.settled_uncertainty
            self.uncertainty = settled + (self.uncertainty - settled) * decay
        self.at_s = max(self.at_s, now)
        self.expected = self.model.target(self.filtered) + self.deviation

    def anchor(self, value: float, now: float) -> None:
        """Start the response at ``now`` from a reading: its inputs taken as settled,
        and the rest of the reading a deviation that decays (none for a reading
        that follows its inputs at once)."""
        assert self.inputs is not None  # noqa: S101 - anchored only with inputs known
        self.filtered = self.inputs.copy()
        self.at_s = self.anchored_s = now
        self.anchored = value
        target = self.model.target(self.inputs)
        self.deviation = value - target if self.model.tau_s > 0 else 0.0
        self.expected = target + self.deviation

    def retarget(self, inputs: FloatArray) -> None:
        """New inputs in force: the expectation's uncertainty at them (x' C x),
        which a lagging response reaches as it settles."""
        covariance = self.model.covariance
        settled = float(inputs @ covariance @ inputs) if covariance.size else 0.0
        settled = max(settled, 0.0)
        self.settled_uncertainty = settled
        if self.model.tau_s == 0.0 or self.filtered is None:
            self.uncertainty = settled
        else:
            self.uncertainty = max(self.uncertainty, settled)
        self.inputs = inputs
        self.target = self.model.target(inputs)

    def spread(self, headline: str | None) -> float:
        """The reading's spread about the expectation: the sensor's own, and how
        uncertain the expectation is where the inputs are now (a state or a
        setpoint clean history saw seldom)."""
        sigma = self.model.spread(headline)
        return math.sqrt(sigma * sigma + self.uncertainty)


class SensorWatch:
    """Alarms on every sensor of a line with a learned expectation."""

    def __init__(
        self,
        expectation: LineExpectation,
        settings: WatchSettings | None = None,
        *,
        trace: bool = False,
    ) -> None:
        """``trace``: keep each sensor's recent readings and expectations
        (``models.anomaly.trace``) for the trend around an alarm."""
        self.expectation = expectation
        self.settings = settings or WatchSettings()
        self._inputs: dict[str, StationInputs] = {}
        self._tracks: dict[tuple[str, str], _Track] = {
            key: _Track(model, trace=SensorTrace() if trace else None)
            for key, model in expectation.sensors.items()
        }
        self._by_station: dict[str, list[_Track]] = {}
        for (station, _), track in self._tracks.items():
            self._by_station.setdefault(station, []).append(track)
        periods = [m.period_s for m in expectation.sensors.values() if m.period_s > 0]
        self._line_gap_s = max(60.0, 3.0 * max(periods, default=10.0))
        self._line_last_s: float | None = None
        self._continuous_since: float | None = None
        self._wear: dict[str, SensorAlarm] = {}
        # Every alarm (the last MAX_HISTORY), as last known.
        self.history: deque[SensorAlarm] = deque(maxlen=MAX_HISTORY)
        self.skipped = 0  # readings not judged: their station's inputs were not known

    # -- what is up ------------------------------------------------------------------------
    def active(self) -> list[SensorAlarm]:
        out = [a for t in self._tracks.values() for a in (t.alarm, t.dropout) if a is not None]
        return out + list(self._wear.values())

    def expected(self, station: str, sensor: str) -> tuple[float | None, float]:
        """The reading expected now and its spread (for charts)."""
        track = self._tracks.get((station, sensor))
        if track is None:
            return None, math.nan
        inputs = self._inputs.get(station)
        return track.expected, track.spread(inputs.headline() if inputs else None)

    def trace(
        self, station: str, sensor: str, from_s: float = -math.inf, to_s: float = math.inf
    ) -> list[TracePoint] | None:
        """A sensor's kept readings and expectations (None: not watched, or not kept)."""
        track = self._tracks.get((station, sensor))
        if track is None or track.trace is None:
            return None
        return track.trace.points(from_s, to_s)

    def alarms(self) -> list[SensorAlarm]:
        """Every alarm raised so far, cleared or not, in the order raised."""
        return list(self.history)

    # -- input ----------------------------------------------------------------------------
    def feed(self, station: str | None, message: BaseModel) -> list[SensorAlarm]:
        """Take one message of the stream; the alarms it raised or cleared."""
        if station is None:
            return []
        if isinstance(message, Telemetry):
            return self._telemetry(station, message)
        if isinstance(message, StateChanged | PartFinished | StationState):
            return self._event(station, message)
        return []

    def feed_all(self, messages: Iterable[tuple[str | None, BaseModel]]) -> list[SensorAlarm]:
        changes: list[SensorAlarm] = []
        for station, message in messages:
            changes.extend(self.feed(station, message))
        return changes

    def notice_setpoint(self, station: str, name: str, value: float, at_s: float) -> None:
        """A setpoint the line acknowledged (a command): in force from ``at_s``."""
        inputs = self._inputs.setdefault(station, StationInputs())
        if inputs.setpoints.get(name) == value:
            return
        self._move_on(station, at_s)
        inputs.setpoints[name] = value
        inputs.changed_s = at_s
        self._retarget(station, inputs)

    # -- events -----------------------------------------------------------------------------
    def _event(self, station: str, message: BaseModel) -> list[SensorAlarm]:
        inputs = self._inputs.setdefault(station, StationInputs())
        at = float(getattr(message, "sim_time_s", 0.0))
        self._move_on(station, at)
        changed = inputs.take(message)
        if changed:
            self._retarget(station, inputs)
        return self._judge_wear(station, inputs, at)

    def _move_on(self, station: str, at: float) -> None:
        for track in self._by_station.get(station, ()):
            track.advance(at)

    def _retarget(self, station: str, inputs: StationInputs) -> None:
        layout = self.expectation.layouts.get(station)
        features = layout.vector(inputs) if layout is not None else None
        judged = layout is not None and layout.covers(inputs)
        states = set(inputs.states.values())
        for track in self._by_station.get(station, ()):
            track.previous_target = track.target
            now_judged = judged and states <= track.model.states
            if now_judged and not track.judged and track.model.tau_s > 0:
                # Back from what clean history never showed: the response followed a
                # stand-in meanwhile, so it is anchored anew on the readings.
                track.expected = track.filtered = None
                track.restart()
            track.judged = now_judged
            if features is None:
                track.target = None
                track.inputs = None
                track.expected = track.filtered = None  # anchored anew once known
                continue
            track.retarget(features)
            if track.model.tau_s == 0.0 and track.filtered is not None:
                track.advance(track.at_s)

    def _judge_wear(self, station: str, inputs: StationInputs, at: float) -> list[SensorAlarm]:
        level = self.settings.wear_level
        if level is None:
            return []
        worst = max(inputs.wear.values(), default=0.0)
        current = self._wear.get(station)
        renewed_at = self.expectation.renewals.get(station)
        on_plan = renewed_at is not None and worst <= renewed_at + 1e-9
        if current is None and worst >= level:
            alarm = SensorAlarm(
                station,
                WEAR,
                "wear",
                at,
                at,
                level,
                worst,
                None,
                renewed_at=renewed_at,
                on_plan=on_plan,
            )
            self._wear[station] = alarm
            self.history.append(alarm)
            return [alarm]
        if current is not None and worst < level:
            return [self._clear(self._wear.pop(station), at)]
        if current is not None and (current.seen, current.on_plan) != (worst, on_plan):
            # Wear grows: the alarm says how far; past the plan it is the operator's.
            self._wear[station] = replace(current, seen=worst, on_plan=on_plan)
            self._update_history(self._wear[station])
        return []

    # -- readings ---------------------------------------------------------------------------
    def _telemetry(self, station: str, message: Telemetry) -> list[SensorAlarm]:
        now = message.sim_time_s
        changes: list[SensorAlarm] = []
        last = self._line_last_s
        if last is None or now - last > self._line_gap_s:
            # The stream starts, or comes back from a gap: start over.
            self._continuous_since = now
            for track in self._tracks.values():
                if track.model.tau_s > 0:
                    track.expected = track.filtered = None
                track.restart()
                track.run = 0
        self._line_last_s = now if last is None else max(last, now)
        inputs = self._inputs.get(station)
        headline = inputs.headline() if inputs is not None else None
        changed_s = inputs.changed_s if inputs is not None else -math.inf
        values = message.__dict__
        for name in SENSOR_FIELDS:
            value = values[name]
            if value is None:
                continue
            tracked = self._tracks.get((station, name))
            if tracked is not None:
                changes.extend(self._reading(tracked, value, now, headline, changed_s))
        changes.extend(self._dropouts(now))
        return changes

    def _reading(
        self, track: _Track, value: float, now: float, headline: str | None, changed_s: float
    ) -> list[SensorAlarm]:
        settings = self.settings
        changes: list[SensorAlarm] = []
        track.last_seen_s = now
        if track.trace is not None:
            track.trace.read(now, value)
        if track.dropout is not None:
            changes.append(self._clear(track.dropout, now))
            track.dropout = None
        frozen, frozen_for = track.last_value, track.run
        # Equal readings in a row.
        if track.last_value is not None and value == track.last_value:
            track.run += 1
        else:
            track.run = 1
            track.run_s = now
        track.last_value = value
        if track.target is None:
            self.skipped += 1
            return changes
        alarm = track.alarm
        if (
            alarm is not None
            and alarm.kind == "stuck"
            and track.run == 1
            and track.model.tau_s > 0
            and frozen_for > 1
            and track.anchored == frozen
            and track.anchored_s >= alarm.started_s
        ):
            # The sensor moves again, and the response was anchored on its frozen
            # reading (the stream began, or came back, while it was stuck): that
            # anchor was no reading of the process, so the response starts over here.
            track.expected = track.filtered = None
        track.advance(now)
        if track.expected is None or track.filtered is None:
            # The response's anchor: the reading, for one that lags its inputs; the
            # next few readings refine it (their mean), unjudged.
            track.anchor(value, now)
            track.settling = ANCHOR_READINGS if track.model.tau_s > 0 else 0
            return changes
        if track.settling:
            taken = ANCHOR_READINGS + 1 - track.settling
            track.deviation += (value - track.expected) / (taken + 1)
            track.expected += (value - track.expected) / (taken + 1)
            track.settling -= 1
            return changes
        if not track.judged:
            self.skipped += 1
            return changes
        residual = value - track.expected
        if (
            now - changed_s < SETTLE_S
            and track.model.tau_s == 0.0
            and track.previous_target is not None
            and abs(value - track.previous_target) < abs(residual)
        ):
            residual = value - track.previous_target
        sigma = track.spread(headline)
        expected = value - residual
        # The slow level moves only while nothing is amiss: an alarm's offset must
        # not become the new normal.
        # Each reading moves the level by the share of the time constant since the
        # sensor's last reading; not a reading expected at an end of the measuring
        # range, which clipping holds there whatever the sensor's zero did.
        low, high = SENSOR_RANGES.get(track.model.sensor, (-math.inf, math.inf))
        clipped = min(expected - low, high - expected) < 3 * sigma
        if (
            track.alarm is None
            and not clipped
            and track.judged_s is not None
            and now > track.judged_s
        ):
            weight = min(1.0, (now - track.judged_s) / settings.baseline_s)
            step = max(-3 * sigma, min(3 * sigma, residual - track.baseline))
            track.baseline += weight * step
        track.judged_s = now
        residual -= track.baseline
        z = residual / sigma
        if track.trace is not None:
            track.trace.expect(now, value - residual, sigma)
        alarm = track.alarm
        if alarm is not None:
            peak = max(alarm.peak_sd or 0.0, abs(z))
            if peak != alarm.peak_sd:
                track.alarm = alarm = replace(alarm, peak_sd=peak)
                self._update_history(alarm)
            quiet = abs(z) < settings.clear_sd and (alarm.kind != "stuck" or track.run == 1)
            track.quiet = track.quiet + 1 if quiet else 0
            needed = settings.spike_window if alarm.kind == "spike" else settings.clear_samples
            if track.quiet >= needed:
                changes.append(self._clear(alarm, now))
                track.alarm = None
                track.restart()
            return changes
        kind: SensorAlarmKind | None = None
        started = now
        # Spikes: readings far off whose neighbours are not (a reading far off
        # next to another the same way is a step, which the CUSUM names). A reading
        # is judged a spike one reading later, once its successor is known.
        spikes = track.spikes
        far = abs(z) >= settings.spike_sd
        previous = track.previous_z
        track.previous_z = z if far else None
        isolated: float | None = None
        if previous is not None and not (far and (z > 0) == (previous > 0)):
            isolated = previous
        if spikes and isolated is None and previous is not None:
            spikes[-1] = None  # the last reading was part of a step
        spikes.append((now, expected, value, z) if far else None)
        if len(spikes) > settings.spike_window:
            spikes.popleft()
        hits = [hit for hit in list(spikes)[:-1] if hit is not None]
        evidence = (expected, value, z)
        if isolated is not None and (
            len(hits) >= settings.spikes or abs(isolated) >= settings.single_spike_sd
        ):
            kind, started = "spike", hits[0][0]
            # The evidence is the spike's own reading, not the one after it.
            evidence = max(hits, key=lambda hit: abs(hit[3]))[1:]
        # A run of equal readings clean history makes unlikely.
        saturated = value <= low or value >= high  # held at a range end: repeats by design
        if kind is None and track.run >= settings.stuck_min and not saturated:
            share = track.model.repeat_by_state.get(headline or "", None)
            if share is None:
                share = max(track.model.repeat_by_state.values(), default=0.5)
            share = min(max(share, 1e-3), 0.999)
            if (track.run - 1) * math.log(share) < math.log(settings.stuck_chance):
                kind, started = "stuck", track.run_s
        # CUSUM on the clipped residual.
        step = max(-settings.clip_sd, min(settings.clip_sd, z))
        was_zero = track.high == 0.0 and track.low == 0.0
        track.high = max(0.0, track.high + step - settings.cusum_k)
        track.low = max(0.0, track.low - step - settings.cusum_k)
        if was_zero and (track.high > 0 or track.low > 0):
            track.rise_s = now
        elif track.high == 0.0 and track.low == 0.0:
            track.rise_s = None
        if kind is None and max(track.high, track.low) >= settings.cusum_h:
            started = track.rise_s if track.rise_s is not None else now
            at_end = value <= low or value >= high
            if at_end and abs(expected - value) > settings.clear_sd * sigma:
                kind = "out_of_range"
            elif track.run >= 3 and track.run_s <= started:
                kind = "stuck"
            else:
                kind = "offset"
        if kind is None:
            return changes
        raised = SensorAlarm(
            track.model.station,
            track.model.sensor,
            kind,
            started,
            now,
            *evidence,
            peak_sd=abs(evidence[2]),
        )
        track.alarm = raised
        track.quiet = 0
        self.history.append(raised)
        changes.append(raised)
        return changes

    def _dropouts(self, now: float) -> list[SensorAlarm]:
        settings = self.settings
        since = self._continuous_since if self._continuous_since is not None else now
        changes: list[SensorAlarm] = []
        for track in self._tracks.values():
            if track.dropout is not None:
                continue
            period = track.model.period_s
            limit = max(settings.dropout_periods * period, period + settings.dropout_min_s)
            heard = max(track.last_seen_s if track.last_seen_s is not None else since, since)
            if now - heard > limit:
                track.dropout = SensorAlarm(
                    track.model.station,
                    track.model.sensor,
                    "dropout",
                    heard + period,
                    now,
                    None,
                    None,
                    None,
                )
                self.history.append(track.dropout)
                changes.append(track.dropout)
        return changes

    def _clear(self, alarm: SensorAlarm, now: float) -> SensorAlarm:
        cleared = replace(alarm, cleared_s=now)
        self._update_history(cleared)
        return cleared

    def _update_history(self, alarm: SensorAlarm) -> None:
        for i in range(len(self.history) - 1, -1, -1):
            old = self.history[i]
            if old.key == alarm.key and old.kind == alarm.kind and old.raised_s == alarm.raised_s:
                self.history[i] = alarm
                return
