"""The tallies: what the twin counted, as its view reports it, before it is priced."""

from __future__ import annotations

import pytest
from feeding import feed_twin
from hand_tallies import grown, line_tally, station_tally, stop_times

from twin.config.line import LineConfig, load_config
from twin.state.economics import line_economics, price
from twin.state.shifts import current_shift_start_s
from twin.state.tallies import STOP_STATES, LineTally


@pytest.fixture(scope="module")
def config() -> LineConfig:
    return load_config()


def test_the_difference_of_two_tallies_is_what_happened_between() -> None:
    early_cut = station_tally(
        "cutting", busy=1000.0, running=800.0, ideal=700.0, stops=stop_times(down=200.0),
        produced=20, scrap=2, rework=1,
    )  # fmt: skip
    later_cut = grown(early_cut, 3.0)
    # Known only to the later tally: counted whole. A stop state new since counts whole too.
    later_cut.stops_s["blocked"] = 50.0
    del early_cut.stops_s["blocked"]
    welding = station_tally(
        "welding", busy=500.0, running=400.0, ideal=380.0, stops=stop_times(), produced=10
    )
    base = line_tally(early_cut, sim_time_s=1000.0, start_s=0.0, released=25, good=18, scrap=2)
    now = line_tally(
        later_cut, welding, sim_time_s=3000.0, start_s=0.0, released=80, good=60, scrap=6
    )
    between = now.minus(base)
    assert (between.sim_time_s, between.start_s) == (3000.0, 1000.0)
    assert (between.released, between.good, between.scrap) == (55, 42, 4)
    cut = between.stations["cutting"]
    assert (cut.busy_s, cut.running_s, cut.ideal_s) == (2000.0, 1600.0, 1400.0)
    assert (cut.produced, cut.scrap, cut.rework) == (40, 4, 2)
    assert cut.stops_s["down"] == 400.0
    assert cut.stops_s["blocked"] == 50.0
    assert between.stations["welding"] == welding


def test_a_tally_follows_another_only_if_nothing_went_back() -> None:
    cut = station_tally(
        "cutting", busy=1000.0, running=800.0, ideal=700.0, stops=stop_times(), produced=20
    )
    base = line_tally(cut, sim_time_s=1000.0)
    assert line_tally(cut, sim_time_s=1000.0).follows(base), "the same tally follows itself"
    assert line_tally(grown(cut, 2.0), sim_time_s=2000.0, good=80, released=95).follows(base)
    went_back = [
        line_tally(cut, sim_time_s=None),
        line_tally(cut, sim_time_s=999.0),
        line_tally(cut, sim_time_s=2000.0, good=69),
        line_tally(cut, sim_time_s=2000.0, released=89),
        line_tally(grown(cut, 0.5), sim_time_s=2000.0),
        line_tally(sim_time_s=2000.0),  # the station is gone
    ]
    for later in went_back:
        assert not later.follows(base), later
    assert not base.follows(line_tally(cut, sim_time_s=None))


def test_the_tally_of_a_view_is_what_the_view_reports(config: LineConfig) -> None:
    """Per station: planned busy time, APT, the ideal time (APT x effectiveness,
    ISO 22400: PRU x PQ), each stop state, counts and the latest speed; for the
    line, parts released (WIP + good + scrap) and where the window starts."""
    fed = feed_twin(1.0, seed=6, config=config, setpoints={"cutting": {"speed": 1.2}})
    view = fed.twin.view()
    tally = LineTally.of(view)
    assert view.sim_time_s is not None
    assert tally.line == view.line
    assert tally.sim_time_s == view.sim_time_s
    assert tally.start_s == pytest.approx(view.sim_time_s - view.kpis.observed_s)
    assert tally.released == view.kpis.work_in_process + view.kpis.good + view.kpis.scrap
    assert (tally.good, tally.scrap) == (view.kpis.good, view.kpis.scrap)
    assert (tally.bottleneck, tally.constraint) == (view.kpis.bottleneck, view.kpis.constraint)
    assert tally.bottleneck is not None
    assert tally.constraint is not None
    assert list(tally.stations) == [station.id for station in view.stations]
    for station in view.stations:
        counted = tally.stations[station.id]
        kpis = station.kpis
        assert counted.id == station.id
        assert counted.name == station.name
        assert counted.busy_s == kpis.planned_busy_time_s
        assert counted.running_s == kpis.actual_production_time_s
        assert kpis.effectiveness is not None
        assert counted.ideal_s == pytest.approx(kpis.actual_production_time_s * kpis.effectiveness)
        for state in STOP_STATES:
            assert counted.stops_s[state] == getattr(kpis, f"{state}_time_s"), state
        assert (counted.produced, counted.scrap, counted.rework) == (
            kpis.produced,
            kpis.scrap,
            kpis.rework,
        )
        assert counted.speed == station.process.get("speed")
    assert tally.stations["cutting"].speed == 1.2
    # The economics of the view are the tally's, priced, with the current shift's start.
    assert config.calendar is not None
    priced = line_economics(view, config)
    shift_start = current_shift_start_s(config.calendar, view.sim_time_s)
    assert priced.shift_start_s == shift_start
    assert priced == price(tally, config, shift_start_s=shift_start)


def test_a_station_without_effectiveness_has_no_ideal_time(config: LineConfig) -> None:
    announced = feed_twin(0.0, seed=1, config=config).twin.view()
    tally = LineTally.of(announced)
    assert tally.stations
    for station in announced.stations:
        assert station.kpis.effectiveness is None
        assert tally.stations[station.id].ideal_s == 0.0
