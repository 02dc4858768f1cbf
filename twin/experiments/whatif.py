"""What-if runs: the line model forked from the twin's state, run ahead of the line.

A fork is a batch plant (a plain ``simpy.Environment``, nothing published)
whose clock starts at the snapshot's simulation time, so the shift calendar
keeps the line's time of day, and whose initial conditions are the snapshot's
(``twin.state.snapshot``, built from the twin's view only): buffers hold as many
parts as the twin saw, parts in process restart processing, tool wear and
setpoints are the twin's, operator-stopped stations stay stopped, and down
machines start in repair. Changes are applied on top: other setpoints, a
station down for some hours from the fork, another shift plan, another release
policy.

``run_scenario`` runs N replications of the baseline (no change) and of the
scenario with common random numbers (replication i of both uses the same
seed), and reports each KPI's mean with a Student-t 95% confidence interval for
both, and for their paired difference. KPIs come from the batch report
(``twin.sim.report``), the same maths as every other run, over planned time
(``twin.experiments.whatif_kpis``). Horizons and
replications are bounded so that one request cannot hog the machine.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Annotated

import simpy
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import twin
from twin.config.line import Calendar, LineConfig, Release
from twin.errors import first_problem
from twin.experiments.experiment import CONFIDENCE, Mapper
from twin.experiments.whatif_kpis import (
    KPI_NAMES,
    KpiForecast,
    ScenarioKpis,
    forecast,
    why_not_applicable,
)
from twin.sim.plant import Plant
from twin.sim.report import plant_report
from twin.state.clock import describe_calendar, format_clock, time_of_day_s
from twin.state.snapshot import LineCounters, LineSnapshot, SimTime, StationId
from twin.state.views import ClockView

MAX_HORIZON_S = 7 * 24 * 3600.0
MAX_REPLICATIONS = 100
# Budget on horizon_s x replications (the baseline doubles the simulated time):
# 60 days, about 15 s for the default line on one core.
MAX_SIMULATED_S = 60 * 24 * 3600.0

ProgressCallback = Callable[[int, int], None]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Hours = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class ScenarioChanges(BaseModel):
    """What the scenario changes at the fork; empty: the baseline."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    setpoints: dict[StationId, dict[str, Finite]] = Field(
        default={}, description="New setpoints by station: {machining: {speed: 0.9}}."
    )
    stations_down: dict[StationId, Hours] = Field(
        default={},
        description="Stations whose machines are all down from the fork for this many hours "
        "(an unplanned outage); it replaces a repair under way there.",
    )
    shift_plan: Calendar | None = Field(
        default=None,
        description="Another calendar of planned downtime. Its start_at_h and "
        "clock_at_start_h are replaced by the line's, since the twin's clock fixes the "
        "time of day.",
    )
    release: Release | None = Field(default=None, description="Another release policy.")


class ScenarioResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: str
    line: str
    config_hash: str
    fork_sim_time_s: SimTime = Field(description="The twin's clock at the fork.")
    horizon_s: float
    end_sim_time_s: SimTime = Field(description="Where the forecast ends: fork + horizon.")
    fork_time_of_day: str | None = Field(
        default=None, description="HH:MM at the fork by the fork's calendar; null: none."
    )
    end_time_of_day: str | None = Field(default=None, description="HH:MM at the end.")
    clock_at_fork: ClockView | None = Field(
        default=None, description="The line's clock at the fork, as the twin saw it."
    )
    replications: int
    seed: int
    replication_seeds: list[int] = Field(description="Replication i of both runs uses seed i.")
    confidence: float
    counters_at_fork: LineCounters
    snapshot_notes: list[str]
    changes: ScenarioChanges
    kpis: dict[str, KpiForecast]
    baseline_runs: list[ScenarioKpis]
    scenario_runs: list[ScenarioKpis]


