"""ISO 22400 KPI maths against hand calculations."""

from __future__ import annotations

import pytest

from twin.contract import StationStateName
from twin.state.kpi import (
    StationFacts,
    active_period_bottleneck,
    capacity_constraint,
    iso22400,
    line_kpis,
    ratio,
    station_kpis,
)


def test_iso22400_hand_calculation() -> None:
    # 8 h planned, 6 h producing, 500 parts of which 480 good, ideal 40 s per part.
    kpis = iso22400(
        planned_busy_time_s=8 * 3600,
        actual_production_time_s=6 * 3600,
        produced_quantity=500,
        good_quantity=480,
        planned_runtime_per_unit_s=40,
    )
    assert kpis.availability == pytest.approx(0.75)
    assert kpis.effectiveness == pytest.approx(40 * 500 / 21600)
    assert kpis.quality_ratio == pytest.approx(0.96)
    assert kpis.oee == pytest.approx(0.75 * (20000 / 21600) * 0.96)


def test_undefined_ratios_are_none() -> None:
    kpis = iso22400(
        planned_busy_time_s=0,
        actual_production_time_s=0,
        produced_quantity=0,
        good_quantity=0,
        planned_runtime_per_unit_s=10,
    )
    assert kpis.availability is None
    assert kpis.effectiveness is None
    assert kpis.quality_ratio is None
    assert kpis.oee is None


def test_station_time_model_adds_up() -> None:
    facts = StationFacts(
        id="s",
        ideal_cycle_time_s=30,
        time_in_state={"running": 600, "down": 100, "starved": 200, "blocked": 100},
        good=19,
        scrap=1,
    )
    kpis = station_kpis(facts)
    assert kpis.planned_busy_time_s == 1000
    assert kpis.actual_production_time_s == 600
    assert (kpis.down_time_s, kpis.starved_time_s, kpis.blocked_time_s) == (100, 200, 100)
    assert kpis.availability == pytest.approx(0.6)
    assert kpis.effectiveness == pytest.approx(30 * 20 / 600)
    assert kpis.quality_ratio == pytest.approx(0.95)


def test_line_oee_is_measured_at_the_bottleneck() -> None:
    fast = StationFacts("fast", 20, {"running": 2000, "starved": 1600}, good=100, scrap=0)
    slow = StationFacts("slow", 30, {"running": 3300, "down": 300}, good=98, scrap=2)
    kpis = line_kpis(
        observed_s=3600, stations=[fast, slow], shipped=98, scrapped=2, work_in_process=3
    )
    assert kpis.bottleneck == "slow"
    assert kpis.produced == 100
    assert kpis.availability == pytest.approx(3300 / 3600)
    assert kpis.effectiveness == pytest.approx(30 * 100 / 3300)
    assert kpis.quality_ratio == pytest.approx(0.98)
    # The ISO product collapses to PRU_b x GQ / PBT.
    assert kpis.oee == pytest.approx(30 * 98 / 3600)
    assert kpis.throughput_per_h == pytest.approx(98)
    assert kpis.yield_ratio == pytest.approx(0.98)


def test_throughput_per_planned_hour_leaves_out_planned_downtime() -> None:
    """Per calendar hour counts the night; per planned hour does not: two machines
    at the constraint, each planned 6 of 8 h (the rest planned downtime)."""
    press = StationFacts(
        "press",
        60,
        {"running": 9 * 3600, "down": 3 * 3600, "planned_downtime": 4 * 3600},
        good=400,
        scrap=0,
        machines=2,
    )
    kpis = line_kpis(
        observed_s=8 * 3600, stations=[press], shipped=400, scrapped=0, work_in_process=0
    )
    assert kpis.throughput_per_h == pytest.approx(400 / 8)
    assert kpis.throughput_per_planned_h == pytest.approx(400 / 6)


