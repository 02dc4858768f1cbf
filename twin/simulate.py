"""Batch runs: simulate a line as fast as possible and report its KPIs.

The report is built from the plant's own tallies with the same KPI maths the
twin uses on messages, so a batch run and a live twin of the same run agree.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from twin.config import LineConfig
from twin.kpi import StationFacts, line_kpis, station_kpis
from twin.plant import Plant
from twin.views import LineKpis, StationKpis

ProgressCallback = Callable[[float], None]


class StationReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    started: int
    good: int
    scrap: int
    kpis: StationKpis


class SimulationReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    line: str
    seed: int
    hours: float
    line_kpis: LineKpis
    stations: list[StationReport]


def plant_report(plant: Plant, seed: int, hours: float) -> SimulationReport:
    """KPIs of a plant from its own tallies, up to its current time."""
    now = plant.now
    facts = [
        StationFacts(
            id=station.id,
            ideal_cycle_time_s=station.spec.ideal_cycle_time_s,
            time_in_state=station.time_in_states(now),
            good=station.parts_good,
            scrap=station.parts_scrap,
        )
        for station in plant.stations
    ]
    stations = [
        StationReport(
            id=station.id,
            name=station.spec.display_name,
            started=station.parts_started,
            good=station.parts_good,
            scrap=station.parts_scrap,
            kpis=station_kpis(fact),
        )
        for station, fact in zip(plant.stations, facts, strict=True)
    ]
    return SimulationReport(
        line=plant.config.line.id,
        seed=seed,
        hours=hours,
        line_kpis=line_kpis(
            observed_s=now,
            stations=facts,
            shipped=plant.parts_shipped,
            scrapped=plant.parts_scrapped,
            work_in_process=plant.work_in_process,
        ),
        stations=stations,
    )


def simulate(
    config: LineConfig,
    *,
    hours: float,
    seed: int,
    progress: ProgressCallback | None = None,
    steps: int = 50,
) -> SimulationReport:
    """Run ``hours`` of simulated time as fast as possible."""
    if hours <= 0:
        raise ValueError(f"hours must be > 0 (got {hours})")
    plant = Plant(config, seed=seed)
    end = hours * 3600.0
    for step in range(1, steps + 1):
        plant.run(until=end * step / steps)
        if progress is not None:
            progress(step / steps)
    return plant_report(plant, seed, hours)