def replication_seeds(seed: int, replications: int) -> list[int]:
    """Deterministic, well-spread seeds for the replications of one request."""
    return [
        int.from_bytes(hashlib.sha256(f"factory-twin/whatif/{seed}/{i}".encode()).digest()[:8])
        for i in range(replications)
    ]


def check_bounds(horizon_s: float, replications: int) -> None:
    """ValueError naming the field when one request would simulate too much."""
    if isinstance(horizon_s, bool) or not (math.isfinite(horizon_s) and horizon_s > 0):
        raise ValueError(f"horizon_s must be a finite number > 0 (got {horizon_s!r})")
    if horizon_s > MAX_HORIZON_S:
        raise ValueError(f"horizon_s {horizon_s:g} exceeds the maximum {MAX_HORIZON_S:g} s")
    if isinstance(replications, bool) or not isinstance(replications, int) or replications < 1:
        raise ValueError(f"replications must be an integer >= 1 (got {replications!r})")
    if replications > MAX_REPLICATIONS:
        raise ValueError(f"replications {replications} exceeds the maximum {MAX_REPLICATIONS}")
    if horizon_s * replications > MAX_SIMULATED_S:
        raise ValueError(
            f"horizon_s x replications = {horizon_s * replications:g} s exceeds the budget "
            f"{MAX_SIMULATED_S:g} s: shorten the horizon or run fewer replications"
        )


def check_changes(config: LineConfig, changes: ScenarioChanges | None) -> LineConfig:
    """The line config the scenario runs on; ValueError naming the field when the
    changes do not fit the line (unknown station, setpoint out of range ...)."""
    if changes is None:
        return config
    stations = [spec.id for spec in config.stations]
    for field in ("setpoints", "stations_down"):
        for station_id in getattr(changes, field):
            if station_id not in stations:
                raise ValueError(
                    f"{field}.{station_id}: unknown station {station_id!r}; stations are {stations}"
                )
    update: dict[str, object] = {}
    if changes.shift_plan is not None:
        plan = changes.shift_plan.model_dump()
        if config.calendar is not None:
            plan["start_at_h"] = config.calendar.start_at_h
        update["calendar"] = plan
    if changes.release is not None:
        update["release"] = changes.release.model_dump()
    changed = config
    if update:
        try:
            changed = LineConfig.model_validate({**config.model_dump(), **update})
        except ValidationError as exc:
            raise ValueError(
                f"{next(iter(update))}: {first_problem(exc, top_level=None)}"
            ) from None
    if changes.setpoints:
        trial = Plant(changed, seed=0)  # its stations check the ranges
        for station_id, values in changes.setpoints.items():
            for name, value in values.items():
                try:
                    trial.set_setpoint(station_id, name, value)
                except ValueError as exc:
                    raise ValueError(f"setpoints.{station_id}.{name}: {exc}") from None
    return changed


def _line_calendar(config: LineConfig, snapshot: LineSnapshot) -> Calendar | None:
    """The calendar the line runs: the one it announced (in the snapshot), else the
    config's; ValueError naming ``snapshot.calendar`` when the line's does not fit."""
    announced = snapshot.calendar
    if announced is None:
        return config.calendar
    try:
        return Calendar.model_validate(
            {
                "period_h": announced.period_h,
                "start_at_h": announced.start_at_h,
                "clock_at_start_h": announced.clock_at_start_h,
                "planned_downtime": [stop.model_dump() for stop in announced.planned_downtime],
            }
        )
    except ValidationError as exc:
        raise ValueError(f"snapshot.calendar: {first_problem(exc, top_level=None)}") from None