def test_line_effectiveness_counts_only_the_parts_the_constraint_made() -> None:
    """Upstream scrap never took the constraint's time, and parts shipped in the
    window may have passed the constraint before it began (after a warm-up):
    neither is counted against its running time."""
    # 30 parts scrapped at the saw, upstream; 10 shipped that the mill made before
    # the window; the mill made 100 parts (2 scrapped there) in 3000 s of running.
    saw = StationFacts("saw", 10, {"running": 1300, "blocked": 2300}, good=100, scrap=30)
    mill = StationFacts("mill", 30, {"running": 3000, "down": 600}, good=98, scrap=2)
    kpis = line_kpis(
        observed_s=3600, stations=[saw, mill], shipped=108, scrapped=32, work_in_process=4
    )
    assert kpis.constraint == "mill"
    assert kpis.availability == pytest.approx(3000 / 3600)
    assert kpis.effectiveness == pytest.approx(30 * 100 / 3000)
    assert kpis.quality_ratio == pytest.approx(108 / 140)
    assert kpis.oee == pytest.approx(3000 / 3600 * (30 * 100 / 3000) * (108 / 140))
    assert kpis.oee is not None
    assert kpis.oee <= 1
    # Counting every part that left the line against the mill's time, as the line
    # effectiveness once did, would claim 140 parts x 30 s of the mill's 3000 s.
    assert 30 * (108 + 32) / 3000 > 1


# Every state of the time model with its own, distinct time, so that a figure
# read from the wrong state, or a state left out of PBT, shows.
ALL_STATES = {
    "running": 5000.0,
    "setup": 400.0,
    "maintenance": 300.0,
    "down": 700.0,
    "starved": 600.0,
    "blocked": 200.0,
    "stopped": 100.0,
    "planned_downtime": 1800.0,
}


def test_every_station_figure_follows_its_definition() -> None:
    """Each field of a station's KPIs against docs/kpis.md, computed here from the
    time model: PBT leaves out only planned downtime, PQ counts rework, NEE leaves
    out setup, and a product mix's ideal time replaces PRU x PQ."""
    facts = StationFacts(
        id="mill",
        ideal_cycle_time_s=40.0,
        time_in_state=ALL_STATES,
        good=90,
        scrap=6,
        rework=4,
        machines=2,
        ideal_time_s=3700.0,
        active_time_s=6400.0,
        active_periods=16,
    )
    kpis = station_kpis(facts)
    busy = sum(seconds for state, seconds in ALL_STATES.items() if state != "planned_downtime")
    apt, setup = ALL_STATES["running"], ALL_STATES["setup"]
    produced = 90 + 6 + 4
    assert kpis.machines == 2
    assert kpis.planned_busy_time_s == pytest.approx(busy)
    assert kpis.actual_production_time_s == apt
    assert kpis.setup_time_s == setup
    assert kpis.maintenance_time_s == ALL_STATES["maintenance"]
    assert kpis.down_time_s == ALL_STATES["down"]
    assert kpis.starved_time_s == ALL_STATES["starved"]
    assert kpis.blocked_time_s == ALL_STATES["blocked"]
    assert kpis.stopped_time_s == ALL_STATES["stopped"]
    assert kpis.planned_downtime_s == ALL_STATES["planned_downtime"]
    assert (kpis.produced, kpis.good, kpis.scrap, kpis.rework) == (produced, 90, 6, 4)
    availability = apt / busy
    effectiveness = 3700.0 / apt  # the mix's ideal time, not 40 s x 100
    quality = 90 / produced
    assert kpis.availability == pytest.approx(availability)
    assert kpis.effectiveness == pytest.approx(effectiveness)
    assert kpis.quality_ratio == pytest.approx(quality)
    assert kpis.oee == pytest.approx(availability * effectiveness * quality)
    assert kpis.nee == pytest.approx(apt / (busy - setup) * effectiveness * quality)
    assert kpis.nee is not None
    assert kpis.oee is not None
    assert kpis.nee > kpis.oee, "setup is a loss for OEE, not for NEE"
    assert kpis.utilisation == pytest.approx(apt / busy)
    assert kpis.scrap_ratio == pytest.approx(6 / produced)
    assert kpis.mean_active_period_s == pytest.approx(6400.0 / 16)


