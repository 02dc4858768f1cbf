"""The message contract between a line and its twin, defined once.

These pydantic models are the single source of truth for every payload that
crosses MQTT. The JSON Schema files in ``docs/schemas/`` are generated from them
(``factory-twin schemas``), the ingest decodes with them, and the twin state takes
them as typed input. A real line that publishes payloads valid against the
schemas can replace the simulator without anything downstream noticing.

Every payload carries a header: the contract version, a wall-clock timestamp,
the simulation time, a sequence number and the publisher's id. Validation is
strict: a string where a number belongs is an error, not a coercion. Unknown
extra fields are ignored so that a newer minor version stays readable.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

SCHEMA_VERSION = "1.3"
SUPPORTED_MAJOR = 1
# Any 1.x is accepted: minor versions only add optional fields.
VERSION_PATTERN = r"^1\.[0-9]+$"

StationStateName = Literal[
    "running", "setup", "maintenance", "down", "starved", "blocked", "stopped", "planned_downtime"
]
# Listed from most to least productive: a station's headline state is the
# first of its machines' states in this order.
STATION_STATES: tuple[StationStateName, ...] = get_args(StationStateName)
STATE_RANK: dict[str, int] = {state: rank for rank, state in enumerate(STATION_STATES)}
# The states in which a machine is held by its own work: the plant's clock and the
# twin's both count a station's active time over these.
# A machine down that has to wait for a repair crew says so, and says when the
# crew reached it: two state_changed messages from ``down`` to ``down`` with these
# reasons, so that the wait and the repair itself can be told apart. A breakdown
# the crew takes at once sends neither.
CREW_WAITING_REASON = "waiting for repair crew"
CREW_ARRIVED_REASON = "repair crew at the machine"
ACTIVE_STATES: frozenset[str] = frozenset({"running", "setup", "maintenance", "down"})
StopCategory = Literal["production", "planned", "unplanned", "external"]
# Every stop falls in one category: planned (setup, maintenance, calendar),
# unplanned (breakdowns) or external (starved by upstream, blocked by downstream).
STATE_CATEGORY: dict[str, StopCategory] = {
    "running": "production",
    "setup": "planned",
    "maintenance": "planned",
    "planned_downtime": "planned",
    "stopped": "planned",
    "down": "unplanned",
    "starved": "external",
    "blocked": "external",
}
PartResult = Literal["good", "scrap", "rework"]
# Process values per part: a line's setpoints and wear, a handful; each name
# becomes a history field, so their number is bounded.
MAX_PROCESS_VALUES = 32

# The PackML state (ISA-TR88.00.02) that automation engineers know, for each of
# our detailed states; the detail travels beside it.
PackMLState = Literal["Execute", "Held", "Suspended", "Stopped", "Aborted"]
PACKML_STATE: dict[str, PackMLState] = {
    "running": "Execute",
    "setup": "Held",
    "maintenance": "Held",
    "starved": "Suspended",
    "blocked": "Suspended",
    "down": "Aborted",
    "stopped": "Stopped",
    "planned_downtime": "Stopped",
}


class _Payload(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)

    schema_version: Annotated[
        str,
        Field(
            pattern=VERSION_PATTERN,
            description="Contract version 'major.minor'; an unknown major is rejected.",
        ),
    ]
    ts_ms: Annotated[int, Field(ge=0, description="Wall-clock time of publishing, Unix ms.")]
    seq: Annotated[
        int,
        Field(ge=0, description="Per-topic sequence number of this publisher, from 0."),
    ]
    source: Annotated[
        str,
        Field(min_length=1, max_length=128, description="Publisher id, new at every start."),
    ]


class _SimTimed(_Payload):
    sim_time_s: Annotated[
        float, Field(ge=0, description="Simulation (plant) time of the observation, s.")
    ]


# Each sensor's measuring range: the contract's bounds, and where a simulated
# sensor saturates, as a real one does at the ends of its range.
SENSOR_RANGES: dict[str, tuple[float, float]] = {
    "temperature_c": (-273.15, 5000.0),
    "vibration_mm_s": (0.0, 1000.0),
    "spindle_rpm": (0.0, 1_000_000.0),
    "power_kw": (0.0, 1_000_000.0),
    "pressure_bar": (0.0, 10_000.0),
}


# Each sensor's engineering unit (the field's name carries it too).
SENSOR_UNITS: dict[str, str] = {
    "temperature_c": "°C",
    "vibration_mm_s": "mm/s",
    "spindle_rpm": "rpm",
    "power_kw": "kW",
    "pressure_bar": "bar",
}


def _in_range(sensor: str, **kwargs: Any) -> Any:
    low, high = SENSOR_RANGES[sensor]
    return Field(ge=low, le=high, **kwargs)


class Telemetry(_SimTimed):
    """One sample of the station's sensors that were due at ``sim_time_s``.

    Each sensor has its own sampling period, so a sample carries the sensors
    due at that moment (at least one); a sensor in dropout sends nothing.
    """

    temperature_c: Annotated[float | None, _in_range("temperature_c")] = None
    vibration_mm_s: Annotated[
        float | None, _in_range("vibration_mm_s", description="RMS velocity")
    ] = None
    spindle_rpm: Annotated[float | None, _in_range("spindle_rpm")] = None
    power_kw: Annotated[float | None, _in_range("power_kw")] = None
    pressure_bar: Annotated[float | None, _in_range("pressure_bar")] = None

    @model_validator(mode="after")
    def _some_value(self) -> Telemetry:
        if (
            self.temperature_c is None
            and self.vibration_mm_s is None
            and self.spindle_rpm is None
            and self.power_kw is None
            and self.pressure_bar is None
        ):
            raise ValueError("a telemetry sample needs at least one sensor value")
        return self


SENSOR_FIELDS = ("temperature_c", "vibration_mm_s", "spindle_rpm", "power_kw", "pressure_bar")


_Machine = Annotated[int, Field(ge=0, description="Machine of the station, from 0.")]
_Product = Annotated[str | None, Field(max_length=64, description="Product (variant) id.")]


class PartStarted(_SimTimed):
    """A machine took a part from its input buffer to work on it (setup, if any,
    then processing)."""

    event: Literal["part_started"]
    part_id: Annotated[int, Field(ge=0)]
    machine: _Machine = 0
    product: _Product = None
    input_buffer_level: Annotated[
        int | None,
        Field(ge=0, description="Parts left in the input buffer; null at the first station."),
    ]


class PartFinished(_SimTimed):
    """A part left a station: good (handed on, or out of the line), scrapped, or
    sent back upstream for rework."""

    event: Literal["part_finished"]
    part_id: Annotated[int, Field(ge=0)]
    machine: _Machine = 0
    product: _Product = None
    result: PartResult
    processing_time_s: Annotated[float, Field(ge=0)]
    exits_line: Annotated[
        bool, Field(description="True when a good part leaves the line as finished product.")
    ]
    output_buffer_level: Annotated[
        int | None,
        Field(ge=0, description="Parts in the next buffer after hand-over; null if none."),
    ]
    process: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")], float] | None = Field(
        default=None,
        max_length=MAX_PROCESS_VALUES,
        description="Process values this part saw: setpoints and the tool wear, by name "
        f"(lower case, digits and _; at most {MAX_PROCESS_VALUES}).",
    )


class StateChanged(_SimTimed):
    """A station changed state; ``reason`` says why."""

    event: Literal["state_changed"]
    machine: _Machine = 0
    from_state: StationStateName | None
    to_state: StationStateName
    reason: Annotated[str, Field(max_length=200)]
    category: StopCategory | None = Field(
        default=None, description="Category of the new state: production or a kind of stop."
    )
    packml: PackMLState | None = Field(default=None, description="PackML state of to_state.")


Event = Annotated[PartStarted | PartFinished | StateChanged, Field(discriminator="event")]
EVENT_ADAPTER: TypeAdapter[PartStarted | PartFinished | StateChanged] = TypeAdapter(Event)


class StationState(_SimTimed):
    """Retained snapshot of a station's headline state: that of its most
    productive machine (running, setup, maintenance, down, starved, blocked,
    planned downtime, in that order)."""

    state: StationStateName
    reason: Annotated[str, Field(max_length=200)]
    since_sim_time_s: Annotated[float, Field(ge=0)]
    packml: PackMLState | None = Field(default=None, description="PackML state of state.")


class StationDescription(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)

    id: str
    name: str
    position: Annotated[int, Field(ge=0)]
    ideal_cycle_time_s: Annotated[float, Field(gt=0)]
    input_buffer_capacity: Annotated[int | None, Field(ge=1, description="Null: unlimited.")]
    machines: Annotated[int, Field(ge=1)] = 1
    ideal_cycle_time_by_product_s: dict[str, Annotated[float, Field(gt=0)]] | None = Field(
        default=None, description="PRU per product where the products differ."
    )


_Hours = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class PlannedStopDescription(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)

    start_h: Annotated[_Hours, Field(description="Hour of the period at which it starts.")]
    duration_h: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    reason: Annotated[
        str, Field(min_length=1, max_length=80, description="What it is: break, no night shift.")
    ]


class CalendarDescription(BaseModel):
    """The line's shift calendar: planned stops repeating every ``period_h``, and
    where simulation time 0 falls in the period and in the day (contract 1.1)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)

    period_h: Annotated[float, Field(gt=0, le=10_000, allow_inf_nan=False)]
    start_at_h: Annotated[
        _Hours, Field(description="Hour of the period at simulation time 0 (sim_time_s 0).")
    ]
    clock_at_start_h: Annotated[
        float,
        Field(ge=0, lt=24, allow_inf_nan=False, description="Time of day at simulation time 0."),
    ]
    planned_downtime: list[PlannedStopDescription] = Field(default=[], max_length=1000)

    @model_validator(mode="after")
    def _inside_period(self) -> CalendarDescription:
        if self.start_at_h >= self.period_h:
            raise ValueError("start_at_h must be below period_h")
        for index, stop in enumerate(self.planned_downtime):
            if stop.start_h >= self.period_h:
                raise ValueError(f"planned_downtime[{index}].start_h must be below period_h")
            if stop.duration_h >= self.period_h:
                raise ValueError(f"planned_downtime[{index}] lasts a whole period")
        return self


