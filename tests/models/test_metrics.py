"""The ROC-AUC's bootstrap interval: it covers what a model then scores on fresh
parts about as often as it says, narrows with more parts, and lets the gate
refuse a model whose good figure is the luck of a small test set."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from models.metrics import roc_auc_interval
from models.registry.gate import CHANCE_ROC_AUC, MIN_ROC_AUC, defect_gate


def scored_parts(
    rng: np.random.Generator, parts: int, skill: float, rate: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores: a defective part scores ``skill`` higher, plus unit noise."""
    labels = (rng.random(parts) < rate).astype(int)
    return labels, skill * labels + rng.normal(size=parts)


def test_the_interval_covers_the_auc_of_fresh_parts() -> None:
    rng = np.random.default_rng(5)
    # The model's ROC-AUC on a very large set: what it will score on the line.
    labels, scores = scored_parts(rng, 50_000, skill=1.0)
    truth = roc_auc_score(labels, scores)
    covered = 0
    trials = 40
    for trial in range(trials):
        small_labels, small_scores = scored_parts(rng, 300, skill=1.0)
        interval = roc_auc_interval(small_labels, small_scores, seed=trial)
        assert interval is not None
        low, high = interval
        assert low <= roc_auc_score(small_labels, small_scores) <= high
        covered += low <= truth <= high
    # A 95% interval; 40 trials spread a binomial by about 3.5%: 80% leaves room.
    assert covered / trials >= 0.8, covered


def test_the_interval_narrows_with_more_parts_and_needs_both_classes() -> None:
    rng = np.random.default_rng(6)
    widths = []
    for parts in (100, 1_000, 10_000):
        interval = roc_auc_interval(*scored_parts(rng, parts, skill=1.0))
        assert interval is not None
        widths.append(interval[1] - interval[0])
    assert widths == sorted(widths, reverse=True)
    assert roc_auc_interval([0, 0, 0], [0.1, 0.2, 0.3]) is None
    # The same parts and seed, the same interval.
    labels, scores = scored_parts(rng, 200, skill=0.5)
    assert roc_auc_interval(labels, scores, seed=3) == roc_auc_interval(labels, scores, seed=3)


def test_the_gate_refuses_a_lucky_figure_on_few_parts() -> None:
    # A coin-flip model on a small test set whose ROC-AUC came out above the floor
    # by luck: the first such set among seeded draws, found here.
    for seed in range(500):
        rng = np.random.default_rng(seed)
        labels = np.array([1] * 22 + [0] * 30)
        scores = rng.random(len(labels))
        if roc_auc_score(labels, scores) >= MIN_ROC_AUC:
            break
    else:
        raise AssertionError("no lucky draw found")
    interval = roc_auc_interval(labels, scores)
    assert interval is not None
    assert interval[0] <= CHANCE_ROC_AUC
    gate = defect_gate(labels, scores, trained_rate=float(labels.mean()))
    checks = {check.name: check for check in gate.checks}
    assert checks["ROC-AUC"].passed
    lower = checks["ROC-AUC, lower end of its 95% interval"]
    assert lower.value == interval[0]
    assert not lower.passed
    assert not gate.passed
    # A model that ranks, on as few parts, clears it.
    rng = np.random.default_rng(1)
    skilled = 1 / (1 + np.exp(-(labels * 2.0 + rng.normal(size=len(labels)) - 1)))
    checks = {check.name: check for check in defect_gate(labels, skilled, trained_rate=0.4).checks}
    assert checks["ROC-AUC, lower end of its 95% interval"].passed