def test_a_station_with_no_time_yet_counts_every_state_as_zero() -> None:
    """States never entered are zero seconds, not missing, and every ratio over a
    zero denominator is None: the KPIs of a station the twin has just heard of."""
    kpis = station_kpis(
        StationFacts(id="new", ideal_cycle_time_s=30.0, time_in_state={}, good=0, scrap=0)
    )
    assert kpis.planned_busy_time_s == 0
    for name in (
        "actual_production_time_s",
        "setup_time_s",
        "maintenance_time_s",
        "down_time_s",
        "starved_time_s",
        "blocked_time_s",
        "stopped_time_s",
        "planned_downtime_s",
    ):
        assert getattr(kpis, name) == 0, name
    for name in ("availability", "effectiveness", "quality_ratio", "oee", "nee", "utilisation"):
        assert getattr(kpis, name) is None, name
    assert kpis.scrap_ratio is None
    assert kpis.mean_active_period_s is None


def test_a_station_that_has_not_run_has_no_effectiveness_oee_or_nee() -> None:
    """Parts counted but no running time heard of (a window that began with the
    parts in hand): availability is 0, effectiveness has no APT to divide by, so
    OEE and NEE are undefined too, while the quality ratio is known."""
    facts = StationFacts(
        id="cold", ideal_cycle_time_s=30.0, time_in_state={"starved": 120.0}, good=3, scrap=1
    )
    kpis = station_kpis(facts)
    assert kpis.availability == 0
    assert kpis.effectiveness is None
    assert kpis.quality_ratio == pytest.approx(3 / 4)
    assert kpis.oee is None
    assert kpis.nee is None
    # The same at the level of ISO 22400 alone, and before any time at all.
    no_time = iso22400(
        planned_busy_time_s=0,
        actual_production_time_s=0,
        produced_quantity=4,
        good_quantity=3,
        planned_runtime_per_unit_s=30.0,
    )
    assert (no_time.availability, no_time.effectiveness, no_time.oee) == (None, None, None)
    assert no_time.quality_ratio == pytest.approx(3 / 4)


def test_a_station_that_produced_nothing_has_no_quality_ratio_oee_or_nee() -> None:
    facts = StationFacts(
        id="idle",
        ideal_cycle_time_s=30.0,
        time_in_state={"running": 50.0, "setup": 50.0},
        good=0,
        scrap=0,
    )
    kpis = station_kpis(facts)
    assert kpis.availability == pytest.approx(0.5)
    assert kpis.effectiveness == 0
    assert kpis.quality_ratio is None
    assert kpis.oee is None
    assert kpis.nee is None


def test_mean_active_period_of_zero_length_periods_is_zero() -> None:
    facts = StationFacts(
        id="s",
        ideal_cycle_time_s=1.0,
        time_in_state={},
        good=0,
        scrap=0,
        active_time_s=0.0,
        active_periods=3,
    )
    assert station_kpis(facts).mean_active_period_s == 0


@pytest.mark.parametrize("pru", [None, 0.0])
def test_without_a_pru_effectiveness_and_oee_are_unknown(pru: float | None) -> None:
    """Effectiveness is PRU x PQ / APT: for a station whose PRU is unknown (0, or
    not given) it cannot be told, and is not 0 (the station did make parts);
    availability and quality still are."""
    kpis = iso22400(
        planned_busy_time_s=100.0,
        actual_production_time_s=80.0,
        produced_quantity=20,
        good_quantity=20,
        planned_runtime_per_unit_s=pru,
    )
    assert kpis.effectiveness is None
    assert kpis.oee is None
    assert kpis.availability == pytest.approx(80 / 100)
    assert kpis.quality_ratio == 1.0


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [(0.25, 0.5, 0.5), (3.0, 1e-9, 3e9), (2.0, 4.0, 0.5), (1.0, 0.0, None), (1.0, -2.0, None)],
)
def test_a_ratio_is_defined_for_any_positive_denominator(
    numerator: float, denominator: float, expected: float | None
) -> None:
    """Less than a second of time is still time: only a zero (or negative)
    denominator leaves a KPI undefined."""
    found = ratio(numerator, denominator)
    if expected is None:
        assert found is None
    else:
        assert found == pytest.approx(expected)