class LineDescription(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)

    name: str
    stations: list[StationDescription]
    calendar: CalendarDescription | None = Field(
        default=None, description="The shift calendar (1.1); null: the line runs without one."
    )
    telemetry_period_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        default=None,
        description="The shortest sampling period of the line's sensors, in line time (1.1): "
        "some telemetry comes at least this often while the line runs.",
    )


class LineStatus(_Payload):
    """Retained line status: the birth message, or the last will that marks it offline.

    The line publishes it again, retained, whenever it is paused, resumed or its
    speed changes, so that a late subscriber learns that too; and, while it runs, as
    a heartbeat (not retained, QoS 0, without the description) that says how many
    messages it has published on each station topic (1.2): the twin's watermark."""

    status: Literal["online", "offline"]
    sim_time_s: Annotated[
        float | None,
        Field(ge=0, description="Null in the last will, which is composed at connect time."),
    ]
    description: LineDescription | None = None
    paused: bool | None = Field(
        default=None,
        description="True while the line is paused on command (1.1); null: not said.",
    )
    speed_factor: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        default=None,
        description="Line seconds per wall-clock second (1.1): a simulated line's speed, "
        "the one in force (1.2: below speed_asked while the line paces itself on a pipeline "
        "that carries no more); null: real time.",
    )
    speed_asked: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        default=None,
        description="The speed asked for (1.2): at start or by set_speed; null: not said "
        "(the same as speed_factor).",
    )
    published_events: dict[str, Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        max_length=100_000,
        description="Heartbeat (1.2): by station id, the messages this source had published "
        "on the station's event topic (its next seq) when the line's clock read sim_time_s; "
        "every event up to sim_time_s is among them. Null: not said.",
    )
    published_telemetry: dict[str, Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        max_length=100_000,
        description="Heartbeat (1.2): the same for each station's telemetry topic.",
    )


