"""Where each sensor's reading should be, learned from what the stream says of the line.

A station's sensors read its machines' physics, and the stream carries what drives
that physics: each machine's state (``state_changed``), the setpoints in force and
the tool wear (the ``process`` values of each ``part_finished``). ``StationInputs``
keeps them as the stream tells them, and ``Layout`` turns them into a feature
vector: for each state, the share of the station's machines in it, and that share
times each setpoint and times the machines' wear; a station of several machines
also has the state of its busiest machine (the headline state, times the setpoints
and that state's highest wear), for sensors that read the busiest machine.

``SensorExpectation`` is a first-order response to those features:

    expected(t) = target(t) + (expected(t_prev) - target(t)) * exp(-(t - t_prev) / tau)
    target(t)   = weights . features(t)     (features constant between events)

with ``tau`` 0 for a sensor that follows its inputs at once (spindle speed, power)
and the thermal time constant for a temperature. Between events the features are
constant, so the response is exact at any sample time. ``fit_expectations`` learns
``weights`` by least squares for each ``tau`` of a grid and keeps the ``tau`` that
fits best, then the residual's spread (``sigma``) for each headline state, from
clean history. Nothing here knows the simulator: the same fit runs on any line
that speaks the contract.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from twin.contract import (
    SENSOR_FIELDS,
    STATE_RANK,
    STATION_STATES,
    PartFinished,
    StateChanged,
    StationState,
    Telemetry,
)

FloatArray = npt.NDArray[np.float64]

# The time constants tried, in line seconds: 0 follows the inputs at once.
TAUS = (0.0, 10.0, 30.0, 60.0, 120.0, 240.0, 480.0, 900.0, 1800.0, 3600.0)
# A sample this close after an input changed may have been taken on either side of
# the change (a message's time is rounded, the order of two messages of one instant
# is the publisher's): it is judged against the nearer of the two expectations.
SETTLE_S = 1.0
WEAR = "wear"
# A plan of tool renewals (renewal_level): this many at least, within this share of
# the highest wear renewed at.
PLAN_RENEWALS = 2
PLAN_SPREAD = 0.75
# Fewer residuals than this in a headline state: that state's spread is the sensor's.
MIN_STATE_SAMPLES = 50


@dataclass(slots=True)
class StationInputs:
    """What the stream has said of one station's drivers, as of its latest message."""

    states: dict[int, str] = field(default_factory=dict)
    setpoints: dict[str, float] = field(default_factory=dict)
    wear: dict[int, float] = field(default_factory=dict)
    machines: int = 1
    changed_s: float = -math.inf  # when an input last changed

    def take(self, message: BaseModel) -> bool:
        """Apply an event of this station; True if an input changed."""
        if isinstance(message, StateChanged):
            machine = message.machine
            self.machines = max(self.machines, machine + 1)
            changed = self.states.get(machine) != message.to_state
            self.states[machine] = message.to_state
            if message.to_state == "maintenance" and self.wear.get(machine):
                self.wear[machine] = 0.0  # maintenance renews the tool
                changed = True
            if changed:
                self.changed_s = message.sim_time_s
            return changed
        if isinstance(message, StationState):
            # A retained headline, before any event: it seeds a station not yet heard.
            if not self.states:
                self.states[0] = message.state
                self.changed_s = message.sim_time_s
                return True
            return False
        if isinstance(message, PartFinished) and message.process:
            machine = message.machine
            self.machines = max(self.machines, machine + 1)
            changed = False
            for name, value in message.process.items():
                if name == WEAR:
                    if self.wear.get(machine) != value:
                        self.wear[machine] = value
                        changed = True
                elif self.setpoints.get(name) != value:
                    self.setpoints[name] = value
                    changed = True
            if changed:
                self.changed_s = message.sim_time_s
            return changed
        return False

    def headline(self) -> str | None:
        """The most productive machine's state, as the twin shows the station's."""
        if not self.states:
            return None
        return min(self.states.values(), key=STATE_RANK.__getitem__)

    def copy(self) -> StationInputs:
        return StationInputs(
            dict(self.states), dict(self.setpoints), dict(self.wear), self.machines, self.changed_s
        )


