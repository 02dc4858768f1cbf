"""What a recommendation is worth: the recommended and today's setpoints, run
again on fresh seeds and stated in the units a plant reads.

The search judges every candidate on the same few seeds, so its best value is
partly the luck of those seeds. Before a recommendation is shown, both the
recommended setpoints and the line's current ones run again, on seeds the search
never used, with common random numbers (each replication gives both the same
luck). The answer gives, for each, the mean and a 95% **prediction interval for
one run** of the evaluation horizon (what the line will do over the next
``hours``, not the uncertainty of a long-run mean), and the paired difference
with its confidence interval.

**A change only when it pays.** The search's few best candidates
(``models.optimizer.search.ranked_candidates``) all run on the same fresh seeds;
the best of them by mean is recommended only when its paired difference over
today's setpoints is significant: the confidence interval of the mean
difference, widened for the number of candidates compared (Bonferroni), lies
above 0. Otherwise the verdict is "keep": no significant gain, keep today's
setpoints.

**More runs when the answer is not yet clear.** A gain of a fraction of a percent
can be smaller than what 16 paired runs tell from noise, even with common random
numbers (each source of the plant's randomness has its own stream). With
``max_replications`` above ``replications`` the confirmation is sequential: it
looks after ``replications`` runs, and while the difference's interval holds 0
it doubles the runs (up to ``max_replications``) and looks again. It stops as
soon as the interval lies above 0 (change) or below it (keep: today's is
better). Every look's interval is widened for the candidates and for the
planned number of looks together (Bonferroni over both), so looking more often
does not make a change more likely when there is no gain.

Units: the objective is per **calendar hour** of the horizon (nights, breaks and
weekends in the line's calendar included), which is what a plant's output per
day divided by 24 is. ``per_planned_hour`` gives the same figure per hour of
planned production time, which is what the dashboard's station rates use.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from twin.config.line import LineConfig
from twin.experiments.experiment import Mapper, experiment_field, run_experiment
from twin.lazy import HEAVY_IMPORTS

# Fresh seeds: far from the search's EVALUATION_SEED and its replication seeds.
CONFIRMATION_SEED = 777_001
CONFIDENCE = 0.95

# One setpoint's runs: the objective and the planned share of calendar time of each.
_Runs = tuple[list[float], list[float]]

OBJECTIVE_FIELD: dict[str, str] = {
    "good_per_hour": "throughput_per_h",
    "margin_per_hour": "margin_per_hour",
}


def objective_unit(objective: str, currency: str) -> str:
    """The objective's unit in words, as every output states it."""
    if objective == "good_per_hour":
        return "good parts per calendar hour"
    return f"{currency} margin per calendar hour"


class Interval(BaseModel):
    model_config = ConfigDict(frozen=True)

    mean: float
    low: float | None = Field(description="Lower end; null with a single replication.")
    high: float | None


class Confirmation(BaseModel):
    """The recommended and the current setpoints on fresh seeds."""

    model_config = ConfigDict(frozen=True)

    objective: str = Field(description="good_per_hour or margin_per_hour.")
    unit: str = Field(description="What the figures count, per calendar hour.")
    hours: float = Field(description="The horizon of one run.")
    replications: int = Field(description="Fresh runs of each candidate behind the verdict.")
    max_replications: int | None = Field(
        default=None, description="The most the sequential confirmation would have run."
    )
    looks: int = Field(default=1, description="Looks the sequential confirmation planned.")
    seed: int
    recommended: Interval = Field(
        description="The objective at the recommended setpoints: mean and 95% prediction "
        "interval for one run of the horizon."
    )
    current: Interval = Field(description="The same at today's setpoints.")
    difference: Interval = Field(
        description="Recommended minus current, paired by seed: mean and confidence "
        "interval of the mean difference (at ``confidence``)."
    )
    confidence: float = Field(
        default=CONFIDENCE,
        description="The difference's confidence: 95% shared by the candidates compared "
        "and the planned looks.",
    )
    candidates: int = Field(default=1, description="Candidates run on the fresh seeds.")
    setpoints: dict[str, float] = Field(
        default_factory=dict, description="The candidate recommended: the best by mean."
    )
    verdict: Literal["change", "keep"] = Field(
        default="keep",
        description="change: the difference's interval lies above 0; keep: no significant "
        "gain, keep today's setpoints.",
    )
    planned_share: float | None = Field(
        description="Planned production time over calendar time in the horizon (the "
        "capacity constraint's): divide a per-calendar-hour figure by it for per planned hour."
    )
    current_setpoints: dict[str, float]


def _t(n: int, confidence: float = CONFIDENCE) -> float:
    with HEAVY_IMPORTS:
        from scipy import stats  # only where an interval is computed

    return float(stats.t.ppf(0.5 + confidence / 2, n - 1))


