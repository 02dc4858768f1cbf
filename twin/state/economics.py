"""Where the time and money go, from the twin's view and the line config alone.

The twin knows each station's time in every state, its counters and the
process values of the latest part, all from MQTT messages; the line config
gives the prices (labour, overhead, power by state, energy, material). This
module values the one with the other, the way the batch report
(``twin.sim.report``) values the simulator's own tallies, and says where it has to
estimate what the messages do not carry (docs/kpis.md, "Money, as the twin
sees it"):

- stop losses are exact: time in each stop state x (labour + overhead + power
  in that state x energy price), as the history recorder values them;
- microstops happen inside ``running`` and send no message, so the speed loss
  is inferred from the KPIs: APT x (1 - effectiveness), the running time not
  explained by the ideal time of the parts made (microstops, slow running and
  the processing-time noise), never below zero;
- scrap and rework time is their count x the station's ideal time per part,
  and the material of a part is the mix-weighted mean over the products (the
  view does not say which product was scrapped); material is paid for every
  part released (work in process + good + scrap);
- running power scales with the speed of the latest part (``process.speed``),
  as if the station had run at it all along.

Figures are cumulative since the twin started. ``ShiftTracker`` keeps a
snapshot at each shift start so the same figures can be given for the current
shift; the line config has a calendar of planned downtime, not of shifts, so a
shift is taken to begin where production resumes after a planned stop of an
hour or more (``twin.state.shifts``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from twin.config.line import LineConfig, Station
from twin.state.kpi import ratio
from twin.state.shifts import current_shift_start_s, shift_boundaries_s
from twin.state.tallies import LineTally, StationTally
from twin.state.views import STOP_LOSSES, LineView, LossCategory

SimTime = float
Window = Literal["since_start", "shift"]

# A shift's snapshot taken this long after its start still counts as its start.
SHIFT_GRACE_S = 900.0
SPEED_REASON = "microstops and slow running"

# How the dashboard groups the money lost: loss category -> group.
MONEY_GROUPS: dict[LossCategory, str] = {
    "planned": "downtime",
    "unplanned": "downtime",
    "external": "starved_blocked",
    "speed": "speed",
    "quality": "quality",
}


# -- the response ------------------------------------------------------------------------
class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class ParetoEntry(_View):
    station: str
    station_name: str
    category: LossCategory
    reason: str
    time_s: float = Field(description="Machine-seconds lost in the window.")
    cost: float = Field(description="Money lost in the window, in the line's currency.")
    share: float | None = Field(description="This entry's share of all the money lost.")
    cumulative_share: float | None = Field(
        description="Share of the money lost by this entry and the ones before it."
    )


class MoneyLost(_View):
    downtime: float = Field(description="Breakdowns, setups, maintenance and operator stops.")
    starved_blocked: float = Field(description="Starved by upstream, blocked by downstream.")
    speed: float = Field(description="Microstops and slow running (inferred).")
    quality: float = Field(description="Scrap (time and material) and rework time.")
    total: float


class CostSummary(_View):
    labour_cost: float = Field(description="Labour rate x planned busy time of every machine.")
    overhead_cost: float
    energy_kwh: float = Field(description="Power by state x time in state; off in planned stops.")
    energy_cost: float
    material_cost: float = Field(description="Mix-weighted material of every part released.")
    total_cost: float
    revenue: float | None = Field(
        description="Mix-weighted price of every good part; null: no prices."
    )
    parts_released: int
    good_parts: int = Field(description="Parts that left the last station good.")
    scrap_parts: int
    cost_per_good_part: float | None = Field(description="Null until a good part has left.")
    energy_per_good_part_kwh: float | None = Field(description="Null until a good part has left.")
    margin_per_hour: float | None = Field(
        description="(revenue - total cost) per calendar hour of the window; null without prices."
    )


class EconomicsView(_View):
    """Where the time and money went in a window: since the twin started, or this shift."""

    line: str
    currency: str
    sim_time_s: float | None = Field(description="Simulation time of the newest message.")
    window: Window = Field(
        description="since_start: cumulative since the twin started; shift: since the "
        "snapshot taken at the current shift's start."
    )
    window_start_s: float | None = Field(description="Simulation time the window starts at.")
    window_s: float = Field(description="Length of the window, seconds of simulation time.")
    shift_start_s: float | None = Field(
        description="Start of the current shift by the calendar (null: no calendar); the "
        "window is the shift only when a snapshot was taken at it."
    )
    bottleneck: str | None = Field(description="The line KPI bottleneck (active-period method).")
    constraint: str | None = Field(description="The capacity constraint by design.")
    money_lost: MoneyLost
    costs: CostSummary
    pareto: list[ParetoEntry] = Field(description="Losses sorted by money, then time.")


# -- pricing -----------------------------------------------------------------------------
def _mix_mean(config: LineConfig, attribute: Literal["material_cost", "price"]) -> float:
    weights = sum(product.mix for product in config.products)
    total = sum(product.mix * float(getattr(product, attribute)) for product in config.products)
    return total / weights


@dataclass
class _Books:
    labour: float = 0.0
    overhead: float = 0.0
    energy_kwh: float = 0.0
    losses: list[tuple[StationTally, LossCategory, str, float, float]] = field(default_factory=list)


def _price_station(
    tally: StationTally, spec: Station, energy_price: float, material: float, books: _Books
) -> None:
    costs = spec.costs
    power = costs.power_kw
    time_rate = (costs.labour_per_h + costs.overhead_per_h) / 3600.0
    for category, state, reason in STOP_LOSSES:
        seconds = tally.stops_s.get(state, 0.0)
        cost = seconds * (time_rate + power.by_state(state) / 3600.0 * energy_price)
        books.losses.append((tally, category, reason, seconds, cost))
    speed = tally.speed if tally.speed is not None else spec.process.speed.default
    running_kw = power.running * speed
    running_rate = time_rate + running_kw / 3600.0 * energy_price
    speed_loss_s = max(0.0, tally.running_s - tally.ideal_s)
    ideal_per_part = ratio(tally.ideal_s, tally.produced)
    if ideal_per_part is None:
        ideal_per_part = spec.planned_runtime_per_unit_s()
    scrap_s = tally.scrap * ideal_per_part
    rework_s = tally.rework * ideal_per_part
    books.losses.extend(
        [
            (tally, "speed", SPEED_REASON, speed_loss_s, speed_loss_s * running_rate),
            (tally, "quality", "scrap", scrap_s, scrap_s * running_rate + tally.scrap * material),
            (tally, "quality", "rework", rework_s, rework_s * running_rate),
        ]
    )
    busy_h = tally.busy_s / 3600.0
    books.labour += costs.labour_per_h * busy_h
    books.overhead += costs.overhead_per_h * busy_h
    books.energy_kwh += running_kw * tally.running_s / 3600.0
    books.energy_kwh += sum(
        power.by_state(state) * seconds / 3600.0 for state, seconds in tally.stops_s.items()
    )


def price(
    tally: LineTally,
    config: LineConfig,
    *,
    window: Window = "since_start",
    shift_start_s: SimTime | None = None,
) -> EconomicsView:
    """Value what ``tally`` counted with the config's rates."""
    specs = {spec.id: spec for spec in config.stations}
    energy_price = config.economics.energy_price_per_kwh
    material = _mix_mean(config, "material_cost")
    unit_price = _mix_mean(config, "price")
    books = _Books()
    for station in tally.stations.values():
        spec = specs.get(station.id)
        if spec is not None:  # a station the config does not know has no prices
            _price_station(station, spec, energy_price, material, books)

    groups = dict.fromkeys(("downtime", "starved_blocked", "speed", "quality"), 0.0)
    for _station, category, _reason, _seconds, cost in books.losses:
        groups[MONEY_GROUPS[category]] += cost
    lost = sum(groups.values())
    ranked = sorted(
        (entry for entry in books.losses if entry[3] > 0 or entry[4] > 0),
        key=lambda entry: (-entry[4], -entry[3]),
    )
    pareto, cumulative = [], 0.0
    for station, category, reason, seconds, cost in ranked:
        cumulative += cost
        pareto.append(
            ParetoEntry(
                station=station.id,
                station_name=station.name,
                category=category,
                reason=reason,
                time_s=seconds,
                cost=cost,
                share=ratio(cost, lost),
                cumulative_share=ratio(cumulative, lost),
            )
        )

    energy_cost = books.energy_kwh * energy_price
    material_cost = tally.released * material
    total = books.labour + books.overhead + energy_cost + material_cost
    window_s = 0.0
    if tally.sim_time_s is not None and tally.start_s is not None:
        window_s = max(0.0, tally.sim_time_s - tally.start_s)
    revenue = tally.good * unit_price if unit_price > 0 else None
    margin = None if revenue is None else ratio((revenue - total) * 3600.0, window_s)
    return EconomicsView(
        line=tally.line,
        currency=config.economics.currency,
        sim_time_s=tally.sim_time_s,
        window=window,
        window_start_s=tally.start_s,
        window_s=window_s,
        shift_start_s=shift_start_s,
        bottleneck=tally.bottleneck,
        constraint=tally.constraint,
        money_lost=MoneyLost(total=lost, **groups),
        costs=CostSummary(
            labour_cost=books.labour,
            overhead_cost=books.overhead,
            energy_kwh=books.energy_kwh,
            energy_cost=energy_cost,
            material_cost=material_cost,
            total_cost=total,
            revenue=revenue,
            parts_released=tally.released,
            good_parts=tally.good,
            scrap_parts=tally.scrap,
            cost_per_good_part=ratio(total, tally.good),
            energy_per_good_part_kwh=ratio(books.energy_kwh, tally.good),
            margin_per_hour=margin,
        ),
        pareto=pareto,
    )


