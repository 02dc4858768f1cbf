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
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any

from pydantic import BaseModel, Field

from twin.config.line import LineConfig, Quality, Station
from twin.learning.estimators import (
    CONFIDENCE,
    DurationFit,
    Estimate,
    LogisticModel,
    duration_mean,
    exponential_mean,
    fit_duration,
    logistic_model,
)
from twin.learning.observer import MIN_SAMPLES, Failures, LineLearner, Maintenance
from twin.state.views import LineView

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


def _ceiling(item: LearnedParameter) -> float:
    if item.parameter in ("defect_probability", "process.quality.base_defect_probability"):
        return MAX_DRAWN_PROBABILITY
    if item.parameter == "process.quality.wear_sensitivity":
        return 100.0
    return 1.0 if item.parameter == "process.wear.per_part" else math.inf


def set_parameter(block: dict[str, Any], item: LearnedParameter, value: float) -> None:
    """Set ``item`` to ``value`` in its station's ``block`` of a line file (the whole
    file for the line's own, ``LINE``: its release): a plain
    value in place (failures.mtbf_s, microstops.mean_between_s, defect_probability,
    process.wear.per_part), a distribution's mean by scaling the whole
    distribution from the learnt value (processing_time.mean_s,
    processing_time_by_product.<product>.mean_s, setup.time.mean_s,
    microstops.duration.mean_s, process.wear.maintenance_time.mean_s), so its
    shape stays."""
    *where, name = item.parameter.split(".")
    node = block
    for key in where:
        node = node[key]
    if name != "mean_s":
        node[name] = value
    else:
        distribution = node
        factor = value / item.value if item.value else 1.0
        for key in ("mean_s", "min_s", "mode_s", "max_s"):
            if key in distribution:
                distribution[key] *= factor


# The station of a parameter of the whole line (its release).
LINE = "(line)"
# A release whose parts came at least this share of the time at the instant a
# part left the line is a CONWIP loop.
CONWIP_SHARE = 0.9


class BufferSeen(BaseModel):
    """A station's input buffer: the highest level the parts reported, a lower bound
    of its capacity (a buffer never filled shows less than it holds)."""

    station: str
    highest_level: int
    capacity: int | None = Field(
        description="The line file's (or birth message's); null: unlimited."
    )
    contradicts: bool = Field(
        description="The buffer held more than its capacity says: the capacity is wrong."
    )


class LearnedLine(BaseModel):
    """The learnt line file, each learnt parameter, and what is not learnt yet."""

    line: dict[str, Any] = Field(
        description="A valid line file: the nominal one, learnt values in."
    )
    parameters: list[LearnedParameter]
    not_learnt: list[str] = Field(description="What the stream has not shown enough of yet.")
    buffers: list[BufferSeen] = Field(
        default=[], description="Each input buffer's highest level seen: a lower bound."
    )
    min_samples: int = MIN_SAMPLES
    ready: bool = Field(
        default=False,
        description="Every station has been heard from and its processing time learnt "
        "(MIN_SAMPLES parts of each product): the what-if and the optimizer then run the "
        "learnt line unless asked for the file's. Failures, changeovers and jams not learnt "
        "yet keep the file's values.",
    )

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
            if item.high <= item.low or item.value <= 0 or item.parameter == "release.wip_cap":
                continue  # known exactly, or a count (the parts a loop holds)
            if item.low > 0:
                sigma = (math.log(item.high) - math.log(item.low)) / (2 * z)
                drawn = item.value * math.exp(rng.gauss(0.0, sigma))
            elif item.unit == "s":
                # A duration is never 0: its interval's lower end stopped at 0, so the
                # spread comes from the upper half, on the log scale.
                sigma = (math.log(item.high) - math.log(item.value)) / z
                drawn = item.value * math.exp(rng.gauss(0.0, sigma))
            else:
                drawn = max(0.0, rng.gauss(item.value, (item.high - item.low) / (2 * z)))
            block = data if item.station == LINE else blocks[item.station]
            set_parameter(block, item, min(drawn, _ceiling(item)))
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


