"""The learnt line: the line file with what the stream has shown put in.

``learn_line(nominal, learner)`` starts from the nominal line file and replaces
each parameter the stream has shown enough of (``MIN_SAMPLES`` parts of a
product, breakdowns, repairs or changeovers) by its estimate: each station's
processing time per product (the family and its parameters, ``fit_duration``),
its changeover time, its failures (basis, MTBF, MTTR) and, where its quality is
a plain ``defect_probability``, that probability (scrap and rework together,
which is what it draws). The result validates as a line file, so the simulator
runs it as it runs any other; ``parameters`` lists each estimate beside its
nominal value with its 95% interval, and ``drifted`` those that moved: by
``MIN_DRIFT`` (5%) or more, and with the nominal value outside their interval at
a level that holds for all the parameters at once (Bonferroni: 1 - 5%/m for m
parameters), so that a line that did not change raises no drift by the chance of
one parameter in twenty. The furthest come first.
"""

from __future__ import annotations

import copy
import math
import random
from statistics import NormalDist
from typing import Any

from pydantic import BaseModel, Field

from twin.config.line import LineConfig, Station
from twin.learning.estimators import CONFIDENCE, Estimate, fit_duration
from twin.learning.observer import MIN_SAMPLES, LineLearner

# A learnt value closer than this share to the file's is not drift, however sure:
# a file's round numbers and the stream's rounding differ by less.
MIN_DRIFT = 0.05
# A drawn defect probability is kept below this (a line file's probability is < 1).
MAX_DRAWN_PROBABILITY = 0.95


class LearnedParameter(BaseModel):
    """One parameter the stream has shown: its estimate beside the file's value."""

    station: str
    parameter: str = Field(
        description="Its path in the station's block of the line file, e.g. "
        "processing_time.mean_s or failures.mtbf_s."
    )
    value: float
    low: float = Field(description="The 95% interval's lower end.")
    high: float = Field(description="The 95% interval's upper end.")
    n: int = Field(description="The parts, breakdowns or repairs it rests on.")
    unit: str
    nominal: float | None = Field(description="The line file's value; null without one.")
    ratio: float | None = Field(description="value / nominal.")
    drifted: bool = Field(
        description="The learnt value differs from the nominal one by 5% or more, and "
        "the nominal value lies outside its interval at 95% for all the parameters "
        "together (Bonferroni)."
    )
    detail: str | None = Field(default=None, description="The family fitted, the basis.")


class LearnedLine(BaseModel):
    """The learnt line file, each learnt parameter, and what is not learnt yet."""

    line: dict[str, Any] = Field(
        description="A valid line file: the nominal one, learnt values in."
    )
    parameters: list[LearnedParameter]
    not_learnt: list[str] = Field(description="What the stream has not shown enough of yet.")
    min_samples: int = MIN_SAMPLES

    def drawn(self, rng: random.Random) -> dict[str, Any]:
        """The learnt line file with each learnt parameter drawn from its sampling
        distribution: lognormal about the learnt value with the spread its 95%
        interval shows (a probability with a lower end of 0: normal, clipped),
        each processing-time distribution scaled as a whole. Forecasts that run
        one draw per replication carry the uncertainty of what was learnt into
        their interval (``twin.experiments.shadow``)."""
        data = copy.deepcopy(self.line)
        blocks = {block["id"]: block for block in data["stations"]}
        z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
        for item in self.parameters:
            if item.high <= item.low or item.value <= 0:
                continue
            if item.low > 0:
                sigma = (math.log(item.high) - math.log(item.low)) / (2 * z)
                drawn = item.value * math.exp(rng.gauss(0.0, sigma))
            else:
                drawn = max(0.0, rng.gauss(item.value, (item.high - item.low) / (2 * z)))
            block = blocks[item.station]
            path = item.parameter.split(".")
            if path[0] == "defect_probability":
                block["defect_probability"] = min(drawn, MAX_DRAWN_PROBABILITY)
            elif path[0] == "failures":
                block["failures"][path[1]] = drawn
            else:  # processing_time.mean_s, processing_time_by_product.<product>.mean_s,
                # setup.time.mean_s
                distribution = block[path[0]] if len(path) == 2 else block[path[0]][path[1]]
                factor = drawn / item.value
                for key in ("mean_s", "min_s", "mode_s", "max_s"):
                    if key in distribution:
                        distribution[key] *= factor
        return data

    def drifted(self) -> list[LearnedParameter]:
        """The parameters whose interval leaves the nominal value out, the furthest
        from it first (by the log of value / nominal)."""
        moved = [item for item in self.parameters if item.drifted and item.ratio]
        return sorted(moved, key=lambda item: -abs(math.log(item.ratio or 1.0)))


