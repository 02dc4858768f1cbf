"""The twin's economics, from MQTT messages alone, against the plant's own books.

The twin is fed through the plant's publisher and the real ingest (JSON, the
contract, sequence checks): ``feeding.feed_twin``. The batch report of the same
run (``plant_report``) counts from the simulator's memory, which the twin never
reads, so the two are independent ways to the same figures.

Tolerances come from what the twin cannot know:

- it has heard the plant up to its newest message, not up to the plant's clock:
  every station's time can lag by ``plant.now - view.sim_time_s`` per machine,
  and a figure priced per second by that lag times its rate;
- microstops send no message: the twin infers the speed loss as
  APT x (1 - effectiveness), the plant's microstops and slow running (processing
  beyond the rated PRU) together, apart from the part in hand (its running time
  counted, its PRU not yet) and a part processed but not yet handed on (the plant
  has counted its PRU, the twin has not heard of it);
- the view does not say which product a part was, so material and scrap are
  valued at the mix-weighted mean: the counts agree exactly, the money by that.
"""

from __future__ import annotations

import pytest
from feeding import FedTwin, feed_twin

from twin.config.line import Calendar, LineConfig, PlannedStop, load_config
from twin.sim.plant import Plant
from twin.sim.report import RunReport, plant_report
from twin.state.economics import EconomicsView, ShiftTracker, line_economics, price
from twin.state.line import TwinState
from twin.state.shifts import current_shift_start_s, shift_starts_h
from twin.state.tallies import LineTally
from twin.state.views import LineView

HOURS = 8.0
SEED = 3


@pytest.fixture(scope="module")
def config() -> LineConfig:
    return load_config()


@pytest.fixture(scope="module")
def fed(config: LineConfig) -> FedTwin:
    return feed_twin(HOURS, seed=SEED, config=config)


@pytest.fixture(scope="module")
def view(fed: FedTwin) -> LineView:
    return fed.twin.view()


@pytest.fixture(scope="module")
def economics(view: LineView, config: LineConfig) -> EconomicsView:
    return line_economics(view, config)


@pytest.fixture(scope="module")
def report(fed: FedTwin) -> RunReport:
    return plant_report(fed.plant, seed=SEED, hours=HOURS)


def _lag_s(fed: FedTwin, view: LineView) -> float:
    assert view.sim_time_s is not None
    lag = fed.plant.now - view.sim_time_s
    assert 0 <= lag <= 2 * load_config().sensors.telemetry_period_s
    return lag


def _mix_mean(config: LineConfig, attribute: str) -> float:
    weights = sum(product.mix for product in config.products)
    return sum(product.mix * getattr(product, attribute) for product in config.products) / weights


def test_stop_losses_match_the_plants_books_per_station_and_reason(
    fed: FedTwin, view: LineView, economics: EconomicsView, report: RunReport, config: LineConfig
) -> None:
    lag = _lag_s(fed, view)
    twin = {(entry.station, entry.reason): entry for entry in economics.pareto}
    specs = {spec.id: spec for spec in config.stations}
    checked = 0
    for loss in report.losses:
        if loss.category not in ("planned", "unplanned", "external"):
            continue
        entry = twin.get((loss.station, loss.reason))
        spec = specs[loss.station]
        allowed_s = lag * spec.machines + 1e-6
        power = max(spec.costs.power_kw.running, spec.costs.power_kw.idle, 1.0)
        rate = (spec.costs.labour_per_h + spec.costs.overhead_per_h) / 3600.0
        rate += power / 3600.0 * config.economics.energy_price_per_kwh
        time_s = entry.time_s if entry else 0.0
        cost = entry.cost if entry else 0.0
        assert time_s == pytest.approx(loss.time_s, abs=allowed_s), loss
        assert cost == pytest.approx(loss.cost, abs=allowed_s * rate + 1e-9), loss
        if entry is not None:
            assert entry.category == loss.category
        checked += loss.time_s > 0
    assert checked >= 8, "the run should lose time at many stations and states"


