"""Read-only views of a line: what the API serves and the simulator reports.

The same models describe the twin (built from MQTT messages) and a simulation
(built from the plant's own tallies), so the two can be compared field by field.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from twin.contract import StationStateName

LineStatusName = Literal["online", "offline", "unknown"]
LossCategory = Literal["planned", "unplanned", "external", "speed", "quality"]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class KpiSet(_View):
    availability: float | None = Field(description="APT / PBT")
    effectiveness: float | None = Field(description="PRU x PQ / APT")
    quality_ratio: float | None = Field(description="GQ / PQ")
    oee: float | None = Field(description="Availability x Effectiveness x Quality ratio")


class StationKpis(KpiSet):
    machines: int = 1
    planned_busy_time_s: float = Field(description="PBT, machine-seconds")
    actual_production_time_s: float = Field(description="APT: running")
    setup_time_s: float = 0.0
    maintenance_time_s: float = 0.0
    down_time_s: float
    starved_time_s: float
    blocked_time_s: float
    stopped_time_s: float = 0.0
    planned_downtime_s: float = 0.0
    produced: int = Field(default=0, description="PQ: good + scrap + rework")
    good: int = 0
    scrap: int = 0
    rework: int = 0
    nee: float | None = Field(default=None, description="Net equipment effectiveness")
    scrap_ratio: float | None = None
    utilisation: float | None
    mean_active_period_s: float | None = Field(
        default=None, description="Mean length of an active period (bottleneck method)."
    )


class LineKpis(KpiSet):
    observed_s: float = Field(description="Planned busy time of the line: the observed span.")
    produced: int = Field(description="Parts the line finished: good plus scrap (PQ).")
    good: int = Field(description="Good parts shipped from the last station (GQ).")
    scrap: int = Field(description="Parts scrapped at any station.")
    rework: int = Field(default=0, description="Rework passes (parts sent back upstream).")
    work_in_process: int
    throughput_per_h: float | None = Field(description="Good parts per hour of simulation time.")
    yield_ratio: float | None = Field(description="Good / produced.")
    first_pass_yield: float | None = Field(
        default=None, description="Shipped without rework / produced."
    )
    scrap_ratio: float | None = Field(default=None, description="Scrap / produced.")
    nee: float | None = Field(default=None, description="Net equipment effectiveness")
    mean_wip: float | None = Field(default=None, description="Time-average WIP (L).")
    cycle_time_s: float | None = Field(
        default=None, description="Mean lead time of shipped parts, release to ship."
    )
    constraint: str | None = Field(
        default=None,
        description="Station with the least capacity by design (largest PRU per machine); "
        "line OEE is measured there.",
    )
    bottleneck: str | None = Field(
        description="Station that limits the line: active-period method where the "
        "history allows it, else the capacity constraint."
    )


class LossEntry(_View):
    station: str
    category: LossCategory
    reason: str
    time_s: float
    cost: float


class Economics(_View):
    currency: str
    revenue: float
    material_cost: float
    labour_cost: float
    overhead_cost: float
    energy_kwh: float
    energy_cost: float
    total_cost: float
    cost_per_good_part: float | None
    energy_per_good_part_kwh: float | None
    margin_per_hour: float | None


class BufferView(_View):
    level: int | None = Field(description="Parts waiting; null until an event reports it.")
    capacity: int | None = Field(description="Null: unlimited.")


class TelemetryView(_View):
    """The latest reading of each sensor, and when the latest came."""

    temperature_c: float | None = None
    vibration_mm_s: float | None = None
    spindle_rpm: float | None = None
    power_kw: float | None = None
    pressure_bar: float | None = None
    sim_time_s: float


class MachineView(_View):
    index: int
    state: StationStateName | None
    state_reason: str | None
    state_since_s: float | None


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
    rework: int = 0
    current_part: int | None
    input_buffer: BufferView | None
    telemetry: TelemetryView | None
    machines: list[MachineView] = []
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
