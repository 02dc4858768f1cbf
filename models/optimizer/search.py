"""Yield optimisation: search the line's setpoints with the simulator as the plant.

The search chooses points of the decision space (``models.optimizer.space``)
and has each evaluated on the simulated line (``models.optimizer.evaluation``).
The optimiser is a Bayesian sequential design: a Latin hypercube of lattice
points, then a Gaussian process with a Matern kernel and a white-noise term
fitted on every evaluation so far, and at each step the unevaluated lattice
point with the largest expected improvement of the penalised objective.
``random_search`` spends the same budget on uniformly drawn lattice points, as
the baseline; ``brute_force`` evaluates the whole lattice, as the ground truth.
The recommendation is the best feasible evaluation, and ``setpoint_commands``
turns it into the line's commands. See docs/optimizer.md.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any, Literal, TypedDict

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from models.optimizer.evaluation import (
    OBJECTIVES,
    Constraints,
    Evaluate,
    Evaluation,
    Objective,
    PlantSimulator,
    best_of,
    penalised,
)
from models.optimizer.space import DecisionSpace, Setpoints, decision_space
from twin.config.line import LineConfig

Method = Literal["bayesian", "random"]

# The surrogate's hyperparameters are tuned again after this many new points.
RETUNE_EVERY = 5


class SetpointCommand(TypedDict):
    """One setpoint command for the line, as the MQTT command layer will send it."""

    station: str
    name: str
    value: float


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


class OptimizationResult(BaseModel):
    """A search's recommendation and the trace of every evaluation, in order."""

    model_config = ConfigDict(frozen=True)

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


def _smoothed(result: OptimizationResult, space: DecisionSpace) -> tuple[Any, NDArray[np.float64]]:
    """The surrogate fitted on the whole trace, and the trace's points on the unit cube."""
    trace = list(result.trace)
    unit = space.to_unit([evaluation.setpoints for evaluation in trace])
    target = penalised(trace, result.objective, result.constraints)
    surrogate = make_surrogate(len(space.dimensions))
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        surrogate.fit(unit, target)
    return surrogate, unit


def flatness(result: OptimizationResult, space: DecisionSpace, within: float = 0.02) -> float:
    """How flat the optimum is: the share of the lattice whose surrogate mean is within
    ``within`` (a fraction of the best mean's size) of the best. Near 0: a sharp peak,
    where a small drift of a setpoint costs; larger: a plateau, where it does not."""
    if len(result.trace) < 3:
        raise ValueError("flatness needs at least 3 evaluations")
    surrogate, _ = _smoothed(result, space)
    with threadpool_limits(limits=1):
        mean = np.asarray(surrogate.predict(space.to_unit(space.points())), np.float64)
    best = float(np.max(mean))
    return float(np.mean(mean >= best - within * abs(best)))


def ranked_candidates(
    result: OptimizationResult, space: DecisionSpace, count: int = 3
) -> list[Setpoints]:
    """Up to ``count`` evaluated points most likely best, for fresh replications to
    decide between: the feasible evaluations ranked by the surrogate's posterior
    mean of the penalised objective, fitted on the whole trace. The mean pools each
    point with its neighbours and discounts the simulator's noise, so a lone lucky
    evaluation among poor neighbours ranks below a point whose neighbourhood also
    scores well. With no feasible point, the least violating one alone."""
    if count < 1:
        raise ValueError(f"count must be >= 1 (got {count})")
    if not result.feasible:
        return [result.best_setpoints]
    trace = list(result.trace)
    feasible = [
        index
        for index, evaluation in enumerate(trace)
        if result.constraints.violation(evaluation.metrics) == 0
    ]
    if len(trace) < 3:
        ranked = sorted(feasible, key=lambda i: -trace[i].value(result.objective))
    else:
        surrogate, unit = _smoothed(result, space)
        with threadpool_limits(limits=1):
            mean = surrogate.predict(unit[feasible])
        order = np.argsort(-np.asarray(mean), kind="stable")
        ranked = [feasible[int(position)] for position in order]
    chosen: list[Setpoints] = []
    for index in ranked:
        setpoints = dict(trace[index].setpoints)
        if setpoints not in chosen:
            chosen.append(setpoints)
        if len(chosen) == count:
            break
    return chosen


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