class _Fits:
    """Processing-time fits made once per learnt line: the family and its
    parameters do not depend on the interval's level, so the second, stricter
    pass only recomputes the mean's interval."""

    def __init__(self) -> None:
        self.made: dict[tuple[str, str | None], DurationFit] = {}

    def fit(
        self, key: tuple[str, str | None], values: list[float], confidence: float
    ) -> DurationFit:
        made = self.made.get(key)
        if made is None:
            made = self.made[key] = fit_duration(values, confidence)
            return made
        return replace(made, mean=duration_mean(values, confidence))


def _processing(
    spec: Station,
    block: dict[str, Any],
    learner: LineLearner,
    found: list[LearnedParameter],
    confidence: float,
    fits: _Fits,
) -> list[str]:
    """Put the learnt processing times into ``block``; what could not be learnt."""
    times = learner.processing_times(spec.id)
    by_product = spec.processing_time_by_product
    if by_product and "default" in times:
        # Parts of no named product (history keeps none) where the file times each
        # product apart: pooled, they would match none of the file's times.
        times = {name: values for name, values in times.items() if name != "default"}
        if not times:
            return [f"{spec.id} processing_time: the parts name no product, the file times each"]
    untimed = learner.untimed_parts(spec.id)
    if not times and untimed:
        return [f"{spec.id} processing_time: none of its {untimed} parts reports one"]
    groups: dict[str | None, list[float]] = {}
    for name, values in times.items():
        groups.setdefault(name if name in by_product else None, []).extend(values)
    missing = []
    for product, values in groups.items():
        where = "processing_time" if product is None else f"processing_time_by_product.{product}"
        if len(values) < MIN_SAMPLES:
            missing.append(f"{spec.id} {where}: {len(values)} parts, needs {MIN_SAMPLES}")
            continue
        fit = fits.fit((spec.id, product), values, confidence)
        nominal = (spec.processing_time if product is None else by_product[product]).mean
        if product is None:
            block["processing_time"] = fit.as_line_file()
        else:
            block["processing_time_by_product"][product] = fit.as_line_file()
        found.append(_parameter(spec.id, f"{where}.mean_s", fit.mean, nominal, "s", fit.family))
    return missing


def skeleton_line(view: LineView, learner: LineLearner) -> LineConfig:
    """A line file for a line that came without one, from what the twin knows of
    it: its identity, stations in flow order with their machines and buffer
    capacities, and its calendar (the birth message), and the products its first
    station made, their mix and run length (the parts between product changes:
    the release's batch size); a station whose products' mean times differ by
    more than ``SAME_PRODUCT_TIMES`` gets a processing time per product.
    Processing times are placeholders (1 s) until ``learn_unfiled_line`` puts
    the learnt ones in. ValueError when the twin knows no station yet."""
    stations = sorted(view.stations, key=lambda s: (s.position is None, s.position or 0))
    if not stations:
        raise ValueError("stations: the twin knows no station of this line yet")
    counts, changes = learner.products(stations[0].id)
    total = sum(counts.values())
    named = {name: count for name, count in counts.items() if name != "default"}
    products = [{"id": name, "mix": count / total} for name, count in sorted(named.items())] or [
        {"id": "part"}
    ]
    placeholder = {"distribution": "deterministic", "mean_s": 1.0}
    blocks = []
    for station in stations:
        block: dict[str, Any] = {
            "id": station.id,
            "name": station.name,
            "machines": max(1, station.kpis.machines, len(station.machines)),
            "processing_time": dict(placeholder),
        }
        if station.input_buffer is not None and station.input_buffer.capacity is not None:
            block["input_buffer_capacity"] = station.input_buffer.capacity
        times = {
            name: values
            for name, values in learner.processing_times(station.id).items()
            if name in named and len(values) >= MIN_SAMPLES
        }
        means = [sum(values) / len(values) for values in times.values()]
        # Products whose times differ by less than SAME_PRODUCT_TIMES share one fit.
        if len(means) > 1 and max(means) > min(means) * (1 + SAME_PRODUCT_TIMES):
            block["processing_time_by_product"] = {name: dict(placeholder) for name in times}
        blocks.append(block)
    data: dict[str, Any] = {
        "line": {"id": view.line, "name": view.name, "site": view.site, "area": view.area},
        "release": {
            "policy": "saturated",
            "batch_size": release_batch_size(named, total, changes, learner.runs(stations[0].id)),
        },
        "products": products,
        "stations": blocks,
    }
    if view.calendar is not None:
        data["calendar"] = view.calendar.model_dump(mode="json")
    return LineConfig.model_validate(data)


