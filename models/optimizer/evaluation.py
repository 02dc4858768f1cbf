"""Evaluating a candidate of the yield optimiser: its replications and its score.

One evaluation runs the SimPy line with the candidate's setpoints as its
defaults (``models.optimizer.space.configure``) for a fixed horizon and a fixed
set of seeds (common random numbers), so the objective, good parts per hour or
margin per hour, is a deterministic function of the setpoints and every
candidate is judged on the same luck. Optional constraints (a maximum defect
rate, a minimum throughput, a maximum energy per good part) score how far a
candidate violates them: the search penalises its surrogate's target by it and
recommends only a feasible point when there is one. See docs/optimizer.md.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Literal, get_args

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from models.optimizer.space import Setpoints, configure
from twin.config.line import LineConfig
from twin.experiments.experiment import ExperimentResult, Mapper, run_experiment

Objective = Literal["good_per_hour", "margin_per_hour"]
OBJECTIVES: tuple[Objective, ...] = get_args(Objective)

Metrics = dict[str, float]
Evaluate = Callable[[Setpoints], Mapping[str, float]]

# One evaluation: every candidate runs these hours with these seeds.
EVALUATION_HOURS = 48.0
EVALUATION_REPLICATIONS = 4
EVALUATION_SEED = 2026

# A constraint violated by 10% costs the penalised target the objective's largest magnitude.
PENALTY_PER_RELATIVE_VIOLATION = 10.0
MAX_RELATIVE_VIOLATION = 10.0


def metrics_of(result: ExperimentResult) -> Metrics:
    """The figures the optimiser uses, as means over the replications.

    The defect rate is the share of produced parts that were not right first time
    (1 - first-pass yield: scrapped or reworked).
    """
    summary = result.summary

    def mean(name: str, missing: float) -> float:
        estimate = summary.get(name)
        return missing if estimate is None else estimate.mean

    return {
        "good_per_hour": mean("throughput_per_h", 0.0),
        "margin_per_hour": mean("margin_per_hour", 0.0),
        "defect_rate": 1.0 - mean("first_pass_yield", 0.0),
        "energy_per_good_part_kwh": mean("energy_per_good_part_kwh", math.inf),
    }


class PlantSimulator:
    """The plant as the objective: the line run with common random numbers.

    Every call simulates ``hours`` (after ``warmup_hours``) ``replications`` times
    with the same seeds (``twin.experiments.experiment.run_experiment``), so equal setpoints
    give equal metrics and every candidate meets the same seeds. ``jobs`` runs
    one evaluation's replications on a process pool; ``evaluate_many`` shares
    points among processes instead.
    """

    def __init__(
        self,
        config: LineConfig,
        *,
        hours: float = EVALUATION_HOURS,
        seed: int = EVALUATION_SEED,
        replications: int = EVALUATION_REPLICATIONS,
        warmup_hours: float = 0.0,
        jobs: int = 1,
        backend: Mapper | None = None,
    ) -> None:
        self.config = config
        self.hours = hours
        self.seed = seed
        self.replications = replications
        self.warmup_hours = warmup_hours
        self.jobs = jobs
        # A process pool or Dask (twin.experiments.sweep_backends) for each call's replications.
        self.backend = backend

    def _run(
        self, setpoints: Mapping[str, float], jobs: int, backend: Mapper | None = None
    ) -> Metrics:
        result = run_experiment(
            configure(self.config, setpoints),
            hours=self.hours,
            seed=self.seed,
            replications=self.replications,
            warmup_hours=self.warmup_hours,
            jobs=jobs,
            backend=backend,
        )
        return metrics_of(result)

    def __call__(self, setpoints: Mapping[str, float]) -> Metrics:
        return self._run(setpoints, self.jobs, self.backend)

    def evaluate_many(self, points: Sequence[Setpoints], *, jobs: int = 1) -> list[Metrics]:
        """Evaluate many points, shared among ``jobs`` processes; the results do not
        depend on ``jobs``."""
        if jobs <= 1 or len(points) < 2:
            return [self._run(point, 1) for point in points]
        chunk = max(1, len(points) // (jobs * 8))
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            return list(pool.map(self._run, points, itertools.repeat(1), chunksize=chunk))


class Evaluation(BaseModel):
    """One evaluated point: its setpoints and the metrics the plant gave."""

    model_config = ConfigDict(frozen=True)

    setpoints: dict[str, float]
    metrics: dict[str, float]

    def value(self, objective: Objective) -> float:
        return self.metrics[objective]


class Constraints(BaseModel):
    """Limits a recommendation must respect; ``None`` leaves a limit off."""

    model_config = ConfigDict(frozen=True)

    max_defect_rate: float | None = None
    min_throughput_per_h: float | None = None
    max_energy_per_good_part_kwh: float | None = None

    def violation(self, metrics: Mapping[str, float]) -> float:
        """Sum of the relative violations (0 when every limit holds), each capped."""
        checks = (
            (self.max_defect_rate, "defect_rate", 1.0),
            (self.min_throughput_per_h, "good_per_hour", -1.0),
            (self.max_energy_per_good_part_kwh, "energy_per_good_part_kwh", 1.0),
        )
        total = 0.0
        for limit, metric, direction in checks:
            if limit is None:
                continue
            excess = (metrics[metric] - limit) * direction
            if excess > 0:
                total += min(excess / max(abs(limit), 1e-9), MAX_RELATIVE_VIOLATION)
        return total


def best_of(
    evaluations: Sequence[Evaluation],
    objective: Objective,
    constraints: Constraints | None = None,
) -> tuple[Evaluation, bool]:
    """The best feasible evaluation (the first one on ties) and whether it is feasible;
    with none feasible, the least violating one."""
    if not evaluations:
        raise ValueError("no evaluations to choose from")
    limits = constraints or Constraints()
    violations = [limits.violation(evaluation.metrics) for evaluation in evaluations]
    feasible = [e for e, v in zip(evaluations, violations, strict=True) if v == 0]
    if feasible:
        return max(feasible, key=lambda evaluation: evaluation.value(objective)), True
    least = min(
        zip(evaluations, violations, strict=True),
        key=lambda pair: (pair[1], -pair[0].value(objective)),
    )
    return least[0], False


def penalised(
    evaluations: Sequence[Evaluation], objective: Objective, constraints: Constraints
) -> NDArray[np.float64]:
    """The surrogate's target: the objective minus a penalty for violated limits.

    The penalty is in the objective's own scale (its largest magnitude so far),
    so that it means the same for parts per hour and for money per hour.
    """
    values = np.array([evaluation.value(objective) for evaluation in evaluations])
    violations = np.array([constraints.violation(evaluation.metrics) for evaluation in evaluations])
    scale = float(np.max(np.abs(values))) or 1.0
    return np.asarray(values - PENALTY_PER_RELATIVE_VIOLATION * scale * violations, np.float64)
