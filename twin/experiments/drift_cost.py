"""What each drift costs: the learnt line run as it is, and again with one
drifted parameter put back to the line file's value; the difference in good
parts per calendar hour is what that drift costs the line now.

Both runs of a pair share their seeds (common random numbers), so the
difference is the parameter's, not the luck of the draws. A drift whose
restoring gains nothing (a slower station that is not the constraint) costs
about nothing, and says so: that is the point of ranking by cost rather than
by how far a parameter moved.
"""

from __future__ import annotations

import copy
import statistics
from typing import Any

from pydantic import BaseModel, Field

from twin.config.line import LineConfig
from twin.experiments.experiment import CONFIDENCE, estimate
from twin.learning.line import LINE, LearnedLine, LearnedParameter, set_parameter
from twin.sim.plant import Plant
from twin.sim.report import plant_report

HOURS = 24.0
RUNS = 8


class DriftCost(BaseModel):
    """One drifted parameter and the good parts an hour it costs."""

    station: str
    parameter: str
    ratio: float | None = Field(description="learnt / nominal.")
    good_per_h_learnt: float = Field(description="The learnt line, as it is.")
    good_per_h_restored: float = Field(description="The same, this parameter put back.")
    cost_good_per_h: float = Field(
        description="restored - learnt: the good parts an hour the drift costs (negative: "
        "the drift gains them)."
    )
    low: float | None = Field(description="95% interval of the cost (paired runs).")
    high: float | None = None
    runs: int
    hours: float


def restored(line: dict[str, Any], item: LearnedParameter) -> dict[str, Any]:
    """``line`` (a learnt line file) with ``item`` put back to its nominal value."""
    if item.nominal is None:
        raise ValueError(f"{item.station} {item.parameter}: no nominal value to put back")
    data = copy.deepcopy(line)
    block = (
        data
        if item.station == LINE
        else next(b for b in data["stations"] if b["id"] == item.station)
    )
    set_parameter(block, item, item.nominal)
    return data


def good_per_hour(config: LineConfig, seeds: list[int], hours: float) -> list[float]:
    """Good parts per calendar hour of ``config``, one run of ``hours`` per seed."""
    rates = []
    for seed in seeds:
        plant = Plant(config, seed=seed)
        plant.run(until=hours * 3600.0)
        rates.append(plant_report(plant, seed=seed, hours=hours).line_kpis.good / hours)
    return rates


def price_drift(
    learnt: LearnedLine, *, hours: float = HOURS, runs: int = RUNS, seed: int = 0
) -> list[DriftCost]:
    """Each drifted parameter of ``learnt`` with what it costs, the costliest first."""
    drifted = learnt.drifted()
    if not drifted:
        return []
    seeds = list(range(seed, seed + runs))
    base = good_per_hour(LineConfig.model_validate(learnt.line), seeds, hours)
    costs = []
    for item in drifted:
        back = good_per_hour(LineConfig.model_validate(restored(learnt.line, item)), seeds, hours)
        paired = estimate([b - a for a, b in zip(base, back, strict=True)], CONFIDENCE)
        costs.append(
            DriftCost(
                station=item.station,
                parameter=item.parameter,
                ratio=item.ratio,
                good_per_h_learnt=statistics.fmean(base),
                good_per_h_restored=statistics.fmean(back),
                cost_good_per_h=paired.mean,
                low=paired.low,
                high=paired.high,
                runs=runs,
                hours=hours,
            )
        )
    return sorted(costs, key=lambda cost: -cost.cost_good_per_h)


__all__ = ["HOURS", "RUNS", "DriftCost", "good_per_hour", "price_drift", "restored"]