def _mixed_line() -> list[StationFacts]:
    """Four stations whose capacity constraint (largest PRU per machine) and
    active-period bottleneck (longest mean active period) are different ones."""
    saw = StationFacts(
        "saw", 10.0, {"running": 1300.0, "blocked": 2300.0}, good=80, scrap=0,
        active_time_s=1300.0, active_periods=20,
    )  # fmt: skip
    # 60 s on each of 2 machines: 30 s per machine, faster than the drill's 40 s,
    # though it is the largest PRU and the largest PRU x machines.
    mill = StationFacts(
        "mill", 60.0, {"running": 4400.0, "starved": 2800.0}, good=78, scrap=0, machines=2,
        active_time_s=2700.0, active_periods=30,
    )  # fmt: skip
    # The constraint: every state but maintenance, planned downtime outside PBT, a
    # product mix whose ideal time is not PRU x PQ.
    drill = StationFacts(
        "drill",
        40.0,
        {
            "running": 3000.0,
            "setup": 300.0,
            "down": 200.0,
            "starved": 100.0,
            "planned_downtime": 600.0,
        },
        good=70,
        scrap=2,
        rework=3,
        ideal_time_s=2900.0,
        active_time_s=3200.0,
        active_periods=40,
    )
    # Never active: no active period to average, and no division by zero.
    wash = StationFacts(
        "wash", 5.0, {"running": 350.0, "starved": 3250.0}, good=70, scrap=0,
        active_time_s=0.0, active_periods=0,
    )  # fmt: skip
    return [saw, mill, drill, wash]


def test_every_line_figure_follows_its_definition() -> None:
    """Availability, effectiveness and NEE are the constraint's; quality, yields
    and throughput the line's (docs/kpis.md); the rest is carried as given."""
    stations = _mixed_line()
    kpis = line_kpis(
        observed_s=3600.0,
        stations=stations,
        shipped=68,
        scrapped=5,
        work_in_process=7,
        reworked=3,
        shipped_first_pass=65,
        mean_wip=6.5,
        cycle_time_s=1234.0,
    )
    assert kpis.constraint == "drill"
    # Mean active periods: saw 65 s, mill 90 s, drill 80 s; wash none.
    assert kpis.bottleneck == "mill"
    produced = 68 + 5
    pbt = 3000.0 + 300.0 + 200.0 + 100.0
    availability, effectiveness, quality = 3000.0 / pbt, 2900.0 / 3000.0, 68 / produced
    assert kpis.observed_s == 3600.0
    assert (kpis.produced, kpis.good, kpis.scrap, kpis.rework) == (produced, 68, 5, 3)
    assert kpis.work_in_process == 7
    assert kpis.availability == pytest.approx(availability)
    assert kpis.effectiveness == pytest.approx(effectiveness)
    assert kpis.quality_ratio == pytest.approx(quality)
    assert kpis.oee == pytest.approx(availability * effectiveness * quality)
    assert kpis.nee == pytest.approx(3000.0 / (pbt - 300.0) * effectiveness * quality)
    assert kpis.throughput_per_h == pytest.approx(68.0)
    assert kpis.throughput_per_planned_h == pytest.approx(68 * 3600.0 / pbt)
    assert kpis.yield_ratio == pytest.approx(68 / produced)
    assert kpis.first_pass_yield == pytest.approx(65 / produced)
    assert kpis.scrap_ratio == pytest.approx(5 / produced)
    assert (kpis.mean_wip, kpis.cycle_time_s) == (6.5, 1234.0)


def test_without_rework_figures_the_first_pass_yield_is_the_yield() -> None:
    kpis = line_kpis(
        observed_s=3600.0, stations=_mixed_line(), shipped=68, scrapped=5, work_in_process=7
    )
    assert kpis.rework == 0
    assert kpis.first_pass_yield == pytest.approx(68 / 73)
    assert kpis.first_pass_yield == kpis.yield_ratio
    assert kpis.mean_wip is None
    assert kpis.cycle_time_s is None


def _named(facts: StationFacts | None) -> str | None:
    return None if facts is None else facts.id