@dataclass(frozen=True, slots=True)
class Layout:
    """How a station's inputs become a feature vector."""

    states: tuple[str, ...]
    setpoints: tuple[str, ...]
    machines: int
    wear: bool
    # A state clean history never showed stands in for by this one (the idle state
    # seen most): the response carries on through it, but nothing is judged there.
    stand_in: str | None = None
    # The headline states clean history showed (a station of several machines).
    tops: tuple[str, ...] = ()
    # Each setpoint's range in clean history: what a reading does beyond it is not known.
    ranges: tuple[tuple[float, float], ...] = ()

    def covers(self, inputs: StationInputs) -> bool:
        """Whether clean history showed what the station does now: every machine's
        state, the headline (a station of several machines) and the setpoints."""
        if not all(state in self.states for state in inputs.states.values()):
            return False
        for name, (low, high) in zip(self.setpoints, self.ranges, strict=False):
            value = inputs.setpoints.get(name)
            slack = 1e-9 * max(abs(low), abs(high), 1.0)
            if value is None or not low - slack <= value <= high + slack:
                return False
        return self.machines <= 1 or inputs.headline() in self.tops

    def names(self) -> list[str]:
        drivers = ["1", *self.setpoints, *([WEAR] if self.wear else [])]
        names = [f"share:{state}*{driver}" for state in self.states for driver in drivers]
        if self.machines > 1:
            names += [f"top:{state}*{driver}" for state in self.states for driver in drivers]
        return names

    def vector(self, inputs: StationInputs) -> FloatArray | None:
        """The features of ``inputs``; None while a machine's state is unknown, or is
        one that clean history never showed and no idle state can stand in for."""
        states = inputs.states
        n = max(self.machines, inputs.machines)
        if len(states) < n:
            return None
        setpoints = [inputs.setpoints.get(name, math.nan) for name in self.setpoints]
        if any(math.isnan(value) for value in setpoints):
            return None
        width = 1 + len(self.setpoints) + int(self.wear)
        out = np.zeros(len(self.states) * width * (2 if self.machines > 1 else 1))
        index = {state: i for i, state in enumerate(self.states)}
        top: int | None = None
        top_wear = 0.0
        for machine, state in states.items():
            i = index.get(state)
            if i is None:
                if state == "running" or self.stand_in is None:
                    return None
                i = index[self.stand_in]
            base = i * width
            wear = inputs.wear.get(machine, 0.0)
            out[base] += 1.0 / n
            for j, value in enumerate(setpoints):
                out[base + 1 + j] += value / n
            if self.wear:
                out[base + width - 1] += wear / n
            if top is None or STATE_RANK[self.states[i]] < STATE_RANK[self.states[top]]:
                top, top_wear = i, wear
            elif i == top:
                top_wear = max(top_wear, wear)
        if self.machines > 1 and top is not None:
            base = len(self.states) * width + top * width
            out[base] = 1.0
            out[base + 1 : base + 1 + len(setpoints)] = setpoints
            if self.wear:
                out[base + width - 1] = top_wear
        return out


@dataclass(frozen=True)
class SensorExpectation:
    """One sensor's expected reading: a first-order response to its station's inputs."""

    station: str
    sensor: str
    tau_s: float
    weights: FloatArray
    sigma: float  # the residual's spread over all clean samples
    sigma_by_state: Mapping[str, float]
    period_s: float  # the sensor's usual sampling interval
    repeat_by_state: Mapping[str, float]  # share of samples equal to the previous one
    low: float  # the clean readings' range
    high: float
    samples: int
    # The machine states this sensor was read in: in another, what it reads is not known.
    states: frozenset[str] = frozenset()
    fitted_from_s: float = 0.0  # the first reading fitted (after the anchor's warm-up)
    # The weights' covariance: the expectation's own uncertainty at given inputs
    # (a prediction's spread is the noise's and this, not the noise's alone).
    covariance: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))

    def target(self, features: FloatArray) -> float:
        return float(self.weights @ features)

    def spread(self, headline: str | None) -> float:
        if headline is None:
            return self.sigma
        return self.sigma_by_state.get(headline, self.sigma)


