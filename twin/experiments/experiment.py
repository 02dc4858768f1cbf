"""Experiments: seeded runs, warm-up deletion and independent replications.

A run simulates ``warmup_hours + hours``, forgets what it measured during the
warm-up, and reports the rest. An experiment runs N independent replications
and reports each KPI's mean with a Student-t 95% confidence interval over the
replications. Replication 0 uses the seed itself, so one replication equals a
plain seeded run; the others use seeds derived from it by hashing.

Every result records what is needed to reproduce it: the resolved config, its
hash, the package version and the seeds. Replications can run on a local
process pool (``jobs``); the results do not depend on it.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

import twin
from twin.config.line import LineConfig
from twin.sim.plant import Plant
from twin.sim.report import RunReport, plant_report

ProgressCallback = Callable[[float], None]
CONFIDENCE = 0.95
# Ratios live in [0, 1]: a confidence interval of one is clipped to that range.
RATIO_RANGE = (0.0, 1.0)
# Every KPI that is a share of something (time, parts), by name.
RATIO_KPIS = frozenset(
    {
        "oee",
        "availability",
        "effectiveness",
        "quality_ratio",
        "nee",
        "yield_ratio",
        "first_pass_yield",
        "scrap_ratio",
        "utilisation",
    }
)


# A ratio above 1 is reported as measured, never capped, and marked with this note.
ABOVE_ONE_MARK = "▲"
ABOVE_ONE_NOTE = (
    f"{ABOVE_ONE_MARK} above 100%: shown as measured. The planned runtime per unit (PRU) is "
    "the rated, fastest cycle, so only chance puts a ratio there: processing times vary "
    "around their mean, and over few parts they can run short (docs/kpis.md)."
)


# Every KPI that counts or measures something, so never falls below zero: parts,
# hours, rates, WIP, times, costs and energy (a margin can be negative).
NONNEGATIVE_KPIS = frozenset(
    {
        "good_parts",
        "scrap_parts",
        "planned_production_h",
        "throughput_per_h",
        "throughput_per_planned_h",
        "mean_wip",
        "cycle_time_s",
        "time_in_system_s",
        "exit_rate_per_s",
        "cost_per_good_part",
        "energy_per_good_part_kwh",
    }
)
NONNEGATIVE_RANGE = (0.0, math.inf)


def kpi_range(name: str) -> tuple[float, float] | None:
    """The range a ratio KPI's true value lies in ([0, 1]); None for other KPIs."""
    return RATIO_RANGE if name in RATIO_KPIS else None


def value_range(name: str) -> tuple[float, float] | None:
    """The range a KPI's value lies in, to clip its intervals to: [0, 1] for a
    ratio, [0, inf) for a count, rate, time or cost; None when it has none.

    A t interval over few replications is wide, and a part count of 28 with a
    spread of 20 gave a prediction interval of [-148, 204] parts: the low end
    says nothing the line can do."""
    if name in RATIO_KPIS:
        return RATIO_RANGE
    return NONNEGATIVE_RANGE if name in NONNEGATIVE_KPIS else None


# The figures summarised over replications, by their path in a RunReport.
SUMMARY_FIELDS: dict[str, tuple[str, ...]] = {
    "oee": ("line_kpis", "oee"),
    "availability": ("line_kpis", "availability"),
    "effectiveness": ("line_kpis", "effectiveness"),
    "quality_ratio": ("line_kpis", "quality_ratio"),
    "nee": ("line_kpis", "nee"),
    "throughput_per_h": ("line_kpis", "throughput_per_h"),
    "yield_ratio": ("line_kpis", "yield_ratio"),
    "first_pass_yield": ("line_kpis", "first_pass_yield"),
    "scrap_ratio": ("line_kpis", "scrap_ratio"),
    "mean_wip": ("line_kpis", "mean_wip"),
    "cycle_time_s": ("line_kpis", "cycle_time_s"),
    "time_in_system_s": ("littles_law", "mean_time_in_system_s"),
    "exit_rate_per_s": ("littles_law", "exit_rate_per_s"),
    "cost_per_good_part": ("economics", "cost_per_good_part"),
    "energy_per_good_part_kwh": ("economics", "energy_per_good_part_kwh"),
    "margin_per_hour": ("economics", "margin_per_hour"),
}

