"""The twin's money against hand calculations from the config's rates.

``test_economics.py`` holds the twin's figures to the plant's own books over
whole runs; these tests price hand-made tallies, so that every rule of the
module docstring (docs/kpis.md, "Money, as the twin sees it") is checked on its
own, edges included: a clamped speed loss, a station the config does not know,
an empty window, a line without prices; and the tracker's snapshots at shift
starts. The tallies themselves are in ``test_tallies.py``, the shift starts in
``test_shifts.py``.
"""

from __future__ import annotations

import pytest
from hand_tallies import line_tally, station_tally, stop_times

from twin.config.line import Calendar, LineConfig, PlannedStop, Station, load_config, with_changes
from twin.state.economics import ShiftTracker, price
from twin.state.line import TwinState
from twin.state.shifts import current_shift_start_s
from twin.state.tallies import StationTally
from twin.state.views import STOP_LOSSES, LineView

GROUP_OF_CATEGORY = {
    "planned": "downtime",
    "unplanned": "downtime",
    "external": "starved_blocked",
    "speed": "speed",
    "quality": "quality",
}


@pytest.fixture(scope="module")
def config() -> LineConfig:
    return load_config()


def _mix(config: LineConfig, attribute: str) -> float:
    weights = sum(product.mix for product in config.products)
    return sum(product.mix * getattr(product, attribute) for product in config.products) / weights


def _expected_station(
    tally: StationTally, spec: Station, config: LineConfig
) -> tuple[list[tuple[str, str, str, float, float]], dict[str, float]]:
    """The docstring's rules, written out: losses (station, category, reason,
    seconds, cost) and the station's labour, overhead and energy."""
    energy_price = config.economics.energy_price_per_kwh
    costs = spec.costs
    per_s = (costs.labour_per_h + costs.overhead_per_h) / 3600.0
    losses = []
    energy_kwh = 0.0
    for category, state, reason in STOP_LOSSES:
        seconds = tally.stops_s[state]
        kw = costs.power_kw.by_state(state)
        losses.append(
            (tally.id, category, reason, seconds, seconds * (per_s + kw / 3600 * energy_price))
        )
        energy_kwh += kw * seconds / 3600.0
    speed = tally.speed if tally.speed is not None else spec.process.speed.default
    running_kw = costs.power_kw.running * speed
    running_per_s = per_s + running_kw / 3600.0 * energy_price
    energy_kwh += running_kw * tally.running_s / 3600.0
    lost_running = max(0.0, tally.running_s - tally.ideal_s)
    ideal_per_part = tally.ideal_s / tally.produced
    scrap_s, rework_s = tally.scrap * ideal_per_part, tally.rework * ideal_per_part
    material = _mix(config, "material_cost")
    losses += [
        (
            tally.id,
            "speed",
            "microstops and slow running",
            lost_running,
            lost_running * running_per_s,
        ),
        (tally.id, "quality", "scrap", scrap_s, scrap_s * running_per_s + tally.scrap * material),
        (tally.id, "quality", "rework", rework_s, rework_s * running_per_s),
    ]
    books = {
        "labour": costs.labour_per_h * tally.busy_s / 3600.0,
        "overhead": costs.overhead_per_h * tally.busy_s / 3600.0,
        "energy_kwh": energy_kwh,
    }
    return losses, books