def release_batch_size(counts: dict[str, int], total: int, changes: int, runs: list[int]) -> int:
    """The release's batch size from the products as they came. A run of one
    product is one batch or several in a row: with MIN_RUNS runs seen whole
    whose greatest common divisor is 2 or more, that divisor (the batch every
    run is made of); otherwise, since the next batch is of the same product with
    the chance sum(mix^2), the mean run times 1 - sum(mix^2)."""
    if total == 0 or len(counts) < 2:
        return 1
    divisor = math.gcd(*runs) if len(runs) >= MIN_RUNS else 1
    if divisor >= 2:
        return divisor
    run = total / (changes + 1)
    same = sum((count / total) ** 2 for count in counts.values())
    return max(1, round(run * (1 - same)))


# Runs of one product seen whole before their common divisor is taken as the batch.
MIN_RUNS = 3
# A line learnt without a file fits each product's processing time apart only
# where the products' mean times differ by more than this share.
SAME_PRODUCT_TIMES = 0.05


# What a line learnt without a file cannot show, whatever the data.
UNFILED_LIMITS = [
    "release: saturated unless the first station's takes show an open line (parts "
    "coming while it waits) or a CONWIP loop (parts coming as parts leave), with the "
    "products' mix and run length seen at the first station",
    "rework: a part sent back counts as a defect that leaves the line",
    "quality models (scrap against setpoints and wear): not modelled; tool wear grows "
    "with speed to the power 1 (one speed cannot show the exponent)",
    "buffer capacities and machine counts: from the line's birth message",
]


def learn_unfiled_line(view: LineView, learner: LineLearner) -> LearnedLine:
    """The line learnt from its messages alone: ``skeleton_line`` with every
    parameter the stream has shown put in. No parameter has a nominal value, so
    none is drifted; what the stream cannot show is listed in ``not_learnt``."""
    # With no file to fall back on, even one breakdown says more than none: a
    # station seen to fail gets failures, however wide their interval.
    learnt = learn_line(skeleton_line(view, learner), learner, min_breakdowns=1)
    unfiled = [
        item.model_copy(update={"nominal": None, "ratio": None, "drifted": False})
        for item in learnt.parameters
    ]
    return learnt.model_copy(
        update={"parameters": unfiled, "not_learnt": learnt.not_learnt + UNFILED_LIMITS}
    )


def learn_line(
    nominal: LineConfig, learner: LineLearner, min_breakdowns: int = MIN_SAMPLES
) -> LearnedLine:
    """The nominal line with what ``learner`` has learnt put in (module doc);
    failures need ``min_breakdowns`` breakdowns to replace the file's."""
    fits = _Fits()
    data, found, missing = _collect(nominal, learner, CONFIDENCE, min_breakdowns, fits)
    if found:
        # Drift is judged on intervals wide enough for all the parameters at once
        # (Bonferroni: 95% for the family), and only for a change of MIN_DRIFT or more.
        strict_level = 1 - (1 - CONFIDENCE) / len(found)
        _, strict, _ = _collect(nominal, learner, strict_level, min_breakdowns, fits)
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
    ready = not holding_back(missing)
    return LearnedLine(
        line=learnt.model_dump(mode="json"),
        parameters=found,
        not_learnt=missing,
        buffers=buffers_seen(nominal, learner),
        ready=ready,
    )


