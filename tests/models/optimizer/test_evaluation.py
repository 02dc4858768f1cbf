"""Scoring a candidate: the constraints' violations and the best feasible evaluation."""

from __future__ import annotations

import pytest

from models.optimizer.evaluation import Constraints, Evaluation, best_of


def metrics(good: float, margin: float, defects: float, energy: float) -> dict[str, float]:
    return {
        "good_per_hour": good,
        "margin_per_hour": margin,
        "defect_rate": defects,
        "energy_per_good_part_kwh": energy,
    }


def test_constraints_measure_relative_violations() -> None:
    limits = Constraints(
        max_defect_rate=0.05, min_throughput_per_h=20.0, max_energy_per_good_part_kwh=2.0
    )
    assert limits.violation(metrics(25.0, 100.0, 0.05, 2.0)) == 0
    # 10% over the defect limit and 25% under the throughput floor.
    assert limits.violation(metrics(15.0, 100.0, 0.055, 1.0)) == pytest.approx(0.1 + 0.25)
    assert Constraints().violation({}) == 0


def test_the_recommendation_is_the_best_feasible_evaluation() -> None:
    trace = [
        Evaluation(setpoints={"a.speed": 1.0}, metrics=metrics(30.0, 200.0, 0.10, 1.5)),
        Evaluation(setpoints={"a.speed": 0.9}, metrics=metrics(28.0, 190.0, 0.04, 1.5)),
        Evaluation(setpoints={"a.speed": 0.8}, metrics=metrics(26.0, 180.0, 0.03, 1.5)),
    ]
    assert best_of(trace, "good_per_hour") == (trace[0], True)
    assert best_of(trace, "good_per_hour", Constraints(max_defect_rate=0.05)) == (trace[1], True)
    # Nothing feasible: the least violating, flagged.
    assert best_of(trace, "margin_per_hour", Constraints(max_defect_rate=0.01)) == (
        trace[2],
        False,
    )