def test_every_figure_is_the_counted_time_at_the_configs_rates(config: LineConfig) -> None:
    specs = {spec.id: spec for spec in config.stations}
    cutting = station_tally(
        "cutting",
        busy=3600.0,
        running=2400.0,
        ideal=2000.0,
        stops=stop_times(
            setup=300.0, maintenance=100.0, down=400.0, starved=250.0, blocked=100.0, stopped=50.0
        ),
        produced=60,
        scrap=3,
        rework=2,
        speed=1.2,
    )
    # Faster than rated over the window (a lucky run): no speed loss, not a negative
    # one; its speed unknown, so the setpoint's default; setup priced at setup power.
    machining = station_tally(
        "machining",
        busy=3500.0,
        running=3000.0,
        ideal=3100.0,
        stops=stop_times(setup=200.0, down=100.0, starved=100.0, stopped=100.0),
        produced=80,
        rework=4,
    )
    # A station the config does not know has no prices: it costs nothing.
    ghost = station_tally(
        "ghost", busy=1e6, running=1e6, ideal=0.0, stops=stop_times(down=1e5), produced=1
    )
    tally = line_tally(cutting, machining, ghost)
    found = price(tally, config)

    losses, labour, overhead, energy_kwh = [], 0.0, 0.0, 0.0
    for station in (cutting, machining):
        station_losses, books = _expected_station(station, specs[station.id], config)
        losses += station_losses
        labour += books["labour"]
        overhead += books["overhead"]
        energy_kwh += books["energy_kwh"]
    energy_cost = energy_kwh * config.economics.energy_price_per_kwh
    material_cost = 90 * _mix(config, "material_cost")
    total = labour + overhead + energy_cost + material_cost
    revenue = 70 * _mix(config, "price")

    costs = found.costs
    assert costs.labour_cost == pytest.approx(labour)
    assert costs.overhead_cost == pytest.approx(overhead)
    assert costs.energy_kwh == pytest.approx(energy_kwh)
    assert costs.energy_cost == pytest.approx(energy_cost)
    assert costs.material_cost == pytest.approx(material_cost)
    assert costs.total_cost == pytest.approx(total)
    assert costs.revenue == pytest.approx(revenue)
    assert (costs.parts_released, costs.good_parts, costs.scrap_parts) == (90, 70, 3)
    assert costs.cost_per_good_part == pytest.approx(total / 70)
    assert costs.energy_per_good_part_kwh == pytest.approx(energy_kwh / 70)
    assert costs.margin_per_hour == pytest.approx((revenue - total) * 3600.0 / 3600.0)

    groups = dict.fromkeys(("downtime", "starved_blocked", "speed", "quality"), 0.0)
    for _station, category, _reason, _seconds, cost in losses:
        groups[GROUP_OF_CATEGORY[category]] += cost
    lost = sum(groups.values())
    money = found.money_lost
    assert money.downtime == pytest.approx(groups["downtime"])
    assert money.starved_blocked == pytest.approx(groups["starved_blocked"])
    assert money.speed == pytest.approx(groups["speed"])
    assert money.quality == pytest.approx(groups["quality"])
    assert money.total == pytest.approx(lost)

    # The Pareto: every loss with time or money, by money then time; none of the ghost's.
    ranked = sorted(
        (entry for entry in losses if entry[3] > 0 or entry[4] > 0), key=lambda e: (-e[4], -e[3])
    )
    assert [(e.station, e.category, e.reason) for e in found.pareto] == [e[:3] for e in ranked]
    assert all(entry.station_name == entry.station.title() for entry in found.pareto)
    cumulative = 0.0
    for entry, (_s, _c, _r, seconds, cost) in zip(found.pareto, ranked, strict=True):
        cumulative += cost
        assert entry.time_s == pytest.approx(seconds)
        assert entry.cost == pytest.approx(cost)
        assert entry.share == pytest.approx(cost / lost)
        assert entry.cumulative_share == pytest.approx(cumulative / lost)
    assert found.pareto[-1].cumulative_share == pytest.approx(1.0)
    assert ("machining", "speed") not in [(e.station, e.category) for e in found.pareto]

    assert (found.line, found.currency) == ("line1", config.economics.currency)
    assert (found.sim_time_s, found.window_start_s, found.window_s) == (7200.0, 3600.0, 3600.0)
    assert (found.window, found.shift_start_s) == ("since_start", None)
    assert (found.bottleneck, found.constraint) == ("machining", "cutting")


def test_running_power_follows_the_speed_of_the_latest_part(config: LineConfig) -> None:
    """Twice the speed, twice the running power: the energy of running time
    doubles, that of the stop states stays."""

    def energy(speed: float) -> float:
        station = station_tally(
            "cutting", busy=1000.0, running=900.0, ideal=900.0, stops=stop_times(down=100.0),
            produced=30, speed=speed,
        )  # fmt: skip
        return price(line_tally(station), config).costs.energy_kwh

    spec = next(spec for spec in config.stations if spec.id == "cutting")
    running_kwh = spec.costs.power_kw.running * 900.0 / 3600.0
    assert energy(2.0) - energy(1.0) == pytest.approx(running_kwh)


def test_an_empty_or_backward_window_has_no_hourly_margin(config: LineConfig) -> None:
    station = station_tally(
        "cutting", busy=10.0, running=10.0, ideal=10.0, stops=stop_times(), produced=1
    )
    for sim_time, start in ((None, None), (100.0, None), (None, 100.0), (100.0, 250.0)):
        found = price(line_tally(station, sim_time_s=sim_time, start_s=start), config)
        assert found.window_s == 0.0, (sim_time, start)
        assert found.costs.margin_per_hour is None
        assert found.costs.revenue is not None


def test_a_line_without_prices_has_no_revenue_or_margin(config: LineConfig) -> None:
    free = with_changes(config, {f"products.{i}.price": 0.0 for i in range(len(config.products))})
    station = station_tally(
        "cutting", busy=10.0, running=10.0, ideal=10.0, stops=stop_times(), produced=1
    )
    found = price(line_tally(station), free)
    assert found.costs.revenue is None
    assert found.costs.margin_per_hour is None
    assert found.costs.total_cost > 0


