"""The defect model's other candidates, and its refit on every part it may learn from.

Boosted trees find sharp rules (a table where a part fails past a torque or a
wear) and interactions by themselves, but with few parts they approximate a
smooth defect curve in steps. On the line, each station's defect log-odds rise
smoothly with the distance of its speed and temperature from their best values
and with its tool's wear, and the part's risk is nearly the sum of the
stations': an additive model. So training also tries:

- ``make_spline_model``: a logistic regression on each feature's cubic B-splines
  (``SplineBasis``: a generalized additive model), strongly regularised, missing
  values taken as the median and flagged;
- ``LogitBlend``: the mean log-odds of the boosted trees and the splines, which
  keeps what each finds;
- ``make_crossed_model``: the library's trees on each machine's readings and their
  pairwise products and differences (``FeatureCrosses``). A tree splits one
  column at a time, so a rule on a product or a difference of two readings
  (power, torque times speed, outside a band; a small gap between process and air
  temperature) takes it many steps to approximate; given the product as a column,
  it takes one. Only the readings of one machine (one ``<station>__`` prefix) are
  crossed, and only where that makes at most ``CROSS_LIMIT`` pairs in all.

Every candidate is scored out of fold on the training and calibration parts
together (``out_of_fold_log_odds``): the parts are cut in ``REFIT_FOLDS``
blocks in time, and each block is scored by the candidate fitted on the others,
without ``gap`` parts on either side of the block. The candidate whose
out-of-fold scores rank the defects best is chosen: four times as many defects
as the calibration parts alone hold, so the choice is steadier.
``refit_calibrated`` then fits it on all those parts (a model that learns from
the calibration parts too ranks the later parts better: with 10 simulated
days, about 0.01 of ROC-AUC) and calibrates it by a sigmoid of its out-of-fold
log-odds (Platt scaling). The out-of-fold risk also chooses the threshold.
``choose_out_of_fold`` does all of it over ``VARIANTS`` (``candidate``);
``fit_on_calibration_parts`` is the route when a fold has no defect to learn
from.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.interpolate import BSpline
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from models.dataset.splits import Splits, split_gap
from models.defect import calibrate, make_defect_model
from models.missing import TakesMissing

# Chosen on simulated runs of the default line (10 days, seeds 6 to 10, none of the
# benchmark's): 4 knots and C 0.003 rank the test parts best, blended with the trees,
# among 4, 5 and 7 knots and C 0.003, 0.01 and 0.03 (the spread is 0.005 of ROC-AUC).
SPLINE_KNOTS = 4
SPLINE_C = 0.003
# At most this many pairs are crossed (10 readings of one machine give 45); a table
# or line with more is not crossed at all. The pairs grow with the square of the
# readings, and the fit with them: the default line's 25 readings over 5 machines
# give 78 pairs, 156 more columns, and would more than double the training time.
CROSS_LIMIT = 45
REFIT_FOLDS = 4
# Log-odds are clipped here: a probability of exactly 0 or 1 has none.
_EDGE = 1e-6


class SplineBasis(TakesMissing, TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Each column's cubic B-spline basis on ``n_knots`` knots spread evenly over its
    training range, constant beyond it; a missing value (NaN) takes the column's
    training median, and a column that had missing values gets a 0/1 column saying
    which. Constant columns are dropped.

    scikit-learn's ``SplineTransformer`` does the same for complete columns, but it
    keeps SciPy spline objects that the model registry cannot load safely; this one
    keeps only arrays and builds the basis when it transforms.
    """

    def __init__(self, n_knots: int = SPLINE_KNOTS, degree: int = 3) -> None:
        self.n_knots = n_knots
        self.degree = degree

    def fit(self, X: Any, y: Any = None) -> SplineBasis:
        if self.n_knots < 2 or self.degree < 1:
            raise ValueError(
                f"n_knots must be >= 2 and degree >= 1 (got {self.n_knots}, {self.degree})"
            )
        data = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64)
        with warnings.catch_warnings():  # an all-NaN column warns, and is dropped below
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanmin(data, axis=0), np.nanmax(data, axis=0)
            median = np.nanmedian(data, axis=0)
        self.kept_ = np.flatnonzero(np.isfinite(low) & (high > low))
        self.low_, self.high_, self.median_ = low[self.kept_], high[self.kept_], median[self.kept_]
        self.flagged_ = np.flatnonzero(np.isnan(data).any(axis=0) & ~np.isnan(data).all(axis=0))
        return self

    def _knots(self, low: float, high: float) -> Any:
        step = (high - low) / (self.n_knots - 1)
        knots = low + step * np.arange(-self.degree, self.n_knots + self.degree)
        # The range's ends exactly, not as rounded: values at them are in bounds.
        knots[self.degree], knots[self.degree + self.n_knots - 1] = low, high
        return knots

    def transform(self, X: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
        check_is_fitted(self, "kept_")
        data = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64, reset=False)
        blocks = []
        for index, column in enumerate(self.kept_):
            low, high = self.low_[index], self.high_[index]
            values = np.where(np.isnan(data[:, column]), self.median_[index], data[:, column])
            values = np.clip(values, low, high)
            basis = BSpline.design_matrix(values, self._knots(low, high), self.degree)
            blocks.append(basis.toarray())
        blocks.append(np.isnan(data[:, self.flagged_]).astype(np.float64))
        result: np.ndarray[Any, np.dtype[np.float64]] = np.hstack(blocks)
        return result


