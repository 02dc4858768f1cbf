"""How sure a figure is: the bootstrap interval of a ROC-AUC.

A ROC-AUC measured on a few dozen defective parts moves by several hundredths
from one test set to the next. ``roc_auc_interval`` resamples the held-out parts
with replacement (``resamples`` times, a fixed seed: the same parts give the
same interval) and takes the 2.5th and 97.5th percentiles of the ROC-AUCs: the
report states it, and the quality gate asks its lower end to beat chance.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score

RESAMPLES = 400
CONFIDENCE = 0.95


def roc_auc_interval(
    labels: npt.ArrayLike,
    scores: npt.ArrayLike,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> tuple[float, float] | None:
    """The percentile bootstrap 95% interval of the ROC-AUC of ``scores`` on
    ``labels`` (1 positive); None when the parts hold one class only."""
    truth = np.asarray(labels, dtype=int)
    values = np.asarray(scores, dtype=float)
    if truth.min(initial=0) == truth.max(initial=0) or len(truth) < 2:
        return None
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(resamples):
        pick = rng.integers(0, len(truth), len(truth))
        sample = truth[pick]
        if sample.min() == sample.max():
            continue  # one class only: no ROC-AUC
        found.append(roc_auc_score(sample, values[pick]))
    if not found:
        return None
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(found, [tail, 100 - tail])
    return float(low), float(high)


__all__ = ["CONFIDENCE", "RESAMPLES", "roc_auc_interval"]