def test_a_station_that_made_nothing_has_no_quality_loss(config: LineConfig) -> None:
    """No part made: no ideal time per part to value scrap at, and none needed."""
    idle = station_tally(
        "cutting", busy=600.0, running=0.0, ideal=0.0, stops=stop_times(starved=600.0), produced=0
    )
    found = price(line_tally(idle, good=0, released=0, scrap=0), config)
    assert found.money_lost.quality == 0.0
    assert found.money_lost.speed == 0.0
    assert [(e.category, e.reason) for e in found.pareto] == [("external", "starved")]
    assert found.costs.cost_per_good_part is None
    assert found.costs.energy_per_good_part_kwh is None


def _view_at(hours: float, good: int) -> LineView:
    """The view of a line with no stations that has shipped ``good`` parts by
    ``hours`` of simulation time: enough for the tracker's clock and counts."""
    empty = TwinState("plant-a", "fabrication", "line1").view()
    kpis = empty.kpis.model_copy(update={"observed_s": hours * 3600.0, "good": good})
    return empty.model_copy(update={"sim_time_s": hours * 3600.0, "kpis": kpis})


def _night_shift_config(config: LineConfig) -> LineConfig:
    """One shift a day from 06:00, a night stop from 22:00 (8 h); the simulation
    starts at 06:00, so shifts start at 0 h, 24 h, 48 h of simulation time."""
    calendar = Calendar(
        start_at_h=6.0, planned_downtime=[PlannedStop(start_h=22.0, duration_h=8.0)]
    )
    return config.model_copy(update={"calendar": calendar})


@pytest.mark.parametrize(("late_s", "window"), [(0.0, "shift"), (0.001, "since_start")])
def test_a_snapshot_is_kept_up_to_the_grace_after_the_shift_start(
    config: LineConfig, late_s: float, window: str
) -> None:
    """The second day's shift, from 24 h of simulation time: a first look 600 s
    into it is its start with a grace of 600 s, not with a millisecond less."""
    night = _night_shift_config(config)
    tracker = ShiftTracker(grace_s=600.0 - late_s)
    assert tracker.observe(_view_at(24.0 + 600.0 / 3600.0, good=3), night).window == window
    later = tracker.observe(_view_at(26.0, good=40), night)
    assert later.window == window
    assert later.shift_start_s == 24 * 3600.0
    if window == "shift":
        assert later.costs.good_parts == 40 - 3
        assert later.window_start_s == pytest.approx(24 * 3600.0 + 600.0)


def test_the_last_look_in_the_stop_before_a_shift_is_its_start(config: LineConfig) -> None:
    """Nothing is made in the night stop, so the tracker's last look in it (22:00
    to 06:00) stands for the next shift's start; the shift before, never seen
    at its start, gives the figures since the twin started."""
    night = _night_shift_config(config)
    tracker = ShiftTracker()
    evening = tracker.observe(_view_at(15.0, good=100), night)  # 21:00, before the stop
    assert (evening.window, evening.shift_start_s) == ("since_start", 0.0)
    tracker.observe(_view_at(16.0, good=110), night)  # 22:00: the stop begins
    tracker.observe(_view_at(20.0, good=110), night)  # 02:00
    for hours, good in ((25.0, 130), (30.0, 190)):  # 07:00 and 12:00 of the next day
        day = tracker.observe(_view_at(hours, good=good), night)
        assert day.window == "shift"
        assert day.shift_start_s == 24 * 3600.0
        assert day.window_start_s == 20 * 3600.0
        assert day.costs.good_parts == good - 110
        assert day.window_s == (hours - 20.0) * 3600.0
    # A day later the old snapshot is gone; none was taken for this shift's start.
    next_day = tracker.observe(_view_at(50.0, good=400), night)
    assert (next_day.window, next_day.shift_start_s) == ("since_start", 48 * 3600.0)


def _two_shift_calendar(stop_h: float = 1.0) -> Calendar:
    """Shifts from 07:00 and 19:00, each after a planned stop of ``stop_h``; the
    simulation starts at midnight."""
    return Calendar(
        planned_downtime=[
            PlannedStop(start_h=7.0 - stop_h, duration_h=stop_h),
            PlannedStop(start_h=19.0 - stop_h, duration_h=stop_h),
        ]
    )


@pytest.mark.parametrize(
    ("look_h", "window"),
    [(18.0, "shift"), (18.0 - 1 / 3600, "since_start")],
    ids=["at the stop's start", "a second before it"],
)
def test_the_stop_before_the_next_shift_begins_on_time(
    config: LineConfig, look_h: float, window: str
) -> None:
    """With two shifts a day the next shift after 08:00 is the one at 19:00, not
    tomorrow's at 07:00: a look from 18:00 (its stop) on is its start."""
    two = config.model_copy(update={"calendar": _two_shift_calendar()})
    tracker = ShiftTracker()
    tracker.observe(_view_at(8.0, good=10), two)
    tracker.observe(_view_at(look_h, good=50), two)
    evening = tracker.observe(_view_at(20.0, good=70), two)
    assert evening.shift_start_s == 19 * 3600.0
    assert evening.window == window
    if window == "shift":
        assert evening.window_start_s == 18 * 3600.0
        assert evening.costs.good_parts == 20


