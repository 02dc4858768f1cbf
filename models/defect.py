"""Defect detection: how likely a part is defective, from what it saw on the line.

The model is a scikit-learn ``Pipeline``: constant columns are dropped (a
station without a tool reports wear 0 for every part), then a
``HistGradientBoostingClassifier`` scores the part. Gradient-boosted trees take
the missing values of a dataset (NaN: a lost message, a sensor in dropout) as
they come, need no scaling, and find the non-linear quality window of each
setpoint (defects rise on both sides of the best speed and temperature) and
the interactions between stations by themselves.

The features are binned first, by ``QuantileBinner``: each column's values
become the index of their quantile bin (at most 255 bins, as the classifier's
own), NaN kept. The classifier would bin them itself, but with class weights
scikit-learn (1.7 and later) finds weighted quantiles, about 100 times slower
than the fit's other work on our data (3.5 s against 0.04 s for 10,000 parts
and 30 features). On binned columns, with fewer distinct values than bins, it
skips that search, and the model is the classifier with unweighted bins.

Defects are rare, so the classes are weighted ``"balanced"`` by default: each
class weighs as much in the loss as the other (training keeps or drops the
weighting, or takes the library's defaults, by what its calibration parts say:
``models.fitting``). The raw
scores of a balanced model are no longer defect rates: a balanced model scores
higher than the rate it has seen (a line with 1% scrap would show ~50%).
``calibrate`` maps them back: a sigmoid (Platt scaling, scikit-learn's
``CalibratedClassifierCV`` around the frozen pipeline) fitted on parts that
left after the training parts and before the test parts. One shift and slope of
the log-odds is what undoing a class weighting needs, and two parameters are
well determined by a few dozen defects, where isotonic regression is not.
``choose_threshold`` picks the threshold of the best F1 on those parts too.

``evaluate`` reports ROC-AUC, PR-AUC (average precision), F1 at a threshold,
the Brier score, the mean risk and the calibration curve on held-out parts,
and, when the dataset carries ``oracle_probability`` (a simulation), the
oracle's ROC-AUC on the same parts:
the best any model could do with these features. Split by time
(``PartDataset.time_split``): train on earlier parts, test on later ones, as a
model in service scores parts it has never seen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import brentq
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV, calibration_curve
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_selection import VarianceThreshold
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_recall_curve,
    roc_auc_score,
)
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted, validate_data

from models.dataset.rows import PartDataset
from models.metrics import roc_auc_interval
from models.missing import TakesMissing

# Chosen on simulated runs of the default line with explored setpoints (docs/models.md):
# shallower trees, a smaller step and some shrinkage generalise to setpoints the
# training span did not visit better than the library's defaults.
DEFAULT_PARAMETERS: dict[str, Any] = {
    "learning_rate": 0.05,
    "max_iter": 400,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 50,
    "l2_regularization": 1.0,
}


class QuantileBinner(TakesMissing, TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Each column's values replaced by the index of their quantile bin; NaN stays NaN.

    ``max_bins`` bins at most per column, at the quantiles of its finite values in
    the training data (fewer where values repeat). A value equal to a bin's upper
    edge falls in that bin; values beyond the training range fall in the first or
    last bin. The output has at most ``max_bins`` distinct values per column.
    """

    def __init__(self, max_bins: int = 255) -> None:
        self.max_bins = max_bins

    def fit(self, X: Any, y: Any = None) -> QuantileBinner:
        if not 2 <= self.max_bins <= 255:
            raise ValueError(f"max_bins must be between 2 and 255 (got {self.max_bins})")
        data = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64)
        levels = np.linspace(0.0, 1.0, self.max_bins + 1)[1:-1]
        edges = []
        for column in data.T:
            finite = column[~np.isnan(column)]
            distinct = np.unique(finite)
            if len(distinct) <= self.max_bins:
                # Few values: one bin each, split halfway between neighbours.
                edges.append((distinct[:-1] + distinct[1:]) / 2.0)
            else:
                edges.append(np.unique(np.quantile(finite, levels, method="midpoint")))
        self.bin_edges_ = edges
        return self

    def transform(self, X: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
        check_is_fitted(self)
        data = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64, reset=False)
        binned: np.ndarray[Any, np.dtype[np.float64]] = np.empty_like(data)
        for index, edges in enumerate(self.bin_edges_):
            column = data[:, index]
            binned[:, index] = np.searchsorted(edges, column, side="left")
            binned[np.isnan(column), index] = np.nan
        return binned


def make_defect_model(*, random_state: int | None = 0, **parameters: Any) -> Pipeline:
    """An unfitted defect model; ``parameters`` override the classifier's defaults."""
    classifier = HistGradientBoostingClassifier(
        random_state=random_state,
        **{"class_weight": "balanced", **DEFAULT_PARAMETERS, **parameters},
    )
    return Pipeline(
        [
            ("drop_constant", VarianceThreshold()),
            ("bin", QuantileBinner()),
            ("classifier", classifier),
        ]
    )


