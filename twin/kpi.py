"""KPI maths per ISO 22400-2, shared by the simulator's report and the twin.

Time model, per station (all in seconds of simulation time):

- PBT, planned busy time: the observed span. The skeleton line has no shift
  calendar or planned downtime yet, so all observed time is planned.
- APT, actual production time: time in the ``running`` state.
- Down, starved and blocked time make up the rest of PBT.

KPIs of a work unit with planned runtime per unit PRU (the mean processing
time), produced quantity PQ and good quantity GQ:

- Availability = APT / PBT
- Effectiveness = PRU x PQ / APT
- Quality ratio = GQ / PQ
- OEE = Availability x Effectiveness x Quality ratio

For the line as a whole the work unit is measured at its constraint: APT and
PRU are those of the bottleneck station (the largest PRU), PQ is every part the
line finished (shipped plus scrapped anywhere) and GQ the parts shipped. The
line OEE then equals PRU_b x GQ / PBT: the share of the planned time the
bottleneck would need at its ideal rate to make the good output.
A KPI whose denominator is still zero is reported as ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from twin.contract import StationStateName
from twin.views import KpiSet, LineKpis, StationKpis


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def iso22400(
    *,
    planned_busy_time_s: float,
    actual_production_time_s: float,
    produced_quantity: int,
    good_quantity: int,
    planned_runtime_per_unit_s: float,
) -> KpiSet:
    """Availability, effectiveness, quality ratio and OEE of one work unit."""
    availability = _ratio(actual_production_time_s, planned_busy_time_s)
    effectiveness = _ratio(planned_runtime_per_unit_s * produced_quantity, actual_production_time_s)
    quality_ratio = _ratio(good_quantity, produced_quantity)
    oee = None
    if availability is not None and effectiveness is not None and quality_ratio is not None:
        oee = availability * effectiveness * quality_ratio
    return KpiSet(
        availability=availability,
        effectiveness=effectiveness,
        quality_ratio=quality_ratio,
        oee=oee,
    )


@dataclass(frozen=True, slots=True)
class StationFacts:
    """What is known about one station, whether from the plant or from messages."""

    id: str
    ideal_cycle_time_s: float
    time_in_state: Mapping[StationStateName, float]
    good: int
    scrap: int


def station_kpis(facts: StationFacts) -> StationKpis:
    pbt = sum(facts.time_in_state.values())
    apt = facts.time_in_state.get("running", 0.0)
    produced = facts.good + facts.scrap
    return StationKpis(
        planned_busy_time_s=pbt,
        actual_production_time_s=apt,
        down_time_s=facts.time_in_state.get("down", 0.0),
        starved_time_s=facts.time_in_state.get("starved", 0.0),
        blocked_time_s=facts.time_in_state.get("blocked", 0.0),
        utilisation=_ratio(apt, pbt),
        **iso22400(
            planned_busy_time_s=pbt,
            actual_production_time_s=apt,
            produced_quantity=produced,
            good_quantity=facts.good,
            planned_runtime_per_unit_s=facts.ideal_cycle_time_s,
        ).model_dump(),
    )


def bottleneck(stations: Sequence[StationFacts]) -> StationFacts | None:
    """The station with the largest planned runtime per unit (first one on ties)."""
    if not stations:
        return None
    return max(stations, key=lambda facts: facts.ideal_cycle_time_s)


def line_kpis(
    *,
    observed_s: float,
    stations: Sequence[StationFacts],
    shipped: int,
    scrapped: int,
    work_in_process: int,
) -> LineKpis:
    produced = shipped + scrapped
    constraint = bottleneck(stations)
    if constraint is None:
        factors = KpiSet(availability=None, effectiveness=None, quality_ratio=None, oee=None)
    else:
        factors = iso22400(
            planned_busy_time_s=observed_s,
            actual_production_time_s=constraint.time_in_state.get("running", 0.0),
            produced_quantity=produced,
            good_quantity=shipped,
            planned_runtime_per_unit_s=constraint.ideal_cycle_time_s,
        )
    throughput = _ratio(shipped * 3600.0, observed_s)
    return LineKpis(
        observed_s=observed_s,
        produced=produced,
        good=shipped,
        scrap=scrapped,
        work_in_process=work_in_process,
        throughput_per_h=throughput,
        yield_ratio=_ratio(shipped, produced),
        bottleneck=constraint.id if constraint else None,
        **factors.model_dump(),
    )