# The station KPIs summarised over replications.
STATION_SUMMARY_FIELDS = ("availability", "effectiveness", "oee", "utilisation", "scrap_ratio")


class Estimate(BaseModel):
    """Mean over replications with a two-sided confidence interval.

    ``half_width`` is the Student-t half-width; ``low`` and ``high`` are the
    interval, clipped to the KPI's range when it has one (a ratio's true value
    lies in [0, 1], so the interval never claims more). The mean is never
    clipped: a mean above 1 is shown as it is.
    """

    model_config = ConfigDict(frozen=True)

    mean: float
    half_width: float | None
    low: float | None
    high: float | None
    stdev: float | None
    n: int
    prediction_low: float | None = Field(
        default=None,
        description="95% prediction interval: where one more run falls, "
        "mean -+ t * s * sqrt(1 + 1/n), clipped like the interval. What a forecast "
        "says the line will do; low and high are the interval of the mean.",
    )
    prediction_high: float | None = None

    @property
    def clipped(self) -> bool:
        """Whether the interval was clipped to the KPI's range."""
        if self.half_width is None or self.low is None or self.high is None:
            return False
        gap = abs((self.high - self.low) - 2 * self.half_width)
        return gap > 1e-9 * max(1.0, abs(self.mean))


def interval_text(found: Estimate, scale: float = 1.0, unit: str = "", digits: int = 1) -> str:
    """How reports print an interval: `` ± half-width``, or `` (low-high)`` when it
    was clipped to its range; empty for a single replication."""
    if found.half_width is None or found.low is None or found.high is None:
        return ""
    if found.clipped:
        return f" ({found.low * scale:,.{digits}f}-{found.high * scale:,.{digits}f}{unit})"
    return f" ± {found.half_width * scale:,.{digits}f}{unit}"


class ExperimentResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: str
    config_hash: str
    config: dict[str, Any]
    seed: int
    hours: float
    warmup_hours: float
    replications: int
    confidence: float
    replication_seeds: list[int]
    summary: dict[str, Estimate]
    stations: dict[str, dict[str, Estimate]]
    runs: list[RunReport]