@dataclass(frozen=True)
class LineExpectation:
    """Every sensor's expectation, and each station's feature layout. ``renewals``:
    per station whose line renews its tools on a plan, the highest wear a part was
    made at before the line's own maintenance renewed the tool (``renewal_level``)."""

    layouts: Mapping[str, Layout]
    sensors: Mapping[tuple[str, str], SensorExpectation]
    renewals: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (lists for arrays): what a model file keeps."""
        return {
            "layouts": {
                station: {
                    **{k: getattr(layout, k) for k in ("states", "setpoints", "tops")},
                    "machines": layout.machines,
                    "wear": layout.wear,
                    "stand_in": layout.stand_in,
                    "ranges": [list(r) for r in layout.ranges],
                }
                for station, layout in self.layouts.items()
            },
            "sensors": [
                {
                    **{
                        k: getattr(e, k)
                        for k in (
                            "station",
                            "sensor",
                            "tau_s",
                            "sigma",
                            "period_s",
                            "low",
                            "high",
                            "samples",
                            "fitted_from_s",
                        )
                    },
                    "weights": e.weights.tolist(),
                    "covariance": e.covariance.tolist(),
                    "sigma_by_state": dict(e.sigma_by_state),
                    "repeat_by_state": dict(e.repeat_by_state),
                    "states": sorted(e.states),
                }
                for e in self.sensors.values()
            ],
            "renewals": dict(self.renewals),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LineExpectation:
        """The expectation ``to_json`` kept."""
        layouts = {
            station: Layout(
                states=tuple(d["states"]),
                setpoints=tuple(d["setpoints"]),
                machines=int(d["machines"]),
                wear=bool(d["wear"]),
                stand_in=d["stand_in"],
                tops=tuple(d["tops"]),
                ranges=tuple((float(lo), float(hi)) for lo, hi in d["ranges"]),
            )
            for station, d in data["layouts"].items()
        }
        sensors = {}
        for d in data["sensors"]:
            width = len(d["weights"])
            expectation = SensorExpectation(
                station=d["station"],
                sensor=d["sensor"],
                tau_s=float(d["tau_s"]),
                weights=np.asarray(d["weights"], dtype=np.float64),
                sigma=float(d["sigma"]),
                sigma_by_state=dict(d["sigma_by_state"]),
                period_s=float(d["period_s"]),
                repeat_by_state=dict(d["repeat_by_state"]),
                low=float(d["low"]),
                high=float(d["high"]),
                samples=int(d["samples"]),
                states=frozenset(d["states"]),
                fitted_from_s=float(d["fitted_from_s"]),
                covariance=np.asarray(d["covariance"], dtype=np.float64).reshape(
                    (width, width) if d["covariance"] else (0, 0)
                ),
            )
            sensors[(expectation.station, expectation.sensor)] = expectation
        # A file kept before renewals were learnt has none: wear alarms at the level.
        renewals = {str(k): float(v) for k, v in data.get("renewals", {}).items()}
        return cls(layouts, sensors, renewals)


# -- fitting ----------------------------------------------------------------------------------
@dataclass
class _StationLog:
    """One station's inputs over time and its sensors' samples, as the stream told them."""

    inputs: StationInputs = field(default_factory=StationInputs)
    # (time, inputs after the change): a snapshot at each change
    changes: list[tuple[float, StationInputs]] = field(default_factory=list)
    # sensor -> (time, reading, index of the inputs in force, headline state)
    samples: dict[str, list[tuple[float, float, int, str | None]]] = field(default_factory=dict)
    setpoints_seen: set[str] = field(default_factory=set)
    states_seen: set[str] = field(default_factory=set)
    wear_seen: bool = False
    # The wear of each tool the line's maintenance renewed, as last reported.
    renewed: list[float] = field(default_factory=list)
    records: int = 0
    seen_inputs: dict[tuple[object, ...], StationInputs] = field(default_factory=dict)


class CleanHistory:
    """What the stream said of each station, gathered message by message to learn from:
    each change of a station's inputs and each sensor's readings. ``max_records``
    bounds what one station keeps (a line that changes state every second keeps
    only its first hours); ``full`` says when a station reached it."""

    def __init__(self, max_records: int | None = None) -> None:
        self.logs: dict[str, _StationLog] = {}
        self.max_records = max_records
        self.first_s: float | None = None
        self.last_s: float | None = None
        self.full = False

    @property
    def hours(self) -> float:
        """Line hours from the first message to the last."""
        if self.first_s is None or self.last_s is None:
            return 0.0
        return (self.last_s - self.first_s) / 3600.0

    def take(self, station: str | None, message: BaseModel) -> None:
        if station is None:
            return
        at = getattr(message, "sim_time_s", None)
        if isinstance(at, float | int):
            self.first_s = at if self.first_s is None else min(self.first_s, at)
            self.last_s = at if self.last_s is None else max(self.last_s, at)
        log = self.logs.get(station)
        if log is None:
            log = self.logs[station] = _StationLog()
        if self.max_records is not None and log.records >= self.max_records:
            self.full = True
            return
        if isinstance(message, Telemetry):
            if not log.changes:
                return
            values = message.__dict__
            headline = log.inputs.headline()
            index = len(log.changes) - 1
            for name in SENSOR_FIELDS:
                value = values[name]
                if value is not None:
                    log.samples.setdefault(name, []).append(
                        (message.sim_time_s, value, index, headline)
                    )
                    log.records += 1
            return
        if isinstance(message, StateChanged) and message.to_state == "maintenance":
            worn = log.inputs.wear.get(message.machine)
            if worn:
                log.renewed.append(worn)
        if log.inputs.take(message):
            # The inputs repeat (a state flickers between a few): one object each.
            inputs = log.inputs
            key = (
                tuple(sorted(inputs.states.items())),
                tuple(sorted(inputs.setpoints.items())),
                tuple(sorted(inputs.wear.items())),
                inputs.machines,
            )
            kept = log.seen_inputs.get(key)
            if kept is None:
                kept = log.seen_inputs[key] = inputs.copy()
            log.changes.append((inputs.changed_s, kept))
            log.records += 1
            log.states_seen.update(log.inputs.states.values())
            log.setpoints_seen.update(log.inputs.setpoints)
            log.wear_seen = log.wear_seen or any(log.inputs.wear.values())


def _collect(messages: Iterable[tuple[str | None, BaseModel]]) -> dict[str, _StationLog]:
    history = CleanHistory()
    for station, message in messages:
        history.take(station, message)
    return history.logs


def _responses(
    change_times: FloatArray,
    targets_x: FloatArray,
    times: FloatArray,
    index: npt.NDArray[np.intp],
    tau: float,
) -> FloatArray:
    """The first-order response of the piecewise-constant features (zero at the first
    change) at each sample time; ``index`` is the change in force at each sample."""
    if tau == 0.0:
        return targets_x[index]
    at_change = _at_changes(change_times, targets_x, tau)
    decay = np.exp(-(times - change_times[index]) / tau)[:, None]
    x = targets_x[index]
    return np.asarray(x + (at_change[index] - x) * decay, dtype=np.float64)


def _at_changes(change_times: FloatArray, targets_x: FloatArray, tau: float) -> FloatArray:
    """The response at each change, from zero at the first: s_j = d_j s_(j-1) +
    (1 - d_j) x_(j-1), with d_j the decay between changes j-1 and j. Solved with
    cumulative sums in chunks short enough (a summed decay exponent under 500)
    that the products neither underflow nor overflow."""
    n, width = targets_x.shape
    out = np.zeros((n, width))
    if n < 2:
        return out
    exponents = np.diff(change_times) / tau  # -log d_j for j = 1 .. n-1
    state = np.zeros(width)
    j = 1
    while j < n:
        summed = np.cumsum(exponents[j - 1 :])
        end = max(j + int(np.searchsorted(summed, 500.0, side="right")), j + 1)
        summed = np.minimum(summed[: end - j], 700.0)
        decay = np.exp(-exponents[j - 1 : end - 1])
        terms = ((1.0 - decay) * np.exp(summed))[:, None] * targets_x[j - 1 : end - 1]
        out[j:end] = np.exp(-summed)[:, None] * (state + np.cumsum(terms, axis=0))
        state = out[end - 1]
        j = end
    return out


def _robust_sd(residuals: FloatArray) -> float:
    if len(residuals) == 0:
        return math.nan
    median = float(np.median(residuals))
    return 1.4826 * float(np.median(np.abs(residuals - median)))


def fit_expectations(
    messages: Iterable[tuple[str | None, BaseModel]] | CleanHistory, *, warmup_s: float = 0.0
) -> LineExpectation:
    """Learn every sensor's expectation from clean history, given as the stream's
    (station, message) pairs in order, or as gathered in a ``CleanHistory``. The
    first ``warmup_s`` of a sensor's samples anchor its response and are not fitted."""
    layouts: dict[str, Layout] = {}
    sensors: dict[tuple[str, str], SensorExpectation] = {}
    logs = messages.logs if isinstance(messages, CleanHistory) else _collect(messages)
    renewals = {
        station: level
        for station, log in logs.items()
        if (level := renewal_level(log.renewed)) is not None
    }
    for station, log in sorted(logs.items()):
        if not log.changes or not log.samples:
            continue
        idle = Counter(
            head
            for samples in log.samples.values()
            for _, _, _, head in samples
            if head is not None and head != "running"
        )
        layout = Layout(
            states=tuple(s for s in STATION_STATES if s in log.states_seen),
            setpoints=tuple(sorted(log.setpoints_seen)),
            machines=max(inputs.machines for _, inputs in log.changes),
            wear=log.wear_seen,
            stand_in=idle.most_common(1)[0][0] if idle else None,
            tops=tuple(sorted({h for _, i in log.changes if (h := i.headline()) is not None})),
            ranges=tuple(
                (
                    min(i.setpoints.get(name, math.inf) for _, i in log.changes),
                    max(i.setpoints.get(name, -math.inf) for _, i in log.changes),
                )
                for name in sorted(log.setpoints_seen)
            ),
        )
        vectors = [layout.vector(inputs) for _, inputs in log.changes]
        width = len(layout.names())
        known = np.array([v is not None for v in vectors])
        x = np.array([v if v is not None else np.zeros(width) for v in vectors])
        change_times = np.array([t for t, _ in log.changes])
        for sensor, samples in sorted(log.samples.items()):
            fitted = _fit_sensor(
                station, sensor, samples, change_times, x, known, warmup_s, layout.names()
            )
            if fitted is not None:
                # The states it was fitted in, three readings at least.
                counts = Counter(
                    state
                    for t, _, j, _ in samples
                    if t >= fitted.fitted_from_s and t - log.changes[j][0] >= SETTLE_S
                    for state in set(log.changes[j][1].states.values())
                )
                fitted = replace(fitted, states=frozenset(s for s, n in counts.items() if n >= 3))
            if fitted is not None:
                sensors[(station, sensor)] = fitted
                layouts[station] = layout
    return LineExpectation(layouts, sensors, renewals)


