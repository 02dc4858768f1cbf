"""Sweeps: a design of experiments run with replications, summarised per point.

A sweep runs every design point of a spec (``twin.experiments.doe``) ``replications``
times. Each run is one task: design point i, replication r, and a seed that
comes from (seed, i, r) alone, hashed as ``twin.experiments.experiment`` does for its
replications. No seed depends on which worker ran a task or when, so a sweep
gives the same numbers, to the last bit, on one process, on a process pool of
any size, or on a Dask cluster (``twin.experiments.sweep_backends``). Results are put back
in (i, r) order before anything is summarised.

Per design point, each KPI is reported as its mean over the replications with
a Student-t confidence interval (``twin.experiments.experiment.estimate``). The Pareto
front is the set of design points that no other point beats on all three of
throughput (more is better), WIP (less) and yield (more) at once, on the means.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

import twin
from twin.config.line import LineConfig
from twin.experiments.doe import DesignConfigs, DesignPoint, SweepSpec, design_points
from twin.experiments.experiment import (
    SUMMARY_FIELDS,
    Estimate,
    Mapper,
    estimate,
    experiment_field,
    run_once,
    value_range,
)

# The KPIs the CSV, the Markdown table and the command line show, in order.
KEY_KPIS: tuple[str, ...] = (
    "throughput_per_h",
    "mean_wip",
    "cycle_time_s",
    "yield_ratio",
    "oee",
    "scrap_ratio",
    "cost_per_good_part",
)
# The Pareto objectives: KPI and whether more is better.
PARETO_OBJECTIVES: tuple[tuple[str, bool], ...] = (
    ("throughput_per_h", True),
    ("mean_wip", False),
    ("yield_ratio", True),
)


@dataclass(frozen=True)
class RunTask:
    """One simulation run of a sweep: everything a worker needs, nothing it may vary."""

    point: int
    replication: int
    seed: int
    config: LineConfig
    hours: float
    warmup_hours: float


class RunResult(BaseModel):
    """What one run measured: the KPIs of ``twin.experiments.experiment.SUMMARY_FIELDS``."""

    model_config = ConfigDict(frozen=True)

    point: int
    replication: int
    seed: int
    kpis: dict[str, float | None]
    littles_law_holds: bool


class PointSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    values: dict[str, int | float | str]
    config_hash: str
    kpis: dict[str, Estimate]
    pareto: bool


class SweepResult(BaseModel):
    """A sweep's outcome; it depends on the spec and the line, never on the backend."""

    model_config = ConfigDict(frozen=True)

    version: str
    line: str
    config_hash: str
    spec: SweepSpec
    points: list[PointSummary]
    pareto: list[int]
    runs: list[RunResult]


ProgressCallback = Callable[[RunResult], None]


class Backend(Mapper, Protocol):
    """Runs tasks somewhere and returns their results in (point, replication) order
    (``run``), or any importable function over items in their order (``map``).

    ``progress`` is called in the caller's thread as each result comes back. On
    any exception, KeyboardInterrupt included, the backend stops its workers
    before the exception propagates.
    """

    def run(
        self, tasks: Sequence[RunTask], progress: ProgressCallback | None = None
    ) -> list[RunResult]: ...

    def session(self) -> AbstractContextManager[Any]:
        """Keep the workers between calls inside (many small ``map`` calls)."""
        ...