def make_spline_model() -> Pipeline:
    """An unfitted additive model: each feature's cubic B-splines (``SplineBasis``),
    standardised, in a logistic regression."""
    return Pipeline(
        [
            ("splines", SplineBasis()),
            ("scale", StandardScaler()),
            ("classifier", LogisticRegression(C=SPLINE_C, max_iter=5000)),
        ]
    )


def station_groups(feature_names: Sequence[str]) -> tuple[tuple[int, ...], ...]:
    """The column indices of each machine's readings: the names' ``<station>__``
    prefix (a name without one is a machine of its own), in first-seen order."""
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(feature_names):
        station, _, field = name.partition("__")
        groups.setdefault(station if field else name, []).append(index)
    return tuple(tuple(columns) for columns in groups.values())


class FeatureCrosses(TakesMissing, TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """The columns, then the product and the difference of every pair of numeric
    columns in the same group of ``groups`` (column indices: ``station_groups``).

    A column is numeric when it took more than two values in fitting (a 0/1 flag
    or a one-hot column is not crossed). When the groups make more than ``limit``
    pairs, none is crossed and the columns pass as they are. A missing value makes
    its products and differences missing.
    """

    def __init__(self, groups: tuple[tuple[int, ...], ...] = (), limit: int = CROSS_LIMIT) -> None:
        self.groups = groups
        self.limit = limit

    def fit(self, X: Any, y: Any = None) -> FeatureCrosses:
        data = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64)
        pairs: list[tuple[int, int]] = []
        for group in self.groups:
            if any(not 0 <= column < data.shape[1] for column in group):
                raise ValueError(f"group {group} names a column beyond the {data.shape[1]} given")
            numeric = [column for column in group if _distinct(data[:, column]) > 2]
            pairs += [(a, b) for at, a in enumerate(numeric) for b in numeric[at + 1 :]]
        kept = pairs if len(pairs) <= self.limit else []
        self.pairs_ = np.asarray(kept, dtype=np.int64).reshape(-1, 2)
        return self

    def transform(self, X: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
        check_is_fitted(self, "pairs_")
        data = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64, reset=False)
        first, second = data[:, self.pairs_[:, 0]], data[:, self.pairs_[:, 1]]
        result: np.ndarray[Any, np.dtype[np.float64]] = np.hstack(
            [data, first * second, first - second]
        )
        return result


def _distinct(column: np.ndarray[Any, np.dtype[np.float64]]) -> int:
    return len(np.unique(column[~np.isnan(column)]))


def make_crossed_model(groups: tuple[tuple[int, ...], ...], seed: int) -> Pipeline:
    """An unfitted model: the library's boosted trees on the columns and their crosses
    within each group (``FeatureCrosses``)."""
    return Pipeline(
        [
            ("crosses", FeatureCrosses(groups)),
            ("classifier", HistGradientBoostingClassifier(random_state=seed)),
        ]
    )