def _maintenance(
    spec: Station,
    block: dict[str, Any],
    learnt: Maintenance | None,
    exponent: float,
    found: list[LearnedParameter],
    min_maintenances: int = MIN_SAMPLES,
) -> list[str]:
    """Put the learnt tool wear and maintenance in ``block`` (``process.wear``): wear
    per part, the level maintained at (from ``min_maintenances`` maintenances), the
    maintenance time. What is not learnt yet keeps the file's values (a line
    without a file: the simulator's defaults, or the mean of the maintenances
    seen); returns what is missing."""
    filed = spec.process.wear
    if learnt is None or learnt.per_part is None:
        if filed is None:
            return []
        return [f"{spec.id} wear: fewer than {MIN_SAMPLES} parts reported their tool wear"]
    process = block.setdefault("process", {})
    wear = process.get("wear") or {"speed_exponent": exponent}
    process["wear"] = wear
    wear["per_part"] = min(1.0, learnt.per_part.value)
    found.append(
        _parameter(
            spec.id,
            "process.wear.per_part",
            learnt.per_part,
            filed.per_part if filed is not None else None,
            "wear",
            f"at speed 1 (wear grows with speed^{exponent:g})",
        )
    )
    missing = []
    level = learnt.preventive_at
    if level is not None and level.n >= min_maintenances:
        wear["preventive_at"] = level.value
        found.append(
            _parameter(
                spec.id,
                "process.wear.preventive_at",
                level,
                filed.preventive_at if filed is not None else None,
                "wear",
                "between the wear before and after the last part before maintenance",
            )
        )
    elif filed is not None and filed.preventive_at is not None:
        seen = 0 if level is None else level.n
        missing.append(f"{spec.id} preventive maintenance: {seen} seen, needs {min_maintenances}")
    if learnt.time is not None:
        wear["maintenance_time"] = learnt.time.as_line_file()
        found.append(
            _parameter(
                spec.id,
                "process.wear.maintenance_time.mean_s",
                learnt.time.mean,
                filed.maintenance_time.mean if filed is not None else None,
                "s",
                learnt.time.family,
            )
        )
    else:
        if filed is None and learnt.time_seen is not None:
            wear["maintenance_time"] = {
                "distribution": "deterministic",
                "mean_s": learnt.time_seen.value,
            }
        if level is not None or filed is not None:
            missing.append(f"{spec.id} maintenance time: fewer than {MIN_SAMPLES} maintenances")
    return missing


# The quality curve's wear term is fitted only where the parts' wear² spans this
# much (a tool seen only new cannot show how wear matters); else the file's stands.
MIN_WEAR_SPAN = 0.1
# A setpoint's term (its best value and tolerance) is fitted only where the parts
# were made at this many values or more, spanning at least this share of the
# file's tolerance (a line run at one speed cannot show where its best speed lies),
# and only kept where the curvature's interval lies above zero.
MIN_SETPOINT_LEVELS = 3
MIN_SETPOINT_SPAN = 0.5


@dataclass(frozen=True)
class _Term:
    """A setpoint's term in the quality curve, ((value - best) / tolerance)²."""

    setpoint: str  # as the parts report it: speed, temperature_c
    best_key: str  # the curve's fields in a line file
    tolerance_key: str
    best: float  # the file's
    tolerance: float
    unit: str
    values: list[float]

    def spans(self) -> bool:
        levels = {round(v, 3) for v in self.values}
        return (
            len(levels) >= MIN_SETPOINT_LEVELS
            and max(levels) - min(levels) >= MIN_SETPOINT_SPAN * self.tolerance
        )

    def filed(self, value: float) -> float:
        return ((value - self.best) / self.tolerance) ** 2


