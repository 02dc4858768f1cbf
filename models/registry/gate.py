"""The quality gate: a newly trained model goes live only if it beats a floor.

Every model is registered with the result of its gate in its card; it is
activated only when it passed (or the user forced it). Each floor is measured
on data the model never learnt from: the latest parts (time-ordered, after the
parts it was fitted and calibrated on). The floors and why they sit where they
do are in docs/models.md ("The quality gate").

**Defect models** (the binary ``defect`` model, and the ``defect-station``
model through its part risk, 1 - P(good)) must

- be judged on enough parts: at least ``MIN_TEST_DEFECTS`` defective and
  ``MIN_TEST_GOOD`` good held-out parts;
- rank: ROC-AUC at least ``MIN_ROC_AUC``, and the lower end of its bootstrap 95%
  interval (``models.metrics``) above chance (``CHANCE_ROC_AUC``): a model judged
  on few parts must rank beyond the noise they leave;
- beat the constant predictor, the model that gives every part the defect rate
  it was trained on: a higher average precision than the held-out defect rate
  (the constant predictor's), and a lower Brier score than the constant's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from models.metrics import roc_auc_interval

MIN_TEST_DEFECTS = 20
MIN_TEST_GOOD = 20
MIN_ROC_AUC = 0.6
# A ranking no better than a coin: the bootstrap interval's lower end must clear it.
CHANCE_ROC_AUC = 0.5


@dataclass(frozen=True)
class Check:
    """One floor: the measured value, the floor, which side passes, and the verdict."""

    name: str
    value: float | None
    floor: float
    rule: str  # ">=", ">", "<=" or "<": value rule floor passes
    passed: bool

    def text(self) -> str:
        shown = "none" if self.value is None else f"{self.value:.4g}"
        if self.passed:
            return f"{self.name} {shown} {self.rule} {self.floor:.4g}"
        return f"{self.name} {shown}, needs {self.rule} {self.floor:.4g}"


def _check(name: str, value: float | None, rule: str, floor: float) -> Check:
    if value is None or not np.isfinite(value):
        return Check(name, None, floor, rule, False)
    passed = {
        ">=": value >= floor,
        ">": value > floor,
        "<=": value <= floor,
        "<": value < floor,
    }[rule]
    return Check(name, float(value), float(floor), rule, bool(passed))


@dataclass(frozen=True)
class GateResult:
    """Whether a model passed its floors; ``forced`` when it was activated anyway."""

    passed: bool
    checks: tuple[Check, ...]
    judged_on: str
    forced: bool = False

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def reason(self) -> str:
        """One line: what failed, or that all floors were met."""
        if self.passed:
            return "passed: " + "; ".join(check.text() for check in self.checks)
        return "below the floor: " + "; ".join(check.text() for check in self.failed)

    def with_force(self, force: bool) -> GateResult:
        forced = force and not self.passed
        return GateResult(self.passed, self.checks, self.judged_on, forced=forced)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "forced": self.forced,
            "judged_on": self.judged_on,
            "reason": self.reason(),
            "checks": [asdict(check) for check in self.checks],
        }


def _gate(checks: Sequence[Check], judged_on: str) -> GateResult:
    return GateResult(all(check.passed for check in checks), tuple(checks), judged_on)


def defect_gate(
    labels: npt.ArrayLike,
    risk: npt.ArrayLike,
    *,
    trained_rate: float,
    judged_on: str = "the latest held-out parts",
) -> GateResult:
    """The floors of a defect model on held-out parts: ``labels`` (1 defective),
    ``risk`` its predicted probability of a defect, ``trained_rate`` the defect rate
    of the parts it learnt from (the constant predictor's score)."""
    truth = np.asarray(labels, dtype=int)
    scores = np.asarray(risk, dtype=float)
    defects = int(truth.sum())
    good = len(truth) - defects
    checks = [
        _check("held-out defective parts", defects, ">=", MIN_TEST_DEFECTS),
        _check("held-out good parts", good, ">=", MIN_TEST_GOOD),
    ]
    if defects and good:
        constant = np.full(len(truth), trained_rate, dtype=float)
        checks += [
            _check("ROC-AUC", float(roc_auc_score(truth, scores)), ">=", MIN_ROC_AUC),
            # Better than chance beyond the noise of a small test set.
            _check(
                "ROC-AUC, lower end of its 95% interval",
                interval[0] if (interval := roc_auc_interval(truth, scores)) else None,
                ">",
                CHANCE_ROC_AUC,
            ),
            _check(
                "average precision",
                float(average_precision_score(truth, scores)),
                ">",
                defects / len(truth),
            ),
            _check(
                "Brier score",
                float(brier_score_loss(truth, scores)),
                "<",
                float(brier_score_loss(truth, constant)),
            ),
        ]
    return _gate(checks, judged_on)


__all__ = [
    "MIN_ROC_AUC",
    "MIN_TEST_DEFECTS",
    "MIN_TEST_GOOD",
    "Check",
    "GateResult",
    "defect_gate",
]
