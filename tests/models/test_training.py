"""The training workflow (``models.training``): the quality gate, calibration and
the threshold, on data whose truth the test knows.

Synthetic parts have a known defect probability (``skill`` 0: defects are coin
flips the features cannot predict), so whether a model may go live is decided
by the data, not by the test. Every figure the gate records is recomputed here
with scikit-learn or numpy on the same held-out parts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, roc_auc_score

from models.candidates import REFIT_FOLDS, LogitBlend, make_crossed_model, make_spline_model
from models.dataset.rows import PartDataset
from models.dataset.splits import SPLIT_GAP, Splits, split_gap, split_parts
from models.defect import THRESHOLD_TOLERANCE, calibrate, choose_threshold, make_defect_model
from models.fitting import fit_defect_model
from models.registry.gate import MIN_ROC_AUC, MIN_TEST_DEFECTS, defect_gate
from models.registry.store import ModelRegistry
from models.training import TrainingOptions, train_models

pytestmark = pytest.mark.usefixtures("one_thread")


def synthetic_parts(rows: int, seed: int, *, skill: float, rate: float = 0.15) -> PartDataset:
    """Parts whose log-odds of a defect rise by ``skill`` per unit of the first feature."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 3))
    logit = np.log(rate / (1 - rate)) + skill * features[:, 0]
    defect = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    station = np.where(defect == 1, np.where(features[:, 1] > 0, "press", "oven"), "")
    return PartDataset(
        ("press__force_kn", "oven__temperature_c", "oven__humidity"),
        features,
        defect,
        station.astype(np.str_),
        np.arange(rows, dtype=np.int64),
        1_700_000_000_000 + 30_000 * np.arange(rows, dtype=np.int64),
    )


def test_the_defect_floors_are_the_documented_ones_measured_independently() -> None:
    rng = np.random.default_rng(3)
    labels = (rng.random(2000) < 0.05).astype(int)
    rate = float(labels.mean())
    # A model that ranks well but says 90%: what an uncalibrated, balanced model does.
    loud = np.where(labels == 1, 0.95, 0.9) + rng.normal(0, 0.01, len(labels))
    gate = defect_gate(labels, loud, trained_rate=rate)
    checks = {check.name: check for check in gate.checks}
    assert checks["ROC-AUC"].value == pytest.approx(roc_auc_score(labels, loud))
    assert checks["ROC-AUC"].passed
    assert checks["Brier score"].value == pytest.approx(brier_score_loss(labels, loud))
    assert checks["Brier score"].floor == pytest.approx(np.mean((labels - rate) ** 2))
    assert not checks["Brier score"].passed
    assert not gate.passed
    assert "Brier score" in gate.reason()

    # The constant predictor itself does not beat the constant predictor.
    constant = defect_gate(labels, np.full(len(labels), rate), trained_rate=rate)
    assert not constant.passed
    failed = {check.name for check in constant.failed}
    assert {"ROC-AUC", "average precision", "Brier score"} <= failed

    # A calibrated, informative score passes, with AP above the defect rate.
    informative = np.clip(rate + 0.3 * (labels - rate) + rng.normal(0, 0.05, len(labels)), 0, 1)
    passed = defect_gate(labels, informative, trained_rate=rate)
    ap = {check.name: check for check in passed.checks}["average precision"]
    assert ap.value == pytest.approx(average_precision_score(labels, informative))
    assert ap.floor == pytest.approx(rate)
    assert passed.passed, passed.reason()
    assert roc_auc_score(labels, informative) >= MIN_ROC_AUC

    # Too few held-out defects to judge: refused whatever the scores.
    few = labels.copy()
    few[np.flatnonzero(few)[MIN_TEST_DEFECTS - 1 :]] = 0
    assert not defect_gate(few, few.astype(float), trained_rate=rate).passed


