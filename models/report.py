"""Run reports: what a training or an optimisation run found, as files in a directory.

``write_training_report`` describes a defect model on its test parts:
``metrics.json`` (the evaluation, the permutation importances, the tuning
summary and the model card), ``report.md`` for people, ``roc_pr.png`` (ROC and
precision-recall curves, with the oracle's on simulated parts),
``calibration.png`` and ``feature_importance.png``. Permutation importance is
the drop in ROC-AUC when one feature's values are shuffled among the test
parts: measured where the model is used, on parts it never saw, seeded, on a
subsample and with few repeats to stay quick.

``write_optimizer_report`` describes a setpoint search: ``optimizer.json``,
``optimizer.md``, ``optimizer_trace.png`` (the best value after each
evaluation, against random search and the true optimum when given) and
``response_surface.png``: the optimiser's Gaussian process (``make_surrogate``)
refit on the run's evaluations, its predicted objective over two setpoints,
the evaluated points and the recommendation. A space of more than two setpoints
is shown in the two with the shortest fitted length scales (those the
objective changes fastest along), the others held at the recommendation.

Figures are ``matplotlib.figure.Figure`` objects on their own Agg canvas, never
pyplot: no global state, so reports can be written from several threads and
the process's backend is left alone.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from pydantic import BaseModel
from sklearn.exceptions import ConvergenceWarning
from sklearn.inspection import permutation_importance
from sklearn.metrics import precision_recall_curve, roc_curve
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from models.dataset import IntArray, PartDataset
from models.defect import DefectEvaluation, defect_scores
from models.optimizer import (
    DecisionSpace,
    Evaluation,
    Objective,
    OptimizationResult,
    best_of,
    make_surrogate,
    penalised,
)
from models.tuning import TuningResult, describe_params

TOP_FEATURES = 15
NEAR_OPTIMUM = 0.98  # "within 98% of the optimum", as docs/optimizer.md counts
GRID = 60  # surface resolution per setpoint


@dataclass(frozen=True)
class Report:
    """The directory a report was written to and the files written, in order."""

    directory: Path
    files: tuple[Path, ...]

    def path(self, name: str) -> Path:
        for file in self.files:
            if file.name == name:
                return file
        raise KeyError(f"{name!r} is not in the report ({[f.name for f in self.files]})")


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON: numpy to Python, non-finite floats to null, models dumped."""
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump())
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def _write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n", "utf-8")
    return path


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=110)
    return path


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


# -- training ---------------------------------------------------------------------------------
def _importance_rows(test: PartDataset, max_rows: int, random_state: int) -> IntArray:
    """At most ``max_rows`` test rows, drawn with the seed; all of them when the draw
    misses a class (ROC-AUC needs both)."""
    if len(test) > max_rows:
        drawn = np.random.default_rng(random_state).choice(len(test), max_rows, replace=False)
        if len(np.unique(test.defect[drawn])) == 2:
            return np.sort(drawn).astype(np.int64)
    return np.arange(len(test), dtype=np.int64)


def feature_importance(
    model: Pipeline,
    test: PartDataset,
    *,
    random_state: int = 0,
    n_repeats: int = 5,
    max_rows: int = 1000,
) -> list[dict[str, Any]]:
    """Permutation importance (drop in ROC-AUC) per feature on at most ``max_rows`` test
    parts drawn with ``random_state``, most important first."""
    rows = _importance_rows(test, max_rows, random_state)
    found = permutation_importance(
        model,
        test.features[rows],
        test.defect[rows],
        scoring="roc_auc",
        n_repeats=n_repeats,
        random_state=random_state,
    )
    ranked = sorted(
        zip(test.feature_names, found.importances_mean, found.importances_std, strict=True),
        key=lambda item: -item[1],
    )
    return [{"feature": n, "mean": float(m), "std": float(s)} for n, m, s in ranked]


def _plot_curves(path: Path, labels: np.ndarray, curves: Mapping[str, np.ndarray]) -> Path:
    figure = _figure(10, 4.5)
    roc, pr = figure.subplots(1, 2)
    for name, scores in curves.items():
        false_alarms, hits, _ = roc_curve(labels, scores)
        precision, recall, _ = precision_recall_curve(labels, scores)
        roc.plot(false_alarms, hits, label=name)
        pr.plot(recall, precision, label=name, drawstyle="steps-post")
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    pr.axhline(float(labels.mean()), color="grey", linestyle=":", label="chance (defect rate)")
    roc.set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")
    pr.set(title="Precision-recall", xlabel="recall", ylabel="precision", ylim=(0, 1.02))
    for axes in (roc, pr):
        axes.legend(loc="lower right" if axes is roc else "upper right")
        axes.grid(alpha=0.3)
    return _save(figure, path)


def _plot_calibration(path: Path, evaluation: DefectEvaluation) -> Path:
    figure = _figure(5, 4.5)
    axes = figure.subplots()
    scores, rates = (np.array(column) for column in zip(*evaluation.calibration, strict=True))
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="calibrated")
    axes.plot(scores, rates, marker="o", label="model (bins of equally many parts)")
    axes.set(title="Calibration", xlabel="mean score", ylabel="observed defect rate")
    axes.legend(loc="upper left")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def _plot_importance(path: Path, importances: Sequence[Mapping[str, Any]]) -> Path:
    shown = list(importances[:TOP_FEATURES])[::-1]
    figure = _figure(8, 0.32 * len(shown) + 1.4)
    axes = figure.subplots()
    axes.barh(
        [row["feature"] for row in shown],
        [row["mean"] for row in shown],
        xerr=[row["std"] for row in shown],
        color="tab:blue",
    )
    axes.set(title="Permutation importance on the test parts", xlabel="drop in ROC-AUC")
    axes.axvline(0, color="grey", linewidth=0.8)
    axes.tick_params(axis="y", labelsize=8)
    return _save(figure, path)


