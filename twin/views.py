"""Read-only views of a line: what the API serves and the simulator reports.

The same models describe the twin (built from MQTT messages) and a batch
simulation (built from the plant's own tallies), so the two can be compared
field by field.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from twin.contract import StationStateName

LineStatusName = Literal["online", "offline", "unknown"]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class KpiSet(_View):
    availability: float | None = Field(description="APT / PBT")
    effectiveness: float | None = Field(description="PRU x PQ / APT")
    quality_ratio: float | None = Field(description="GQ / PQ")
    oee: float | None = Field(description="Availability x Effectiveness x Quality ratio")


class StationKpis(KpiSet):
    planned_busy_time_s: float
    actual_production_time_s: float
    down_time_s: float
    starved_time_s: float
    blocked_time_s: float
    utilisation: float | None


class LineKpis(KpiSet):
    observed_s: float = Field(description="Planned busy time of the line: the observed span.")
    produced: int = Field(description="Parts the line finished: good plus scrap (PQ).")
    good: int = Field(description="Good parts shipped from the last station (GQ).")
    scrap: int = Field(description="Parts scrapped at any station.")
    work_in_process: int
    throughput_per_h: float | None = Field(description="Good parts per hour of simulation time.")
    yield_ratio: float | None = Field(description="Good / produced.")
    bottleneck: str | None = Field(description="Station whose rate limits the line.")


class BufferView(_View):
    level: int | None = Field(description="Parts waiting; null until an event reports it.")
    capacity: int | None


class TelemetryView(_View):
    temperature_c: float
    vibration_mm_s: float
    sim_time_s: float


class StationView(_View):
    id: str
    name: str
    position: int | None
    state: StationStateName | None
    state_reason: str | None
    state_since_s: float | None
    started: int
    good: int
    scrap: int
    current_part: int | None
    input_buffer: BufferView | None
    telemetry: TelemetryView | None
    kpis: StationKpis


class LineView(_View):
    site: str
    area: str
    line: str
    name: str
    status: LineStatusName
    sim_time_s: float | None
    stations: list[StationView]
    kpis: LineKpis