def test_a_model_below_the_floor_is_registered_but_not_activated_unless_forced(
    tmp_path: Path,
) -> None:
    registry = ModelRegistry(tmp_path / "models")
    coin_flips = {"csv": synthetic_parts(4000, seed=1, skill=0.0)}
    options = TrainingOptions(seed=2)
    outcome = train_models(coin_flips, registry, options, report_dir=tmp_path / "r1")
    defect = outcome.model("defect")
    assert defect is not None
    assert not defect.gate.passed
    assert not defect.version.active
    assert registry.active_version("defect") is None
    card = registry.get("defect", 1).card
    assert card["gate"]["passed"] is False
    assert "ROC-AUC" in card["gate"]["reason"]

    # The gate's ROC-AUC is the model's on the latest parts, recomputed here.
    model, _ = registry.load("defect", 1)
    _, test = coin_flips["csv"].time_split(options.test_fraction)
    measured = roc_auc_score(test.defect, model.predict_proba(test.features)[:, 1])
    recorded = {check["name"]: check for check in card["gate"]["checks"]}
    assert recorded["ROC-AUC"]["value"] == pytest.approx(measured)
    assert measured < MIN_ROC_AUC

    forced = train_models(
        coin_flips,
        registry,
        TrainingOptions(seed=2, force=True),
        report_dir=tmp_path / "r2",
    ).model("defect")
    assert forced is not None
    assert forced.version.active
    assert forced.gate.forced
    assert registry.active_version("defect") == forced.version.version
    assert registry.get("defect").card["gate"]["forced"] is True

    # Data a model can learn from passes, and its station model too.
    skilled = train_models(
        {"csv": synthetic_parts(4000, seed=1, skill=2.0)},
        registry,
        TrainingOptions(seed=2),
        report_dir=tmp_path / "r3",
    )
    for name in ("defect", "defect-station"):
        found = skilled.model(name)
        assert found is not None, name
        assert found.gate.passed, (name, found.gate.reason())
        assert found.version.active
    assert registry.active_version("defect") == 3