def calibrate(
    model: Any,
    X: Any,
    y: Any,
    *,
    method: str = "sigmoid",
) -> CalibratedClassifierCV:
    """``model`` (fitted, left as it is) with its probabilities calibrated on the parts
    ``X``, ``y``: parts it never saw, which left after the ones it learnt from. Every
    class of the model must occur in ``y``, and ``y`` no other."""
    labels = np.asarray(y)
    known = set(np.asarray(model.classes_).tolist())
    seen = set(labels.tolist())
    if seen != known:
        missing = ", ".join(repr(name) for name in sorted(map(str, known - seen)))
        extra = ", ".join(repr(name) for name in sorted(map(str, seen - known)))
        raise ValueError(
            "the calibration parts need every class the model knows, and no other"
            + (f" (missing {missing})" if missing else "")
            + (f" (unknown {extra})" if extra else "")
            + ": train on a longer span"
        )
    # A frozen model gives the same scores in every fold: the folds only gather
    # them, and one calibrator is fitted on all of them (ensemble False). KFold,
    # not the stratified default, which warns about classes rarer than its folds.
    calibrated = CalibratedClassifierCV(FrozenEstimator(model), method=method, cv=KFold(2))
    return calibrated.fit(X, labels)


class RateAnchor(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A fitted classifier whose risk is moved to the defect rate of anchor parts.

    ``fit(X, y)`` finds one shift of the log-odds of a defect (of not being
    ``good_class``) that makes the mean predicted risk of the parts ``X`` their
    defect rate; ``predict_proba`` applies it, scaling every defect class alike
    (for a station model, where parts fail keeps its proportions). The estimator
    itself is left as it is. This is a correction for the prior shift between the
    parts a model learnt from and the line it serves: a designed experiment
    makes far more defects than the line at its own setpoints, so a model learnt
    from both is anchored on the line's own recent parts (docs/models.md).
    """

    def __init__(self, estimator: Any = None, good_class: Any = 0) -> None:
        self.estimator = estimator
        self.good_class = good_class

    def _good(self) -> int:
        classes = list(self.estimator.classes_)
        if self.good_class not in classes:
            raise ValueError(f"good_class {self.good_class!r} is not a class of {classes}")
        return classes.index(self.good_class)

    def _shifted(self, probabilities: Any, shift: float) -> Any:
        return shift_log_odds(probabilities, self._good(), shift)

    def fit(self, X: Any, y: Any) -> RateAnchor:
        if self.estimator is None:
            raise ValueError("RateAnchor needs a fitted estimator")
        check_is_fitted(self.estimator)
        labels = np.asarray(y)
        rate = float(np.mean(labels != self.good_class))
        if not 0 < rate < 1:
            raise ValueError(
                f"the anchor parts need both good and defective parts (defect rate {rate:g})"
            )
        probabilities = np.asarray(self.estimator.predict_proba(X), dtype=np.float64)
        good = self._good()

        def excess(shift: float) -> float:
            return float(1.0 - self._shifted(probabilities, shift)[:, good].mean()) - rate

        # The mean risk rises monotonically with the shift: a bracketed root.
        self.log_odds_shift_ = float(brentq(excess, -20.0, 20.0))
        self.classes_ = np.asarray(self.estimator.classes_)
        self.anchor_rate_ = rate
        if hasattr(self.estimator, "n_features_in_"):
            self.n_features_in_ = self.estimator.n_features_in_
        return self

    def predict_proba(self, X: Any) -> Any:
        check_is_fitted(self, "log_odds_shift_")
        return self._shifted(self.estimator.predict_proba(X), self.log_odds_shift_)

    def predict(self, X: Any) -> Any:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


# The threshold is the median of those whose F1 is within this of the best: the best
# alone is one point of a noisy curve, the plateau around it is what holds on new parts.
THRESHOLD_TOLERANCE = 0.01


def choose_threshold(labels: Any, scores: Any, tolerance: float = THRESHOLD_TOLERANCE) -> float:
    """The score threshold for F1 on ``labels``: where flagging a part as defective
    trades missed defects against false alarms best. The median of the thresholds
    whose F1 is within ``tolerance`` of the best (0: the best itself)."""
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    if not len(thresholds):
        return 0.5
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    f1 = f1[:-1]  # the last point (recall 0) has no threshold
    near = thresholds[f1 >= f1.max() - tolerance]
    return float(near[len(near) // 2]) if tolerance > 0 else float(thresholds[int(np.argmax(f1))])


def shift_log_odds(probabilities: Any, good: int, shift: float) -> Any:
    """Class probabilities (one row per part) with the log-odds of every class but
    column ``good`` against it moved by ``shift``, rows summing to 1 again."""
    scaled = np.asarray(probabilities, dtype=np.float64) * np.exp(shift)
    scaled[:, good] = np.asarray(probabilities, dtype=np.float64)[:, good]
    return scaled / scaled.sum(axis=1, keepdims=True)


def shifted(risk: Any, shift: float) -> Any:
    """``risk`` with its log-odds moved by ``shift`` (``RateAnchor``'s correction,
    for the binary risk of a defect)."""
    if not shift:
        return np.asarray(risk)
    risk = np.asarray(risk, dtype=np.float64)
    return shift_log_odds(np.column_stack([1.0 - risk, risk]), 0, shift)[:, 1]


@dataclass(frozen=True)
class DefectEvaluation:
    """How well a model ranks and separates the defective parts of a test set."""

    parts: int
    defects: int
    roc_auc: float
    pr_auc: float  # average precision; a model that guesses scores the defect rate
    threshold: float
    f1: float  # at the threshold
    # (mean score, observed defect rate) per bin of equally many parts, low to high
    calibration: tuple[tuple[float, float], ...]
    oracle_roc_auc: float | None = None
    oracle_pr_auc: float | None = None
    brier: float | None = None  # mean squared error of the probabilities
    # The ROC-AUC's bootstrap 95% interval on these parts (models.metrics)
    roc_auc_low: float | None = None
    roc_auc_high: float | None = None
    mean_risk: float | None = None  # the mean predicted probability
    defect_rate: float | None = None  # the observed share of defective parts

    @property
    def oracle_ratio(self) -> float | None:
        """The model's ROC-AUC as a share of the oracle's (1.0: as good as possible)."""
        if self.oracle_roc_auc is None:
            return None
        return self.roc_auc / self.oracle_roc_auc

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "oracle_ratio": self.oracle_ratio}


def baseline_evaluation(train: PartDataset, test: PartDataset, seed: int) -> dict[str, Any]:
    """The plain baseline every run is reported beside: scikit-learn's
    ``HistGradientBoostingClassifier`` with its defaults, fitted on the same training
    parts, scored on the same test parts, at its own decision threshold (0.5)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    labels = test.defect
    baseline = HistGradientBoostingClassifier(random_state=seed)
    baseline.fit(train.features, train.defect)
    scores = baseline.predict_proba(test.features)[:, 1]
    return {
        "model": "HistGradientBoostingClassifier with its defaults",
        "roc_auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "threshold": 0.5,
        "f1": float(f1_score(labels, scores >= 0.5)),
    }


def defect_scores(model: Any, parts: PartDataset) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Each part's score (the model's probability of a defect)."""
    check_is_fitted(model)
    scores: np.ndarray[Any, np.dtype[np.float64]] = model.predict_proba(parts.features)[:, 1]
    return scores


def evaluate(
    model: Any, test: PartDataset, *, threshold: float = 0.5, bins: int = 10
) -> DefectEvaluation:
    """ROC-AUC, PR-AUC, F1 at ``threshold`` and the calibration curve on ``test``,
    and the oracle's ROC-AUC and PR-AUC on the same parts when ``test`` has it."""
    labels = test.defect
    if len(np.unique(labels)) < 2:
        raise ValueError(
            f"the test parts need both good and defective parts ({len(test)} parts, "
            f"{int(labels.sum())} defective): test on a longer span"
        )
    scores = defect_scores(model, test)
    observed, predicted = calibration_curve(labels, scores, n_bins=bins, strategy="quantile")
    oracle = test.oracle_probability
    return DefectEvaluation(
        parts=len(test),
        defects=int(labels.sum()),
        roc_auc=float(roc_auc_score(labels, scores)),
        pr_auc=float(average_precision_score(labels, scores)),
        threshold=threshold,
        f1=float(f1_score(labels, scores >= threshold)),
        calibration=tuple(
            (float(mean), float(rate)) for mean, rate in zip(predicted, observed, strict=True)
        ),
        oracle_roc_auc=None if oracle is None else float(roc_auc_score(labels, oracle)),
        oracle_pr_auc=None if oracle is None else float(average_precision_score(labels, oracle)),
        brier=float(brier_score_loss(labels, scores)),
        roc_auc_low=interval[0] if (interval := roc_auc_interval(labels, scores)) else None,
        roc_auc_high=interval[1] if interval else None,
        mean_risk=float(np.mean(scores)),
        defect_rate=float(np.mean(labels)),
    )


__all__ = [
    "DefectEvaluation",
    "QuantileBinner",
    "RateAnchor",
    "calibrate",
    "baseline_evaluation",
    "THRESHOLD_TOLERANCE",
    "choose_threshold",
    "defect_scores",
    "evaluate",
    "make_defect_model",
    "shifted",
]
