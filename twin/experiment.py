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

from pydantic import BaseModel, ConfigDict

import twin
from twin.config import LineConfig
from twin.plant import Plant
from twin.report import RunReport, plant_report

ProgressCallback = Callable[[float], None]
CONFIDENCE = 0.95

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


class Estimate(BaseModel):
    """Mean over replications with a two-sided confidence interval."""

    model_config = ConfigDict(frozen=True)

    mean: float
    half_width: float | None
    low: float | None
    high: float | None
    stdev: float | None
    n: int


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


def estimate(values: list[float], confidence: float = CONFIDENCE) -> Estimate:
    """Mean and Student-t confidence interval of independent observations."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return Estimate(mean=mean, half_width=None, low=None, high=None, stdev=None, n=n)
    stdev = statistics.stdev(values)
    from scipy import stats  # here: a worker process that only simulates never pays for it

    quantile = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    half = quantile * stdev / math.sqrt(n)
    return Estimate(mean=mean, half_width=half, low=mean - half, high=mean + half, stdev=stdev, n=n)


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
    (``twin.sweep_backends``: a process pool or Dask)."""

    def map(
        self,
        function: Callable[[Any], Any],
        items: Sequence[Any],
        progress: Callable[[Any], None] | None = None,
    ) -> list[Any]: ...


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
) -> ExperimentResult:
    """``replications`` runs with seeds derived from ``seed``; on ``backend`` when
    given (else ``jobs`` local processes); the result does not depend on where."""
    if replications < 1:
        raise ValueError(f"replications must be >= 1 (got {replications})")
    seeds = [replication_seed(seed, index) for index in range(replications)]
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
    summary: dict[str, Estimate] = {}
    for name in SUMMARY_FIELDS:
        values = [value for run in runs if (value := experiment_field(run, name)) is not None]
        if values:
            summary[name] = estimate(values)
    stations: dict[str, dict[str, Estimate]] = {}
    for index, spec in enumerate(config.stations):
        per_station: dict[str, Estimate] = {}
        for name in ("availability", "effectiveness", "oee", "utilisation", "scrap_ratio"):
            values = [
                float(value)
                for run in runs
                if (value := getattr(run.stations[index].kpis, name)) is not None
            ]
            if values:
                per_station[name] = estimate(values)
        stations[spec.id] = per_station
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
