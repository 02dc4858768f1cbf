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

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION = "1.0"
SUPPORTED_MAJOR = 1
# Any 1.x is accepted: minor versions only add optional fields.
VERSION_PATTERN = r"^1\.[0-9]+$"

StationStateName = Literal[
    "running", "setup", "maintenance", "down", "starved", "blocked", "planned_downtime"
]
STATION_STATES: tuple[StationStateName, ...] = get_args(StationStateName)
StopCategory = Literal["production", "planned", "unplanned", "external"]
# Every stop falls in one category: planned (setup, maintenance, calendar),
# unplanned (breakdowns) or external (starved by upstream, blocked by downstream).
STATE_CATEGORY: dict[str, StopCategory] = {
    "running": "production",
    "setup": "planned",
    "maintenance": "planned",
    "planned_downtime": "planned",
    "down": "unplanned",
    "starved": "external",
    "blocked": "external",
}
PartResult = Literal["good", "scrap", "rework"]


class _Payload(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

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


class Telemetry(_SimTimed):
    """One periodic sample of a station's sensors."""

    temperature_c: Annotated[float, Field(ge=-273.15, le=5000)]
    vibration_mm_s: Annotated[float, Field(ge=0, le=1000)]


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


Event = Annotated[PartStarted | PartFinished | StateChanged, Field(discriminator="event")]
EVENT_ADAPTER: TypeAdapter[PartStarted | PartFinished | StateChanged] = TypeAdapter(Event)


class StationState(_SimTimed):
    """Retained snapshot of a station's headline state: that of its most
    productive machine (running, setup, maintenance, down, starved, blocked,
    planned downtime, in that order)."""

    state: StationStateName
    reason: Annotated[str, Field(max_length=200)]
    since_sim_time_s: Annotated[float, Field(ge=0)]


class StationDescription(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    id: str
    name: str
    position: Annotated[int, Field(ge=0)]
    ideal_cycle_time_s: Annotated[float, Field(gt=0)]
    input_buffer_capacity: Annotated[int | None, Field(ge=1, description="Null: unlimited.")]
    machines: Annotated[int, Field(ge=1)] = 1
    ideal_cycle_time_by_product_s: dict[str, Annotated[float, Field(gt=0)]] | None = Field(
        default=None, description="PRU per product where the products differ."
    )


class LineDescription(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    name: str
    stations: list[StationDescription]


class LineStatus(_Payload):
    """Retained line status: the birth message, or the last will that marks it offline."""

    status: Literal["online", "offline"]
    sim_time_s: Annotated[
        float | None,
        Field(ge=0, description="Null in the last will, which is composed at connect time."),
    ]
    description: LineDescription | None = None


PAYLOAD_TYPES: dict[str, Any] = {
    "telemetry": Telemetry,
    "event": EVENT_ADAPTER,
    "state": StationState,
    "status": LineStatus,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of each payload type, keyed by channel name."""
    schemas: dict[str, dict[str, Any]] = {}
    for channel, kind in PAYLOAD_TYPES.items():
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