def renewal_level(renewed: Sequence[float]) -> float | None:
    """The wear at which a line renews a station's tools on a plan, from the wear last
    reported before each renewal that clean history saw; None without a plan.

    A plan shows as renewals at much the same wear: at least ``PLAN_RENEWALS`` of
    them, and at least half of all, within ``PLAN_SPREAD`` of the highest. Tools
    renewed at any wear (a maintenance window that comes when it comes) show none."""
    if not renewed:
        return None
    top = max(renewed)
    near = [level for level in renewed if level >= PLAN_SPREAD * top]
    if len(near) < PLAN_RENEWALS or 2 * len(near) < len(renewed):
        return None
    return top


def _fit_sensor(
    station: str,
    sensor: str,
    samples: list[tuple[float, float, int, str | None]],
    change_times: FloatArray,
    x: FloatArray,
    known: npt.NDArray[np.bool_],
    warmup_s: float,
    names: list[str],
) -> SensorExpectation | None:
    # The response starts at the first reading taken while the inputs were known:
    # it anchors the curve (the features before it are not known, and a response
    # fed zeros for them would drag a slow sensor's fit for hours).
    first = next((i for i, s in enumerate(samples) if known[s[2]]), None)
    if first is None:
        return None
    samples = samples[first:]
    start = samples[0][2]
    change_times = np.concatenate([[samples[0][0]], change_times[start + 1 :]])
    x = x[start:]
    known = known[start:]
    times = np.array([s[0] for s in samples])
    values = np.array([s[1] for s in samples])
    index = np.array([s[2] - start for s in samples], dtype=np.intp)
    headlines = [s[3] for s in samples]
    # A sample taken just after a change may read either side of it: not fitted.
    settled = (times - change_times[index] >= SETTLE_S) | (index == 0)
    usable = known[index] & settled & (times >= times[0] + warmup_s)
    if usable.sum() < 20:
        return None
    y0 = values[0]
    t0 = times[0]
    penalised_all = np.array([not name.endswith("*1") for name in names])
    n_used = int(usable.sum())

    def fit(tau: float, columns: npt.NDArray[np.bool_]) -> tuple[float, FloatArray, FloatArray]:
        responses = _responses(change_times, x, times, index, tau)[:, columns]
        anchor = np.exp(-(times - t0) / tau) if tau else np.zeros(len(times))
        a, b = responses[usable], (values - anchor * y0)[usable]
        penalised = penalised_all[columns]
        weights = _ridge(a, b, penalised)
        residual = b - a @ weights
        # One pass of trimming: a few wild samples (a fault in the history) do not
        # bend the fit.
        scale = _robust_sd(residual)
        if scale > 0:
            keep = np.abs(residual) <= 6 * scale
            if keep.sum() >= 20:
                weights = _ridge(a[keep], b[keep], penalised)
                residual = b - a @ weights
        clip = (6 * max(scale, 1e-12)) ** 2
        full = np.zeros(len(columns))
        full[columns] = weights
        return float(np.mean(np.minimum(residual**2, clip))), full, residual

    def best_tau(columns: npt.NDArray[np.bool_]) -> tuple[float, float]:
        scores = [fit(tau, columns)[0] for tau in TAUS]
        i = int(np.argmin(scores))
        tau = TAUS[i]
        if tau > 0:
            # The grid brackets the time constant: a golden-section search on its log.
            low = math.log(TAUS[i - 1] if TAUS[i - 1] > 0 else tau / 3)
            high = math.log(TAUS[i + 1] if i + 1 < len(TAUS) else tau * 3)
            ratio = (math.sqrt(5) - 1) / 2
            for _ in range(14):
                left, right = high - ratio * (high - low), low + ratio * (high - low)
                if fit(math.exp(left), columns)[0] <= fit(math.exp(right), columns)[0]:
                    high = right
                else:
                    low = left
            refined = math.exp((low + high) / 2)
            if fit(refined, columns)[0] <= scores[i]:
                return refined, fit(refined, columns)[0]
        return tau, scores[i]

    # A station of several machines: the reading may be their mean or sum (the
    # shares fit it), or the busiest machine's (its state, the station's headline,
    # fits it), or a mix. The least BIC chooses, so a rare mix of states does not get
    # terms of its own that only fit the few times it was seen.
    subsets = [np.ones(len(names), dtype=bool)]
    if any(name.startswith("top:") for name in names):
        subsets += [
            np.array([name.startswith("share:") for name in names]),
            np.array([name.startswith("top:") for name in names]),
        ]
    best: tuple[float, float, npt.NDArray[np.bool_]] | None = None
    for columns in subsets:
        tau, score = best_tau(columns)
        bic = n_used * math.log(max(score, 1e-300)) + int(columns.sum()) * math.log(n_used)
        if best is None or bic < best[0]:
            best = (bic, tau, columns)
    assert best is not None  # noqa: S101 - subsets is never empty
    _, tau, chosen = best
    _, weights, residual = fit(tau, chosen)
    covariance = _covariance(
        _responses(change_times, x, times, index, tau)[usable][:, chosen],
        penalised_all[chosen],
        _robust_sd(residual),
        chosen,
    )
    used_headlines = [h for h, u in zip(headlines, usable, strict=True) if u]
    step = _resolution(values)
    floor = max(step / math.sqrt(12), 1e-3 * (float(np.ptp(values)) or 1.0), 1e-9)
    sigma = max(_robust_sd(residual), floor)
    # A state's spread is never taken below the sensor's: a reading clipped at the
    # end of its range (no power at a standstill) has a small spread that its
    # noise's tail does not keep to.
    by_state: dict[str, float] = {}
    for state in set(h for h in used_headlines if h is not None):
        mask = np.array([h == state for h in used_headlines])
        if mask.sum() >= MIN_STATE_SAMPLES:
            by_state[state] = max(_robust_sd(residual[mask]), sigma)
    gaps = np.diff(times)
    period = float(np.median(gaps)) if len(gaps) else math.nan
    # How often a reading repeats the one before, per state; once a run has begun,
    # how often it goes on (a reading clipped at zero repeats in runs).
    repeats: dict[str, list[bool]] = {}
    goes_on: dict[str, list[bool]] = {}
    for i in range(1, len(values)):
        head = headlines[i]
        if head is not None:
            same = bool(values[i] == values[i - 1])
            repeats.setdefault(head, []).append(same)
            if i >= 2 and values[i - 1] == values[i - 2]:
                goes_on.setdefault(head, []).append(same)
    repeat_by_state = {}
    for state, flags in repeats.items():
        share = float(np.mean(flags))
        more = goes_on.get(state, [])
        if len(more) >= 20:
            share = max(share, float(np.mean(more)))
        repeat_by_state[state] = share
    return SensorExpectation(
        station=station,
        sensor=sensor,
        tau_s=tau,
        weights=weights,
        sigma=sigma,
        sigma_by_state=by_state,
        period_s=period,
        repeat_by_state=repeat_by_state,
        low=float(values.min()),
        high=float(values.max()),
        samples=int(usable.sum()),
        fitted_from_s=float(times[0] + warmup_s),
        covariance=covariance,
    )


