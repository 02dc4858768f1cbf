"""KPI maths per ISO 22400-2, shared by the simulator's report and the twin.

Time model, per machine, in seconds of simulation time (a station's figures
are the sums over its machines, in machine-seconds); see docs/kpis.md:

- planned downtime (calendar: no shift, breaks) lies outside the planned busy
  time (ISO PDOT);
- PBT, planned busy time = running + setup + maintenance + down + starved +
  blocked + stopped;
- APT, actual production time = running (microstops included: they are speed
  losses, so they lower effectiveness, not availability).

KPIs of a work unit with planned runtime per unit PRU, produced quantity PQ
(good + scrap + rework), good quantity GQ:

- Availability = APT / PBT
- Effectiveness = PRU x PQ / APT
- Quality ratio = GQ / PQ
- OEE = Availability x Effectiveness x Quality ratio
- NEE = APT / (PBT - setup) x Effectiveness x Quality ratio: OEE without
  counting changeovers as a loss.

For the line, availability and effectiveness are those of its capacity
constraint (the station with the largest PRU per machine), the quality ratio
is the line's (good parts shipped over parts finished), and OEE is their
product. A KPI whose denominator is still zero is ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from twin.contract import STATION_STATES, StationStateName
from twin.state.views import KpiSet, LineKpis, StationKpis

# Planned busy time: every state but the calendar's planned downtime.
BUSY_STATES: tuple[StationStateName, ...] = tuple(
    state for state in STATION_STATES if state != "planned_downtime"
)


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def iso22400(
    *,
    planned_busy_time_s: float,
    actual_production_time_s: float,
    produced_quantity: int,
    good_quantity: int,
    planned_runtime_per_unit_s: float | None = None,
    ideal_time_s: float | None = None,
) -> KpiSet:
    """Availability, effectiveness, quality ratio and OEE of one work unit.

    ``ideal_time_s`` (the sum of PRU over the produced units) replaces
    PRU x PQ when units have different PRUs (a product mix).
    """
    availability = ratio(actual_production_time_s, planned_busy_time_s)
    effectiveness: float | None
    if ideal_time_s is not None:
        effectiveness = ratio(ideal_time_s, actual_production_time_s)
    elif not planned_runtime_per_unit_s:
        # PRU unknown (a line that did not publish it): effectiveness, and so OEE,
        # cannot be told; 0% would say the station made nothing of its time.
        effectiveness = None
    else:
        ideal_s = planned_runtime_per_unit_s * produced_quantity
        effectiveness = ratio(ideal_s, actual_production_time_s)
    quality_ratio = ratio(good_quantity, produced_quantity)
    oee = None
    if availability is not None and effectiveness is not None and quality_ratio is not None:
        oee = availability * effectiveness * quality_ratio
    return KpiSet(
        availability=availability,
        effectiveness=effectiveness,
        quality_ratio=quality_ratio,
        oee=oee,
    )


def _nee(net_availability: float | None, factors: KpiSet) -> float | None:
    """OEE with an availability that does not count setup time as lost."""
    if net_availability is None or factors.effectiveness is None:
        return None
    if factors.quality_ratio is None:
        return None
    return net_availability * factors.effectiveness * factors.quality_ratio


@dataclass(frozen=True, slots=True)
class StationFacts:
    """What is known about one station, whether from the plant or from messages."""

    id: str
    ideal_cycle_time_s: float
    time_in_state: Mapping[StationStateName, float]
    good: int
    scrap: int
    rework: int = 0
    machines: int = 1
    ideal_time_s: float | None = None
    active_time_s: float | None = None
    active_periods: int | None = None

    @property
    def planned_busy_time_s(self) -> float:
        return sum(self.time_in_state.get(state, 0.0) for state in BUSY_STATES)

    @property
    def produced(self) -> int:
        return self.good + self.scrap + self.rework


def station_kpis(facts: StationFacts) -> StationKpis:
    times = facts.time_in_state
    pbt = facts.planned_busy_time_s
    apt = times.get("running", 0.0)
    setup = times.get("setup", 0.0)
    factors = iso22400(
        planned_busy_time_s=pbt,
        actual_production_time_s=apt,
        produced_quantity=facts.produced,
        good_quantity=facts.good,
        planned_runtime_per_unit_s=facts.ideal_cycle_time_s,
        ideal_time_s=facts.ideal_time_s,
    )
    nee = _nee(ratio(apt, pbt - setup), factors)
    mean_active = None
    if facts.active_periods:
        mean_active = (facts.active_time_s or 0.0) / facts.active_periods
    return StationKpis(
        machines=facts.machines,
        planned_busy_time_s=pbt,
        actual_production_time_s=apt,
        setup_time_s=setup,
        maintenance_time_s=times.get("maintenance", 0.0),
        down_time_s=times.get("down", 0.0),
        starved_time_s=times.get("starved", 0.0),
        blocked_time_s=times.get("blocked", 0.0),
        stopped_time_s=times.get("stopped", 0.0),
        planned_downtime_s=times.get("planned_downtime", 0.0),
        produced=facts.produced,
        good=facts.good,
        scrap=facts.scrap,
        rework=facts.rework,
        nee=nee,
        scrap_ratio=ratio(facts.scrap, facts.produced),
        utilisation=ratio(apt, pbt),
        mean_active_period_s=mean_active,
        **factors.model_dump(),
    )


def capacity_constraint(stations: Sequence[StationFacts]) -> StationFacts | None:
    """The station with the largest PRU per machine (first one on ties)."""
    candidates = [facts for facts in stations if facts.ideal_cycle_time_s > 0]
    if not candidates:
        return None
    return max(candidates, key=lambda facts: facts.ideal_cycle_time_s / facts.machines)


def active_period_bottleneck(stations: Sequence[StationFacts]) -> StationFacts | None:
    """Roser's active-period method: the station whose machines stay active
    (running, setup, maintenance or down: neither starved nor blocked) for the
    longest periods on average is the one the others wait for."""
    scored = [
        (facts.active_time_s / facts.active_periods, facts)
        for facts in stations
        if facts.active_periods and facts.active_time_s is not None
    ]
    if not scored:
        return None
    return max(scored, key=lambda pair: pair[0])[1]


def line_kpis(
    *,
    observed_s: float,
    stations: Sequence[StationFacts],
    shipped: int,
    scrapped: int,
    work_in_process: int,
    reworked: int = 0,
    shipped_first_pass: int | None = None,
    mean_wip: float | None = None,
    cycle_time_s: float | None = None,
) -> LineKpis:
    produced = shipped + scrapped
    constraint = capacity_constraint(stations)
    nee = None
    quality_ratio = ratio(shipped, produced)
    if constraint is None:
        factors = KpiSet(
            availability=None, effectiveness=None, quality_ratio=quality_ratio, oee=None
        )
    else:
        # Availability and effectiveness are the constraint's own: only the parts
        # it processed in the window took its running time. Parts scrapped
        # upstream of it, or shipped in the window after passing it before, never
        # did, and counting them pushed the line's effectiveness above 1. The
        # quality ratio is the line's: good parts shipped over parts finished.
        pbt = constraint.planned_busy_time_s
        apt = constraint.time_in_state.get("running", 0.0)
        at_constraint = iso22400(
            planned_busy_time_s=pbt,
            actual_production_time_s=apt,
            produced_quantity=constraint.produced,
            good_quantity=constraint.good,
            planned_runtime_per_unit_s=constraint.ideal_cycle_time_s,
            ideal_time_s=constraint.ideal_time_s,
        )
        availability, effectiveness = at_constraint.availability, at_constraint.effectiveness
        oee = None
        if availability is not None and effectiveness is not None and quality_ratio is not None:
            oee = availability * effectiveness * quality_ratio
        factors = KpiSet(
            availability=availability,
            effectiveness=effectiveness,
            quality_ratio=quality_ratio,
            oee=oee,
        )
        nee = _nee(ratio(apt, pbt - constraint.time_in_state.get("setup", 0.0)), factors)
    bottleneck = active_period_bottleneck(stations) or constraint
    first_pass = shipped_first_pass if shipped_first_pass is not None else shipped
    return LineKpis(
        observed_s=observed_s,
        produced=produced,
        good=shipped,
        scrap=scrapped,
        rework=reworked,
        work_in_process=work_in_process,
        throughput_per_h=ratio(shipped * 3600.0, observed_s),
        throughput_per_planned_h=(
            None
            if constraint is None
            else ratio(shipped * 3600.0, constraint.planned_busy_time_s / constraint.machines)
        ),
        yield_ratio=ratio(shipped, produced),
        first_pass_yield=ratio(first_pass, produced),
        scrap_ratio=ratio(scrapped, produced),
        nee=nee,
        mean_wip=mean_wip,
        cycle_time_s=cycle_time_s,
        constraint=constraint.id if constraint else None,
        bottleneck=bottleneck.id if bottleneck else None,
        **factors.model_dump(),
    )