def _coefficient(model: LogisticModel, index: int, confidence: float) -> Estimate:
    """One coefficient of ``model`` with its Wald interval."""
    gradient = [0.0] * len(model.coefficients)
    gradient[index] = 1.0
    return model.interval(float(model.coefficients[index]), gradient, confidence)


def _terms(
    quality: Quality, parts: list[tuple[bool, float, float | None, float | None]]
) -> list[_Term]:
    terms = [
        _Term(
            "speed",
            "best_speed",
            "speed_tolerance",
            quality.best_speed,
            quality.speed_tolerance,
            "×",
            [part[1] for part in parts],
        )
    ]
    temperatures = [part[2] for part in parts]
    best_t = quality.best_temperature_c
    if best_t is not None and all(t is not None for t in temperatures):
        terms.append(
            _Term(
                "temperature",
                "best_temperature_c",
                "temperature_tolerance_c",
                best_t,
                quality.temperature_tolerance_c,
                "°C",
                [float(t) for t in temperatures if t is not None],
            )
        )
    return terms


def _quality(
    spec: Station,
    block: dict[str, Any],
    learner: LineLearner,
    found: list[LearnedParameter],
    confidence: float,
) -> list[str]:
    """A station whose file has a quality curve (``process.quality``), fitted by
    ``logistic_model`` with the file's noise as known: its base defect probability
    (at the best setpoints, new tool); where the parts' wear spans
    ``MIN_WEAR_SPAN``, its wear sensitivity; and where the parts were made at
    setpoints that span enough (``_Term.spans``), that setpoint's best value and
    tolerance, from a quadratic in it (best = where it is lowest, tolerance = one
    over the square root of its curvature; delta-method intervals). A setpoint that
    does not span enough, or shows no curvature, keeps the file's term, as a known
    offset per part. Returns what is missing."""
    quality = spec.process.quality
    if quality is None:
        return []
    parts = learner.quality(spec.id)
    defective = sum(1 for part in parts if part[0])
    if defective < MIN_SAMPLES or defective == len(parts):
        return [f"{spec.id} quality: {defective} defects seen, needs {MIN_SAMPLES}"]
    missing: list[str] = []
    terms = _terms(quality, parts)
    learnt = [term for term in terms if term.spans()]
    worn = [part[3] ** 2 for part in parts if part[3] is not None]
    wear_spans = len(worn) == len(parts) and max(worn) - min(worn) >= MIN_WEAR_SPAN
    while True:
        offsets = [0.0] * len(parts)
        for term in terms:
            if term not in learnt:
                offsets = [o + term.filed(v) for o, v in zip(offsets, term.values, strict=True)]
        if not wear_spans and len(worn) == len(parts):
            offsets = [o + quality.wear_sensitivity * w for o, w in zip(offsets, worn, strict=True)]
        columns: list[list[float]] = []
        centres = []
        for term in learnt:
            centre = sum(term.values) / len(term.values)
            centres.append(centre)
            columns += [[v - centre for v in term.values], [(v - centre) ** 2 for v in term.values]]
        if wear_spans:
            columns.append(worn)
        model = logistic_model(
            [part[0] for part in parts], offsets, columns, noise_sd=quality.noise_sd
        )
        flat = [
            term
            for i, term in enumerate(learnt)
            if _coefficient(model, 2 + 2 * i, confidence).low <= 0
        ]
        if not flat:
            break
        for term in flat:
            learnt.remove(term)
            missing.append(
                f"{spec.id} quality curve in {term.setpoint}: the parts' {term.setpoint}s "
                "show no clear best value"
            )
    for term in terms:
        if term not in learnt and not term.spans():
            missing.append(
                f"{spec.id} quality curve in {term.setpoint}: parts made at too few "
                f"{term.setpoint}s to show its best value (needs {MIN_SETPOINT_LEVELS} "
                f"spanning {MIN_SETPOINT_SPAN:g} of its tolerance)"
            )
    target = block["process"]["quality"]
    size = len(model.coefficients)
    detail = f"logistic fit, {model.events} defects" + (
        "" if len(learnt) == len(terms) else "; the file's other setpoint terms as offset"
    )
    # The log-odds at the best setpoints: the intercept less each learnt term's dip.
    at_best, gradient = float(model.coefficients[0]), [0.0] * size
    gradient[0] = 1.0
    for i, term in enumerate(learnt):
        c1, c2 = float(model.coefficients[1 + 2 * i]), float(model.coefficients[2 + 2 * i])
        at_best -= c1 * c1 / (4 * c2)
        gradient[1 + 2 * i] = -c1 / (2 * c2)
        gradient[2 + 2 * i] = c1 * c1 / (4 * c2 * c2)
        best_gradient = [0.0] * size
        best_gradient[1 + 2 * i] = -1 / (2 * c2)
        best_gradient[2 + 2 * i] = c1 / (2 * c2 * c2)
        best = model.interval(centres[i] - c1 / (2 * c2), best_gradient, confidence)
        tolerance_gradient = [0.0] * size
        tolerance_gradient[2 + 2 * i] = -0.5 * c2**-1.5
        tolerance = model.interval(c2**-0.5, tolerance_gradient, confidence)
        tolerance = Estimate(tolerance.value, max(tolerance.low, 0.0), tolerance.high, tolerance.n)
        target[term.best_key] = best.value
        target[term.tolerance_key] = tolerance.value
        for key, estimate, nominal in (
            (term.best_key, best, term.best),
            (term.tolerance_key, tolerance, term.tolerance),
        ):
            found.append(
                _parameter(spec.id, f"process.quality.{key}", estimate, nominal, term.unit, detail)
            )
    if quality.wear_sensitivity > 0 and len(worn) < len(parts):
        # The file's curve rises with wear the parts do not report: a base fitted
        # without it takes in the wear the line ran at, and is not the file's
        # "new tool" value. The file's base and sensitivity are kept, unjudged.
        return [
            *missing,
            f"{spec.id} base defect probability and wear sensitivity: the parts do not "
            "report the tool wear the file's quality curve rises with; the file's are kept",
        ]
    log_odds = model.interval(at_best, gradient, confidence)

    def probability(value: float) -> float:
        return 1.0 / (1.0 + math.exp(-value))

    base = Estimate(
        probability(log_odds.value), probability(log_odds.low), probability(log_odds.high), model.n
    )
    target["base_defect_probability"] = min(max(base.value, 1e-9), 1 - 1e-9)
    found.append(
        _parameter(
            spec.id,
            "process.quality.base_defect_probability",
            base,
            quality.base_defect_probability,
            "share",
            detail,
        )
    )
    if not wear_spans:
        if quality.wear_sensitivity == 0 and not any(worn):
            return missing  # a tool that does not wear, and a curve that does not care
        if worn:
            return [
                *missing,
                f"{spec.id} wear sensitivity: the parts' wear spans too little to show it",
            ]
        return [*missing, f"{spec.id} wear sensitivity: the parts do not report their tool wear"]
    b = _coefficient(model, size - 1, confidence)
    sensitivity = Estimate(min(max(b.value, 0.0), 100.0), max(b.low, 0.0), min(b.high, 100.0), b.n)
    target["wear_sensitivity"] = sensitivity.value
    found.append(
        _parameter(
            spec.id,
            "process.quality.wear_sensitivity",
            sensitivity,
            quality.wear_sensitivity,
            "per wear²",
            detail,
        )
    )
    return missing


