"""Yield optimisation: search the line's setpoints with the simulator as the plant.

The decision is a set of process setpoints (a station's ``speed`` or
``temperature_c``) on a lattice inside their configured ranges. One evaluation
runs the SimPy line with those setpoints as its defaults for a fixed horizon
and a fixed set of seeds (common random numbers), so the objective, good parts
per hour or margin per hour, is a deterministic function of the setpoints and
every candidate is judged on the same luck. Optional constraints (a maximum
defect rate, a minimum throughput, a maximum energy per good part) penalise
the surrogate's target and exclude infeasible points from the recommendation.

The optimiser is a Bayesian sequential design: a Latin hypercube of lattice
points, then a Gaussian process with a Matern kernel and a white-noise term
fitted on every evaluation so far, and at each step the unevaluated lattice
point with the largest expected improvement. ``random_search`` spends the same
budget on uniformly drawn lattice points, as the baseline; ``brute_force``
evaluates the whole lattice, as the ground truth. See docs/optimizer.md.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Literal, TypedDict, get_args

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from twin.config.line import LineConfig, with_changes
from twin.experiments.experiment import ExperimentResult, Mapper, run_experiment

Objective = Literal["good_per_hour", "margin_per_hour"]
OBJECTIVES: tuple[Objective, ...] = get_args(Objective)
Method = Literal["bayesian", "random"]

# Setpoints by "station.name" key, e.g. {"machining.speed": 1.15}.
Setpoints = dict[str, float]
Metrics = dict[str, float]
Evaluate = Callable[[Setpoints], Mapping[str, float]]

# The default decision space of the default line: (station, setpoint, lattice step).
# The bottleneck's speed trades throughput against defects; the welding
# temperature is a quality window. docs/optimizer.md explains why the other
# setpoints stay at their defaults.
DEFAULT_SETPOINTS: tuple[tuple[str, str, float], ...] = (
    ("machining", "speed", 0.05),
    ("welding", "temperature_c", 5.0),
)

# One evaluation: every candidate runs these hours with these seeds.
EVALUATION_HOURS = 48.0
EVALUATION_REPLICATIONS = 4
EVALUATION_SEED = 2026

# A constraint violated by 10% costs the penalised target the objective's largest magnitude.
PENALTY_PER_RELATIVE_VIOLATION = 10.0
MAX_RELATIVE_VIOLATION = 10.0
# The surrogate's hyperparameters are tuned again after this many new points.
RETUNE_EVERY = 5


class SetpointCommand(TypedDict):
    """One setpoint command for the line, as the MQTT command layer will send it."""

    station: str
    name: str
    value: float


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


# -- the decision space -------------------------------------------------------------------
class Dimension(_Frozen):
    """One setpoint of one station and the lattice of values it may take."""

    station: str
    name: str
    values: tuple[float, ...]

    @property
    def key(self) -> str:
        return f"{self.station}.{self.name}"


class DecisionSpace(_Frozen):
    """The setpoints the optimiser chooses, each on its own lattice; a point is one
    value of each."""

    dimensions: tuple[Dimension, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(dimension.key for dimension in self.dimensions)

    @property
    def size(self) -> int:
        return math.prod(len(dimension.values) for dimension in self.dimensions)

    def points(self) -> list[Setpoints]:
        """Every point of the lattice, the last dimension varying fastest."""
        keys = self.keys
        grids = [dimension.values for dimension in self.dimensions]
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grids)]

    def to_unit(self, points: Sequence[Mapping[str, float]]) -> NDArray[np.float64]:
        """Points scaled to the unit cube, dimension by dimension (the surrogate's input)."""
        columns = []
        for dimension in self.dimensions:
            low, high = min(dimension.values), max(dimension.values)
            span = high - low if high > low else 1.0
            columns.append([(point[dimension.key] - low) / span for point in points])
        return np.asarray(columns, dtype=np.float64).T.reshape(len(points), len(columns))


def _lattice(low: float, high: float, step: float) -> tuple[float, ...]:
    count = math.floor((high - low) / step + 1e-9)
    values = [round(low + index * step, 10) for index in range(count + 1)]
    if values[-1] < high - 1e-9:
        values.append(high)
    return tuple(values)


def decision_space(
    config: LineConfig, setpoints: Sequence[tuple[str, str, float]] = DEFAULT_SETPOINTS
) -> DecisionSpace:
    """The lattice of ``(station, setpoint, step)`` within each setpoint's min and max."""
    stations = {station.id: station for station in config.stations}
    dimensions = []
    for station_id, name, step in setpoints:
        station = stations.get(station_id)
        if station is None:
            raise ValueError(f"unknown station {station_id!r}; stations are {list(stations)}")
        limits = {"speed": station.process.speed, "temperature_c": station.process.temperature_c}
        setpoint = limits.get(name)
        if setpoint is None:
            raise ValueError(f"station {station_id!r} has no setpoint {name!r}")
        if not step > 0:
            raise ValueError(f"the lattice step of {station_id}.{name} must be > 0 (got {step})")
        dimensions.append(
            Dimension(
                station=station_id, name=name, values=_lattice(setpoint.min, setpoint.max, step)
            )
        )
    if not dimensions:
        raise ValueError("the decision space needs at least one setpoint")
    return DecisionSpace(dimensions=tuple(dimensions))


def configure(config: LineConfig, setpoints: Mapping[str, float]) -> LineConfig:
    """The line with these setpoints as its defaults (validated against the ranges)."""
    index = {station.id: position for position, station in enumerate(config.stations)}
    changes: dict[str, float] = {}
    for key, value in setpoints.items():
        station, _, name = key.partition(".")
        if station not in index or not name:
            raise ValueError(f"unknown setpoint {key!r}; use 'station.setpoint'")
        changes[f"stations.{index[station]}.process.{name}.default"] = value
    return with_changes(config, changes, source="optimizer setpoints")


def setpoint_commands(
    config: LineConfig, setpoints: Mapping[str, float] | OptimizationResult
) -> list[SetpointCommand]:
    """The line's setpoint commands for a recommendation, in flow order.

    Raises ``ValueError`` for an unknown station or setpoint or a value out of
    its range, before anything is sent.
    """
    chosen = setpoints.best_setpoints if isinstance(setpoints, OptimizationResult) else setpoints
    position = {station.id: index for index, station in enumerate(config.stations)}
    commands: list[SetpointCommand] = []
    for key, value in chosen.items():
        station_id, _, name = key.partition(".")
        if station_id not in position:
            raise ValueError(f"unknown station {station_id!r} in {key!r}")
        process = config.stations[position[station_id]].process
        limits = {"speed": process.speed, "temperature_c": process.temperature_c}.get(name)
        if limits is None:
            raise ValueError(f"station {station_id!r} has no setpoint {name!r}")
        if not limits.min <= value <= limits.max:
            raise ValueError(
                f"{key} = {value:g} is outside its range {limits.min:g} to {limits.max:g}"
            )
        commands.append({"station": station_id, "name": name, "value": float(value)})
    commands.sort(key=lambda command: (position[command["station"]], command["name"]))
    return commands


# -- evaluations ----------------------------------------------------------------------------
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


class Evaluation(_Frozen):
    """One evaluated point: its setpoints and the metrics the plant gave."""

    setpoints: dict[str, float]
    metrics: dict[str, float]

    def value(self, objective: Objective) -> float:
        return self.metrics[objective]


class Constraints(_Frozen):
    """Limits a recommendation must respect; ``None`` leaves a limit off."""

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


class OptimizationResult(_Frozen):
    """A search's recommendation and the trace of every evaluation, in order."""

    objective: Objective
    method: Method
    constraints: Constraints
    trace: tuple[Evaluation, ...]
    best: Evaluation
    feasible: bool

    @property
    def best_setpoints(self) -> Setpoints:
        return dict(self.best.setpoints)

    @property
    def best_value(self) -> float:
        return self.best.value(self.objective)

    def best_so_far(self) -> list[float]:
        """The best feasible objective value after each evaluation (-inf before any)."""
        best, curve = -math.inf, []
        for evaluation in self.trace:
            if self.constraints.violation(evaluation.metrics) == 0:
                best = max(best, evaluation.value(self.objective))
            curve.append(best)
        return curve


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


def _resolve(
    config: LineConfig, space: DecisionSpace | None, evaluate: Evaluate | None
) -> tuple[DecisionSpace, Evaluate]:
    return (
        space if space is not None else decision_space(config),
        evaluate if evaluate is not None else PlantSimulator(config),
    )


def _evaluation(evaluate: Evaluate, setpoints: Setpoints) -> Evaluation:
    return Evaluation(setpoints=dict(setpoints), metrics=dict(evaluate(setpoints)))


def _result(
    trace: list[Evaluation], objective: Objective, method: Method, constraints: Constraints
) -> OptimizationResult:
    best, feasible = best_of(trace, objective, constraints)
    return OptimizationResult(
        objective=objective,
        method=method,
        constraints=constraints,
        trace=tuple(trace),
        best=best,
        feasible=feasible,
    )


def _check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; use one of {', '.join(OBJECTIVES)}")


# -- searches -----------------------------------------------------------------------------------
def brute_force(
    config: LineConfig,
    *,
    space: DecisionSpace | None = None,
    evaluate: Evaluate | None = None,
    jobs: int = 1,
) -> list[Evaluation]:
    """Evaluate every point of the lattice: the ground truth for any objective.

    With the default simulator, ``jobs`` processes share the points.
    """
    space, evaluate = _resolve(config, space, evaluate)
    points = space.points()
    if isinstance(evaluate, PlantSimulator):
        metrics = evaluate.evaluate_many(points, jobs=jobs)
        return [Evaluation(setpoints=p, metrics=m) for p, m in zip(points, metrics, strict=True)]
    return [_evaluation(evaluate, point) for point in points]


def random_search(
    config: LineConfig,
    objective: Objective = "good_per_hour",
    *,
    budget: int = 60,
    seed: int = 0,
    evaluate: Evaluate | None = None,
    space: DecisionSpace | None = None,
    constraints: Constraints | None = None,
) -> OptimizationResult:
    """The baseline: ``budget`` distinct lattice points drawn uniformly at random."""
    _check_objective(objective)
    space, evaluate = _resolve(config, space, evaluate)
    points = space.points()
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(points), size=min(budget, len(points)), replace=False)
    trace = [_evaluation(evaluate, points[int(index)]) for index in chosen]
    return _result(trace, objective, "random", constraints or Constraints())


