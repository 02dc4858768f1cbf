"""Run reports: the files are written, the numbers agree with the data, the images are images.

The training report runs once on a short simulation of the default line (real
columns, the oracle) and once on synthetic parts whose informative features
are known. The optimiser report runs the real searches on a cheap smooth
objective over the default decision space, whose optimum the test computes
itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from models.dataset.parts import from_simulation
from models.dataset.rows import PartDataset
from models.defect import DefectEvaluation, defect_scores, evaluate, make_defect_model
from models.optimizer.evaluation import Constraints, Evaluation
from models.optimizer.search import OptimizationResult, brute_force, optimize, random_search
from models.optimizer.space import DecisionSpace, decision_space
from models.report import (
    Report,
    feature_importance,
    jsonable,
    write_optimizer_report,
    write_training_report,
)
from models.tuning import tune_defect_model
from twin.config.line import LineConfig, load_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TRAINING_FILES = ["metrics.json", "report.md", "roc_pr.png", "calibration.png"]
TRAINING_FILES.append("feature_importance.png")
OPTIMIZER_FILES = ["optimizer.json", "optimizer.md", "optimizer_trace.png", "response_surface.png"]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield


def _strict_json(path: Path) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{path.name} holds {constant}, which is not JSON")

    return json.loads(path.read_text("utf-8"), parse_constant=refuse)


def _check_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > 10_000
    pixels = imread(path)
    assert pixels.shape[0] > 200
    assert pixels.shape[1] > 200
    assert float(np.std(pixels[..., :3])) > 0.05  # not a blank canvas


def _check_files(report: Report, names: list[str], directory: Path) -> None:
    assert report.directory == directory
    assert [file.name for file in report.files] == names
    for file in report.files:
        assert file.parent == directory
        assert file.is_file()
        if file.suffix == ".png":
            _check_png(file)
    text = report.path(names[1]).read_text("utf-8")
    for name in names:
        if name.endswith(".png"):
            assert f"({name})" in text  # the markdown links every image


# -- training ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def simulated() -> tuple[Pipeline, PartDataset, DefectEvaluation]:
    parts = from_simulation(load_config(), hours=48, seed=5, explore_every_s=900.0)
    train, test = parts.time_split(0.3)
    with threadpool_limits(limits=1):
        # Few iterations and bins: class weights make the binning slow (weighted quantiles).
        model = make_defect_model(max_iter=40, max_bins=63).fit(train.features, train.defect)
    return model, test, evaluate(model, test)


def synthetic_parts(rows: int, seed: int) -> PartDataset:
    """A speed and a temperature with a quality window, a noise column, a constant one."""
    rng = np.random.default_rng(seed)
    speed = rng.choice(np.round(np.linspace(0.7, 1.4, 15), 2), rows)
    temperature = rng.choice(np.arange(60.0, 111.0, 5.0), rows)
    logit = -1.5 + 25 * (speed - 1.05) ** 2 + 0.004 * (temperature - 85) ** 2
    return PartDataset(
        ("machining__speed", "welding__temperature_c", "painting__noise", "cutting__wear"),
        np.column_stack([speed, temperature, np.round(rng.random(rows), 2), np.zeros(rows)]),
        (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64),
        np.full(rows, "", dtype=np.str_),
        np.arange(rows, dtype=np.int64),
        (np.arange(rows) * 60_000).astype(np.int64),
        None,
    )


def test_training_report_on_a_simulated_run(
    simulated: tuple[Pipeline, PartDataset, DefectEvaluation], tmp_path: Path
) -> None:
    model, test, evaluation = simulated
    report = write_training_report(
        tmp_path,
        model=model,
        test=test,
        evaluation=evaluation,
        tuning=None,
        card=None,
        importance_repeats=2,
    )
    _check_files(report, TRAINING_FILES, tmp_path)
    metrics = _strict_json(report.path("metrics.json"))
    scores = defect_scores(model, test)
    assert metrics["evaluation"]["roc_auc"] == pytest.approx(roc_auc_score(test.defect, scores))
    assert test.oracle_probability is not None
    oracle = roc_auc_score(test.defect, test.oracle_probability)
    assert metrics["evaluation"]["oracle_roc_auc"] == pytest.approx(oracle)
    assert metrics["tuning"] is None
    assert metrics["test"]["parts"] == len(test)
    assert metrics["permutation_importance"]["n_repeats"] == 2
    importances = metrics["permutation_importance"]["features"]
    assert sorted(row["feature"] for row in importances) == sorted(test.feature_names)
    means = [row["mean"] for row in importances]
    assert means == sorted(means, reverse=True)
    assert means[0] > 0.01  # something matters
    # Shuffling a column that never varies changes nothing: exactly zero.
    constant = {
        n
        for n, col in zip(test.feature_names, test.features.T, strict=True)
        if np.all(col == col[0])
    }
    assert constant  # stations without a tool report wear 0
    for row in importances:
        if row["feature"] in constant:
            assert row["mean"] == 0
            assert row["std"] == 0
    text = report.path("report.md").read_text("utf-8")
    assert f"{evaluation.roc_auc:.3f}" in text
    assert f"{oracle:.3f}" in text
    assert "Not tuned" in text
    assert importances[0]["feature"] in text


def test_training_report_with_tuning_and_card_and_no_oracle(tmp_path: Path) -> None:
    train, test = synthetic_parts(700, seed=2).time_split(0.3)
    tuning = tune_defect_model(
        train,
        random_state=1,
        n_candidates=3,
        cv_splits=2,
        gap=10,
        search="random",
        param_distributions={"max_iter": [20, 30], "min_samples_leaf": [5, 10, 20]},
    )
    evaluation = evaluate(tuning.model, test)
    assert evaluation.oracle_roc_auc is None
    card = {
        "seed": np.int64(1),
        "trained_on": "synthetic",
        "nested": {"score": np.float64(math.nan)},
    }
    report = write_training_report(
        tmp_path,
        model=tuning.model,
        test=test,
        evaluation=evaluation,
        tuning=tuning,
        card=card,
        importance_rows=150,
    )
    _check_files(report, TRAINING_FILES, tmp_path)
    metrics = _strict_json(report.path("metrics.json"))
    assert metrics["evaluation"]["oracle_roc_auc"] is None
    assert metrics["tuning"] == json.loads(json.dumps(tuning.as_dict()))
    assert metrics["card"] == {"seed": 1, "trained_on": "synthetic", "nested": {"score": None}}
    ranked = [row["feature"] for row in metrics["permutation_importance"]["features"]]
    # The quality window's two setpoints matter most; noise less; the constant nothing.
    assert set(ranked[:2]) == {"machining__speed", "welding__temperature_c"}
    by_name = {row["feature"]: row for row in metrics["permutation_importance"]["features"]}
    assert by_name["cutting__wear"]["mean"] == 0
    assert metrics["permutation_importance"]["rows"] == 150 < len(test)
    # Seeded: the same importances again.
    assert feature_importance(tuning.model, test, max_rows=150) == jsonable(
        metrics["permutation_importance"]["features"]
    )
    text = report.path("report.md").read_text("utf-8")
    assert "No oracle" in text
    assert f"random search, seed 1: {tuning.candidates} candidates" in text
    for name, value in tuning.best_params.items():
        assert f"{name} = {value}" in text
    assert "trained_on: synthetic" in text


# -- optimisation -----------------------------------------------------------------------------
def smooth_plant(setpoints: Mapping[str, float]) -> dict[str, float]:
    """A cheap stand-in for the simulator: a smooth hill in speed and welding temperature,
    nearly flat in painting temperature; defects grow with speed."""
    speed = setpoints.get("machining.speed", 1.15)
    welding = setpoints.get("welding.temperature_c", 82.0)
    painting = setpoints.get("painting.temperature_c", 190.0)
    good = 30 - 40 * (speed - 1.15) ** 2 - 0.01 * (welding - 82) ** 2 - 1e-5 * (painting - 190) ** 2
    return {
        "good_per_hour": good,
        "margin_per_hour": 7 * good - 100,
        "defect_rate": 0.1 * speed,
        "energy_per_good_part_kwh": 1.4,
    }


@pytest.fixture(scope="module")
def line() -> LineConfig:
    return load_config()


@pytest.fixture(scope="module")
def space(line: LineConfig) -> DecisionSpace:
    return decision_space(line)


def test_optimizer_report(line: LineConfig, space: DecisionSpace, tmp_path: Path) -> None:
    result = optimize(line, "good_per_hour", budget=20, seed=0, evaluate=smooth_plant, space=space)
    baseline = random_search(
        line, "good_per_hour", budget=20, seed=0, evaluate=smooth_plant, space=space
    )
    truth = brute_force(line, space=space, evaluate=smooth_plant)
    report = write_optimizer_report(
        tmp_path, result, space=space, objective="good_per_hour", truth=truth, random=baseline
    )
    _check_files(report, OPTIMIZER_FILES, tmp_path)
    summary = _strict_json(report.path("optimizer.json"))
    points = space.points()
    values = [smooth_plant(point)["good_per_hour"] for point in points]
    optimum = points[int(np.argmax(values))]
    assert summary["evaluations"] == 20
    assert summary["best"]["value"] == pytest.approx(result.best_value)
    assert summary["best_so_far"] == pytest.approx(result.best_so_far())
    assert summary["truth"]["value"] == pytest.approx(max(values))
    assert summary["truth"]["setpoints"] == optimum
    assert summary["truth"]["share_of_optimum"] == pytest.approx(result.best_value / max(values))
    curve = result.best_so_far()
    reached = [index + 1 for index, value in enumerate(curve) if value >= 0.98 * max(values)]
    assert summary["truth"]["evaluations_to_98"] == (reached[0] if reached else None)
    assert summary["random"]["value"] == pytest.approx(baseline.best_value)
    assert len(summary["trace"]) == 20
    # The surrogate, refit on 20 points of a smooth hill, puts its top next to the optimum.
    predicted = summary["surrogate"]["predicted_best"]
    assert abs(predicted["machining.speed"] - optimum["machining.speed"]) <= 0.05 + 1e-9
    assert abs(predicted["welding.temperature_c"] - optimum["welding.temperature_c"]) <= 5
    assert summary["surrogate"]["shown"] == list(space.keys)
    assert summary["surrogate"]["target"] == "objective"
    text = report.path("optimizer.md").read_text("utf-8")
    assert f"{result.best_value:.4g}" in text
    assert f"{max(values):.4g}" in text


def test_optimizer_report_in_three_setpoints_with_a_constraint(
    line: LineConfig, tmp_path: Path
) -> None:
    space = decision_space(
        line,
        [
            ("machining", "speed", 0.1),
            ("welding", "temperature_c", 10.0),
            ("painting", "temperature_c", 10.0),
        ],
    )
    limits = Constraints(max_defect_rate=0.115)  # speeds above 1.1 are infeasible
    result = optimize(
        line,
        "margin_per_hour",
        budget=20,
        seed=1,
        evaluate=smooth_plant,
        space=space,
        constraints=limits,
    )
    truth = brute_force(line, space=space, evaluate=smooth_plant)
    wrapped = OptimizationResult(
        objective="margin_per_hour",
        method="random",
        constraints=limits,
        trace=tuple(truth),
        best=max(truth, key=lambda e: e.value("margin_per_hour")),
        feasible=True,
    )
    report = write_optimizer_report(
        tmp_path, result, space=space, objective="margin_per_hour", truth=wrapped
    )
    _check_files(report, OPTIMIZER_FILES, tmp_path)
    summary = _strict_json(report.path("optimizer.json"))
    feasible = [e for e in truth if e.metrics["defect_rate"] <= 0.115]
    best: Evaluation = max(feasible, key=lambda e: e.value("margin_per_hour"))
    assert summary["truth"]["setpoints"] == best.setpoints  # the constrained optimum
    surrogate = summary["surrogate"]
    assert surrogate["target"] == "penalised objective"
    # Shown: the two setpoints the objective moves along; painting is held.
    assert surrogate["shown"] == ["machining.speed", "welding.temperature_c"]
    assert surrogate["held"] == {
        "painting.temperature_c": result.best_setpoints["painting.temperature_c"]
    }
    scales = surrogate["length_scales"]
    assert scales["painting.temperature_c"] > max(
        scales["machining.speed"], scales["welding.temperature_c"]
    )
    assert "held at the recommendation" in report.path("optimizer.md").read_text("utf-8")


def test_optimizer_report_in_one_setpoint_and_a_mismatched_objective(
    line: LineConfig, tmp_path: Path
) -> None:
    space = decision_space(line, [("machining", "speed", 0.05)])
    result = random_search(
        line, "good_per_hour", budget=8, seed=0, evaluate=smooth_plant, space=space
    )
    report = write_optimizer_report(tmp_path, result, space=space, objective="good_per_hour")
    _check_files(report, OPTIMIZER_FILES, tmp_path)
    summary = _strict_json(report.path("optimizer.json"))
    assert "truth" not in summary
    assert summary["surrogate"]["shown"] == ["machining.speed"]
    with pytest.raises(ValueError, match="good_per_hour"):
        write_optimizer_report(tmp_path, result, space=space, objective="margin_per_hour")