# The weight of the ridge penalty on the setpoint and wear terms, in samples: a term
# that the clean history does not pin down at all (a setpoint that never changed, so
# that its column is the level's) stays at zero instead of taking an arbitrary share
# of the level; a term the history does pin down keeps its least-squares fit.
RIDGE = 1e-3


def _ridge(a: FloatArray, b: FloatArray, penalised: npt.NDArray[np.bool_]) -> FloatArray:
    """Least squares with a ridge penalty on the ``penalised`` columns, each scaled by
    its own spread so that the penalty does not depend on units."""
    spread = a.std(axis=0)
    rows = np.diag(np.where(penalised, math.sqrt(RIDGE) * np.maximum(spread, 1e-12), 0.0))
    rows = rows[penalised]
    augmented = np.vstack([a, rows])
    target = np.concatenate([b, np.zeros(len(rows))])
    return np.asarray(np.linalg.lstsq(augmented, target, rcond=None)[0], dtype=np.float64)


def _covariance(
    a: FloatArray, penalised: npt.NDArray[np.bool_], sigma: float, columns: npt.NDArray[np.bool_]
) -> FloatArray:
    """sigma^2 (A'A + ridge)^-1 on the fitted columns, zero elsewhere: the weights'
    covariance, so that x' C x is how uncertain the expectation is at inputs x."""
    spread = a.std(axis=0)
    ridge = np.where(penalised, RIDGE * np.maximum(spread, 1e-12) ** 2, 0.0)
    inverse = np.linalg.pinv(a.T @ a + np.diag(ridge))
    full = np.zeros((len(columns), len(columns)))
    where = np.flatnonzero(columns)
    full[np.ix_(where, where)] = sigma * sigma * inverse
    return full


def _resolution(values: FloatArray) -> float:
    """The smallest step between distinct readings: the sensor's resolution, or 0."""
    distinct = np.unique(values)
    if len(distinct) < 2:
        return 0.0
    return float(np.min(np.diff(distinct)))
