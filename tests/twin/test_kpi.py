"""ISO 22400 KPI maths against hand calculations."""

from __future__ import annotations

import pytest

from twin.kpi import StationFacts, iso22400, line_kpis, station_kpis


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