def replication_seed(seed: int, index: int) -> int:
    if index == 0:
        return seed
    digest = hashlib.sha256(f"factory-twin/{seed}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def estimate(
    values: list[float],
    confidence: float = CONFIDENCE,
    bounds: tuple[float, float] | None = None,
) -> Estimate:
    """Mean and Student-t confidence interval of independent observations; the
    interval is clipped to ``bounds`` (the range of the true value) when given."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return Estimate(mean=mean, half_width=None, low=None, high=None, stdev=None, n=n)
    stdev = statistics.stdev(values)
    from scipy import stats  # here: a worker process that only simulates never pays for it

    quantile = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    half = quantile * stdev / math.sqrt(n)
    spread = quantile * stdev * math.sqrt(1 + 1 / n)

    def clip(low: float, high: float) -> tuple[float, float]:
        if bounds is None:
            return low, high
        floor, ceiling = bounds
        return min(max(low, floor), ceiling), max(min(high, ceiling), floor)

    low, high = clip(mean - half, mean + half)
    predict_low, predict_high = clip(mean - spread, mean + spread)
    return Estimate(
        mean=mean,
        half_width=half,
        low=low,
        high=high,
        stdev=stdev,
        n=n,
        prediction_low=predict_low,
        prediction_high=predict_high,
    )


def run_once(
    config: LineConfig,
    *,
    hours: float,
    seed: int,
    warmup_hours: float = 0.0,
    progress: ProgressCallback | None = None,
    steps: int = 50,
) -> RunReport:
    """Simulate warm-up plus ``hours`` as fast as possible; report after the warm-up."""
    if not hours > 0:
        raise ValueError(f"hours must be > 0 (got {hours})")
    if warmup_hours < 0:
        raise ValueError(f"warmup_hours must be >= 0 (got {warmup_hours})")
    plant = Plant(config, seed=seed)
    warmup = warmup_hours * 3600.0
    end = warmup + hours * 3600.0
    if warmup > 0:
        plant.run(until=warmup)
        plant.reset_statistics()
    if progress is None:
        plant.run(until=end)
    else:
        for step in range(1, steps + 1):
            plant.run(until=warmup + (end - warmup) * step / steps)
            progress(step / steps)
    return plant_report(plant, seed=seed, hours=hours, warmup_hours=warmup_hours)


def _scaled(progress: ProgressCallback | None, index: int, total: int) -> ProgressCallback | None:
    """Progress of replication ``index`` as a share of the whole experiment."""
    if progress is None:
        return None
    outer = progress

    def inner(fraction: float) -> None:
        outer((index + fraction) / total)

    return inner


def experiment_field(report: RunReport, name: str) -> float | None:
    """One of the SUMMARY_FIELDS of one run."""
    value: Any = report
    for part in SUMMARY_FIELDS[name]:
        value = getattr(value, part)
    return None if value is None else float(value)


def _run_job(job: tuple[LineConfig, float, int, float]) -> RunReport:
    config, hours, seed, warmup_hours = job
    return run_once(config, hours=hours, seed=seed, warmup_hours=warmup_hours)


class Mapper(Protocol):
    """Runs an importable function over items elsewhere, results in order
    (``twin.experiments.sweep_backends``: a process pool or Dask)."""

    def map(
        self,
        function: Callable[[Any], Any],
        items: Sequence[Any],
        progress: Callable[[Any], None] | None = None,
    ) -> list[Any]: ...


def summarise_runs(
    config: LineConfig, runs: Sequence[RunReport]
) -> tuple[dict[str, Estimate], dict[str, dict[str, Estimate]]]:
    """Each KPI's estimate over the runs (replications): the line's, and each station's."""
    summary: dict[str, Estimate] = {}
    for name in SUMMARY_FIELDS:
        values = [value for run in runs if (value := experiment_field(run, name)) is not None]
        if values:
            summary[name] = estimate(values, bounds=value_range(name))
    stations: dict[str, dict[str, Estimate]] = {}
    for index, spec in enumerate(config.stations):
        per_station: dict[str, Estimate] = {}
        for name in STATION_SUMMARY_FIELDS:
            values = [
                float(value)
                for run in runs
                if (value := getattr(run.stations[index].kpis, name)) is not None
            ]
            if values:
                per_station[name] = estimate(values, bounds=value_range(name))
        stations[spec.id] = per_station
    return summary, stations


def run_experiment(
    config: LineConfig,
    *,
    hours: float,
    seed: int,
    replications: int = 1,
    warmup_hours: float = 0.0,
    jobs: int = 1,
    progress: ProgressCallback | None = None,
    backend: Mapper | None = None,
    first_replication: int = 0,
) -> ExperimentResult:
    """``replications`` runs with seeds derived from ``seed``; on ``backend`` when
    given (else ``jobs`` local processes); the result does not depend on where.
    ``first_replication`` skips that many of the seeds: a run that goes on where an
    earlier one of the same seed stopped."""
    if replications < 1:
        raise ValueError(f"replications must be >= 1 (got {replications})")
    if first_replication < 0:
        raise ValueError(f"first_replication must be >= 0 (got {first_replication})")
    seeds = [
        replication_seed(seed, index)
        for index in range(first_replication, first_replication + replications)
    ]
    runs: list[RunReport] = []
    if backend is not None:
        runs = backend.map(_run_job, [(config, hours, s, warmup_hours) for s in seeds])
    elif jobs > 1 and replications > 1:
        with ProcessPoolExecutor(max_workers=min(jobs, replications)) as pool:
            work = [(config, hours, s, warmup_hours) for s in seeds]
            for done, report in enumerate(pool.map(_run_job, work), start=1):
                runs.append(report)
                if progress is not None:
                    progress(done / replications)
    else:
        for index, run_seed in enumerate(seeds):
            runs.append(
                run_once(
                    config,
                    hours=hours,
                    seed=run_seed,
                    warmup_hours=warmup_hours,
                    progress=_scaled(progress, index, replications),
                )
            )
    summary, stations = summarise_runs(config, runs)
    return ExperimentResult(
        version=twin.__version__,
        config_hash=config.config_hash(),
        config=config.model_dump(mode="json"),
        seed=seed,
        hours=hours,
        warmup_hours=warmup_hours,
        replications=replications,
        confidence=CONFIDENCE,
        replication_seeds=seeds,
        summary=summary,
        stations=stations,
        runs=runs,
    )
