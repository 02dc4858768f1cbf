"""The metric map: the JSON contract's messages as Sparkplug B metrics, and back.

Each contract message the plant publishes becomes one Sparkplug DATA payload
whose metrics are the message's fields under a group prefix: ``Telemetry/…`` for
a telemetry sample, ``Event/…`` for a part started, a part finished or a state
change, ``State/…`` for the station's headline state (DDATA of the station's
device), and ``Line/…`` for the line status and heartbeat (NDATA of the node).
The contract's header travels too: each group has its own ``seq`` (the JSON
topic's sequence number) and ``sim_time_s``; ``ts_ms`` is the payload's and
the metrics' timestamp; ``source`` and ``schema_version`` are node metrics. So a
consumer rebuilds exactly the message the JSON tree carried, which is what lets
the twin fed over Sparkplug B be the twin fed over JSON (``rebuild_station``,
``rebuild_status``).

Which fields a message has decides which metrics it sends: a telemetry sample
only the sensors that were due, an event the fields of its kind (a null one as
a null metric), a heartbeat no description. docs/sparkplug.md has the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from sensors.sparkplug.codec import BD_SEQ, REBIRTH, DataType, SparkplugError, Value
from twin.contract import SENSOR_FIELDS, SENSOR_UNITS

SETPOINT_UNITS: dict[str, str] = {"temperature_c": "°C"}

TELEMETRY, EVENT, STATE, LINE = "Telemetry/", "Event/", "State/", "Line/"
SETPOINT, CONTROL = "Setpoint/", "Control/"
PROCESS = "Event/process/"
LAST_ACK = "Command/LastAck"
PUBLISHED_EVENTS, PUBLISHED_TELEMETRY = "Line/published_events/", "Line/published_telemetry/"
# Station commands a host writes (a Boolean true) and the action each one asks for.
STATION_CONTROLS = {
    "Control/Stop": "stop",
    "Control/Start": "start",
    "Control/Maintenance": "maintenance",
}
LINE_CONTROLS = {"Control/Pause": "pause", "Control/Resume": "resume"}
SPEED_CONTROL = "Control/Speed"


@dataclass(frozen=True, slots=True)
class MetricDef:
    name: str
    datatype: DataType
    unit: str | None = None


_HEADER = (("seq", DataType.UINT64, None), ("sim_time_s", DataType.DOUBLE, "s"))
# Every field an event of any kind may carry, and the fields of each kind.
_EVENT_FIELDS: tuple[tuple[str, DataType, str | None], ...] = (
    ("kind", DataType.STRING, None),
    *_HEADER,
    ("part_id", DataType.UINT64, None),
    ("machine", DataType.UINT32, None),
    ("product", DataType.STRING, None),
    ("input_buffer_level", DataType.UINT32, None),
    ("result", DataType.STRING, None),
    ("processing_time_s", DataType.DOUBLE, "s"),
    ("exits_line", DataType.BOOLEAN, None),
    ("output_buffer_level", DataType.UINT32, None),
    ("from_state", DataType.STRING, None),
    ("to_state", DataType.STRING, None),
    ("reason", DataType.STRING, None),
    ("category", DataType.STRING, None),
    ("packml", DataType.STRING, None),
)
EVENT_KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "part_started": ("part_id", "machine", "product", "input_buffer_level"),
    "part_finished": (
        "part_id",
        "machine",
        "product",
        "result",
        "processing_time_s",
        "exits_line",
        "output_buffer_level",
    ),
    "state_changed": ("machine", "from_state", "to_state", "reason", "category", "packml"),
}
_STATE_FIELDS: tuple[tuple[str, DataType, str | None], ...] = (
    *_HEADER,
    ("state", DataType.STRING, None),
    ("packml", DataType.STRING, None),
    ("reason", DataType.STRING, None),
    ("since_sim_time_s", DataType.DOUBLE, "s"),
)
_LINE_FIELDS: tuple[tuple[str, DataType, str | None], ...] = (
    ("status", DataType.STRING, None),
    ("seq", DataType.UINT64, None),
    ("sim_time_s", DataType.DOUBLE, "s"),
    ("paused", DataType.BOOLEAN, None),
    ("speed_factor", DataType.DOUBLE, None),
    ("speed_asked", DataType.DOUBLE, None),
    # The line's description (stations, calendar) as the contract's JSON object.
    ("description", DataType.STRING, None),
)
# Node metrics that say who the line is; in the NBIRTH, never in an NDATA.
SOURCE, SCHEMA_VERSION = "Line/source", "Line/schema_version"


def station_metric_defs(
    sensors: Iterable[str], process_names: Iterable[str], setpoints: Iterable[str]
) -> list[MetricDef]:
    """Every metric of a station's device, in DBIRTH order: telemetry of the
    sensors it has, events (with these process values), state, setpoints, controls."""
    fitted = set(sensors)
    defs = [MetricDef(TELEMETRY + name, datatype, unit) for name, datatype, unit in _HEADER]
    defs += [
        MetricDef(TELEMETRY + name, DataType.DOUBLE, SENSOR_UNITS[name])
        for name in SENSOR_FIELDS
        if name in fitted
    ]
    defs += [MetricDef(EVENT + name, datatype, unit) for name, datatype, unit in _EVENT_FIELDS]
    defs += [MetricDef(PROCESS + name, DataType.DOUBLE) for name in process_names]
    defs += [MetricDef(STATE + name, datatype, unit) for name, datatype, unit in _STATE_FIELDS]
    defs += [
        MetricDef(SETPOINT + name, DataType.DOUBLE, SETPOINT_UNITS.get(name)) for name in setpoints
    ]
    defs += [MetricDef(name, DataType.BOOLEAN) for name in STATION_CONTROLS]
    defs.append(MetricDef(LAST_ACK, DataType.STRING))
    return defs


def node_metric_defs(stations: Iterable[str]) -> list[MetricDef]:
    """Every metric of the edge node (the line), in NBIRTH order."""
    stations = list(stations)
    defs = [
        MetricDef(BD_SEQ, DataType.INT64),
        MetricDef(REBIRTH, DataType.BOOLEAN),
        MetricDef(SOURCE, DataType.STRING),
        MetricDef(SCHEMA_VERSION, DataType.STRING),
    ]
    defs += [MetricDef(LINE + name, datatype, unit) for name, datatype, unit in _LINE_FIELDS]
    defs += [MetricDef(PUBLISHED_EVENTS + station, DataType.UINT64) for station in stations]
    defs += [MetricDef(PUBLISHED_TELEMETRY + station, DataType.UINT64) for station in stations]
    defs += [MetricDef(name, DataType.BOOLEAN) for name in LINE_CONTROLS]
    defs.append(MetricDef(SPEED_CONTROL, DataType.DOUBLE, "x"))
    defs.append(MetricDef(LAST_ACK, DataType.STRING))
    return defs


# -- contract message -> metrics ----------------------------------------------------------
# (metric, field) of each kind of station message: a telemetry sample's header, then its
# readings; an event's kind, header and the fields of its kind; a state's fields.
TELEMETRY_FIELDS = [(TELEMETRY + name, name) for name in ("seq", "sim_time_s", *SENSOR_FIELDS)]
_EVENT_HEADER = [
    (EVENT + "kind", "event"),
    (EVENT + "seq", "seq"),
    (EVENT + "sim_time_s", "sim_time_s"),
]
_EVENT_FIELDS_OF = {
    kind: [*_EVENT_HEADER, *((EVENT + name, name) for name in fields)]
    for kind, fields in EVENT_KIND_FIELDS.items()
}
_STATE_NAMES = [(STATE + name, name) for name, _, _ in _STATE_FIELDS]


def message_fields(channel: str, message: Mapping[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """Which metrics one station message of ``channel`` (telemetry, event, state)
    sends: a key for its shape, and (metric, field) of each. A telemetry sample
    sends the readings that were due (a null one is left out); an event or a state
    every field of its kind, a null one as a null metric. An event's process values
    come beside them (``PROCESS``)."""
    for required in ("seq", "sim_time_s") if channel != "state" else ():
        if required not in message:
            raise KeyError(f"a {channel} message has a {required}")
    if channel == "telemetry":
        return channel, TELEMETRY_FIELDS
    if channel == "event":
        kind = message["event"]
        return kind, _EVENT_FIELDS_OF[kind]
    if channel == "state":
        return channel, _STATE_NAMES
    raise ValueError(f"no station metrics for channel {channel!r}")


def message_metrics(channel: str, message: Mapping[str, Any]) -> list[tuple[str, Value]]:
    """The metrics (name, value) of one station message of ``channel``, as the
    plant's publisher made it (``message_fields``)."""
    _, fields = message_fields(channel, message)
    get = message.get
    if channel == "telemetry":
        return [(metric, value) for metric, name in fields if (value := get(name)) is not None]
    values = [(metric, get(name)) for metric, name in fields]
    process = message.get("process") if channel == "event" else None
    if process:
        values += [(PROCESS + name, value) for name, value in process.items()]
    return values