def log_odds(model: Any, X: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The log-odds of the positive class of a fitted binary classifier."""
    probability = np.clip(np.asarray(model.predict_proba(X))[:, 1], _EDGE, 1.0 - _EDGE)
    result: np.ndarray[Any, np.dtype[np.float64]] = np.log(probability / (1.0 - probability))
    return result


def _probabilities(logits: np.ndarray[Any, np.dtype[np.float64]]) -> Any:
    positive = 1.0 / (1.0 + np.exp(-logits))
    return np.column_stack([1.0 - positive, positive])


class LogitBlend(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Binary classifiers fitted on the same parts; the risk is the mean of their log-odds."""

    def __init__(self, estimators: tuple[Any, ...] = ()) -> None:
        self.estimators = estimators

    def fit(self, X: Any, y: Any) -> LogitBlend:
        if not self.estimators:
            raise ValueError("LogitBlend needs at least one estimator")
        self.estimators_ = [clone(estimator).fit(X, y) for estimator in self.estimators]
        self.classes_ = np.asarray(self.estimators_[0].classes_)
        if len(self.classes_) != 2:
            raise ValueError(f"LogitBlend is binary (got classes {self.classes_.tolist()})")
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def decision_function(self, X: Any) -> Any:
        check_is_fitted(self, "estimators_")
        return np.mean([log_odds(estimator, X) for estimator in self.estimators_], axis=0)

    def predict_proba(self, X: Any) -> Any:
        return _probabilities(self.decision_function(X))

    def predict(self, X: Any) -> Any:
        return self.classes_[(self.decision_function(X) > 0).astype(int)]


class PlattScaled(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A binary classifier whose log-odds go through ``slope`` and ``intercept``.

    ``fit`` fits the estimator; the slope and intercept are parameters, found out
    of fold by ``refit_calibrated``.
    """

    def __init__(self, estimator: Any = None, slope: float = 1.0, intercept: float = 0.0) -> None:
        self.estimator = estimator
        self.slope = slope
        self.intercept = intercept

    def fit(self, X: Any, y: Any) -> PlattScaled:
        if self.estimator is None:
            raise ValueError("PlattScaled needs an estimator")
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.classes_ = np.asarray(self.estimator_.classes_)
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def decision_function(self, X: Any) -> Any:
        check_is_fitted(self, "estimator_")
        return self.slope * log_odds(self.estimator_, X) + self.intercept

    def predict_proba(self, X: Any) -> Any:
        return _probabilities(self.decision_function(X))

    def predict(self, X: Any) -> Any:
        return self.classes_[(self.decision_function(X) > 0).astype(int)]


def time_folds(parts: int, folds: int, gap: int) -> list[tuple[Any, Any]]:
    """``folds`` consecutive blocks of ``parts`` parts in time; for each, the other
    parts without ``gap`` on either side of the block (what fits) and the block."""
    index = np.arange(parts)
    edges = np.linspace(0, parts, folds + 1).astype(int)
    return [
        (index[(index < start - gap) | (index >= end + gap)], index[start:end])
        for start, end in zip(edges[:-1], edges[1:], strict=True)
    ]


def out_of_fold_log_odds(
    estimator: Any, X: Any, y: Any, *, gap: int, folds: int = REFIT_FOLDS
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Each row's log-odds from ``estimator`` fitted on the other blocks of ``X``, ``y``
    (rows in time order, ``time_folds``). Raises ValueError when a fold's fitting
    parts lack good or defective parts."""
    labels = np.asarray(y)
    logits = np.empty(len(labels))
    for number, (fitting, scored) in enumerate(time_folds(len(labels), folds, gap), start=1):
        if len(np.unique(labels[fitting])) < 2:
            lacking = "defective" if labels[fitting].sum() == 0 else "good"
            raise ValueError(f"fold {number} of {folds} has no {lacking} parts to learn from")
        fold_model = clone(estimator).fit(X[fitting], labels[fitting])
        logits[scored] = log_odds(fold_model, X[scored])
    return logits


def refit_calibrated(
    estimator: Any, X: Any, y: Any, logits: np.ndarray[Any, np.dtype[np.float64]]
) -> tuple[PlattScaled, np.ndarray[Any, np.dtype[np.float64]]]:
    """``estimator`` fitted on all of ``X``, ``y``, its log-odds scaled by the sigmoid
    that fits ``logits`` (``out_of_fold_log_odds``) to ``y``, and the calibrated
    out-of-fold risk of every row."""
    labels = np.asarray(y)
    platt = LogisticRegression(C=1e4).fit(logits.reshape(-1, 1), labels)
    slope, intercept = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    model = PlattScaled(estimator, slope=slope, intercept=intercept).fit(X, labels)
    risk = _probabilities(slope * logits + intercept)[:, 1]
    return model, np.asarray(risk, dtype=np.float64)


# -- choosing among them ----------------------------------------------------------------
# What a run tries when its parameters name no class weighting, kept or dropped by
# what the calibration parts say: the shipped trees with and without the weighting,
# the library's defaults (the plain baseline's configuration), which a table with
# sharp rules can suit better than the shipped binning and leaves, the smooth
# candidates of ``models.candidates``, which suit a line's smooth quality curves,
# and the library's trees on crossed readings, which suit rules on a product or a
# difference of two readings (tried only where a machine has two readings to cross).
VARIANTS = (
    "balanced",
    "none",
    "library defaults",
    "additive splines",
    "trees + splines",
    "crossed trees",
)


def candidate(
    name: str, seed: int, parameters: Mapping[str, Any], groups: tuple[tuple[int, ...], ...] = ()
) -> Any:
    """An unfitted candidate; ``groups`` are the machines' columns (``station_groups``)
    that ``crossed trees`` crosses."""
    if name not in VARIANTS:
        raise ValueError(f"unknown candidate {name!r}: one of {', '.join(VARIANTS)}")
    if name == "library defaults":
        return Pipeline([("classifier", HistGradientBoostingClassifier(random_state=seed))])
    if name == "additive splines":
        return make_spline_model()
    if name == "crossed trees":
        return make_crossed_model(groups, seed)
    unweighted = {**parameters, "class_weight": None}
    if name == "trees + splines":
        return LogitBlend((make_defect_model(random_state=seed, **unweighted), make_spline_model()))
    weight = "balanced" if name == "balanced" else None
    return make_defect_model(random_state=seed, **{**parameters, "class_weight": weight})


def choose_out_of_fold(
    splits: Splits, seed: int, parameters: Mapping[str, Any]
) -> tuple[Any, Any, dict[str, Any]]:
    """The candidate whose out-of-fold scores on the training and calibration parts
    rank the defects best (average precision: what a rare class needs), refitted on
    all of them and calibrated out of fold (``models.candidates``), with its
    out-of-fold risk; parameters that name a weighting (a tuning's) keep theirs.
    Raises ValueError when a fold cannot learn (too few defects)."""
    learnt = splits.learnt
    gap = split_gap(len(learnt))
    if "class_weight" in parameters:
        names: tuple[str, ...] = (f"class_weight {parameters['class_weight']}",)
        candidates = {names[0]: make_defect_model(random_state=seed, **parameters)}
    else:
        groups = station_groups(learnt.feature_names)
        crossed = len(FeatureCrosses(groups).fit(learnt.features).pairs_) > 0
        names = tuple(name for name in VARIANTS if crossed or name != "crossed trees")
        candidates = {name: candidate(name, seed, parameters, groups) for name in names}
    logits = {
        name: out_of_fold_log_odds(candidate, learnt.features, learnt.defect, gap=gap)
        for name, candidate in candidates.items()
    }
    scores = {name: float(average_precision_score(learnt.defect, logits[name])) for name in names}
    chosen = max(names, key=lambda name: scores[name])  # ties: the first, balanced
    model, risk = refit_calibrated(
        candidates[chosen], learnt.features, learnt.defect, logits[chosen]
    )
    how = {
        "chosen": chosen,
        "chosen_by": (
            "parameters"
            if len(names) == 1
            else "out-of-fold average precision on the training and calibration parts"
        ),
        "out_of_fold_pr_auc": scores,
        "refit": {
            "on": "training and calibration parts",
            "folds": REFIT_FOLDS,
            "gap": gap,
            "platt_slope": model.slope,
            "platt_intercept": model.intercept,
        },
    }
    return model, risk, how


def fit_on_calibration_parts(
    splits: Splits, seed: int, parameters: Mapping[str, Any], why: str
) -> tuple[Any, Any, dict[str, Any]]:
    """When a fold cannot learn: the shipped model fitted on the training parts and
    calibrated on the calibration parts, with its risk there."""
    raw = make_defect_model(random_state=seed, **parameters)
    raw.fit(splits.train.features, splits.train.defect)
    calibrated = calibrate(raw, splits.calibration.features, splits.calibration.defect)
    risk = calibrated.predict_proba(splits.calibration.features)[:, 1]
    return (
        calibrated,
        risk,
        {
            "chosen": f"class_weight {raw.get_params()['classifier__class_weight']}",
            "chosen_by": (
                f"{why}: fitted on the training parts, calibrated on the calibration parts"
            ),
            "refit": None,
        },
    )


__all__ = [
    "CROSS_LIMIT",
    "REFIT_FOLDS",
    "VARIANTS",
    "SPLINE_C",
    "SPLINE_KNOTS",
    "FeatureCrosses",
    "LogitBlend",
    "PlattScaled",
    "SplineBasis",
    "candidate",
    "choose_out_of_fold",
    "fit_on_calibration_parts",
    "log_odds",
    "make_crossed_model",
    "make_spline_model",
    "out_of_fold_log_odds",
    "refit_calibrated",
    "station_groups",
    "time_folds",
]