def _repair_time(failures: Failures, *, crewed: bool) -> tuple[Estimate, str]:
    """The MTTR a learnt line runs, and how it was measured. A line with a repair
    crew (its file says so) draws the wait for the crew itself: its MTTR is the
    repair from the crew's arrival, where the line reports it. A line without one
    has only the MTTR to stand for the time down, wait included."""
    assert failures.mttr_s is not None  # noqa: S101 - the caller checked
    if crewed and failures.crew_wait_s is not None:
        return failures.mttr_s, "repair only: from the crew's arrival, which the line reports"
    if crewed:
        return failures.mttr_s, "crew waiting included: the line does not report the crew's arrival"
    whole = failures.down_s if failures.down_s is not None else failures.mttr_s
    return whole, "crew waiting included: the learnt line has no crew to wait for"


def holding_back(not_learnt: list[str]) -> list[str]:
    """What in ``not_learnt`` keeps a learnt line from being ready: a station not
    heard from, or a processing time not learnt yet."""
    return [
        item
        for item in not_learnt
        if item.endswith(": no message yet") or " processing_time" in item
    ]


def _collect(
    nominal: LineConfig,
    learner: LineLearner,
    confidence: float,
    min_breakdowns: int = MIN_SAMPLES,
    fits: _Fits | None = None,
) -> tuple[dict[str, Any], list[LearnedParameter], list[str]]:
    """The line file with the learnt values in, each learnt parameter with its
    interval at ``confidence`` (drifted: the nominal value outside it), and what
    is not learnt."""
    fits = fits if fits is not None else _Fits()
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
        missing += _processing(spec, block, learner, found, confidence, fits)
        filed_wear = spec.process.wear
        exponent = filed_wear.speed_exponent if filed_wear is not None else 1.0
        estimates = learner.estimates(spec.id, confidence, processing=False, wear_exponent=exponent)
        missing += _maintenance(spec, block, estimates.maintenance, exponent, found, min_breakdowns)
        # Breakdowns and changeovers the stream shows are learnt even where the file
        # has none (a line without a file has none anywhere).
        failures = estimates.failures
        filed = spec.failures
        if failures is None or failures.mtbf_s.n < min_breakdowns or failures.mttr_s is None:
            if filed is not None:
                seen = 0 if failures is None else failures.mtbf_s.n
                missing.append(f"{spec.id} failures: {seen} breakdowns, needs {min_breakdowns}")
        else:
            mttr, mttr_detail = _repair_time(failures, crewed=nominal.repair_crew is not None)
            block["failures"] = {
                "basis": failures.basis,
                "mtbf_s": failures.mtbf_s.value,
                "mttr_s": mttr.value,
            }
            basis = f"basis {failures.basis}" + (f" (nominal {filed.basis})" if filed else "")
            for name, estimate, in_file, detail in (
                ("mtbf_s", failures.mtbf_s, filed.mtbf_s if filed else None, basis),
                ("mttr_s", mttr, filed.mttr_s if filed else None, mttr_detail),
            ):
                found.append(
                    _parameter(spec.id, f"failures.{name}", estimate, in_file, "s", detail)
                )
            if failures.crew_wait_s is not None:
                found.append(
                    _parameter(
                        spec.id,
                        "failures.crew_wait_s",
                        failures.crew_wait_s,
                        None,
                        "s",
                        "mean wait for the repair crew per breakdown (not a line-file field: "
                        "it comes of the crew's size)",
                    )
                )
        fit = estimates.setup
        if fit is None:
            if spec.setup is not None:
                missing.append(f"{spec.id} setup: fewer than {MIN_SAMPLES} changeovers")
        else:
            block["setup"] = {"time": fit.as_line_file()}
            nominal_setup = spec.setup.time.mean if spec.setup is not None else None
            found.append(
                _parameter(spec.id, "setup.time.mean_s", fit.mean, nominal_setup, "s", fit.family)
            )
        jams = estimates.microstops
        if jams is not None:
            block["microstops"] = {
                "mean_between_s": jams.mean_between_s.value,
                "duration": jams.duration.as_line_file(),
            }
            filed_jams = spec.microstops
            found.append(
                _parameter(
                    spec.id,
                    "microstops.mean_between_s",
                    jams.mean_between_s,
                    filed_jams.mean_between_s if filed_jams is not None else None,
                    "s",
                    "processing time between jams",
                )
            )
            found.append(
                _parameter(
                    spec.id,
                    "microstops.duration.mean_s",
                    jams.duration.mean,
                    filed_jams.duration.mean if filed_jams is not None else None,
                    "s",
                    jams.duration.family,
                )
            )
        elif spec.microstops is not None:
            missing.append(f"{spec.id} microstops: fewer than {MIN_SAMPLES} jams seen")
        missing += _quality(spec, block, learner, found, confidence)
        defects = estimates.defects
        if spec.process.quality is None and defects is not None:
            block["defect_probability"] = defects.value
            found.append(
                _parameter(spec.id, "defect_probability", defects, spec.defect_probability, "share")
            )
    missing += _release(nominal, data, learner, found)
    return data, found, missing