def test_no_activate_registers_without_activating_even_a_good_model(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    outcome = train_models(
        {"csv": synthetic_parts(3000, seed=4, skill=2.0)},
        registry,
        TrainingOptions(activate=False, stations=False),
        report_dir=tmp_path / "report",
    )
    defect = outcome.model("defect")
    assert defect is not None
    assert defect.gate.passed
    assert registry.active_version("defect") is None


def test_the_calibrated_risk_matches_the_defect_rate_where_the_raw_one_does_not() -> None:
    parts = synthetic_parts(6000, seed=5, skill=1.5, rate=0.04)
    splits = split_parts({"csv": parts}, 0.3, 0.25)
    raw = make_defect_model(random_state=0).fit(splits.train.features, splits.train.defect)
    model = calibrate(raw, splits.calibration.features, splits.calibration.defect)
    test = splits.test
    observed = float(test.defect.mean())
    tolerance = 3 * np.sqrt(observed * (1 - observed) / len(test)) + 0.5 * observed
    calibrated = float(model.predict_proba(test.features)[:, 1].mean())
    balanced = float(raw.predict_proba(test.features)[:, 1].mean())
    assert abs(calibrated - observed) <= tolerance, (calibrated, observed)
    assert abs(balanced - observed) > tolerance  # what calibration is there to fix
    # Calibration keeps the ranking: a monotone map of the same scores.
    assert roc_auc_score(test.defect, model.predict_proba(test.features)[:, 1]) == pytest.approx(
        roc_auc_score(test.defect, raw.predict_proba(test.features)[:, 1]), abs=1e-9
    )


def test_calibration_needs_every_class_the_model_knows() -> None:
    parts = synthetic_parts(2000, seed=6, skill=2.0)
    model = make_defect_model(random_state=0, max_iter=20).fit(parts.features, parts.defect_station)
    only_press = np.flatnonzero(parts.defect_station != "oven")
    with pytest.raises(ValueError, match="missing 'oven'"):
        calibrate(model, parts.features[only_press], parts.defect_station[only_press])


def test_the_threshold_is_the_middle_of_the_best_f1_plateau() -> None:
    rng = np.random.default_rng(7)
    labels = (rng.random(800) < 0.2).astype(int)
    scores = np.clip(0.2 + 0.25 * labels + rng.normal(0, 0.15, len(labels)), 0, 1)
    cuts = np.unique(scores)
    f1 = np.array([f1_score(labels, scores >= cut) for cut in cuts])
    best = f1.max()
    # Tolerance 0: the best F1 itself.
    assert f1_score(labels, scores >= choose_threshold(labels, scores, 0.0)) == pytest.approx(best)
    # The default: the median of the cuts whose F1 is within the tolerance of the best.
    plateau = cuts[f1 >= best - THRESHOLD_TOLERANCE]
    assert len(plateau) > 2  # a plateau, not one point: the median differs from the best
    chosen = choose_threshold(labels, scores)
    assert chosen == pytest.approx(plateau[len(plateau) // 2])
    assert f1_score(labels, scores >= chosen) >= best - THRESHOLD_TOLERANCE


def test_the_split_leaves_a_gap_before_each_cut() -> None:
    parts = synthetic_parts(6000, seed=7, skill=1.0)
    splits = split_parts({"csv": parts}, 0.3, 0.25)
    fit_size = round(len(parts) * 0.7)
    first_gap, second_gap = split_gap(len(parts)), split_gap(fit_size - split_gap(len(parts)))
    assert first_gap == second_gap == SPLIT_GAP
    # The test parts are the latest 30%, whole; the gaps come off the earlier sides.
    assert len(splits.test) == len(parts) - fit_size
    assert len(splits.train) + len(splits.calibration) == fit_size - first_gap - second_gap
    order = {int(p): i for i, p in enumerate(parts.part_id[np.argsort(parts.left_at_ms)])}
    train_last = max(order[int(p)] for p in splits.train.part_id)
    calibration = sorted(order[int(p)] for p in splits.calibration.part_id)
    test_first = min(order[int(p)] for p in splits.test.part_id)
    assert calibration[0] - train_last == SPLIT_GAP + 1
    assert test_first - calibration[-1] == SPLIT_GAP + 1
    # A small dataset keeps its parts: at most a twentieth goes to each gap.
    assert split_gap(400) == 20
    with pytest.raises(ValueError, match="gap"):
        parts.time_split(0.3, gap=-1)


def test_every_run_is_reported_beside_the_plain_baseline(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    parts = synthetic_parts(4000, seed=8, skill=1.5, rate=0.06)
    options = TrainingOptions(seed=3, stations=False)
    outcome = train_models({"csv": parts}, registry, options, report_dir=tmp_path / "report")
    card = registry.get("defect", 1).card
    baseline = card["metrics"]["baseline"]
    assert card["data"]["split_gap"] == SPLIT_GAP
    # The baseline, fitted again here with its defaults on the parts the model learnt
    # from: the training and calibration parts, in time order.
    splits = split_parts({"csv": parts}, options.test_fraction, options.calibration_fraction)
    learnt = _learnt(parts, splits)
    assert card["data"]["learnt"]["rows"] == len(learnt)
    again = HistGradientBoostingClassifier(random_state=options.seed)
    scores = again.fit(parts.features[learnt], parts.defect[learnt]).predict_proba(
        splits.test.features
    )[:, 1]
    assert baseline["roc_auc"] == pytest.approx(roc_auc_score(splits.test.defect, scores))
    assert baseline["pr_auc"] == pytest.approx(average_precision_score(splits.test.defect, scores))
    assert baseline["f1"] == pytest.approx(f1_score(splits.test.defect, scores >= 0.5))
    report = (outcome.report_dir / "report.md").read_text()
    assert "plain baseline" in report
    assert f"{baseline['roc_auc']:.3f}" in report


def _learnt(parts: PartDataset, splits: Splits) -> np.ndarray:
    """The rows of ``parts`` in the training and calibration parts, in time order."""
    kept = set(splits.train.part_id.tolist()) | set(splits.calibration.part_id.tolist())
    order = np.argsort(parts.left_at_ms, kind="stable")
    return order[np.isin(parts.part_id[order], list(kept))]


def _out_of_fold_scores(model: Any, features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each row scored by ``model`` fitted on the other time blocks, a gap away."""
    gap = split_gap(len(labels))
    scores = np.empty(len(labels))
    edges = np.linspace(0, len(labels), REFIT_FOLDS + 1).astype(int)
    for start, end in zip(edges[:-1], edges[1:], strict=True):
        rows = np.arange(len(labels))
        fitting = (rows < start - gap) | (rows >= end + gap)
        fitted = clone(model).fit(features[fitting], labels[fitting])
        scores[start:end] = fitted.predict_proba(features[start:end])[:, 1]
    return scores


def test_the_variant_is_chosen_out_of_fold_and_refitted_on_every_part_learnt(
    tmp_path: Path,
) -> None:
    registry = ModelRegistry(tmp_path / "models")
    parts = synthetic_parts(4000, seed=9, skill=1.5, rate=0.05)
    options = TrainingOptions(seed=4, stations=False)
    train_models({"csv": parts}, registry, options, report_dir=tmp_path / "report")
    model, version = registry.load("defect")
    variant = version.card["metrics"]["variant"]
    # Each candidate scored again here out of fold on the training and calibration parts.
    splits = split_parts({"csv": parts}, options.test_fraction, options.calibration_fraction)
    learnt = _learnt(parts, splits)
    features, labels = parts.features[learnt], parts.defect[learnt]
    trees = make_defect_model(random_state=options.seed, class_weight=None)
    candidates = {
        "balanced": make_defect_model(random_state=options.seed, class_weight="balanced"),
        "none": trees,
        "library defaults": HistGradientBoostingClassifier(random_state=options.seed),
        "additive splines": make_spline_model(),
        "trees + splines": LogitBlend((trees, make_spline_model())),
        # The oven's temperature and humidity, crossed (the press has one reading).
        "crossed trees": make_crossed_model(((0,), (1, 2)), options.seed),
    }
    measured = {
        name: average_precision_score(labels, _out_of_fold_scores(candidate, features, labels))
        for name, candidate in candidates.items()
    }
    assert variant["out_of_fold_pr_auc"] == pytest.approx(measured)
    chosen = max(measured, key=lambda name: measured[name])
    assert variant["chosen"] == chosen
    # The chosen one refitted on all of them: the live model scores the test parts as
    # that candidate fitted here on the same parts, through the recorded Platt sigmoid.
    refit = variant["refit"]
    assert refit["gap"] == split_gap(len(labels))
    fitted = clone(candidates[chosen]).fit(features, labels)
    raw = np.clip(fitted.predict_proba(splits.test.features)[:, 1], 1e-6, 1 - 1e-6)
    expected = 1 / (
        1 + np.exp(-(refit["platt_slope"] * np.log(raw / (1 - raw)) + refit["platt_intercept"]))
    )
    assert model.predict_proba(splits.test.features)[:, 1] == pytest.approx(expected, rel=1e-6)
    # Parameters that name a weighting (a tuning's) keep it.
    named = fit_defect_model(
        splits, seed=4, threshold=None, parameters={"class_weight": None}, source="csv"
    )
    assert named.card["metrics"]["variant"]["chosen"] == "class_weight None"
    assert named.card["metrics"]["variant"]["chosen_by"] == "parameters"


def test_when_a_fold_cannot_learn_the_model_is_fitted_and_calibrated_on_its_parts() -> None:
    parts = synthetic_parts(3000, seed=10, skill=1.5, rate=0.1)
    options = TrainingOptions()
    first = split_parts({"csv": parts}, options.test_fraction, options.calibration_fraction)
    learnt = _learnt(parts, first)
    # Defects only in the last few training parts (inside the last fold's gap), the
    # calibration parts and the test parts: the last fold has none to learn from.
    keep = set(learnt[len(first.train) - 5 : len(first.train)].tolist())
    keep |= set(np.flatnonzero(np.isin(parts.part_id, first.calibration.part_id)).tolist())
    keep |= set(np.flatnonzero(np.isin(parts.part_id, first.test.part_id)).tolist())
    defect = np.where(np.isin(np.arange(len(parts)), list(keep)), parts.defect, 0)
    defect[learnt[len(first.train) - 5 : len(first.train)]] = 1
    sparse = PartDataset(
        parts.feature_names,
        parts.features,
        defect,
        np.where(defect == 1, parts.defect_station, ""),
        parts.part_id,
        parts.left_at_ms,
    )
    splits = split_parts({"csv": sparse}, options.test_fraction, options.calibration_fraction)
    fitted = fit_defect_model(splits, seed=1, threshold=None, parameters={}, source="csv")
    variant = fitted.card["metrics"]["variant"]
    assert variant["refit"] is None
    assert variant["chosen_by"].startswith(f"fold {REFIT_FOLDS} of {REFIT_FOLDS} has no defective")
    # The fallback is the shipped model fitted on the training parts alone.
    assert fitted.card["data"]["learnt"]["rows"] == len(splits.train)
    assert "calibration parts" in fitted.card["metrics"]["threshold_chosen_on"]
