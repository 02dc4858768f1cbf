"""The searches and their recommendation, against the brute-forced optimum of the default line.

The ground truth is every lattice point of the default decision space run on
the simulator once per module, on two processes. The searches then read their
evaluations from that table (checked against fresh simulator runs), so that
ten optimiser runs and ten random searches cost no more simulation.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping

import pytest

from models.optimizer.evaluation import (
    OBJECTIVES,
    Constraints,
    Evaluate,
    Evaluation,
    Objective,
    PlantSimulator,
    best_of,
)
from models.optimizer.search import (
    OptimizationResult,
    brute_force,
    flatness,
    optimize,
    random_search,
    ranked_candidates,
    setpoint_commands,
)
from models.optimizer.space import DecisionSpace, decision_space
from twin.config.line import LineConfig, load_config
from twin.sim.plant import Plant

BUDGET = 60
SHARE_OF_OPTIMUM = 0.98
SEEDS = range(5)


@pytest.fixture(scope="module")
def line() -> LineConfig:
    return load_config()


# -- the recommendation as commands ------------------------------------------------------------
def test_the_recommendation_becomes_setpoint_commands_the_plant_accepts(
    line: LineConfig,
) -> None:
    recommendation = {"welding.temperature_c": 80.0, "machining.speed": 1.15}
    commands = setpoint_commands(line, recommendation)
    # In flow order: machining comes before welding.
    assert commands == [
        {"station": "machining", "name": "speed", "value": 1.15},
        {"station": "welding", "name": "temperature_c", "value": 80.0},
    ]
    plant = Plant(line, seed=1)
    for command in commands:
        plant.by_id[command["station"]].set_setpoint(command["name"], command["value"])
    assert plant.by_id["machining"].setpoints["speed"] == 1.15
    assert plant.by_id["welding"].setpoints["temperature_c"] == 80.0


@pytest.mark.parametrize(
    ("setpoints", "message"),
    [
        ({"machining.speed": 2.0}, "outside its range"),
        ({"machining.pressure": 1.0}, "no setpoint"),
        ({"nowhere.speed": 1.0}, "unknown station"),
    ],
)
def test_setpoint_commands_refuse_what_the_plant_would_refuse(
    line: LineConfig, setpoints: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        setpoint_commands(line, setpoints)


# -- the searches on a function with a known maximum --------------------------------------------
def bowl(setpoints: Mapping[str, float]) -> dict[str, float]:
    """A smooth objective whose maximum, 100, lies on the lattice at (1.15, 80)."""
    speed, temperature = setpoints["machining.speed"], setpoints["welding.temperature_c"]
    value = 100.0 - 300.0 * (speed - 1.15) ** 2 - 0.05 * (temperature - 80.0) ** 2
    return {
        "good_per_hour": value,
        "margin_per_hour": 5.0 * value,
        "defect_rate": 0.01,
        "energy_per_good_part_kwh": 1.0,
    }


def test_the_optimizer_finds_a_known_maximum_and_never_repeats_a_point(
    line: LineConfig,
) -> None:
    result = optimize(line, "good_per_hour", budget=25, seed=3, evaluate=bowl)
    assert result.best_setpoints == {"machining.speed": 1.15, "welding.temperature_c": 80.0}
    assert result.best_value == 100.0
    assert result.method == "bayesian"
    assert len(result.trace) == 25
    visited = {tuple(sorted(e.setpoints.items())) for e in result.trace}
    assert len(visited) == 25
    curve = result.best_so_far()
    assert curve == sorted(curve)
    assert curve[-1] == 100.0


def test_random_search_spends_its_budget_on_distinct_points(line: LineConfig) -> None:
    result = random_search(line, "margin_per_hour", budget=40, seed=1, evaluate=bowl)
    assert result.method == "random"
    assert len({tuple(sorted(e.setpoints.items())) for e in result.trace}) == 40
    assert result.best_value == max(e.value("margin_per_hour") for e in result.trace)


def test_a_budget_larger_than_the_lattice_evaluates_it_all(line: LineConfig) -> None:
    space = decision_space(line, [("machining", "speed", 0.15)])
    result = optimize(line, budget=60, seed=0, evaluate=bowl_1d, space=space)
    assert len(result.trace) == space.size
    assert result.best_setpoints == {"machining.speed": 1.15}


def bowl_1d(setpoints: Mapping[str, float]) -> dict[str, float]:
    return bowl({**setpoints, "welding.temperature_c": 80.0})


def full_trace(space: DecisionSpace, evaluate: Evaluate) -> OptimizationResult:
    trace = [Evaluation(setpoints=p, metrics=dict(evaluate(p))) for p in space.points()]
    best, feasible = best_of(trace, "good_per_hour")
    return OptimizationResult(
        objective="good_per_hour",
        method="random",
        constraints=Constraints(),
        trace=tuple(trace),
        best=best,
        feasible=feasible,
    )


def spiked_bowl(setpoints: Mapping[str, float]) -> dict[str, float]:
    """The bowl, plus one lucky evaluation far from its top: a lone point scoring
    above the maximum among neighbours that score poorly."""
    metrics = bowl(setpoints)
    if setpoints == SPIKE:
        metrics = {**metrics, "good_per_hour": 104.0, "margin_per_hour": 520.0}
    return metrics


SPIKE = {"machining.speed": 0.75, "welding.temperature_c": 100.0}


def test_candidates_rank_a_good_neighbourhood_above_a_lone_lucky_point(
    line: LineConfig,
) -> None:
    space = decision_space(line)
    # Every lattice point evaluated: the spike is the raw best.
    result = full_trace(space, spiked_bowl)
    assert result.best_setpoints == SPIKE
    candidates = ranked_candidates(result, space, 3)
    assert len(candidates) == 3
    assert len({tuple(sorted(c.items())) for c in candidates}) == 3
    # The smooth top and its neighbours come first; the lone spike is not among them.
    assert candidates[0] == {"machining.speed": 1.15, "welding.temperature_c": 80.0}
    assert SPIKE not in candidates
    for candidate in candidates:
        assert bowl(candidate)["good_per_hour"] >= bowl(SPIKE)["good_per_hour"]


def test_flatness_tells_a_plateau_from_a_sharp_peak(line: LineConfig) -> None:
    space = decision_space(line)

    def plateau(setpoints: Mapping[str, float]) -> dict[str, float]:
        # The bowl's shape at a fiftieth of its depth: the whole lattice within 2%.
        metrics = bowl(setpoints)
        return {**metrics, "good_per_hour": 100.0 - (100.0 - metrics["good_per_hour"]) / 50}

    sharp = flatness(full_trace(space, bowl), space)
    flat = flatness(full_trace(space, plateau), space)
    truth = [bowl(p)["good_per_hour"] for p in space.points()]
    # The bowl's own share of points within 2 of its top, which the surrogate tracks.
    share = sum(value >= 98.0 for value in truth) / len(truth)
    assert sharp == pytest.approx(share, abs=0.05)
    assert sharp < 0.2
    assert flat > 0.9
    with pytest.raises(ValueError, match="at least 3"):
        flatness(full_trace(decision_space(line, [("machining", "speed", 0.7)]), bowl_1d), space)


def test_candidates_are_feasible_points_and_at_least_one(line: LineConfig) -> None:
    space = decision_space(line)
    result = optimize(
        line,
        "good_per_hour",
        budget=12,
        seed=2,
        evaluate=bowl,
        constraints=Constraints(min_throughput_per_h=90.0),
    )
    candidates = ranked_candidates(result, space, 5)
    assert 1 <= len(candidates) <= 5
    for candidate in candidates:
        assert bowl(candidate)["good_per_hour"] >= 90.0
    with pytest.raises(ValueError, match="count"):
        ranked_candidates(result, space, 0)


def test_an_unknown_objective_is_refused(line: LineConfig) -> None:
    with pytest.raises(ValueError, match="unknown objective"):
        optimize(line, "oee", evaluate=bowl)  # type: ignore[arg-type]


# -- the real plant: ground truth by brute force ------------------------------------------------
class GroundTruth:
    """Every lattice point's metrics, and an ``evaluate`` that reads them."""

    def __init__(self, space: DecisionSpace, evaluations: list[Evaluation]) -> None:
        self.space = space
        self.evaluations = evaluations
        self.table = {self.key(e.setpoints): e.metrics for e in evaluations}
        self.calls = 0

    def key(self, setpoints: Mapping[str, float]) -> tuple[float, ...]:
        return tuple(round(setpoints[key], 9) for key in self.space.keys)

    def __call__(self, setpoints: Mapping[str, float]) -> dict[str, float]:
        self.calls += 1
        return self.table[self.key(setpoints)]

    def optimum(self, objective: Objective, constraints: Constraints | None = None) -> Evaluation:
        best, feasible = best_of(self.evaluations, objective, constraints)
        assert feasible
        return best