def line_economics(view: LineView, config: LineConfig) -> EconomicsView:
    """Time and money lost, and what the line cost, since the twin started."""
    tally = LineTally.of(view)
    shift_start = None
    if config.calendar is not None and tally.sim_time_s is not None:
        shift_start = current_shift_start_s(config.calendar, tally.sim_time_s)
    return price(tally, config, shift_start_s=shift_start)


# -- shifts ------------------------------------------------------------------------------
class ShiftTracker:
    """Snapshots of the twin's tally at shift starts, for "this shift" figures.

    Fed by whoever asks for the figures (``GET /economics``, or a periodic task):
    each observation may become the snapshot of a shift start. A snapshot is
    kept when it is taken within ``grace_s`` after the shift starts, or during
    the planned stop just before it (nothing is produced then; a machine that
    broke down stays down, so the stop may still carry some down time). Without
    such a snapshot, the figures are since the twin started, and say so.
    """

    def __init__(self, grace_s: float = SHIFT_GRACE_S) -> None:
        self.grace_s = grace_s
        self._lock = threading.Lock()
        self._snapshots: dict[SimTime, LineTally] = {}

    def observe(self, view: LineView, config: LineConfig) -> EconomicsView:
        tally = LineTally.of(view)
        calendar = config.calendar
        if calendar is None or tally.sim_time_s is None:
            return price(tally, config)
        now = tally.sim_time_s
        latest, upcoming, stop_s = shift_boundaries_s(calendar, now)
        with self._lock:
            for start, snapshot in list(self._snapshots.items()):
                if not tally.follows(snapshot) or start < latest:
                    del self._snapshots[start]  # a restarted twin, or a shift gone by
            if latest not in self._snapshots and now - latest <= self.grace_s:
                self._snapshots[latest] = tally
            if now >= upcoming - stop_s:
                # Inside the planned stop before the next shift: the latest snapshot wins.
                self._snapshots[upcoming] = tally
            start_snapshot = self._snapshots.get(latest)
        if start_snapshot is None:
            return price(tally, config, shift_start_s=latest)
        return price(tally.minus(start_snapshot), config, window="shift", shift_start_s=latest)