def test_the_capacity_constraint_is_the_largest_pru_per_machine() -> None:
    assert _named(capacity_constraint(_mixed_line())) == "drill"
    # Sub-second cycles (a bottling line) are PRUs like any other.
    fillers = [
        StationFacts("rinse", 0.4, {}, good=0, scrap=0),
        StationFacts("fill", 0.7, {}, good=0, scrap=0),
        StationFacts("cap", 0.5, {}, good=0, scrap=0),
    ]
    assert _named(capacity_constraint(fillers)) == "fill"
    # Ties go to the first station, as documented.
    twins = [StationFacts("a", 30.0, {}, 0, 0), StationFacts("b", 60.0, {}, 0, 0, machines=2)]
    assert _named(capacity_constraint(twins)) == "a"


def test_the_active_period_bottleneck_is_the_longest_mean_active_period() -> None:
    assert _named(active_period_bottleneck(_mixed_line())) == "mill"
    # Equal means: the first station, like the capacity constraint's tie rule.
    tied = [
        StationFacts("a", 1.0, {}, 0, 0, active_time_s=300.0, active_periods=3),
        StationFacts("b", 1.0, {}, 0, 0, active_time_s=200.0, active_periods=2),
    ]
    assert _named(active_period_bottleneck(tied)) == "a"
    # No history: no bottleneck by this method.
    unknown = [
        StationFacts("a", 1.0, {}, 0, 0),
        StationFacts("b", 1.0, {}, 0, 0, active_time_s=5.0),
    ]
    assert active_period_bottleneck(unknown) is None


@pytest.mark.parametrize(
    "stations",
    [
        [],
        # PRU unknown (0) everywhere: no station can be called the constraint.
        [StationFacts("a", 0.0, {"running": 100.0}, 5, 0), StationFacts("b", 0.0, {}, 5, 0)],
    ],
    ids=["no stations", "no PRU"],
)
def test_a_line_without_a_constraint_has_only_its_own_figures(stations: list[StationFacts]) -> None:
    kpis = line_kpis(observed_s=1800.0, stations=stations, shipped=9, scrapped=1, work_in_process=2)
    assert kpis.constraint is None
    assert kpis.bottleneck is None
    for name in ("availability", "effectiveness", "oee", "nee", "throughput_per_planned_h"):
        assert getattr(kpis, name) is None, name
    assert kpis.quality_ratio == pytest.approx(9 / 10)
    assert kpis.throughput_per_h == pytest.approx(9 * 3600 / 1800)


@pytest.mark.parametrize(
    ("times", "availability"),
    [({"down": 100.0, "starved": 50.0}, 0.0), ({}, None)],
    ids=["idle constraint", "constraint without time"],
)
def test_a_constraint_that_has_not_run_leaves_oee_undefined(
    times: dict[StationStateName, float], availability: float | None
) -> None:
    """Parts shipped in a window in which the constraint did not run (they passed
    it before): the line's quality ratio stands, the constraint's effectiveness,
    and so OEE and NEE, have no running time to divide by."""
    press = StationFacts("press", 50.0, times, good=0, scrap=0)
    kpis = line_kpis(observed_s=600.0, stations=[press], shipped=4, scrapped=0, work_in_process=1)
    assert kpis.constraint == "press"
    assert kpis.availability == availability
    assert kpis.effectiveness is None
    assert kpis.oee is None
    assert kpis.nee is None
    assert kpis.quality_ratio == 1


def test_without_setup_time_nee_is_oee() -> None:
    """NEE differs from OEE only by not counting setup as lost: with no setup
    at all, the two are the same figure, at the station and for the line."""
    press = StationFacts(
        "press", 50.0, {"running": 2600.0, "down": 400.0, "starved": 600.0}, good=48, scrap=2
    )
    station = station_kpis(press)
    line = line_kpis(observed_s=3600.0, stations=[press], shipped=47, scrapped=3, work_in_process=1)
    assert station.oee is not None
    assert line.oee is not None
    assert station.nee == pytest.approx(station.oee)
    assert line.nee == pytest.approx(line.oee)