def test_labour_overhead_and_energy_match_the_plant(
    fed: FedTwin, view: LineView, economics: EconomicsView, report: RunReport, config: LineConfig
) -> None:
    lag_h = _lag_s(fed, view) / 3600.0
    machines = {spec.id: spec.machines for spec in config.stations}
    labour_lag = sum(s.costs.labour_per_h * machines[s.id] * lag_h for s in config.stations)
    overhead_lag = sum(s.costs.overhead_per_h * machines[s.id] * lag_h for s in config.stations)
    # No setpoint changed in this run, so the speed of the latest part is the speed all along.
    peak_kw = sum(
        max(s.costs.power_kw.running * s.process.speed.max, s.costs.power_kw.idle) * s.machines
        for s in config.stations
    )
    plant = report.economics
    costs = economics.costs
    assert costs.labour_cost == pytest.approx(plant.labour_cost, abs=labour_lag + 1e-9)
    assert costs.overhead_cost == pytest.approx(plant.overhead_cost, abs=overhead_lag + 1e-9)
    assert costs.energy_kwh == pytest.approx(plant.energy_kwh, abs=peak_kw * lag_h + 1e-9)
    assert plant.energy_per_good_part_kwh is not None
    assert costs.energy_per_good_part_kwh == pytest.approx(plant.energy_per_good_part_kwh, rel=0.01)
    assert costs.good_parts == report.line_kpis.good
    assert economics.currency == plant.currency


def test_material_and_cost_per_good_part_agree_once_the_mix_is_priced_alike(
    fed: FedTwin, view: LineView, economics: EconomicsView, report: RunReport, config: LineConfig
) -> None:
    released = sum(fed.plant.released_by_product.values())
    assert economics.costs.parts_released == released
    mean_material = _mix_mean(config, "material_cost")
    assert economics.costs.material_cost == pytest.approx(released * mean_material)
    plant = report.economics
    # The plant's total with its material valued at the mix mean, as the twin values it:
    # what is left is the lag.
    plant_total = plant.total_cost - plant.material_cost + released * mean_material
    lag_h = _lag_s(fed, view) / 3600.0
    hourly = sum(
        (s.costs.labour_per_h + s.costs.overhead_per_h) * s.machines
        + s.costs.power_kw.running * s.process.speed.max * config.economics.energy_price_per_kwh
        for s in config.stations
    )
    assert economics.costs.total_cost == pytest.approx(plant_total, abs=hourly * lag_h + 1e-9)
    good = report.line_kpis.good
    assert economics.costs.cost_per_good_part == pytest.approx(plant_total / good, rel=1e-3)
    # Against the plant's own material: apart by at most the spread of material costs.
    spread = max(p.material_cost for p in config.products) - min(
        p.material_cost for p in config.products
    )
    assert abs(economics.costs.total_cost - plant.total_cost) <= (
        released * spread + hourly * lag_h
    )
    assert economics.costs.revenue == pytest.approx(good * _mix_mean(config, "price"))


def test_quality_losses_count_the_plants_scrap_and_rework(
    economics: EconomicsView, report: RunReport, view: LineView, config: LineConfig
) -> None:
    twin = {(entry.station, entry.reason): entry for entry in economics.pareto}
    stations = {station.id: station for station in report.stations}
    mean_material = _mix_mean(config, "material_cost")
    for station in view.stations:
        kpis = station.kpis
        assert kpis.scrap == stations[station.id].scrap
        assert kpis.rework == stations[station.id].rework
        assert kpis.effectiveness is not None
        ideal_per_part = kpis.actual_production_time_s * kpis.effectiveness / kpis.produced
        scrap = twin.get((station.id, "scrap"))
        assert (scrap.time_s if scrap else 0.0) == pytest.approx(kpis.scrap * ideal_per_part)
        if scrap is not None:
            assert scrap.cost >= kpis.scrap * mean_material
    scrapped = sum(entry.time_s for entry in economics.pareto if entry.reason == "scrap")
    assert scrapped > 0, "the run should scrap parts"


def test_speed_losses_are_the_plants_microstops_and_slow_running(
    fed: FedTwin, economics: EconomicsView, report: RunReport, view: LineView, config: LineConfig
) -> None:
    """The twin infers the speed loss from effectiveness (microstops send no
    message); the plant books its microstops and its slow running (processing
    beyond the rated PRU) apart. The two agree up to the parts at the edge."""
    lag = _lag_s(fed, view)
    twin = {entry.station: entry.time_s for entry in economics.pareto if entry.category == "speed"}
    plant: dict[str, dict[str, float]] = {}
    for loss in report.losses:
        if loss.category == "speed":
            plant.setdefault(loss.station, {})[loss.reason] = loss.time_s
    margins: dict[str, float] = {}
    booked_s: dict[str, float] = {}
    for spec, station in zip(config.stations, view.stations, strict=True):
        assert spec.id == station.id
        assert set(plant[spec.id]) == {"microstops", "slow running"}
        # Per machine: a part in hand (its running time, at most one processing
        # time: 5 mean times bounds one draw of CV <= 0.6 with probability above
        # 1 - 1e-4), a part processed but not handed on (one PRU) and the lag.
        durations = [spec.processing_time, *spec.processing_time_by_product.values()]
        slowest_mean = max(float(d.mean) for d in durations) / spec.process.speed.min
        pru = max(spec.planned_runtime_per_unit_s(p.id) for p in config.products)
        allowed = spec.machines * (5 * slowest_mean + pru + lag)
        booked = sum(plant[spec.id].values())
        # The margin is below what it bounds: a station whose speed loss the twin
        # missed (0 s) fails.
        assert allowed < booked, (spec.id, allowed, booked)
        assert twin.get(spec.id, 0.0) == pytest.approx(booked, abs=allowed)
        margins[spec.id], booked_s[spec.id] = allowed, booked
    # Over the line, the margin is a small share of the loss.
    assert sum(margins.values()) < sum(booked_s.values()) / 4, (margins, booked_s)
    assert sum(twin.values()) > 0
    # Running below the rated speed is most of it: the default speed is below the maximum.
    slow = sum(reasons["slow running"] for reasons in plant.values())
    assert slow > sum(reasons["microstops"] for reasons in plant.values())


