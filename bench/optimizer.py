"""The yield optimizer against the brute-forced lattice and random search, judged on fresh seeds.

1. Brute force: every point of the default decision space (165) evaluated as the
   search evaluates it (``PlantSimulator``: 48 hours, 4 replications, seed 2026,
   common random numbers). That is the function both searches see.
2. The optimizer (``optimize``) and random search (``random_search``), budget 60,
   search seeds 0 to 4, both objectives, reading their evaluations from that
   table: how close each gets to the lattice optimum *of that function*.
3. Fresh seeds: every point either search recommended, the lattice optima and
   the line's default setpoints, run again on seeds no search used
   (``models.optimizer.confirmation.CONFIRMATION_SEED``, the seed the optimizer's own
   confirmation uses), ``--replications`` runs of 48 hours each, paired by seed.
   A recommendation "beats" another only when the 95% confidence interval of
   their paired difference lies above zero; otherwise the two are within noise.
   The spread of one run there gives the evaluation's noise.
4. The setpoints the decision space leaves at their defaults (the speeds of
   cutting, welding and painting): each moved alone over its range in steps of
   0.1, four 96-hour replications a point, good parts per hour against the
   defaults on the same seeds.

The evaluation seeds' figures say how well the search optimises the function it
was given; only the fresh seeds say what a recommendation is worth on the line.

Run: ``.venv/bin/python bench/optimizer.py [--quick]``: about five minutes on
two cores (the brute force two of them); ``--quick`` confirms on 8 replications
instead of 24. Writes ``bench/results/optimizer.json`` and the tables in
docs/optimizer.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Mapping

from _results import emit
from _tables import update

from models.optimizer.confirmation import CONFIRMATION_SEED, OBJECTIVE_FIELD, mean_interval
from models.optimizer.evaluation import (
    EVALUATION_HOURS,
    EVALUATION_REPLICATIONS,
    EVALUATION_SEED,
    Constraints,
    Evaluation,
    Objective,
    PlantSimulator,
    best_of,
)
from models.optimizer.search import brute_force, optimize, random_search
from models.optimizer.space import configure, decision_space
from twin.config.line import load_config
from twin.experiments.experiment import experiment_field, run_experiment

OBJECTIVES: tuple[Objective, ...] = ("good_per_hour", "margin_per_hour")
SEEDS = range(5)
BUDGET = 60
SHARE = 0.98
DEFAULTS = {"machining.speed": 1.0, "welding.temperature_c": 85.0}
OTHER_SPEEDS = ("cutting", "welding", "painting")
OTHERS_HOURS = 96.0
OTHERS_REPLICATIONS = 4


def key(setpoints: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {value:g}" for name, value in sorted(setpoints.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 fresh replications, not 24")
    parser.add_argument("--replications", type=int, default=None, help="fresh runs per point")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    replications = args.replications or (8 if args.quick else 24)
    begun = time.perf_counter()
    line = load_config()
    space = decision_space(line)

    print(f"brute force: {space.size} points on {args.jobs} processes ...", flush=True)
    started = time.perf_counter()
    evaluations = brute_force(line, space=space, jobs=args.jobs)
    brute_s = time.perf_counter() - started
    table = {key(e.setpoints): e.metrics for e in evaluations}

    def lookup(setpoints: Mapping[str, float]) -> dict[str, float]:
        return table[key(setpoints)]

    lattice: dict[str, object] = {}
    optimum: dict[str, Evaluation] = {}
    for objective in OBJECTIVES:
        best, _ = best_of(evaluations, objective, None)
        optimum[objective] = best
        value = best.value(objective)
        lattice[objective] = {
            "optimum": dict(best.setpoints),
            "value": round(value, 2),
            "defaults": round(lookup(DEFAULTS)[objective], 2),
            "defaults_share": round(lookup(DEFAULTS)[objective] / value, 4),
            "within_98": sum(e.value(objective) >= SHARE * value for e in evaluations),
        }

    print("searches on the evaluation seeds ...", flush=True)
    searches: dict[str, list[dict[str, object]]] = {}
    search_cpu: list[float] = []
    recommended: dict[str, Mapping[str, float]] = {key(DEFAULTS): DEFAULTS}
    for objective in OBJECTIVES:
        recommended[key(optimum[objective].setpoints)] = optimum[objective].setpoints
        target = optimum[objective].value(objective)
        runs = []
        for seed in SEEDS:
            for method, search in (("optimizer", optimize), ("random", random_search)):
                started = time.process_time()
                result = search(
                    line, objective, budget=BUDGET, seed=seed, evaluate=lookup, space=space
                )
                if method == "optimizer":  # evaluations are lookups: the search's own cost
                    search_cpu.append(time.process_time() - started)
                curve = result.best_so_far()
                reach = next((i + 1 for i, v in enumerate(curve) if v >= SHARE * target), None)
                recommended[key(result.best_setpoints)] = result.best_setpoints
                runs.append(
                    {
                        "method": method,
                        "seed": seed,
                        "setpoints": result.best_setpoints,
                        "share": round(result.best_value / target, 4),
                        "evaluations_to_98": reach,
                    }
                )
        searches[objective] = runs

    # Constrained: a limit the unconstrained optimum breaks, halfway to the best any point does.
    constrained = []
    for objective, limit, metric in (
        ("good_per_hour", "max_defect_rate", "defect_rate"),
        # Not energy per good part: on this line the point of the most good parts an
        # hour also spends the least energy on each, so no energy limit binds there.
        ("margin_per_hour", "max_defect_rate", "defect_rate"),
    ):
        free = optimum[objective]
        best_possible = min(e.metrics[metric] for e in evaluations)
        bound = (free.metrics[metric] + best_possible) / 2
        constraints = Constraints.model_validate({limit: bound})
        truth, _ = best_of(evaluations, objective, constraints)
        hits = 0
        for seed in SEEDS:
            result = optimize(
                line,
                objective,
                budget=BUDGET,
                seed=seed,
                evaluate=lookup,
                space=space,
                constraints=constraints,
            )
            hits += result.feasible and result.best_setpoints == dict(truth.setpoints)
        constrained.append(
            {
                "objective": objective,
                "limit": limit,
                "bound": round(bound, 4),
                "unconstrained_metric": round(free.metrics[metric], 4),
                "constrained_optimum": dict(truth.setpoints),
                "seeds_at_constrained_optimum": hits,
            }
        )

    print(
        f"fresh seeds: {len(recommended)} points x {replications} runs of "
        f"{EVALUATION_HOURS:g} h ...",
        flush=True,
    )
    fresh: dict[str, dict[str, list[float]]] = {}
    for name, setpoints in recommended.items():
        result = run_experiment(
            configure(line, setpoints),
            hours=EVALUATION_HOURS,
            seed=CONFIRMATION_SEED,
            replications=replications,
            jobs=args.jobs,
        )
        fresh[name] = {
            o: [experiment_field(run, OBJECTIVE_FIELD[o]) or 0.0 for run in result.runs]
            for o in OBJECTIVES
        }
        print(f"  {name}: {statistics.fmean(fresh[name]['good_per_hour']):.2f} good/h", flush=True)

    def paired(a: str, b: str, objective: Objective) -> dict[str, float | str]:
        differences = [x - y for x, y in zip(fresh[a][objective], fresh[b][objective], strict=True)]
        if all(d == 0 for d in differences):
            return {"mean": 0.0, "low": 0.0, "high": 0.0, "verdict": "same point"}
        interval = mean_interval(differences)
        low, high = interval.low or 0.0, interval.high or 0.0  # None only for one replication
        verdict = "better" if low > 0 else "worse" if high < 0 else "within noise"
        return {
            "mean": round(interval.mean, 3),
            "low": round(low, 3),
            "high": round(high, 3),
            "verdict": verdict,
        }

    comparisons: dict[str, list[dict[str, object]]] = {}
    for objective in OBJECTIVES:
        rows = []
        for seed in SEEDS:
            runs = {r["method"]: r for r in searches[objective] if r["seed"] == seed}
            mine = key(runs["optimizer"]["setpoints"])  # type: ignore[arg-type]
            theirs = key(runs["random"]["setpoints"])  # type: ignore[arg-type]
            rows.append(
                {
                    "seed": seed,
                    "against_random": paired(mine, theirs, objective),
                    "against_defaults": paired(mine, key(DEFAULTS), objective),
                }
            )
        comparisons[objective] = rows

    print("the other speeds, one at a time ...", flush=True)
    others_sim = PlantSimulator(line, hours=OTHERS_HOURS, replications=OTHERS_REPLICATIONS)
    others_points: list[dict[str, float]] = [{}]
    for station in OTHER_SPEEDS:
        speed = next(s for s in line.stations if s.id == station).process.speed
        if speed is None:
            raise SystemExit(f"{station} has no speed setpoint")
        steps = round((speed.max - speed.min) / 0.1)
        for i in range(steps + 1):
            value = round(speed.min + i * 0.1, 2)
            if value != speed.default:
                others_points.append({f"{station}.speed": value})
    others_metrics = others_sim.evaluate_many(others_points, jobs=args.jobs)
    base = others_metrics[0]["good_per_hour"]
    others: dict[str, dict[str, float]] = {}
    for point, metrics in zip(others_points[1:], others_metrics[1:], strict=True):
        ((name, value),) = point.items()
        others.setdefault(name, {})[f"{value:g}"] = round(metrics["good_per_hour"] / base - 1, 4)

    points = []
    for name, values in fresh.items():
        entry: dict[str, object] = {"setpoints": dict(recommended[name])}
        for objective in OBJECTIVES:
            interval = mean_interval(values[objective])
            entry[objective] = {
                "mean": round(interval.mean, 2),
                "sd_share": round(statistics.stdev(values[objective]) / interval.mean, 4),
                "half_ci": round((interval.high or interval.mean) - interval.mean, 2),
                "evaluation_seeds": round(lookup(recommended[name])[objective], 2),
            }
        points.append(entry)

    # The noise of a comparison: one run's difference from the defaults on the same
    # seed, as a share of the defaults' mean (the largest over the points).
    at_defaults = fresh[key(DEFAULTS)]
    paired_sd = {
        objective: round(
            max(
                statistics.stdev(
                    [x - y for x, y in zip(values[objective], at_defaults[objective], strict=True)]
                )
                for name, values in fresh.items()
                if name != key(DEFAULTS)
            )
            / statistics.fmean(at_defaults[objective]),
            4,
        )
        for objective in OBJECTIVES
    }

    emit(
        "optimizer",
        {
            "benchmark": "optimizer",
            "evaluation": {
                "hours": EVALUATION_HOURS,
                "replications": EVALUATION_REPLICATIONS,
                "seed": EVALUATION_SEED,
            },
            "lattice_points": space.size,
            "brute_force_s": round(brute_s, 1),
            "evaluation_s": round(brute_s * args.jobs / space.size, 2),
            "search_cpu_s": round(statistics.median(search_cpu), 2),
            "budget": BUDGET,
            "search_seeds": list(SEEDS),
            "lattice": lattice,
            "searches": searches,
            "constrained": constrained,
            "fresh": {
                "seed": CONFIRMATION_SEED,
                "replications": replications,
                "points": points,
                "paired_sd_share": paired_sd,
            },
            "comparisons": comparisons,
            "fresh_pairs": sum(len(rows) for rows in comparisons.values()),
            "fresh_beats_random": sum(
                row["against_random"]["verdict"] == "better"  # type: ignore[index]
                for rows in comparisons.values()
                for row in rows
            ),
            "optimizer_lowest_share": min(
                float(r["share"])  # type: ignore[arg-type]
                for runs in searches.values()
                for r in runs
                if r["method"] == "optimizer"
            ),
            "others": {
                "hours": OTHERS_HOURS,
                "replications": OTHERS_REPLICATIONS,
                "good_per_hour_defaults": round(base, 2),
                "change": others,
            },
            "seconds": round(time.perf_counter() - begun, 1),
        },
        quick=args.quick,
    )
    update("optimizer-lattice", "optimizer-searches", "optimizer-fresh", "optimizer-others")
    return 0


if __name__ == "__main__":
    sys.exit(main())