def prediction_interval(values: list[float]) -> Interval:
    """Mean and the Student-t 95% interval in which one more run falls."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Interval(mean=mean, low=None, high=None)
    half = _t(len(values)) * statistics.stdev(values) * math.sqrt(1 + 1 / len(values))
    return Interval(mean=mean, low=mean - half, high=mean + half)


def mean_interval(values: list[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean and the Student-t confidence interval of the mean (95% by default)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Interval(mean=mean, low=None, high=None)
    half = _t(len(values), confidence) * statistics.stdev(values) / math.sqrt(len(values))
    return Interval(mean=mean, low=mean - half, high=mean + half)


def current_setpoints(config: LineConfig, keys: list[str]) -> dict[str, float]:
    """The line file's setpoints for ``keys`` ("station.setpoint"): today's, unless
    the caller knows the live ones."""
    stations = {station.id: station for station in config.stations}
    current: dict[str, float] = {}
    for key in keys:
        station_id, _, name = key.partition(".")
        process = stations[station_id].process
        setpoint = {"speed": process.speed, "temperature_c": process.temperature_c}[name]
        if setpoint is None:
            raise ValueError(f"station {station_id!r} has no setpoint {name!r}")
        current[key] = setpoint.default
    return current


def looks_at(replications: int, max_replications: int) -> list[int]:
    """The run counts at which a sequential confirmation looks: ``replications``,
    doubled until ``max_replications``, which is the last."""
    counts = [replications]
    while counts[-1] * 2 < max_replications:
        counts.append(counts[-1] * 2)
    if counts[-1] < max_replications:
        counts.append(max_replications)
    return counts


def confirm(
    config: LineConfig,
    objective: str,
    recommended: Mapping[str, float],
    current: Mapping[str, float],
    *,
    hours: float,
    replications: int,
    max_replications: int | None = None,
    seed: int = CONFIRMATION_SEED,
    backend: Mapper | None = None,
    alternatives: Sequence[Mapping[str, float]] = (),
) -> Confirmation:
    """Run today's setpoints, ``recommended`` and each of ``alternatives``
    ``replications`` times on the same seeds from ``seed``; recommend the best by
    mean, and say whether it beats today's significantly; with ``max_replications``,
    more runs while that is not yet clear (the module doc)."""
    # Here, not at the top: the API reads Confirmation without loading the search.
    from models.optimizer.space import configure

    if objective not in OBJECTIVE_FIELD:
        raise ValueError(f"unknown objective {objective!r}; use one of {list(OBJECTIVE_FIELD)}")
    if replications < 1:
        raise ValueError(f"replications must be >= 1 (got {replications})")
    cap = replications if max_replications is None else max_replications
    if cap < replications:
        raise ValueError(
            f"max_replications must be >= replications ({replications}; got {max_replications})"
        )
    field = OBJECTIVE_FIELD[objective]

    def values(setpoints: Mapping[str, float], done: int, more: int) -> _Runs:
        result = run_experiment(
            configure(config, setpoints),
            hours=hours,
            seed=seed,
            replications=more,
            backend=backend,
            first_replication=done,
        )
        figures = [experiment_field(run, field) or 0.0 for run in result.runs]
        shares = []
        for run in result.runs:
            constraint = run.line_kpis.constraint
            station = next((s for s in run.stations if s.id == constraint), None)
            if station is not None and run.observed_s > 0:
                machines = max(1, station.kpis.machines)
                planned = station.kpis.planned_busy_time_s / machines
                shares.append(planned / run.observed_s)
        return figures, shares

    candidates: list[dict[str, float]] = []
    for candidate in (recommended, *alternatives):
        if dict(candidate) not in candidates:
            candidates.append(dict(candidate))
    counts = looks_at(replications, cap)
    confidence = 1 - (1 - CONFIDENCE) / (len(candidates) * len(counts))
    runs: list[_Runs] = [([], []) for _ in candidates]
    at_current: list[float] = []
    done = 0
    for count in counts:
        for candidate, (figures, shares) in zip(candidates, runs, strict=True):
            more, more_shares = values(candidate, done, count - done)
            figures.extend(more)
            shares.extend(more_shares)
        at_current.extend(values(current, done, count - done)[0])
        done = count
        best = max(range(len(runs)), key=lambda i: statistics.fmean(runs[i][0]))
        at_recommended, shares = runs[best]
        differences = [a - b for a, b in zip(at_recommended, at_current, strict=True)]
        difference = mean_interval(differences, confidence)
        low, high = difference.low, difference.high
        if low is not None and high is not None and (low > 0 or high < 0):
            break  # clear: no more runs
    significant = difference.low is not None and difference.low > 0
    return Confirmation(
        objective=objective,
        unit=objective_unit(objective, config.economics.currency),
        hours=hours,
        replications=done,
        max_replications=cap,
        looks=len(counts),
        seed=seed,
        recommended=prediction_interval(at_recommended),
        current=prediction_interval(at_current),
        difference=difference,
        confidence=confidence,
        candidates=len(candidates),
        setpoints=candidates[best],
        verdict="change" if significant else "keep",
        planned_share=statistics.fmean(shares) if shares else None,
        current_setpoints=dict(current),
    )


__all__ = [
    "Confirmation",
    "Interval",
    "confirm",
    "current_setpoints",
    "looks_at",
    "mean_interval",
    "objective_unit",
    "prediction_interval",
]