JAM_MEAN_S = 30.0


def _jammed(config: LineConfig) -> LineConfig:
    """``config`` with frequent microstops on every station (a fifth of the
    processing time), so that their total is well above what the twin cannot know."""
    data = config.model_dump(mode="json")
    for station in data["stations"]:
        station["microstops"] = {
            "mean_between_s": 150,
            "duration": {"distribution": "exponential", "mean_s": JAM_MEAN_S},
        }
    return LineConfig.model_validate(data)


@pytest.mark.parametrize(
    ("template", "seed"),
    [
        (None, 3),
        (None, 11),
        # A bottling line publishes a message every few seconds: most of a minute.
        pytest.param("examples/lines/bottling.yaml", 5, marks=pytest.mark.slow),
        ("examples/lines/smt.yaml", 7),
    ],
)
def test_the_twins_speed_loss_holds_the_plants_microstops(template: str | None, seed: int) -> None:
    """Beyond the processing past the PRU (what the plant's parts took over their
    rated time, unclamped: a lucky run lowers it), the twin's speed loss is the
    plant's microstop total, per station, within what the twin cannot know: the
    part in hand, a part not yet handed on, the lag. That margin is below half
    the total, so a twin or a plant that lost its microstops fails here."""
    from helpers import REPO

    config = _jammed(load_config(REPO / template if template else None))
    fed = feed_twin(HOURS, seed=seed, config=config)
    view = fed.twin.view()
    report = plant_report(fed.plant, seed=seed, hours=HOURS)
    lag = _lag_s(fed, view)
    twin = {
        entry.station: entry.time_s
        for entry in line_economics(view, config).pareto
        if entry.category == "speed"
    }
    plant = {
        loss.station: loss.time_s
        for loss in report.losses
        if loss.category == "speed" and loss.reason == "microstops"
    }
    for spec in config.stations:
        station = fed.plant.by_id[spec.id]
        durations = [spec.processing_time, *spec.processing_time_by_product.values()]
        slowest_mean = max(float(d.mean) for d in durations) / spec.process.speed.min
        pru = max(spec.planned_runtime_per_unit_s(p.id) for p in config.products)
        # Per machine, a part in hand: one processing draw (5 means: CV <= 0.6
        # exceeds it with probability below 1e-4) and its jams (10 mean jams, far
        # above the two or three such a draw meets); a part not handed on (PRU); the lag.
        allowed = spec.machines * (5 * slowest_mean + 10 * JAM_MEAN_S + pru + lag)
        microstops = plant[spec.id]
        assert microstops == pytest.approx(station.microstop_s)
        assert allowed < microstops / 2, (spec.id, allowed, microstops)
        past_the_pru = station.processing_s - station.ideal_time_s
        inferred = twin.get(spec.id, 0.0) - past_the_pru
        assert inferred == pytest.approx(microstops, abs=allowed), spec.id


def test_pareto_is_sorted_by_money_and_groups_add_up(economics: EconomicsView) -> None:
    pareto = economics.pareto
    assert pareto
    keys = [(-entry.cost, -entry.time_s) for entry in pareto]
    assert keys == sorted(keys)
    lost = economics.money_lost
    assert lost.total == pytest.approx(sum(entry.cost for entry in pareto))
    assert lost.total == pytest.approx(
        lost.downtime + lost.starved_blocked + lost.speed + lost.quality
    )
    by_category: dict[str, float] = {}
    for entry in pareto:
        by_category[entry.category] = by_category.get(entry.category, 0.0) + entry.cost
    assert lost.downtime == pytest.approx(
        by_category.get("planned", 0.0) + by_category.get("unplanned", 0.0)
    )
    assert lost.starved_blocked == pytest.approx(by_category.get("external", 0.0))
    assert pareto[-1].cumulative_share == pytest.approx(1.0)
    shares = [entry.cumulative_share for entry in pareto]
    assert shares == sorted(shares)  # type: ignore[type-var]