def fork_config(
    config: LineConfig, snapshot: LineSnapshot, changes: ScenarioChanges | None = None
) -> LineConfig:
    """The config a fork runs: the changes applied, and the line's calendar (or the
    scenario's shift plan) in phase with the line's clock at the fork."""
    changed = check_changes(config, changes)
    line = _line_calendar(config, snapshot)
    plan = changes.shift_plan if changes is not None else None
    if plan is None:
        plan = line
    if plan is None:
        return changed
    if line is not None:
        # Sim time 0 is where the line's calendar says; a plan counts its hours from
        # the same origin, so that the fork keeps the line's time of day.
        start = line.start_at_h % plan.period_h
        plan = plan.model_copy(
            update={
                "start_at_h": start if start < plan.period_h else 0.0,
                "clock_at_start_h": line.time_of_day_at_start_h,
            }
        )
    try:
        return LineConfig.model_validate({**changed.model_dump(), "calendar": plan.model_dump()})
    except ValidationError as exc:
        raise ValueError(f"shift_plan: {first_problem(exc, top_level=None)}") from None


def fork_plant(
    config: LineConfig,
    snapshot: LineSnapshot,
    changes: ScenarioChanges | None = None,
    *,
    seed: int,
) -> Plant:
    """A batch plant at the snapshot's time and state, with the changes applied;
    its statistics begin at the fork. Run it with ``plant.run(until=...)``."""
    changed = fork_config(config, snapshot, changes)
    ids = [spec.id for spec in config.stations]
    if [station.id for station in snapshot.stations] != ids:
        raise ValueError(
            f"snapshot.stations: {[s.id for s in snapshot.stations]} do not match the "
            f"line's stations {ids}"
        )
    plant = Plant(changed, seed=seed, env=simpy.Environment(initial_time=snapshot.sim_time_s))
    for seen, station in zip(snapshot.stations, plant.stations, strict=True):
        # Parts in process go first: their machines take them again at once.
        plant.preload(station.position, seen.parts_in_process + seen.input_buffer_level)
        for name, value in seen.setpoints.items():
            try:
                station.set_setpoint(name, value)
            except ValueError as exc:
                raise ValueError(
                    f"snapshot.stations[{station.position}].setpoints: {exc}"
                ) from None
        for machine in station.machines:
            machine.wear = seen.wear
            machine.maintenance_due = seen.maintenance_due
        if seen.state == "stopped":
            station.stop("stopped at the fork")
    changes = changes or ScenarioChanges()
    for station_id, values in changes.setpoints.items():
        for name, value in values.items():
            plant.set_setpoint(station_id, name, value)
    for seen, station in zip(snapshot.stations, plant.stations, strict=True):
        down_h = changes.stations_down.get(station.id)
        machine_states = {machine.index: machine.state for machine in seen.machines}
        for machine in station.machines:
            if down_h is not None:
                machine.start_outage(down_h * 3600.0, "down (what-if)")
                continue
            state = machine_states.get(machine.index)
            if state is None and len(station.machines) == 1:
                state = seen.state
            if state == "down" and station.spec.failures is not None:
                # Repairs are exponential: what is left of one is a fresh draw.
                machine.start_outage(None, "down at the fork")
    plant.reset_statistics()
    return plant


def simulate_from(
    config: LineConfig,
    snapshot: LineSnapshot,
    changes: ScenarioChanges | None = None,
    *,
    horizon_s: float,
    seed: int,
) -> ScenarioKpis:
    """One replication: fork, run ``horizon_s`` past the fork, report the KPIs."""
    check_bounds(horizon_s, 1)
    plant = fork_plant(config, snapshot, changes, seed=seed)
    plant.run(until=snapshot.sim_time_s + horizon_s)
    # The calendar's stops in the horizon, as the plant kept them (exact).
    planned_s = max(0.0, horizon_s - plant.planned_downtime_so_far())
    report = plant_report(plant, seed=seed, hours=horizon_s / 3600.0)
    return ScenarioKpis.from_report(report, planned_production_s=planned_s)


def _simulate_run(
    run: tuple[LineConfig, LineSnapshot, ScenarioChanges | None, float, int],
) -> ScenarioKpis:
    """One replication; at module level, so that a worker process can import it."""
    config, snapshot, applied, horizon_s, seed = run
    return simulate_from(config, snapshot, applied, horizon_s=horizon_s, seed=seed)