_CommandId = Annotated[
    str,
    Field(min_length=1, max_length=64, description="Unique per command; reused ids are refused."),
]


class _Command(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

    schema_version: Annotated[str, Field(pattern=VERSION_PATTERN)]
    ts_ms: Annotated[int, Field(ge=0)]
    source: Annotated[str, Field(min_length=1, max_length=128)]
    command_id: _CommandId


class SetSetpoint(_Command):
    """Station: change a setpoint (``speed``, ``temperature_c``) within its range."""

    action: Literal["set_setpoint"]
    setpoint: Annotated[str, Field(min_length=1, max_length=64)]
    value: float


class StationStop(_Command):
    """Station: finish the part in hand, then stop."""

    action: Literal["stop"]


class StationStart(_Command):
    """Station: start again after a stop."""

    action: Literal["start"]


class Maintenance(_Command):
    """Station: do maintenance before the next part (resets tool wear)."""

    action: Literal["maintenance"]


class Pause(_Command):
    """Line: freeze the live simulation."""

    action: Literal["pause"]


class Resume(_Command):
    """Line: continue the live simulation."""

    action: Literal["resume"]


class SetSpeed(_Command):
    """Line: change the live simulation's speed factor."""

    action: Literal["set_speed"]
    factor: Annotated[float, Field(ge=0.1, le=1000)]


STATION_ACTIONS = frozenset({"set_setpoint", "stop", "start", "maintenance"})
LINE_ACTIONS = frozenset({"pause", "resume", "set_speed"})
AnyCommand = SetSetpoint | StationStop | StationStart | Maintenance | Pause | Resume | SetSpeed
Command = Annotated[AnyCommand, Field(discriminator="action")]
COMMAND_ADAPTER: TypeAdapter[AnyCommand] = TypeAdapter(Command)


class CommandAck(_SimTimed):
    """The plant's answer to a command: accepted and applied, or rejected and why."""

    command_id: str | None = Field(description="Null when the command had no readable id.")
    action: str | None
    accepted: bool
    reason: Annotated[str, Field(max_length=500)]
    speed_asked: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        default=None,
        description="Line commands (1.2): the speed asked for after the command.",
    )
    speed_factor: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        default=None,
        description="Line commands (1.2): the speed in force after the command; below "
        "speed_asked while the line paces itself on a pipeline that carries no more.",
    )