def _parameter(
    station: str,
    name: str,
    estimate: Estimate,
    nominal: float | None,
    unit: str,
    detail: str | None = None,
) -> LearnedParameter:
    covered = nominal is None or estimate.covers(nominal)
    ratio = estimate.value / nominal if nominal else None
    values = {**estimate.as_dict(), "unit": unit, "nominal": nominal, "ratio": ratio}
    return LearnedParameter(
        station=station, parameter=name, drifted=not covered, detail=detail, **values
    )


def _processing(
    spec: Station,
    block: dict[str, Any],
    learner: LineLearner,
    found: list[LearnedParameter],
    confidence: float,
) -> list[str]:
    """Put the learnt processing times into ``block``; what could not be learnt."""
    times = learner.processing_times(spec.id)
    by_product = spec.processing_time_by_product
    groups: dict[str | None, list[float]] = {}
    for name, values in times.items():
        groups.setdefault(name if name in by_product else None, []).extend(values)
    missing = []
    for product, values in groups.items():
        where = "processing_time" if product is None else f"processing_time_by_product.{product}"
        if len(values) < MIN_SAMPLES:
            missing.append(f"{spec.id} {where}: {len(values)} parts, needs {MIN_SAMPLES}")
            continue
        fit = fit_duration(values, confidence)
        nominal = (spec.processing_time if product is None else by_product[product]).mean
        if product is None:
            block["processing_time"] = fit.as_line_file()
        else:
            block["processing_time_by_product"][product] = fit.as_line_file()
        found.append(_parameter(spec.id, f"{where}.mean_s", fit.mean, nominal, "s", fit.family))
    return missing


def learn_line(nominal: LineConfig, learner: LineLearner) -> LearnedLine:
    """The nominal line with what ``learner`` has learnt put in (module doc)."""
    data, found, missing = _collect(nominal, learner, CONFIDENCE)
    if found:
        # Drift is judged on intervals wide enough for all the parameters at once
        # (Bonferroni: 95% for the family), and only for a change of MIN_DRIFT or more.
        _, strict, _ = _collect(nominal, learner, 1 - (1 - CONFIDENCE) / len(found))
        judged = {(item.station, item.parameter): item.drifted for item in strict}
        found = [
            item.model_copy(
                update={
                    "drifted": item.drifted
                    and judged.get((item.station, item.parameter), False)
                    and abs((item.ratio or 1.0) - 1) >= MIN_DRIFT
                }
            )
            for item in found
        ]
    learnt = LineConfig.model_validate(data)  # a learnt line is a valid line file
    return LearnedLine(line=learnt.model_dump(mode="json"), parameters=found, not_learnt=missing)


def _collect(
    nominal: LineConfig, learner: LineLearner, confidence: float
) -> tuple[dict[str, Any], list[LearnedParameter], list[str]]:
    """The line file with the learnt values in, each learnt parameter with its
    interval at ``confidence`` (drifted: the nominal value outside it), and what
    is not learnt."""
    data = nominal.model_dump(mode="json")
    blocks = {block["id"]: block for block in data["stations"]}
    found: list[LearnedParameter] = []
    missing: list[str] = []
    heard = set(learner.stations)
    for spec in nominal.stations:
        if spec.id not in heard:
            missing.append(f"{spec.id}: no message yet")
            continue
        block = blocks[spec.id]
        missing += _processing(spec, block, learner, found, confidence)
        estimates = learner.estimates(spec.id, confidence)
        failures = estimates.failures
        if spec.failures is not None:
            if failures is None or failures.mtbf_s.n < MIN_SAMPLES or failures.mttr_s is None:
                seen = 0 if failures is None else failures.mtbf_s.n
                missing.append(f"{spec.id} failures: {seen} breakdowns, needs {MIN_SAMPLES}")
            else:
                block["failures"] = {
                    "basis": failures.basis,
                    "mtbf_s": failures.mtbf_s.value,
                    "mttr_s": failures.mttr_s.value,
                }
                basis = f"basis {failures.basis} (nominal {spec.failures.basis})"
                for name, estimate, in_file, detail in (
                    ("mtbf_s", failures.mtbf_s, spec.failures.mtbf_s, basis),
                    ("mttr_s", failures.mttr_s, spec.failures.mttr_s, "crew waiting included"),
                ):
                    found.append(
                        _parameter(spec.id, f"failures.{name}", estimate, in_file, "s", detail)
                    )
        if spec.setup is not None:
            fit = estimates.setup
            if fit is None:
                missing.append(f"{spec.id} setup: fewer than {MIN_SAMPLES} changeovers")
            else:
                block["setup"]["time"] = fit.as_line_file()
                found.append(
                    _parameter(
                        spec.id,
                        "setup.time.mean_s",
                        fit.mean,
                        spec.setup.time.mean,
                        "s",
                        fit.family,
                    )
                )
        defects = estimates.defects
        if spec.process.quality is None and defects is not None:
            block["defect_probability"] = defects.value
            found.append(
                _parameter(spec.id, "defect_probability", defects, spec.defect_probability, "share")
            )
    return data, found, missing


__all__ = ["LearnedLine", "LearnedParameter", "learn_line"]