def make_surrogate(dimensions: int, random_state: int = 0) -> GaussianProcessRegressor:
    """A Gaussian process on the unit cube: Matern 5/2 with one length scale per
    setpoint, plus white noise for the simulator's roughness between neighbours."""
    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(
        length_scale=np.full(dimensions, 0.3), length_scale_bounds=(0.02, 10.0), nu=2.5
    ) + WhiteKernel(noise_level=1e-2, noise_level_bounds=(1e-6, 1.0))
    return GaussianProcessRegressor(
        kernel=kernel, normalize_y=True, n_restarts_optimizer=1, random_state=random_state
    )


def expected_improvement(
    mean: NDArray[np.float64], std: NDArray[np.float64], best: float, xi: float = 0.0
) -> NDArray[np.float64]:
    """E[max(Y - best - xi, 0)] for Y ~ Normal(mean, std), element by element."""
    std = np.maximum(std, 1e-12)
    z = (mean - best - xi) / std
    return np.asarray((mean - best - xi) * norm.cdf(z) + std * norm.pdf(z), np.float64)


def _latin_hypercube(space: DecisionSpace, count: int, rng: np.random.Generator) -> list[int]:
    """Indices of ``count`` distinct lattice points, stratified in every dimension."""
    sizes = [len(dimension.values) for dimension in space.dimensions]
    strides = [math.prod(sizes[position + 1 :]) for position in range(len(sizes))]
    chosen: list[int] = []
    columns = [(rng.permutation(count) + rng.random(count)) / count for _ in sizes]
    for row in range(count):
        index = sum(
            min(int(column[row] * size), size - 1) * stride
            for column, size, stride in zip(columns, sizes, strides, strict=True)
        )
        if index not in chosen:
            chosen.append(index)
    remaining = [index for index in range(space.size) if index not in chosen]
    missing = count - len(chosen)
    if missing > 0:
        chosen.extend(int(i) for i in rng.choice(remaining, size=missing, replace=False))
    return chosen


