"""The defect model's other candidates (``models.candidates``): the spline basis
against scikit-learn's own, missing values, the time folds, the out-of-fold
calibration, the crossed readings, and the model registry's round trip of the
blended and the crossed model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.preprocessing import SplineTransformer

from models.candidates import (
    CROSS_LIMIT,
    FeatureCrosses,
    LogitBlend,
    PlattScaled,
    SplineBasis,
    log_odds,
    make_crossed_model,
    make_spline_model,
    out_of_fold_log_odds,
    refit_calibrated,
    station_groups,
    time_folds,
)
from models.defect import make_defect_model
from models.registry.store import ModelRegistry

pytestmark = pytest.mark.usefixtures("one_thread")


def _curved(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Parts whose defect log-odds rise with the square of the first feature (a speed
    off its best value, 0, either way) and linearly with the second (a wear)."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 3))
    logit = -3.5 + 1.2 * features[:, 0] ** 2 + 0.8 * features[:, 1]
    return features, (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)


@pytest.mark.parametrize("knots", [2, 4, 7])
def test_the_basis_is_scikit_learns_on_complete_columns(knots: int) -> None:
    rng = np.random.default_rng(1)
    data = np.column_stack([rng.normal(size=300), rng.uniform(-5, 40, size=300)])
    ours = SplineBasis(n_knots=knots).fit(data)
    theirs = SplineTransformer(n_knots=knots, degree=3, extrapolation="constant").fit(data)
    inside = np.column_stack(
        [rng.normal(size=50).clip(data[:, 0].min(), data[:, 0].max()), rng.uniform(-5, 40, size=50)]
    )
    np.testing.assert_allclose(ours.transform(inside), theirs.transform(inside), atol=1e-12)
    # Beyond the training range each column's basis holds its value at the edge.
    beyond = np.array([[data[:, 0].max() + 3.0, data[:, 1].min() - 9.0]])
    edge = np.array([[data[:, 0].max(), data[:, 1].min()]])
    np.testing.assert_allclose(ours.transform(beyond), ours.transform(edge))
    np.testing.assert_allclose(ours.transform(beyond), theirs.transform(beyond), atol=1e-12)


def test_a_missing_value_is_the_median_and_flagged_and_constant_columns_go() -> None:
    rng = np.random.default_rng(2)
    gappy = rng.normal(size=200)
    gappy[::10] = np.nan
    data = np.column_stack([rng.normal(size=200), gappy, np.full(200, 3.0), np.full(200, np.nan)])
    basis = SplineBasis(n_knots=4).fit(data)
    assert basis.kept_.tolist() == [0, 1]  # the constant and the empty column are dropped
    assert basis.flagged_.tolist() == [1]  # the one with gaps gets a 0/1 column
    rows = basis.transform(data[:12])
    assert rows.shape == (12, 2 * (4 + 3 - 1) + 1)
    assert rows[:, -1].tolist() == [1.0] + [0.0] * 9 + [1.0, 0.0]
    at_median = data[:1].copy()
    at_median[0, 1] = np.nanmedian(gappy)
    np.testing.assert_allclose(rows[0, :-1], basis.transform(at_median)[0, :-1])
    # Each complete row's basis sums to one (a partition of unity): a valid spline basis.
    np.testing.assert_allclose(rows[1:10, :6].sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="n_knots"):
        SplineBasis(n_knots=1).fit(data)


def test_the_splines_learn_a_curve_that_a_straight_logistic_regression_cannot() -> None:
    features, labels = _curved(6000, seed=3)
    train, test = slice(0, 4000), slice(4000, None)
    splines = make_spline_model().fit(features[train], labels[train])
    straight = LogisticRegression().fit(features[train], labels[train])
    curve = roc_auc_score(labels[test], splines.predict_proba(features[test])[:, 1])
    line = roc_auc_score(labels[test], straight.predict_proba(features[test])[:, 1])
    assert curve > line + 0.05, (curve, line)


def test_the_time_folds_cover_every_part_once_and_keep_the_gap() -> None:
    folds = time_folds(1000, 4, gap=25)
    scored = np.concatenate([block for _, block in folds])
    assert scored.tolist() == list(range(1000))
    for fitting, block in folds:
        distance = np.abs(fitting[:, None] - block[None, :]).min()
        assert distance > 25  # no fitting part within the gap of the scored block
        assert len(fitting) + len(block) >= 1000 - 2 * 25


def test_a_fold_without_defects_names_itself() -> None:
    features, _ = _curved(400, seed=4)
    labels = np.zeros(400, dtype=np.int64)
    labels[300:310] = 1  # all in the last block: the last fold learns from none
    with pytest.raises(ValueError, match="fold 4 of 4 has no defective parts"):
        out_of_fold_log_odds(make_spline_model(), features, labels, gap=5)


def test_the_refit_is_calibrated_out_of_fold_and_survives_the_registry(tmp_path: Path) -> None:
    features, labels = _curved(5000, seed=5)
    learnt, later = slice(0, 4000), slice(4000, None)
    blend = LogitBlend((make_defect_model(random_state=0, max_iter=60), make_spline_model()))
    logits = out_of_fold_log_odds(blend, features[learnt], labels[learnt], gap=20)
    model, risk = refit_calibrated(blend, features[learnt], labels[learnt], logits)
    assert isinstance(model, PlattScaled)
    # The out-of-fold risk is calibrated in the large: its mean is the defect rate.
    assert float(risk.mean()) == pytest.approx(float(labels[learnt].mean()), abs=0.005)
    # The live model is the blend fitted on every learnt part, through that sigmoid.
    again = LogitBlend(blend.estimators).fit(features[learnt], labels[learnt])
    expected = model.slope * log_odds(again, features[later]) + model.intercept
    np.testing.assert_allclose(model.decision_function(features[later]), expected)
    # On parts it never saw, the mean risk is near their rate (3 standard errors).
    rate = float(labels[later].mean())
    seen = float(model.predict_proba(features[later])[:, 1].mean())
    assert abs(seen - rate) <= 3 * np.sqrt(rate * (1 - rate) / len(labels[later])), (seen, rate)

    registry = ModelRegistry(tmp_path)
    registry.register("defect", model, {"kind": "defect"})
    loaded, _ = registry.load("defect")
    np.testing.assert_array_equal(
        loaded.predict_proba(features[later]), model.predict_proba(features[later])
    )


def test_the_readings_of_one_machine_are_grouped_by_their_prefix() -> None:
    names = ["mill__torque_nm", "mill__speed_rpm", "oven__temp_c", "mill__type_is_h", "batch"]
    assert station_groups(names) == ((0, 1, 3), (2,), (4,))


def test_each_pair_of_a_machines_numeric_readings_is_multiplied_and_subtracted() -> None:
    rng = np.random.default_rng(11)
    torque, speed, heat = rng.normal(40, 10, 50), rng.normal(1500, 100, 50), rng.normal(300, 2, 50)
    flag = (rng.random(50) < 0.3).astype(float)  # a one-hot column: two values, not crossed
    torque[7] = np.nan
    data = np.column_stack([torque, speed, flag, heat])
    crosses = FeatureCrosses(((0, 1, 2), (3,))).fit(data)
    assert crosses.pairs_.tolist() == [[0, 1]]  # one pair: the oven's heat has no partner
    out = crosses.transform(data)
    assert out.shape == (50, 6)
    np.testing.assert_array_equal(out[:, :4], data)
    np.testing.assert_allclose(out[:, 4], torque * speed)
    np.testing.assert_allclose(out[:, 5], torque - speed)
    assert np.isnan(out[7, 4])
    assert np.isnan(out[7, 5])


def test_more_pairs_than_the_limit_are_not_crossed_at_all() -> None:
    data = np.random.default_rng(12).normal(size=(40, 12))
    # 10 readings make 45 pairs, the limit; with 2 more in another machine, 46.
    crosses = FeatureCrosses((tuple(range(10)),)).fit(data)
    assert len(crosses.pairs_) == CROSS_LIMIT == 45
    over = FeatureCrosses((tuple(range(10)), (10, 11))).fit(data)
    assert len(over.pairs_) == 0
    np.testing.assert_array_equal(over.transform(data), data)
    with pytest.raises(ValueError, match="beyond the"):
        FeatureCrosses(((0, 99),)).fit(data)


def _power_band(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Jobs that fail when their power (torque times speed) leaves a band, a rule on a
    product that no single reading shows, and at random now and then."""
    rng = np.random.default_rng(seed)
    torque, speed = rng.normal(40, 10, rows), rng.normal(1500, 200, rows)
    power = torque * speed * 2 * np.pi / 60
    failed = (power < 3500) | (power > 9000) | (rng.random(rows) < 0.01)
    return np.column_stack([torque, speed, rng.normal(300, 2, rows)]), failed.astype(np.int64)


@pytest.mark.parametrize("seed", [13, 14, 15])
def test_crossed_trees_learn_a_rule_on_a_product_that_plain_trees_only_approximate(
    tmp_path: Path, seed: int
) -> None:
    features, labels = _power_band(7000, seed)
    train, test = slice(0, 3000), slice(3000, None)
    groups = station_groups(["mill__torque_nm", "mill__speed_rpm", "mill__air_k"])
    crossed = make_crossed_model(groups, seed=0).fit(features[train], labels[train])
    plain = HistGradientBoostingClassifier(random_state=0).fit(features[train], labels[train])
    ours = average_precision_score(labels[test], crossed.predict_proba(features[test])[:, 1])
    theirs = average_precision_score(labels[test], plain.predict_proba(features[test])[:, 1])
    assert ours > theirs, (ours, theirs)

    registry = ModelRegistry(tmp_path)
    registry.register("defect", crossed, {"kind": "defect"})
    loaded, _ = registry.load("defect")
    np.testing.assert_array_equal(
        loaded.predict_proba(features[test]), crossed.predict_proba(features[test])
    )