def status_metrics(message: Mapping[str, Any]) -> list[tuple[str, Value]]:
    """The NDATA metrics of one line status: the heartbeat has no description, and a
    status that does not count (a batch plant) sends no counts."""
    values: list[tuple[str, Value]] = []
    for name, _, _ in _LINE_FIELDS:
        value = message.get(name)
        if name == "description":
            if value is None:
                continue
            value = orjson.dumps(value).decode()
        values.append((LINE + name, value))
    for prefix, field in (
        (PUBLISHED_EVENTS, "published_events"),
        (PUBLISHED_TELEMETRY, "published_telemetry"),
    ):
        counts = message.get(field)
        if counts is not None:
            values += [(prefix + station, count) for station, count in counts.items()]
    return values


# -- metrics -> contract message ----------------------------------------------------------
Metrics = Mapping[str, Value]


def _header(
    values: Metrics, stamps: Mapping[str, int], prefix: str, source: str, version: str, now: int
) -> dict[str, Any]:
    for name in ("seq", "sim_time_s"):
        if prefix + name not in values:
            raise SparkplugError("missing_field", f"{prefix}{name} is missing")
    return {
        "schema_version": version,
        "ts_ms": stamps.get(prefix + "seq", now),
        "seq": values[prefix + "seq"],
        "source": source,
        "sim_time_s": values[prefix + "sim_time_s"],
    }