def run_seed(seed: int, point: int, replication: int) -> int:
    """The seed of run (point, replication): a hash of the three numbers."""
    digest = hashlib.sha256(f"factory-twin/sweep/{seed}/{point}/{replication}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def run_task(task: RunTask) -> RunResult:
    """Simulate one task; a module-level function, so that workers can import it."""
    report = run_once(task.config, hours=task.hours, seed=task.seed, warmup_hours=task.warmup_hours)
    return RunResult(
        point=task.point,
        replication=task.replication,
        seed=task.seed,
        kpis={name: experiment_field(report, name) for name in SUMMARY_FIELDS},
        littles_law_holds=report.littles_law.holds,
    )


def in_order(results: Sequence[RunResult], tasks: Sequence[RunTask]) -> list[RunResult]:
    """Results sorted by (point, replication), checked against the tasks."""
    ordered = sorted(results, key=lambda result: (result.point, result.replication))
    expected = sorted((task.point, task.replication) for task in tasks)
    if [(result.point, result.replication) for result in ordered] != expected:
        raise RuntimeError(f"the backend returned {len(results)} results for {len(tasks)} tasks")
    return ordered


class SerialBackend:
    """Every task in this process, one after the other: for debugging and tiny sweeps."""

    def run(
        self, tasks: Sequence[RunTask], progress: ProgressCallback | None = None
    ) -> list[RunResult]:
        results = []
        for task in tasks:
            result = run_task(task)
            results.append(result)
            if progress is not None:
                progress(result)
        return in_order(results, tasks)


@dataclass(frozen=True)
class Plan:
    """A sweep ready to run: its design points, their configs and the run tasks."""

    spec: SweepSpec
    config: LineConfig
    points: list[DesignPoint]
    configs: list[LineConfig]
    tasks: list[RunTask]


def plan_sweep(spec: SweepSpec, config: LineConfig) -> Plan:
    """Check every factor and design point against the line, and list the runs.

    Raises ``SweepSpecError`` naming the factor or design point that does not fit.
    """
    resolved = DesignConfigs(spec, config)
    points = design_points(spec)
    configs = [resolved.config(point) for point in points]
    tasks = [
        RunTask(
            point=point.index,
            replication=replication,
            seed=run_seed(spec.seed, 0 if spec.common_random_numbers else point.index, replication),
            config=point_config,
            hours=spec.hours,
            warmup_hours=spec.warmup_hours,
        )
        for point, point_config in zip(points, configs, strict=True)
        for replication in range(spec.replications)
    ]
    return Plan(spec=spec, config=config, points=points, configs=configs, tasks=tasks)


def pareto_front(
    objectives: Sequence[Sequence[float | None]], maximise: Sequence[bool]
) -> list[int]:
    """Indices of the rows that no other row dominates, in their order.

    Row a dominates row b when a is at least as good on every objective and
    strictly better on one. A missing or non-finite value counts as the worst.
    Equal rows do not dominate each other, so both stay on the front.
    """
    worst = -math.inf

    def oriented(row: Sequence[float | None]) -> list[float]:
        return [
            worst if value is None or not math.isfinite(value) else (value if up else -value)
            for value, up in zip(row, maximise, strict=True)
        ]

    rows = [oriented(row) for row in objectives]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b, strict=True)) and any(
            x > y for x, y in zip(a, b, strict=True)
        )

    return [
        index
        for index, row in enumerate(rows)
        if not any(dominates(other, row) for other in rows if other is not row)
    ]


def summarise(plan: Plan, runs: Sequence[RunResult]) -> SweepResult:
    """Per-point estimates, the Pareto front and the runs, from results in (i, r) order."""
    spec = plan.spec
    by_point: list[list[RunResult]] = [[] for _ in plan.points]
    for run in runs:
        by_point[run.point].append(run)
    estimates: list[dict[str, Estimate]] = []
    for point_runs in by_point:
        kpis: dict[str, Estimate] = {}
        for name in SUMMARY_FIELDS:
            values = [value for run in point_runs if (value := run.kpis.get(name)) is not None]
            if values:
                kpis[name] = estimate(values, spec.confidence, value_range(name))
        estimates.append(kpis)
    front = pareto_front(
        [
            [kpis[name].mean if name in kpis else None for name, _ in PARETO_OBJECTIVES]
            for kpis in estimates
        ],
        [up for _, up in PARETO_OBJECTIVES],
    )
    points = [
        PointSummary(
            index=point.index,
            values=point.values,
            config_hash=config.config_hash(),
            kpis=kpis,
            pareto=point.index in front,
        )
        for point, config, kpis in zip(plan.points, plan.configs, estimates, strict=True)
    ]
    return SweepResult(
        version=twin.__version__,
        line=plan.config.line.id,
        config_hash=plan.config.config_hash(),
        spec=spec,
        points=points,
        pareto=front,
        runs=list(runs),
    )


def run_sweep(
    spec: SweepSpec,
    config: LineConfig,
    backend: Backend | None = None,
    progress: ProgressCallback | None = None,
) -> SweepResult:
    """Plan, run (in this process unless a backend is given) and summarise a sweep."""
    plan = plan_sweep(spec, config)
    runs = (backend or SerialBackend()).run(plan.tasks, progress)
    return summarise(plan, in_order(runs, plan.tasks))


__all__ = [
    "KEY_KPIS",
    "PARETO_OBJECTIVES",
    "Backend",
    "Plan",
    "PointSummary",
    "ProgressCallback",
    "RunResult",
    "RunTask",
    "SerialBackend",
    "SweepResult",
    "in_order",
    "pareto_front",
    "plan_sweep",
    "run_seed",
    "run_sweep",
    "run_task",
    "summarise",
]
