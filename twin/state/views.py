"""Read-only views of a line: what the API serves and the simulator reports.

The same models describe the twin (built from MQTT messages) and a simulation
(built from the plant's own tallies), so the two can be compared field by field.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from twin.contract import CalendarDescription, StationStateName

LineStatusName = Literal["online", "offline", "unknown"]
LossCategory = Literal["planned", "unplanned", "external", "speed", "quality"]
# The stop states that are losses, with their category and the reason shown.
STOP_LOSSES: tuple[tuple[LossCategory, StationStateName, str], ...] = (
    ("planned", "setup", "setup"),
    ("planned", "maintenance", "maintenance"),
    ("planned", "stopped", "operator stop"),
    ("unplanned", "down", "breakdown"),
    ("external", "starved", "starved"),
    ("external", "blocked", "blocked"),
)


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
    throughput_per_h: float | None = Field(
        description="Good parts per calendar hour of the observed span (planned downtime, "
        "nights and breaks included)."
    )
    throughput_per_planned_h: float | None = Field(
        default=None,
        description="Good parts per hour of planned production time: the observed span "
        "minus planned downtime, at the capacity constraint (its planned busy time per "
        "machine).",
    )
    yield_ratio: float | None = Field(description="Good / produced.")
    first_pass_yield: float | None = Field(
        default=None, description="Shipped without rework / produced."
    )
    scrap_ratio: float | None = Field(default=None, description="Scrap / produced.")
    nee: float | None = Field(default=None, description="Net equipment effectiveness")
    mean_wip: float | None = Field(default=None, description="Time-average WIP (L).")
    cycle_time_s: float | None = Field(
        default=None,
        description="Lead time. A simulation: the mean over shipped parts, release to "
        "ship. The live twin: W = L / lambda (Little's law), lambda the parts leaving "
        "(shipped or scrapped) per second; null until one has left.",
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
    as_of_s: float | None = Field(
        default=None,
        description="The live twin: the line time these figures are as of, its watermark "
        "(every channel has arrived up to it; docs/mqtt.md); null in a simulation.",
    )
    lag_s: float | None = Field(
        default=None,
        description="The live twin: line seconds between the newest line time it knows "
        "and as_of_s; null: not known (the line sends no heartbeat) or a simulation.",
    )
    lag_messages: int | None = Field(
        default=None,
        description="The live twin: messages the line says it published that have not "
        "arrived yet; null: not known.",
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
    margin_per_hour: float | None = Field(
        description="(Revenue - total cost) per calendar hour of the observed span."
    )


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
    process: dict[str, float] = Field(
        default_factory=dict,
        description="The process values (speed, temperature_c, wear) the latest part "
        "finished here was made with, as its part_finished event reported them.",
    )
    input_buffer: BufferView | None
    telemetry: TelemetryView | None
    machines: list[MachineView] = []
    planned_stop: str | None = Field(
        default=None,
        description="In planned downtime: the planned stop it is (break, no night shift), "
        "from the line's calendar, else the state's reason; null in any other state.",
    )
    kpis: StationKpis
    defect_risk: float | None = Field(
        default=None,
        description="Live scoring: the mean predicted probability that a part first fails "
        "here, over the parts in the rolling window. Null without a station model "
        "(a binary defect model gives the line's risk only: models.defect_risk).",
    )


class ModelInUse(_View):
    name: str
    version: int
    kind: str | None = Field(
        default=None, description="binary (defect or not) or station (where it first fails)."
    )


class LiveScoringView(_View):
    """Live scoring of the parts leaving the line, measured against their inspection."""

    status: Literal["off", "training", "on"] = Field(
        default="off",
        description="on: scoring with the registry's active models; training: no model yet, "
        "the twin is training its first ones; off: no active model, or scoring is disabled.",
    )
    reason: str | None = Field(
        default=None,
        description="Why scoring is off (or, when on, why there is no defect risk), "
        "or what is being trained.",
    )
    defect_model: ModelInUse | None = None
    threshold: float | None = Field(
        default=None, description="A part is predicted defective at a risk at or above this."
    )
    window_size: int | None = Field(
        default=None, description="Rolling window: the last this many scored parts."
    )
    parts_in_window: int = 0
    parts_scored: int = Field(default=0, description="Parts scored since scoring started.")
    parts_unscored: int = Field(
        default=0, description="Parts that left while the model failed: never scored."
    )
    defect_risk: float | None = Field(
        default=None, description="Mean predicted defect probability over the window."
    )
    defect_rate: float | None = Field(
        default=None, description="Share of the window's parts inspection found defective."
    )
    precision: float | None = Field(
        default=None,
        description="Of the window's parts predicted defective, the share that "
        "were; null when none was predicted defective.",
    )
    recall: float | None = Field(
        default=None,
        description="Of the window's defective parts, the share predicted; "
        "null when none was defective.",
    )
    f1: float | None = None
    last_step_ms: int | None = Field(
        default=None, description="History time (Unix ms) of the last micro-batch."
    )
    last_part_left_ms: int | None = Field(
        default=None, description="When the newest scored part left the line (Unix ms)."
    )
    errors: int = Field(default=0, description="Micro-batches or stages that failed.")
    last_error: str | None = None


class ClockView(_View):
    """The line's time as a plant reads it (``twin.state.clock``): time of day, shift and
    the planned stop in force, from the calendar in the line's birth message."""

    calendar: bool = Field(
        description="True: from the line's calendar; false: the line announced none, "
        "so only the elapsed time is known."
    )
    elapsed_s: float | None = Field(description="Line time since it started (its sim_time_s).")
    day: int | None = Field(default=None, description="Day of operation, from 1.")
    time_of_day: str | None = Field(default=None, description="HH:MM, 24-hour clock.")
    time_of_day_s: float | None = Field(default=None, description="Seconds after midnight.")
    period_hour_h: float | None = Field(
        default=None, description="Hour of the calendar's period (what its start_h count)."
    )
    shift: str | None = Field(
        default=None,
        description="The shift by its span in clock time (06:00–22:00), or 'around the "
        "clock'; null outside shifts (a planned stop of 1 h or more) or without a calendar.",
    )
    planned_stop: str | None = Field(
        default=None, description="The planned stop in force (break, no night shift); null: none."
    )
    planned_stop_until_s: float | None = Field(
        default=None, description="Line time at which it ends."
    )
    planned_stop_until: str | None = Field(default=None, description="HH:MM at which it ends.")
    next_planned_stop: str | None = None
    next_planned_stop_at_s: float | None = Field(
        default=None, description="Line time at which the next planned stop starts."
    )
    note: str = Field(description="Where the time comes from.")