def test_the_bottleneck_is_the_line_kpis(
    economics: EconomicsView, view: LineView, report: RunReport
) -> None:
    assert economics.bottleneck == view.kpis.bottleneck
    assert economics.bottleneck == report.line_kpis.bottleneck
    assert economics.constraint == report.line_kpis.constraint


def test_a_line_with_no_data_gives_no_per_part_figures(config: LineConfig) -> None:
    empty = line_economics(TwinState("plant-a", "fabrication", "line1").view(), config)
    assert empty.costs.cost_per_good_part is None
    assert empty.costs.energy_per_good_part_kwh is None
    assert empty.costs.margin_per_hour is None
    assert empty.money_lost.total == 0.0
    assert empty.pareto == []
    assert empty.window == "since_start"
    # Stations announced, nothing made yet: still no division by zero.
    fed = feed_twin(0.0, seed=1, config=config)
    announced = line_economics(fed.twin.view(), config)
    assert announced.costs.good_parts == 0
    assert announced.costs.cost_per_good_part is None


def test_shift_starts_follow_the_long_planned_stops(config: LineConfig) -> None:
    calendar = config.calendar
    assert calendar is not None
    # 22:00 to 06:00 is one stop over midnight; the 30 min breaks are inside shifts.
    assert shift_starts_h(calendar) == [(6.0, 8.0)]
    # Simulation time 0 is 06:00: the shift started then, and again 24 h later.
    assert current_shift_start_s(calendar, 0.0) == 0.0
    assert current_shift_start_s(calendar, 20 * 3600.0) == 0.0
    assert current_shift_start_s(calendar, 25 * 3600.0) == 24 * 3600.0
    twelve = Calendar(
        period_h=12, planned_downtime=[PlannedStop(start_h=11, duration_h=1, reason="CIP")]
    )
    assert shift_starts_h(twelve) == [(0.0, 1.0)]
    breaks_only = Calendar(planned_downtime=[PlannedStop(start_h=2, duration_h=0.5)])
    assert shift_starts_h(breaks_only) == [(0.0, 0.0)]


@pytest.mark.slow
def test_shift_window_is_the_change_since_the_snapshot_at_the_shift_start(
    config: LineConfig,
) -> None:
    fed = feed_twin(20.0, seed=5, config=config)  # 02:00, in the night stop
    tracker = ShiftTracker()
    night = tracker.observe(fed.twin.view(), config)
    # The day shift began at 0 and was not snapshotted: the figures say so.
    assert night.window == "since_start"
    assert night.shift_start_s == 0.0
    before = fed.twin.view()
    fed.plant.run(until=26 * 3600.0)  # 08:00 next day
    after = fed.twin.view()
    shift = tracker.observe(after, config)
    assert shift.window == "shift"
    assert shift.shift_start_s == 24 * 3600.0
    assert before.sim_time_s is not None
    assert shift.window_start_s == before.sim_time_s
    whole = line_economics(after, config)
    earlier = line_economics(before, config)
    for name in ("labour_cost", "energy_kwh", "material_cost", "good_parts", "parts_released"):
        delta = getattr(whole.costs, name) - getattr(earlier.costs, name)
        assert getattr(shift.costs, name) == pytest.approx(delta), name
    assert shift.costs.good_parts > 0
    assert shift.costs.cost_per_good_part is not None
    assert 0 < shift.money_lost.total < whole.money_lost.total
    # A tracker that first looks two hours into the shift has no snapshot of its start.
    late = ShiftTracker().observe(after, config)
    assert late.window == "since_start"
    assert late.window_start_s == pytest.approx(whole.window_start_s)
    assert late.costs == whole.costs


def test_a_restarted_twin_drops_the_old_snapshot(config: LineConfig) -> None:
    tracker = ShiftTracker(grace_s=3600.0)
    fed = feed_twin(0.5, seed=2, config=config)
    assert tracker.observe(fed.twin.view(), config).window == "shift"
    fresh = feed_twin(0.25, seed=2, config=config)
    again = tracker.observe(fresh.twin.view(), config)
    assert again.window == "shift"
    assert again.window_start_s == fresh.twin.view().sim_time_s
    assert again.costs.good_parts == 0


def test_a_line_without_a_calendar_is_always_since_start(config: LineConfig) -> None:
    plain = config.model_copy(update={"calendar": None})
    fed = feed_twin(0.5, seed=4, config=plain)
    result = ShiftTracker().observe(fed.twin.view(), plain)
    assert result.window == "since_start"
    assert result.shift_start_s is None
    assert result == price(LineTally.of(fed.twin.view()), plain)
    assert isinstance(fed.plant, Plant)