AlarmState = Literal[
    "unacknowledged", "acknowledged", "returned_unacknowledged", "shelved", "out_of_service"
]
EvidenceValue = float | int | str | bool | None


class AlarmMessage(_Payload):
    """One alarm of the line that is not normal (1.3), as the twin keeps it
    (ISA-18.2, docs/alarms.md): retained on ``alarms/{kind}/{station}/{what}``
    (``-`` where it names none), and removed (an empty retained message) once the
    alarm is normal again. Published by the twin, never by the plant."""

    alarm_id: Annotated[str, Field(min_length=5, max_length=200, description="kind:station:what")]
    kind: Annotated[str, Field(min_length=1, max_length=64)]
    station: Annotated[str, Field(max_length=64)] | None = Field(
        description="Null for the line or the twin itself."
    )
    what: Annotated[str, Field(max_length=64)] | None = Field(
        description="The sensor, parameter or count the alarm is of; null when none."
    )
    priority: Literal["critical", "high", "medium", "low"]
    state: AlarmState
    state_code: Literal["UNACK", "ACKED", "RTNUN", "SHLVD", "OOS"]
    active: bool = Field(description="Whether the condition holds now.")
    acknowledged: bool
    occurrence: Annotated[int, Field(ge=0)]
    raised_at_s: float | None = Field(description="Line time (s) this occurrence was raised.")
    changed_at_s: float = Field(description="Line time (s) of the change this message says.")
    shelved_until_s: float | None = None
    message: Annotated[str, Field(max_length=2000)]
    evidence: dict[str, EvidenceValue] | None = None


# The payload type of each channel (the last topic levels).
PAYLOAD_TYPES: dict[str, Any] = {
    "telemetry": Telemetry,
    "event": EVENT_ADAPTER,
    "state": StationState,
    "status": LineStatus,
    "cmd": COMMAND_ADAPTER,
    "cmd/ack": CommandAck,
    "alarms": AlarmMessage,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of each payload type, keyed by its file stem
    (the channel, with ``/`` as ``_``: ``cmd_ack``)."""
    schemas: dict[str, dict[str, Any]] = {}
    for topic_channel, kind in PAYLOAD_TYPES.items():
        channel = topic_channel.replace("/", "_")
        schema = kind.json_schema() if isinstance(kind, TypeAdapter) else kind.model_json_schema()
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"urn:factory-twin:schema:v{SUPPORTED_MAJOR}:{channel}",
            **schema,
        }
        if channel == "event":
            schema.setdefault("title", "Event")
        schemas[channel] = schema
    return schemas
