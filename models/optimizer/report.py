"""Optimizer report: what a setpoint search found, as files in a directory.

``write_optimizer_report`` describes a setpoint search: ``optimizer.json``,
``optimizer.md``, ``optimizer_trace.png`` (the best value after each
evaluation, against random search and the true optimum when given) and
``response_surface.png``: the optimiser's Gaussian process (``make_surrogate``)
refit on the run's evaluations, its predicted objective over two setpoints,
the evaluated points and the recommendation. A space of more than two setpoints
is shown in the two with the shortest fitted length scales (those the
objective changes fastest along), the others held at the recommendation.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from models.optimizer.evaluation import Evaluation, Objective, best_of, penalised
from models.optimizer.search import OptimizationResult, make_surrogate
from models.optimizer.space import DecisionSpace
from models.report_files import Report, _figure, _fmt, _save, _table, _write_json

NEAR_OPTIMUM = 0.98  # "within 98% of the optimum", as docs/optimizer.md counts
GRID = 60  # surface resolution per setpoint


def _reached(curve: Sequence[float], level: float) -> int | None:
    """The number of evaluations after which ``curve`` first reaches ``level``."""
    return next((index + 1 for index, value in enumerate(curve) if value >= level), None)


def _surface(result: OptimizationResult, space: DecisionSpace) -> dict[str, Any]:
    """The surrogate refit on the run's evaluations, predicted over a grid of (at most)
    two setpoints with the others at the recommendation."""
    trace = list(result.trace)
    surrogate = make_surrogate(len(space.dimensions))
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        surrogate.fit(
            space.to_unit([e.setpoints for e in trace]),
            penalised(trace, result.objective, result.constraints),
        )
        scales = np.atleast_1d(surrogate.kernel_.get_params()["k1__k2__length_scale"])
        lattice = space.points()
        predicted = surrogate.predict(space.to_unit(lattice))
        shown = sorted(np.argsort(scales, kind="stable")[:2].tolist())
        centre = space.to_unit([result.best_setpoints])[0]
        axes_unit = np.linspace(0.0, 1.0, GRID)
        mesh = np.meshgrid(*([axes_unit] * len(shown)), indexing="ij")
        grid = np.tile(centre, (mesh[0].size, 1))
        for position, dimension in enumerate(shown):
            grid[:, dimension] = mesh[position].ravel()
        mean = surrogate.predict(grid).reshape(mesh[0].shape)
    dimensions = [space.dimensions[index] for index in shown]
    keys = [dimension.key for dimension in dimensions]
    limited = any(limit is not None for limit in result.constraints.model_dump().values())
    return {
        "target": "penalised objective" if limited else "objective",
        "kernel": str(surrogate.kernel_),
        "length_scales": dict(zip(space.keys, scales.tolist(), strict=True)),
        "shown": keys,
        "held": {k: v for k, v in result.best_setpoints.items() if k not in keys},
        "predicted_best": lattice[int(np.argmax(predicted))],
        "axes": [min(d.values) + axes_unit * (max(d.values) - min(d.values)) for d in dimensions],
        "mean": mean,
    }


def _plot_trace(path: Path, curves: Mapping[str, Sequence[float]], optimum: float | None) -> Path:
    figure = _figure(7, 4.5)
    axes = figure.subplots()
    for name, curve in curves.items():
        values = [value if math.isfinite(value) else math.nan for value in curve]
        axes.step(range(1, len(values) + 1), values, where="post", label=name)
    if optimum is not None:
        axes.axhline(optimum, color="black", linestyle="--", label="true optimum")
        if optimum > 0:
            axes.axhline(NEAR_OPTIMUM * optimum, color="grey", linestyle=":", label="98%")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(title="Best feasible value so far", xlabel="evaluation", ylabel="objective")
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def _plot_surface(
    path: Path,
    surface: Mapping[str, Any],
    result: OptimizationResult,
    optimum: Evaluation | None,
) -> Path:
    figure = _figure(7, 5.5)
    axes = figure.subplots()
    keys, mean = surface["shown"], surface["mean"]
    evaluated = [[e.setpoints[key] for key in keys] for e in result.trace]
    best = [result.best_setpoints[key] for key in keys]
    if len(keys) == 1:
        axes.plot(surface["axes"][0], mean, label="surrogate mean")
        values = [e.value(result.objective) for e in result.trace]
        axes.scatter([p[0] for p in evaluated], values, s=14, color="black", label="evaluated")
        axes.axvline(best[0], color="red", label="recommendation")
        axes.set(xlabel=keys[0], ylabel=surface["target"])
    else:
        filled = axes.contourf(surface["axes"][0], surface["axes"][1], mean.T, levels=20)
        figure.colorbar(filled, ax=axes, label=f"predicted {surface['target']}")
        xs, ys = zip(*evaluated, strict=True)
        axes.scatter(xs, ys, s=14, color="white", edgecolors="black", label="evaluated")
        marks = [(best, "*", 220, "red", "recommended")]
        if optimum is not None:
            marks.append(([optimum.setpoints[key] for key in keys], "X", 90, "cyan", "optimum"))
        for (x, y), marker, size, color, label in marks:
            axes.scatter(
                [x], [y], s=size, marker=marker, color=color, edgecolors="black", label=label
            )
        axes.set(xlabel=keys[0], ylabel=keys[1])
    axes.set_title(f"Surrogate of {result.objective} ({result.method}, {len(result.trace)} evals)")
    axes.legend(loc="best", fontsize=8)
    return _save(figure, path)


def write_optimizer_report(
    out_dir: str | Path,
    result: OptimizationResult,
    *,
    space: DecisionSpace,
    objective: Objective,
    truth: OptimizationResult | Sequence[Evaluation] | None = None,
    random: OptimizationResult | None = None,
) -> Report:
    """Write the report of a setpoint search into ``out_dir``. ``truth`` is a brute
    force (its evaluations, or a result holding them) and gives the true optimum;
    ``random`` is a random search of the same budget, for comparison."""
    for other in (result, truth, random):
        if isinstance(other, OptimizationResult) and other.objective != objective:
            raise ValueError(f"a result for {other.objective!r} in a report of {objective!r}")
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    curve = result.best_so_far()
    optimum: Evaluation | None = None
    summary: dict[str, Any] = {
        "objective": objective,
        "method": result.method,
        "constraints": result.constraints,
        "feasible": result.feasible,
        "evaluations": len(result.trace),
        "space": {d.key: [min(d.values), max(d.values), len(d.values)] for d in space.dimensions},
        "best": {"setpoints": result.best_setpoints, "value": result.best_value},
        "best_so_far": curve,
    }
    if truth is not None:
        evaluations = truth.trace if isinstance(truth, OptimizationResult) else truth
        optimum, feasible = best_of(evaluations, objective, result.constraints)
        value = optimum.value(objective)
        summary["truth"] = {
            "setpoints": optimum.setpoints,
            "value": value,
            "feasible": feasible,
            "evaluated_points": len(evaluations),
            "share_of_optimum": result.best_value / value if value > 0 else None,
            "evaluations_to_98": _reached(curve, NEAR_OPTIMUM * value) if value > 0 else None,
            "evaluations_to_optimum": _reached(curve, value),
        }
    if random is not None:
        summary["random"] = {
            "setpoints": random.best_setpoints,
            "value": random.best_value,
            "best_so_far": random.best_so_far(),
        }
    surface = _surface(result, space)
    summary["surrogate"] = {k: v for k, v in surface.items() if k not in ("axes", "mean")}
    summary["trace"] = result.trace
    curves: dict[str, Sequence[float]] = {f"{result.method} search": curve}
    if random is not None:
        curves["random search (baseline)"] = random.best_so_far()
    trace_png = _plot_trace(
        directory / "optimizer_trace.png",
        curves,
        None if optimum is None else optimum.value(objective),
    )
    surface_png = _plot_surface(directory / "response_surface.png", surface, result, optimum)
    markdown = directory / "optimizer.md"
    markdown.write_text(_optimizer_markdown(summary), "utf-8")
    files = (_write_json(directory / "optimizer.json", summary), markdown, trace_png, surface_png)
    return Report(directory, files)


def _optimizer_markdown(summary: Mapping[str, Any]) -> str:
    best = summary["best"]
    rows = [(key, f"{value:g}") for key, value in best["setpoints"].items()]
    text = [
        "# Setpoint optimisation report",
        "",
        f"{summary['method']} search of {summary['objective']}, {summary['evaluations']} "
        f"evaluations; best {best['value']:.4g}"
        + ("" if summary["feasible"] else " (**no feasible point found**)"),
        "",
        _table(("setpoint", "recommended"), rows),
        "",
    ]
    truth = summary.get("truth")
    if truth is not None:
        text.append(
            f"True optimum {truth['value']:.4g} at "
            + ", ".join(f"{k} = {v:g}" for k, v in truth["setpoints"].items())
            + f"; the recommendation reaches {_fmt(truth['share_of_optimum'])} of it "
            f"(98% after {truth['evaluations_to_98'] or '-'} evaluations, the optimum after "
            f"{truth['evaluations_to_optimum'] or '-'})."
        )
    if "random" in summary:
        text.append(f"Random search with the same budget: {summary['random']['value']:.4g}.")
    surrogate = summary["surrogate"]
    text += ["", "![Best value so far](optimizer_trace.png)", "", "## Response surface", ""]
    text.append(
        f"The Gaussian process refit on every evaluation, predicting the {surrogate['target']} "
        f"over {' and '.join(surrogate['shown'])}."
    )
    if surrogate["held"]:
        text.append(
            "The other setpoints are held at the recommendation ("
            + ", ".join(f"{k} = {v:g}" for k, v in surrogate["held"].items())
            + "); the two shown have the shortest fitted length scales, and the evaluated "
            "points are drawn where they lie in those two."
        )
    text += ["", "![Response surface](response_surface.png)"]
    return "\n".join(text) + "\n"


__all__ = ["write_optimizer_report"]