def optimize(
    config: LineConfig,
    objective: Objective = "good_per_hour",
    *,
    budget: int = 60,
    seed: int = 0,
    evaluate: Evaluate | None = None,
    space: DecisionSpace | None = None,
    constraints: Constraints | None = None,
    initial: int | None = None,
    xi: float = 0.0,
) -> OptimizationResult:
    """Bayesian optimisation of the setpoints with ``budget`` evaluations.

    ``initial`` Latin-hypercube points (default: a sixth of the budget, at least
    one more than the dimensions), then one point at a time: the unevaluated
    lattice point with the largest expected improvement over the best penalised
    value so far, under a Gaussian process fitted on every evaluation.
    """
    _check_objective(objective)
    if budget < 1:
        raise ValueError(f"budget must be >= 1 (got {budget})")
    if initial is not None and initial < 1:
        raise ValueError(f"initial must be >= 1 (got {initial})")
    space, evaluate = _resolve(config, space, evaluate)
    limits = constraints or Constraints()
    points = space.points()
    unit = space.to_unit(points)
    budget = min(budget, len(points))
    dimensions = len(space.dimensions)
    count = initial if initial is not None else max(dimensions + 1, budget // 6)
    rng = np.random.default_rng(seed)
    evaluated = _latin_hypercube(space, min(count, budget), rng)
    trace = [_evaluation(evaluate, points[index]) for index in evaluated]
    surrogate = make_surrogate(dimensions, random_state=seed)
    while len(trace) < budget:
        if hasattr(surrogate, "kernel_"):
            # Start from the last fit: one more point moves the hyperparameters little,
            # so they are tuned again only every few points and kept in between.
            tune = (len(trace) - count) % RETUNE_EVERY == 0
            surrogate.set_params(
                kernel=surrogate.kernel_, optimizer="fmin_l_bfgs_b" if tune else None
            )
        target = penalised(trace, objective, limits)
        open_points = np.setdiff1d(np.arange(len(points)), evaluated)
        # Matrices of tens of rows: BLAS threads only add overhead (10x on a busy machine).
        with threadpool_limits(limits=1), warnings.catch_warnings():
            # Length scales at their bounds are expected early on, with few points.
            warnings.simplefilter("ignore", ConvergenceWarning)
            surrogate.fit(unit[evaluated], target)
            mean, std = surrogate.predict(unit[open_points], return_std=True)
        gain = expected_improvement(mean, std, float(np.max(target)), xi)
        pick = int(np.argmax(gain)) if float(np.max(gain)) > 0 else int(np.argmax(mean + std))
        index = int(open_points[pick])
        evaluated.append(index)
        trace.append(_evaluation(evaluate, points[index]))
    return _result(trace, objective, "bayesian", limits)