def rebuild_station(
    values: Metrics,
    stamps: Mapping[str, int],
    *,
    source: str,
    schema_version: str,
    timestamp: int,
    groups: Sequence[str] = ("event", "state", "telemetry"),
) -> list[tuple[str, dict[str, Any]]]:
    """The contract messages (channel, message) the metrics of one device payload
    carry, in the order the plant published them: an event before the state it
    changed. ``stamps`` are the metrics' timestamps (a message's ``ts_ms`` is its
    ``seq`` metric's), ``timestamp`` the payload's."""
    messages: list[tuple[str, dict[str, Any]]] = []
    if "event" in groups and EVENT + "kind" in values:
        kind = values[EVENT + "kind"]
        fields = EVENT_KIND_FIELDS.get(kind) if isinstance(kind, str) else None
        if fields is None:
            raise SparkplugError("wrong_type", f"Event/kind {kind!r} is not an event kind")
        event = _header(values, stamps, EVENT, source, schema_version, timestamp)
        event["event"] = kind
        for name in fields:
            if EVENT + name not in values:
                raise SparkplugError("missing_field", f"Event/{name} is missing ({kind})")
            event[name] = values[EVENT + name]
        if kind == "part_finished":
            process = {
                name[len(PROCESS) :]: value
                for name, value in values.items()
                if name.startswith(PROCESS) and value is not None
            }
            event["process"] = process or None
        messages.append(("event", event))
    if "state" in groups and values.get(STATE + "seq") is not None:
        state = _header(values, stamps, STATE, source, schema_version, timestamp)
        for name in ("state", "packml", "reason", "since_sim_time_s"):
            if STATE + name not in values:
                raise SparkplugError("missing_field", f"State/{name} is missing")
            state[name] = values[STATE + name]
        messages.append(("state", state))
    if "telemetry" in groups and TELEMETRY + "seq" in values:
        sample = _header(values, stamps, TELEMETRY, source, schema_version, timestamp)
        for name in SENSOR_FIELDS:
            if values.get(TELEMETRY + name) is not None:
                sample[name] = values[TELEMETRY + name]
        messages.append(("telemetry", sample))
    return messages


def rebuild_status(
    values: Metrics, stamps: Mapping[str, int], *, source: str, schema_version: str, timestamp: int
) -> dict[str, Any] | None:
    """The line status the node's metrics carry, or None if they carry none (a
    command's answer; an NBIRTH before the line's first status)."""
    if values.get(LINE + "status") is None:
        return None
    if LINE + "seq" not in values:
        raise SparkplugError("missing_field", "Line/seq is missing")
    status: dict[str, Any] = {
        "schema_version": schema_version,
        "ts_ms": stamps.get(LINE + "seq", timestamp),
        "source": source,
    }
    for name, _, _ in _LINE_FIELDS:
        status[name] = values.get(LINE + name)
    description = status["description"]
    if description is not None:
        try:
            status["description"] = orjson.loads(str(description))
        except orjson.JSONDecodeError:
            raise SparkplugError("wrong_type", "Line/description is not JSON") from None
    for prefix, field in (
        (PUBLISHED_EVENTS, "published_events"),
        (PUBLISHED_TELEMETRY, "published_telemetry"),
    ):
        counts = {
            name[len(prefix) :]: count
            for name, count in values.items()
            if name.startswith(prefix) and count is not None
        }
        status[field] = counts or None
    return status
