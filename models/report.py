"""Training report: what a training run found, as files in a directory.

``write_training_report`` describes a defect model on its test parts:
``metrics.json`` (the evaluation, the permutation importances, the tuning
summary and the model card), ``report.md`` for people, ``roc_pr.png`` (ROC and
precision-recall curves, with the oracle's on simulated parts),
``calibration.png`` and ``feature_importance.png``. Permutation importance is
the drop in ROC-AUC when one feature's values are shuffled among the test
parts: measured where the model is used, on parts it never saw, seeded, on a
subsample and with few repeats to stay quick.

The optimizer report (``write_optimizer_report``) is in ``models.optimizer.report``
and the pieces both are written with (``Report``, ``jsonable``, figures) in
``models.report_files``; all three names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.inspection import permutation_importance
from sklearn.metrics import precision_recall_curve, roc_curve
from sklearn.pipeline import Pipeline

from models.dataset.rows import IntArray, PartDataset
from models.defect import DefectEvaluation, defect_scores
from models.optimizer.report import write_optimizer_report
from models.report_files import Report, _figure, _fmt, _save, _table, _write_json, jsonable
from models.tuning import TuningResult, describe_params

TOP_FEATURES = 15


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
    base: Mapping[str, Any] = (card or {}).get("metrics", {}).get("baseline") or {}
    rows = [
        ("test parts", evaluation.parts, "-", "-"),
        (
            "defective",
            f"{evaluation.defects} ({evaluation.defects / evaluation.parts:.1%})",
            "-",
            "-",
        ),
        (
            "ROC-AUC (95% bootstrap interval)",
            _fmt(evaluation.roc_auc)
            + (
                f" [{_fmt(evaluation.roc_auc_low)}, {_fmt(evaluation.roc_auc_high)}]"
                if evaluation.roc_auc_low is not None
                else ""
            ),
            _fmt(base.get("roc_auc")),
            _fmt(evaluation.oracle_roc_auc),
        ),
        (
            "PR-AUC (average precision)",
            _fmt(evaluation.pr_auc),
            _fmt(base.get("pr_auc")),
            _fmt(evaluation.oracle_pr_auc),
        ),
        (
            f"F1 (model at {evaluation.threshold:.3g}, baseline at 0.5)",
            _fmt(evaluation.f1),
            _fmt(base.get("f1")),
            "-",
        ),
    ]
    columns = ("metric", "model", "plain baseline", "oracle")
    text = ["# Defect model report", "", _table(columns, rows), ""]
    if base:
        text.append(
            f"The plain baseline is {base['model']}, fitted on the same training parts and "
            "scored on the same test parts."
        )
        text.append("")
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


__all__ = [
    "Report",
    "feature_importance",
    "jsonable",
    "write_optimizer_report",
    "write_training_report",
]