@pytest.fixture(scope="module")
def truth(line: LineConfig) -> GroundTruth:
    space = decision_space(line)
    return GroundTruth(space, brute_force(line, space=space, jobs=2))


@pytest.fixture(scope="module")
def searches(
    line: LineConfig, truth: GroundTruth
) -> dict[tuple[Objective, str, int], OptimizationResult]:
    """Both searches, for both objectives and every seed, with the same budget."""
    runs: dict[tuple[Objective, str, int], OptimizationResult] = {}
    for objective in OBJECTIVES:
        for seed in SEEDS:
            for method, search in (("bayesian", optimize), ("random", random_search)):
                calls = truth.calls
                runs[objective, method, seed] = search(
                    line, objective, budget=BUDGET, seed=seed, evaluate=truth, space=truth.space
                )
                assert truth.calls - calls == BUDGET
    return runs


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_ground_truth_is_the_simulator_under_common_random_numbers(
    line: LineConfig, truth: GroundTruth
) -> None:
    assert len(truth.evaluations) == truth.space.size
    simulator = PlantSimulator(line)
    # The default setpoints, and the optimum of each objective, run again here in
    # this process: the same metrics as the brute force on the process pool.
    defaults = {"machining.speed": 1.0, "welding.temperature_c": 85.0}
    points = [defaults] + [truth.optimum(o).setpoints for o in OBJECTIVES]
    for point in points:
        assert simulator(point) == truth.table[truth.key(point)]
    # The optimum lies inside the ranges, not on an edge of the lattice.
    for objective in OBJECTIVES:
        best = truth.optimum(objective).setpoints
        for dimension in truth.space.dimensions:
            assert dimension.values[0] < best[dimension.key] < dimension.values[-1]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_the_optimizer_reaches_98_percent_of_the_true_optimum(
    truth: GroundTruth,
    searches: dict[tuple[Objective, str, int], OptimizationResult],
    objective: Objective,
) -> None:
    optimum = truth.optimum(objective).value(objective)
    for seed in SEEDS:
        result = searches[objective, "bayesian", seed]
        assert len(result.trace) == BUDGET
        assert result.feasible
        assert result.best_value >= SHARE_OF_OPTIMUM * optimum, (seed, result.best_setpoints)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_the_optimizer_beats_random_search_with_the_same_budget(
    searches: dict[tuple[Objective, str, int], OptimizationResult], objective: Objective
) -> None:
    bayesian = [searches[objective, "bayesian", seed].best_value for seed in SEEDS]
    random = [searches[objective, "random", seed].best_value for seed in SEEDS]
    assert statistics.fmean(bayesian) > statistics.fmean(random)
    assert sum(b >= r for b, r in zip(bayesian, random, strict=True)) >= 4


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("objective", "limit", "metric"),
    [
        ("good_per_hour", "max_defect_rate", "defect_rate"),
        # Not energy per good part: on this line the point of the most good parts an
        # hour also spends the least energy on each, so no energy limit binds there.
        ("margin_per_hour", "max_defect_rate", "defect_rate"),
    ],
)
def test_a_binding_constraint_moves_the_recommendation_and_is_respected(
    line: LineConfig, truth: GroundTruth, objective: Objective, limit: str, metric: str
) -> None:
    unconstrained = truth.optimum(objective)
    # A limit the unconstrained optimum breaks: halfway from it to the best any point achieves.
    best_possible = min(e.metrics[metric] for e in truth.evaluations)
    bound = (unconstrained.metrics[metric] + best_possible) / 2
    constraints = Constraints.model_validate({limit: bound})
    optimum = truth.optimum(objective, constraints)
    assert optimum.setpoints != unconstrained.setpoints
    for seed in SEEDS:
        result = optimize(
            line,
            objective,
            budget=BUDGET,
            seed=seed,
            evaluate=truth,
            space=truth.space,
            constraints=constraints,
        )
        assert result.feasible
        assert result.best.metrics[metric] <= bound
        assert result.best_value >= SHARE_OF_OPTIMUM * optimum.value(objective), seed