def _training_markdown(
    evaluation: DefectEvaluation,
    tuning: TuningResult | None,
    importances: Sequence[Mapping[str, Any]],
    card: Mapping[str, Any] | None,
) -> str:
    oracle = evaluation.oracle_roc_auc is not None
    rows = [
        ("test parts", evaluation.parts, "-"),
        ("defective", f"{evaluation.defects} ({evaluation.defects / evaluation.parts:.1%})", "-"),
        ("ROC-AUC", _fmt(evaluation.roc_auc), _fmt(evaluation.oracle_roc_auc)),
        ("PR-AUC (average precision)", _fmt(evaluation.pr_auc), _fmt(evaluation.oracle_pr_auc)),
        (f"F1 at {evaluation.threshold:g}", _fmt(evaluation.f1), "-"),
    ]
    text = ["# Defect model report", "", _table(("metric", "model", "oracle"), rows), ""]
    if oracle:
        text.append(
            f"The model reaches **{evaluation.oracle_ratio:.3f}** of the oracle's ROC-AUC "
            "(the true defect probability: the best any model can do with these features)."
        )
    else:
        text.append("No oracle: these test parts carry no true defect probability.")
    text += ["", "![ROC and precision-recall curves](roc_pr.png)", ""]
    text += ["## Calibration", "", "![Calibration curve](calibration.png)", ""]
    top = [(r["feature"], _fmt(r["mean"], 4), _fmt(r["std"], 4)) for r in importances[:10]]
    text += ["## Feature importance", "", _table(("feature", "drop in ROC-AUC", "sd"), top), ""]
    text += ["![Permutation importance](feature_importance.png)", ""]
    text += ["## Tuning", ""]
    if tuning is None:
        text.append("Not tuned: the model's default parameters.")
    else:
        text.append(
            f"{tuning.search} search, seed {tuning.seed}: {tuning.candidates} candidates, "
            f"{tuning.candidate_evaluations} candidate evaluations on {len(tuning.folds)} "
            f"time-ordered folds (gap {tuning.gap} parts), {tuning.elapsed_s:.1f} s. "
            f"Best mean validation {tuning.scoring}: **{tuning.best_score:.4f}**."
        )
        text += ["", *(f"- {line}" for line in describe_params(tuning.best_params)), ""]
        # Halving scores a surviving candidate again in each round, on more rows.
        rounds = ("round", "share of rows") if tuning.search == "halving" else ()
        ranked = [
            (row["rank"], _fmt(row["mean_test_score"], 4), _fmt(row["std_test_score"], 4))
            + ((row["round"], _fmt(row["share_of_rows"], 2)) if rounds else ())
            + ("; ".join(describe_params(row["params"])),)
            for row in tuning.top
        ]
        text.append(_table(("rank", "mean", "sd", *rounds, "parameters"), ranked))
    if card:
        text += ["", "## Model card", ""]
        text += [
            f"- {key}: {value}"
            for key, value in card.items()
            if isinstance(value, str | int | float | bool)
        ]
        text.append("- the full card is in metrics.json")
    return "\n".join(text) + "\n"


def write_training_report(
    out_dir: str | Path,
    *,
    model: Pipeline,
    test: PartDataset,
    evaluation: DefectEvaluation,
    tuning: TuningResult | None = None,
    card: Mapping[str, Any] | None = None,
    random_state: int = 0,
    importance_repeats: int = 5,
    importance_rows: int = 1000,
) -> Report:
    """Write the training report of ``model`` on its ``test`` parts into ``out_dir``."""
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    importances = feature_importance(
        model,
        test,
        random_state=random_state,
        n_repeats=importance_repeats,
        max_rows=importance_rows,
    )
    curves = {f"model (ROC-AUC {evaluation.roc_auc:.3f})": defect_scores(model, test)}
    if test.oracle_probability is not None:
        curves[f"oracle (ROC-AUC {_fmt(evaluation.oracle_roc_auc)})"] = test.oracle_probability
    files = [
        _plot_curves(directory / "roc_pr.png", test.defect, curves),
        _plot_calibration(directory / "calibration.png", evaluation),
        _plot_importance(directory / "feature_importance.png", importances),
    ]
    metrics = {
        "evaluation": evaluation.as_dict(),
        "test": {
            "parts": len(test),
            "first_left_at_ms": int(test.left_at_ms.min()),
            "last_left_at_ms": int(test.left_at_ms.max()),
        },
        "permutation_importance": {
            "scoring": "roc_auc",
            "n_repeats": importance_repeats,
            "rows": len(_importance_rows(test, importance_rows, random_state)),
            "random_state": random_state,
            "features": importances,
        },
        "tuning": None if tuning is None else tuning.as_dict(),
        "card": card,
    }
    markdown = directory / "report.md"
    markdown.write_text(_training_markdown(evaluation, tuning, importances, card), "utf-8")
    files = [_write_json(directory / "metrics.json", metrics), markdown, *files]
    return Report(directory, tuple(files))


# -- optimisation -----------------------------------------------------------------------------
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


__all__ = [
    "Report",
    "feature_importance",
    "jsonable",
    "write_optimizer_report",
    "write_training_report",
]