def test_a_shift_start_is_the_same_instant_from_any_time_and_to_the_millisecond(
    config: LineConfig,
) -> None:
    """A stop ending 0.1234 s after 07:00: the shift start is that instant, to the
    millisecond, however far into the shift (or days later) it is asked; and the
    snapshot taken in the stop before it is found once the shift runs."""
    calendar = Calendar(
        planned_downtime=[PlannedStop(start_h=6.0, duration_h=1.0 + 0.1234 / 3600.0)]
    )
    start_s = 7 * 3600.0 + 0.1234
    for day in range(4):
        # 0: asked at the very instant, where float noise once gave the previous day.
        for into_h in (0.0, 1 / 3600, 0.1, 1.0 / 3, 5.0, 23.9):
            now = day * 86400.0 + start_s + into_h * 3600.0
            found = current_shift_start_s(calendar, now)
            assert found == pytest.approx(day * 86400.0 + start_s, abs=0.0005)
    odd = config.model_copy(update={"calendar": calendar})
    tracker = ShiftTracker()
    tracker.observe(_view_at(30.5, good=100), odd)  # 06:30 on day two, in the stop
    shift = tracker.observe(_view_at(33.0, good=130), odd)
    assert shift.window == "shift"
    assert shift.window_start_s == 30.5 * 3600.0
    assert shift.costs.good_parts == 30


def test_a_loss_with_time_or_money_is_listed_and_ties_go_by_time(config: LineConfig) -> None:
    """Losses of a station with no rates: time but no money, each listed (half a
    second too), longest first. Prices below 1 still make revenue; a mix whose
    weights do not add up to 1 is weighted by them."""
    index = next(i for i, spec in enumerate(config.stations) if spec.id == "cutting")
    changes: dict[str, object] = {
        f"stations.{index}.costs.labour_per_h": 0.0,
        f"stations.{index}.costs.overhead_per_h": 0.0,
        f"stations.{index}.costs.power_kw.running": 0.0,
        f"stations.{index}.costs.power_kw.idle": 0.0,
        f"stations.{index}.costs.power_kw.down": 0.0,
        "products.0.mix": 3.0,
        "products.1.mix": 1.0,
        "products.0.price": 0.5,
        "products.1.price": 0.9,
        "products.0.material_cost": 0.2,
        "products.1.material_cost": 0.4,
    }
    free = with_changes(config, changes)
    station = station_tally(
        "cutting",
        busy=1000.0,
        running=800.0,
        ideal=799.75,
        stops=stop_times(down=60.0, starved=120.0, blocked=0.5),
        produced=20,
    )
    found = price(line_tally(station, good=8, released=10, scrap=0), free)
    listed = [(entry.reason, entry.time_s, entry.cost) for entry in found.pareto]
    assert listed == [
        ("starved", 120.0, 0.0),
        ("breakdown", 60.0, 0.0),
        ("blocked", 0.5, 0.0),
        ("microstops and slow running", 0.25, 0.0),
    ]
    assert found.costs.revenue == pytest.approx(8 * (3 * 0.5 + 1 * 0.9) / 4)
    assert found.costs.material_cost == pytest.approx(10 * _mix(free, "material_cost"))
    # Money without time: scrap's material, when its parts took no ideal time.
    scrapped = station_tally(
        "cutting", busy=10.0, running=0.0, ideal=0.0, stops=stop_times(), produced=2, scrap=2
    )
    material_only = price(line_tally(scrapped, good=0, released=2, scrap=2), free).pareto
    assert [(e.reason, e.time_s) for e in material_only] == [("scrap", 0.0)]
    # Below one unit of money is still money: (3 x 0.2 + 0.4) / 4 = 0.25 a part.
    assert material_only[0].cost == pytest.approx(2 * (3 * 0.2 + 0.4) / 4)


def test_a_stop_state_never_entered_costs_what_zero_seconds_cost(config: LineConfig) -> None:
    full = station_tally(
        "machining",
        busy=500.0,
        running=400.0,
        ideal=380.0,
        stops=stop_times(down=100.0),
        produced=9,
    )
    sparse = station_tally(
        "machining", busy=500.0, running=400.0, ideal=380.0, stops={"down": 100.0}, produced=9
    )
    assert price(line_tally(sparse), config) == price(line_tally(full), config)
