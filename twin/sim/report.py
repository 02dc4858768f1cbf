"""One run's report: KPIs, Little's law, economics and the loss Pareto.

The report is built from the plant's own tallies with the same KPI maths the
twin uses on messages, so a batch run and a live twin of the same run agree.
Everything covers the statistics window: from the end of the warm-up (or the
start) to the plant's current time.

Economics (docs/kpis.md): labour and overhead are paid per machine for its
planned busy time; energy is power by state (running power scales with the
speed setpoint; machines are off in planned downtime) times time; material is
paid for every part released. Each time loss is valued at what the machine
costs while it is lost (labour, overhead and its energy in that state); scrap
adds the material of the scrapped parts.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from twin.sim.plant import Plant
from twin.sim.station import StationModel
from twin.state.kpi import StationFacts, line_kpis, ratio, station_kpis
from twin.state.views import STOP_LOSSES, Economics, LineKpis, LossCategory, LossEntry, StationKpis


class StationReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    started: int
    good: int
    scrap: int
    rework: int
    setups: int
    breakdowns: int
    microstops: int
    microstop_s: float
    maintenances: int
    energy_kwh: float
    setpoints: dict[str, float]
    kpis: StationKpis


class LittlesLaw(BaseModel):
    model_config = ConfigDict(frozen=True)

    mean_wip: float
    exit_rate_per_s: float
    mean_time_in_system_s: float | None
    wip_from_little: float | None
    relative_error: float | None
    boundary_bound: float = 0.0
    holds: bool = True


class RunReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    line: str
    seed: int
    hours: float
    warmup_hours: float
    observed_s: float
    line_kpis: LineKpis
    littles_law: LittlesLaw
    economics: Economics
    losses: list[LossEntry]
    stations: list[StationReport]


def station_facts(station: StationModel, now: float) -> StationFacts:
    active_total, active_count = 0.0, 0
    for machine in station.machines:
        total, count = machine.active_period_stats(now)
        active_total += total
        active_count += count
    return StationFacts(
        id=station.id,
        ideal_cycle_time_s=station.spec.planned_runtime_per_unit_s(),
        time_in_state=station.time_in_states(now),
        good=station.parts_good,
        scrap=station.parts_scrap,
        rework=station.parts_reworked,
        machines=len(station.machines),
        ideal_time_s=station.ideal_time_s,
        active_time_s=active_total,
        active_periods=active_count,
    )


def _energy_kwh(station: StationModel, now: float) -> tuple[float, dict[str, float]]:
    """Energy of a station in the window, total and by state."""
    power = station.spec.costs.power_kw
    by_state: dict[str, float] = {}
    for machine in station.machines:
        times = machine.time_in_states(now)
        running_speed_s = machine.running_speed_s
        if machine.state == "running":
            running_speed_s += (now - machine.state_since) * station.setpoints["speed"]
        for state, seconds in times.items():
            if state == "planned_downtime":
                continue
            if state == "running":
                kwh = power.running * running_speed_s / 3600.0
            else:
                kwh = power.by_state(state) * seconds / 3600.0
            by_state[state] = by_state.get(state, 0.0) + kwh
    return sum(by_state.values()), by_state


def _losses(station: StationModel, now: float, price: float) -> list[LossEntry]:
    costs = station.spec.costs
    time_rate = (costs.labour_per_h + costs.overhead_per_h) / 3600.0
    times = station.time_in_states(now)
    stops = [
        (category, reason, times[state], costs.power_kw.by_state(state), 0.0)
        for category, state, reason in STOP_LOSSES
    ]
    # Losses inside running time: valued at the running rate (at the current speed).
    running_kw = costs.power_kw.running * station.setpoints["speed"]
    # Running slower than rated (PRU): processing beyond the parts' planned runtime,
    # never below zero (a lucky run of short processing times gains nothing here).
    slow_s = max(0.0, station.processing_s - station.ideal_time_s)
    in_running: list[tuple[LossCategory, str, float, float, float]] = [
        ("speed", "microstops", station.microstop_s, running_kw, 0.0),
        ("speed", "slow running", slow_s, running_kw, 0.0),
        ("quality", "scrap", station.scrap_processing_s, running_kw, station.scrap_material_cost),
        ("quality", "rework", station.rework_processing_s, running_kw, 0.0),
    ]
    return [
        LossEntry(
            station=station.id,
            category=category,
            reason=reason,
            time_s=seconds,
            cost=seconds * (time_rate + kw / 3600.0 * price) + material,
        )
        for category, reason, seconds, kw, material in stops + in_running
    ]


def _economics(plant: Plant, now: float, observed_s: float) -> Economics:
    config = plant.config
    price = config.economics.energy_price_per_kwh
    labour = overhead = energy = 0.0
    for station in plant.stations:
        pbt_h = station_facts(station, now).planned_busy_time_s / 3600.0
        labour += station.spec.costs.labour_per_h * pbt_h
        overhead += station.spec.costs.overhead_per_h * pbt_h
        energy += _energy_kwh(station, now)[0]
    products = {product.id: product for product in config.products}
    material = sum(
        count * products[product].material_cost
        for product, count in plant.released_by_product.items()
    )
    revenue = sum(
        count * products[product].price for product, count in plant.shipped_by_product.items()
    )
    energy_cost = energy * price
    total = labour + overhead + energy_cost + material
    good = plant.parts_shipped
    return Economics(
        currency=config.economics.currency,
        revenue=revenue,
        material_cost=material,
        labour_cost=labour,
        overhead_cost=overhead,
        energy_kwh=energy,
        energy_cost=energy_cost,
        total_cost=total,
        cost_per_good_part=ratio(total, good),
        energy_per_good_part_kwh=ratio(energy, good),
        margin_per_hour=ratio((revenue - total) * 3600.0, observed_s),
    )


def plant_report(plant: Plant, *, seed: int, hours: float, warmup_hours: float = 0.0) -> RunReport:
    """The report of a plant up to its current time, from its own tallies."""
    now = plant.now
    observed = now - plant.statistics_since
    facts = [station_facts(station, now) for station in plant.stations]
    exits = plant.parts_shipped + plant.parts_scrapped
    mean_wip = plant.mean_wip()
    exit_rate = exits / observed if observed > 0 else 0.0
    time_in_system = ratio(plant.exit_time_sum_s, exits)
    from_little = exit_rate * time_in_system if time_in_system is not None else 0.0
    bound = plant.littles_law_boundary_s() / observed if observed > 0 else 0.0
    price = plant.config.economics.energy_price_per_kwh
    stations = [
        StationReport(
            id=station.id,
            name=station.spec.display_name,
            started=station.parts_started,
            good=station.parts_good,
            scrap=station.parts_scrap,
            rework=station.parts_reworked,
            setups=station.setups,
            breakdowns=station.breakdowns,
            microstops=station.microstops,
            microstop_s=station.microstop_s,
            maintenances=station.maintenances,
            energy_kwh=_energy_kwh(station, now)[0],
            setpoints=dict(station.setpoints),
            kpis=station_kpis(fact),
        )
        for station, fact in zip(plant.stations, facts, strict=True)
    ]
    losses = [entry for station in plant.stations for entry in _losses(station, now, price)]
    losses.sort(key=lambda entry: (-entry.cost, -entry.time_s))
    return RunReport(
        line=plant.config.line.id,
        seed=seed,
        hours=hours,
        warmup_hours=warmup_hours,
        observed_s=observed,
        line_kpis=line_kpis(
            observed_s=observed,
            stations=facts,
            shipped=plant.parts_shipped,
            scrapped=plant.parts_scrapped,
            reworked=plant.parts_reworked,
            shipped_first_pass=plant.shipped_first_pass,
            work_in_process=plant.work_in_process,
            mean_wip=mean_wip,
            cycle_time_s=ratio(plant.cycle_time_sum_s, plant.parts_shipped),
        ),
        littles_law=LittlesLaw(
            mean_wip=mean_wip,
            exit_rate_per_s=exit_rate,
            mean_time_in_system_s=time_in_system,
            wip_from_little=from_little,
            relative_error=(
                abs(from_little - mean_wip) / mean_wip
                if from_little is not None and mean_wip > 0
                else None
            ),
            boundary_bound=bound,
            holds=abs((from_little or 0.0) - mean_wip) <= bound + 1e-9 * max(1.0, mean_wip),
        ),
        economics=_economics(plant, now, observed),
        losses=losses,
        stations=stations,
    )