class LineSummary(_View):
    """The line without its stations (the live stream's ``line`` event)."""

    site: str
    area: str
    line: str
    name: str
    status: LineStatusName
    paused: bool | None = Field(
        default=None,
        description="True while the line is paused on command, as its retained status "
        "says; null: the line does not say.",
    )
    speed_factor: float | None = Field(
        default=None,
        description="Line seconds per wall-clock second, as the line announced it; null: "
        "real time.",
    )
    speed_asked: float | None = Field(
        default=None,
        description="The speed asked for, as the line announced it; speed_factor is the one "
        "in force (lower while the line paces itself on its pipeline); null: not said.",
    )
    sim_time_s: float | None = Field(
        description="The line time every figure is as of: the twin's watermark (docs/mqtt.md)."
    )
    newest_sim_time_s: float | None = Field(
        default=None, description="The newest line time the twin knows of (the line's clock)."
    )
    lag_s: float | None = Field(
        default=None,
        description="Line seconds the figures trail the line: newest_sim_time_s - "
        "sim_time_s; null: not known (the line sends no heartbeat).",
    )
    lag_messages: int | None = Field(
        default=None,
        description="Messages the line says it published that have not arrived yet; null: "
        "not known.",
    )
    held_messages: int = Field(
        default=0,
        description="Events received beyond sim_time_s, held back until every channel "
        "has caught up with them.",
    )
    clock: ClockView | None = Field(
        default=None, description="Time of day, shift and planned stop at sim_time_s."
    )
    calendar: CalendarDescription | None = Field(
        default=None, description="The shift calendar the line announced; null: none."
    )
    kpis: LineKpis
    models: LiveScoringView = Field(
        default_factory=LiveScoringView, description="Live defect scoring."
    )


class LineView(LineSummary):
    stations: list[StationView]