def run_scenario(
    config: LineConfig,
    snapshot: LineSnapshot,
    changes: ScenarioChanges | None = None,
    *,
    horizon_s: float,
    replications: int,
    seed: int,
    progress: ProgressCallback | None = None,
    backend: Mapper | None = None,
) -> ScenarioResult:
    """Baseline and scenario forecasts over ``horizon_s`` from the snapshot.

    ``progress(done, total)`` is called after each run; ``total`` is
    2 x replications, or replications when there is no change to compare.
    ``backend`` (a process pool or Dask, ``twin.experiments.sweep_backends``) runs them
    elsewhere; each run carries its seed, so the result is the same.
    """
    check_bounds(horizon_s, replications)
    changes = changes or ScenarioChanges()
    check_changes(config, changes)
    seeds = replication_seeds(seed, replications)
    unchanged = changes == ScenarioChanges()
    variants: list[ScenarioChanges | None] = [None] if unchanged else [None, changes]
    runs = [
        (config, snapshot, applied, horizon_s, run_seed)
        for run_seed in seeds
        for applied in variants
    ]
    total = len(runs)
    counted = iter(range(1, total + 1))

    def done(_result: ScenarioKpis) -> None:
        if progress is not None:
            progress(next(counted), total)

    if backend is not None:
        results = backend.map(_simulate_run, runs, done)
    else:
        results = []
        for run in runs:
            results.append(_simulate_run(run))
            done(results[-1])
    per_seed = len(variants)
    baseline = results[::per_seed]
    scenario = baseline if unchanged else results[1::per_seed]
    start, end = snapshot.sim_time_s, snapshot.sim_time_s + horizon_s
    base_calendar = fork_config(config, snapshot).calendar
    # The calendar is deterministic: every replication of a variant has the same
    # planned time, so the first one speaks for all.
    variants_seen = [
        (
            "baseline" if not unchanged else "baseline and scenario",
            baseline[0].planned_production_h,
            base_calendar,
        )
    ]
    if not unchanged:
        plan = fork_config(config, snapshot, changes).calendar
        variants_seen.append(("scenario", scenario[0].planned_production_h, plan))
    not_applicable: dict[str, list[str]] = {}
    for name in KPI_NAMES:
        for label, planned_h, calendar in variants_seen:
            why = why_not_applicable(name, planned_h, calendar, (start, end), label)
            if why is not None:
                not_applicable.setdefault(name, []).append(why)
    described = describe_calendar(base_calendar) if base_calendar is not None else None
    return ScenarioResult(
        version=twin.__version__,
        line=snapshot.line,
        config_hash=config.config_hash(),
        fork_sim_time_s=start,
        horizon_s=horizon_s,
        end_sim_time_s=end,
        fork_time_of_day=(
            format_clock(time_of_day_s(described, start)) if described is not None else None
        ),
        end_time_of_day=(
            format_clock(time_of_day_s(described, end)) if described is not None else None
        ),
        clock_at_fork=snapshot.clock,
        replications=replications,
        seed=seed,
        replication_seeds=seeds,
        confidence=CONFIDENCE,
        counters_at_fork=snapshot.counters,
        snapshot_notes=list(snapshot.notes),
        changes=changes,
        kpis={
            name: forecast(name, baseline, scenario, not_applicable.get(name, []))
            for name in KPI_NAMES
        },
        baseline_runs=baseline,
        scenario_runs=scenario,
    )


__all__ = [
    "MAX_HORIZON_S",
    "MAX_REPLICATIONS",
    "MAX_SIMULATED_S",
    "ScenarioChanges",
    "ScenarioResult",
    "check_bounds",
    "check_changes",
    "fork_config",
    "fork_plant",
    "replication_seeds",
    "run_scenario",
    "simulate_from",
]
