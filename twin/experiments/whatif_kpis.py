"""What-if KPIs: one replication's figures, and each KPI's forecast over many.

A forecast counts over planned time only. ``ScenarioKpis`` holds one fork's
KPIs over its horizon, with the planned production time the calendar left in
it and throughput per calendar and per planned hour. Over a horizon with no
planned production time (a night without a shift) rates and ratios are null,
and OEE and throughput per planned hour need an hour of it: a short window
counts mostly the parts already past the constraint at the fork. ``forecast``
turns the replications into estimates, each KPI with why it has no value when
it has none (docs/whatif.md).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from twin.config.line import Calendar
from twin.contract import CalendarDescription
from twin.experiments.experiment import CONFIDENCE, Estimate, estimate, value_range
from twin.sim.report import RunReport
from twin.state.clock import describe_calendar, format_clock, stops_around, time_of_day_s

SimTime = float


# KPIs that mean nothing over a horizon with no planned production time (a night
# without a shift): rates, ratios and costs per part of the parts that trickle out.
NEEDS_PLANNED_TIME: tuple[str, ...] = (
    "throughput_per_h",
    "throughput_per_planned_h",
    "yield_ratio",
    "scrap_ratio",
    "oee",
    "cost_per_good_part",
    "energy_per_good_part_kwh",
)


# OEE and throughput per planned hour need this much planned production time.
# Over a shorter window the line's output is mostly the parts already past the
# constraint at the fork, so the figures drift above what the line can do (an
# OEE of 1.4 over the two minutes before a night stop): plants read OEE per
# hour at the finest.
MIN_PLANNED_S = 3600.0
NEEDS_AN_HOUR: tuple[str, ...] = ("throughput_per_planned_h", "oee")


class ScenarioKpis(BaseModel):
    """One replication's KPIs over the horizon (from ``twin.sim.report``).

    Ratios are over planned time only: OEE over the constraint's planned busy time
    (planned stops are outside it). Per-hour figures say which hour they count."""

    model_config = ConfigDict(frozen=True)

    good_parts: int
    scrap_parts: int
    planned_production_h: float = Field(
        default=0.0, description="Hours of the horizon the calendar plans to produce."
    )
    throughput_per_h: float | None = Field(description="Good parts per calendar hour.")
    throughput_per_planned_h: float | None = Field(
        default=None, description="Good parts per hour of planned production time."
    )
    yield_ratio: float | None
    scrap_ratio: float | None
    oee: float | None = Field(
        description="Line OEE at the capacity constraint, over its planned busy time."
    )
    mean_wip: float | None
    cycle_time_s: float | None = Field(
        description="Mean lead time of shipped parts; parts inside at the fork count from it."
    )
    cost_per_good_part: float | None
    energy_per_good_part_kwh: float | None

    @classmethod
    def from_report(
        cls, report: RunReport, planned_production_s: float | None = None
    ) -> ScenarioKpis:
        """The KPIs of ``report``; ``planned_production_s`` (default: all of the
        observed span) nulls the ones that need planned time when it is zero."""
        kpis, economics = report.line_kpis, report.economics
        planned_s = report.observed_s if planned_production_s is None else planned_production_s
        figures = cls(
            good_parts=kpis.good,
            scrap_parts=kpis.scrap,
            planned_production_h=planned_s / 3600.0,
            throughput_per_h=kpis.throughput_per_h,
            throughput_per_planned_h=(kpis.good * 3600.0 / planned_s if planned_s > 0 else None),
            yield_ratio=kpis.yield_ratio,
            scrap_ratio=kpis.scrap_ratio,
            oee=kpis.oee,
            mean_wip=kpis.mean_wip,
            cycle_time_s=kpis.cycle_time_s,
            cost_per_good_part=economics.cost_per_good_part,
            energy_per_good_part_kwh=economics.energy_per_good_part_kwh,
        )
        if planned_s <= 0:
            return figures.model_copy(update=dict.fromkeys(NEEDS_PLANNED_TIME))
        if planned_s < MIN_PLANNED_S:
            return figures.model_copy(update=dict.fromkeys(NEEDS_AN_HOUR))
        return figures


KPI_NAMES: tuple[str, ...] = tuple(ScenarioKpis.model_fields)


class KpiForecast(BaseModel):
    """One KPI: baseline, scenario and their paired difference (scenario - baseline)."""

    model_config = ConfigDict(frozen=True)

    baseline: Estimate | None = Field(
        description="Null: undefined in every replication, or not applicable (see why)."
    )
    scenario: Estimate | None
    difference: Estimate | None
    not_applicable: str | None = Field(
        default=None,
        description="Why the KPI has no value for the baseline or the scenario: no (or too "
        "little) planned production time in the horizon, or undefined in every replication. "
        "Null: it has values.",
    )


def why_not_applicable(
    name: str,
    planned_h: float,
    calendar: Calendar | None,
    span: tuple[SimTime, SimTime],
    what: str,
) -> str | None:
    """Why KPI ``name`` has no value for one variant (baseline or scenario) over
    its horizon, by the clock and the planned stops that fill it; None: it has one."""
    need = ""
    if name in NEEDS_PLANNED_TIME and planned_h <= 0:
        problem = "no planned production time"
    elif name in NEEDS_AN_HOUR and planned_h * 3600.0 < MIN_PLANNED_S:
        problem = f"only {planned_h * 60:.0f} min of planned production time"
        need = f"; {name} needs at least {MIN_PLANNED_S / 3600:g} h of it"
    else:
        return None
    if calendar is None:
        return f"{what}: {problem} in the horizon{need}"
    start_s, end_s = span
    described: CalendarDescription = describe_calendar(calendar)
    stops: list[str] = []
    for stop in stops_around(described, start_s):
        if stop.start_s < end_s and stop.end_s > start_s and stop.reason not in stops:
            stops.append(stop.reason)
    start = format_clock(time_of_day_s(described, start_s))
    end = format_clock(time_of_day_s(described, end_s))
    planned = f" ({', '.join(stops)})" if stops else ""
    return f"{what}: {problem} from {start} to {end}{planned}{need}"


def _estimate(values: list[float | None], bounds: tuple[float, float] | None) -> Estimate | None:
    known = [value for value in values if value is not None]
    return estimate(known, CONFIDENCE, bounds) if known else None


def forecast(
    name: str,
    baseline: list[ScenarioKpis],
    scenario: list[ScenarioKpis],
    not_applicable: list[str],
) -> KpiForecast:
    before: list[float | None] = [getattr(run, name) for run in baseline]
    after: list[float | None] = [getattr(run, name) for run in scenario]
    paired: list[float | None] = [
        None if a is None or b is None else a - b for a, b in zip(after, before, strict=True)
    ]
    # A ratio lies in [0, 1], so the difference of two lies in [-1, 1]; a count
    # lies in [0, inf), which bounds no difference.
    bounds = value_range(name)
    spread = None if bounds is None else (bounds[0] - bounds[1], bounds[1] - bounds[0])
    baseline_estimate, scenario_estimate = _estimate(before, bounds), _estimate(after, bounds)
    reasons = list(not_applicable)
    if not reasons:
        # Not a calendar matter: the KPI's denominator was zero in every run.
        undefined = [
            label
            for label, estimated in (
                ("baseline", baseline_estimate),
                ("scenario", scenario_estimate),
            )
            if estimated is None
        ]
        if undefined:
            reasons.append(
                f"{' and '.join(undefined)}: undefined in every replication (no part left "
                "the line to count it on, or no planned busy time)"
            )
    return KpiForecast(
        baseline=baseline_estimate,
        scenario=scenario_estimate,
        difference=_estimate(paired, spread),
        not_applicable="not applicable: " + "; ".join(reasons) if reasons else None,
    )