def _release(
    nominal: LineConfig, data: dict[str, Any], learner: LineLearner, found: list[LearnedParameter]
) -> list[str]:
    """The release the first station's takes show (``LineLearner.release``): a
    CONWIP loop when its parts come as parts leave (the WIP cap: the parts in the
    line then), an open line when they come while it waits (the interarrival
    time: the time it waited per part, exact for Poisson arrivals), else as the
    file says. Puts it in ``data``; returns what is missing."""
    first = nominal.stations[0].id
    seen = learner.release(first)
    filed = nominal.release
    if seen is None or seen.arrivals < MIN_SAMPLES:
        if filed.policy == "saturated":
            return []
        came = 0 if seen is None else seen.arrivals
        return [f"release: {came} parts came while {first} waited, needs {MIN_SAMPLES}"]
    release = data["release"]
    if seen.at_a_leave >= CONWIP_SHARE * seen.arrivals:
        caps = seen.wip_at_leave
        cap = max(caps)
        release.update({"policy": "conwip", "wip_cap": cap, "interarrival": None})
        estimate = Estimate(float(cap), float(min(caps)), float(cap), len(caps))
        filed_cap = float(filed.wip_cap) if filed.policy == "conwip" and filed.wip_cap else None
        detail = f"CONWIP: parts released as parts leave (the file: {filed.policy})"
        found.append(_parameter(LINE, "release.wip_cap", estimate, filed_cap, "parts", detail))
        return []
    mean = exponential_mean(seen.starved_s, seen.arrivals, CONFIDENCE)
    in_file = None
    if filed.policy == "open" and filed.interarrival is not None:
        release["interarrival"] = filed.interarrival.model_dump(mode="json")
        in_file = filed.interarrival.mean
    else:
        release.update({"policy": "open", "wip_cap": None})
        release["interarrival"] = {"distribution": "exponential", "mean_s": mean.value}
    item = _parameter(
        LINE,
        "release.interarrival.mean_s",
        mean,
        in_file,
        "s",
        f"open: the time {first} waited per part that came (the file: {filed.policy})",
    )
    set_parameter(data, item.model_copy(update={"value": in_file or mean.value}), mean.value)
    found.append(item)
    return []


def buffers_seen(nominal: LineConfig, learner: LineLearner) -> list[BufferSeen]:
    """Each input buffer's highest level: as its station took parts, and as the
    station before it handed them on."""
    seen = []
    previous_output: int | None = None
    for index, spec in enumerate(nominal.stations):
        taken, handed = learner.buffer_levels(spec.id)
        levels = [level for level in (taken, previous_output) if level is not None]
        previous_output = handed
        if not levels:
            continue
        highest = max(levels)
        room = nominal.buffer_capacity(index)
        capacity = None if math.isinf(room) else int(room)
        seen.append(
            BufferSeen(
                station=spec.id,
                highest_level=highest,
                capacity=capacity,
                contradicts=capacity is not None and highest > capacity,
            )
        )
    return seen


__all__ = [
    "LINE",
    "BufferSeen",
    "buffers_seen",
    "UNFILED_LIMITS",
    "LearnedLine",
    "LearnedParameter",
    "learn_line",
    "holding_back",
    "learn_unfiled_line",
    "release_batch_size",
    "set_parameter",
    "skeleton_line",
]
