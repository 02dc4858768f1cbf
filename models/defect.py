"""Defect detection: how likely a part is defective, from what it saw on the line.

The model is a scikit-learn ``Pipeline``: constant columns are dropped (a
station without a tool reports wear 0 for every part), then a
``HistGradientBoostingClassifier`` scores the part. Gradient-boosted trees take
the missing values of a dataset (NaN: a lost message, a sensor in dropout) as
they come, need no scaling, and find the non-linear quality window of each
setpoint (defects rise on both sides of the best speed and temperature) and
the interactions between stations by themselves.

Defects are rare, so the classes are weighted ``"balanced"``: each class
weighs as much in the loss as the other. Ranking (ROC-AUC, PR-AUC) is unchanged
by it, but the scores are no longer defect rates: a balanced model scores
higher than the rate it has seen. ``evaluate`` shows this in its calibration
curve; read ``predict_proba`` as a ranking score and pick the threshold for
the trade-off wanted between missed defects and false alarms.

``evaluate`` reports ROC-AUC, PR-AUC (average precision), F1 at a threshold
and the calibration curve on held-out parts, and, when the dataset carries
``oracle_probability`` (a simulation), the oracle's ROC-AUC on the same parts:
the best any model could do with these features. Split by time
(``PartDataset.time_split``): train on earlier parts, test on later ones, as a
model in service scores parts it has never seen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_selection import VarianceThreshold
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from models.dataset import PartDataset

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


def make_defect_model(*, random_state: int | None = 0, **parameters: Any) -> Pipeline:
    """An unfitted defect model; ``parameters`` override the classifier's defaults."""
    classifier = HistGradientBoostingClassifier(
        class_weight="balanced",
        random_state=random_state,
        **{**DEFAULT_PARAMETERS, **parameters},
    )
    return Pipeline([("drop_constant", VarianceThreshold()), ("classifier", classifier)])


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

    @property
    def oracle_ratio(self) -> float | None:
        """The model's ROC-AUC as a share of the oracle's (1.0: as good as possible)."""
        if self.oracle_roc_auc is None:
            return None
        return self.roc_auc / self.oracle_roc_auc

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "oracle_ratio": self.oracle_ratio}


def defect_scores(model: Pipeline, parts: PartDataset) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Each part's score (the model's probability of a defect)."""
    check_is_fitted(model)
    scores: np.ndarray[Any, np.dtype[np.float64]] = model.predict_proba(parts.features)[:, 1]
    return scores


def evaluate(
    model: Pipeline, test: PartDataset, *, threshold: float = 0.5, bins: int = 10
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
    )


__all__ = ["DefectEvaluation", "defect_scores", "evaluate", "make_defect_model"]
