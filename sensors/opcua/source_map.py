"""The map of a line that speaks OPC UA: which node of its server is what, per station.

A twin of such a line (``up --twin-only --opcua-source … --opcua-map map.yaml``)
reads this file to know where each station's state, counters, sensors and
setpoints live. docs/opcua.md describes it field by field; a bad map is refused
at start with the field and the problem named (``ConfigError``), never half-used.

Node ids are OPC UA's string form (``ns=3;s=Line1.Weld.State``, ``i=2258``), or
its expanded form with the namespace's URI (``nsu=urn:acme:line;s=Weld.State``).
``{ns}`` in one stands for the index of ``namespace_uri`` on the server, which a
server may number differently at every start. Each node has one role: a node named
twice is refused, naming both places.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from twin.config.line import ConfigError, Identifier, describe_problems, read_yaml
from twin.contract import SENSOR_RANGES, STATION_STATES

NodeText = Annotated[
    str, Field(min_length=3, max_length=4096, pattern=r"^(ns=[^;]+;|nsu=[^;]+;)?[isgb]=.+$")
]
StateName = Literal[
    "running", "setup", "maintenance", "down", "starved", "blocked", "stopped", "planned_downtime"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Counters(_Strict):
    """Monotonic part counters of a station; each is optional."""

    started: NodeText | None = None
    good: NodeText | None = None
    scrap: NodeText | None = None
    rework: NodeText | None = None


class StationMap(_Strict):
    state: NodeText | None = Field(
        default=None, description="The station's state: a name, or a number in state_values."
    )
    state_values: dict[str, StateName] = Field(
        default={},
        description="A PLC's state numbers (or words) and the state each means; empty: the "
        "node holds our state names.",
    )
    state_reason: NodeText | None = None
    counters: Counters = Counters()
    processing_time_s: NodeText | None = Field(
        default=None, description="The last part's processing time, s, where the PLC keeps it."
    )
    sensors: dict[str, NodeText] = {}
    setpoints: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")], NodeText] = {}
    exits_line: bool | None = Field(
        default=None,
        description="Good parts here leave the line; default: the last station of the map.",
    )
    # What a line file would say, for the KPIs of a twin without one.
    name: str = ""
    ideal_cycle_time_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    machines: Annotated[int, Field(ge=1, le=1000)] = 1
    input_buffer_capacity: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _known_sensors(self) -> StationMap:
        unknown = sorted(set(self.sensors) - set(SENSOR_RANGES))
        if unknown:
            raise ValueError(
                f"sensors: unknown sensor {', '.join(unknown)}; the contract's sensors are "
                f"{', '.join(SENSOR_RANGES)}"
            )
        return self


class LineRef(_Strict):
    site: Identifier
    area: Identifier
    id: Identifier
    name: str = ""


class SourceMap(_Strict):
    namespace_uri: str | None = Field(
        default=None, description="Resolves {ns} in the node ids; needed where they use it."
    )
    line: LineRef
    status: NodeText | None = Field(
        default=None, description="The line's status: 'online'/'offline' or a Boolean."
    )
    clock: NodeText | None = Field(
        default=None,
        description="The line's clock, s; default: the server's source timestamps (a real line "
        "runs in real time).",
    )
    speed_factor: NodeText | None = Field(
        default=None, description="Line seconds per wall second (a simulated line)."
    )
    counters_from: Literal["first_read", "zero"] = Field(
        default="first_read",
        description="Parts count from the first value read either way. first_read: counters "
        "are totals of no known origin; zero: they start with the line, so the first value "
        "read is what the line made before the twin, shown in /healthz (before_twin).",
    )
    publishing_interval_ms: Annotated[float, Field(ge=10, le=60_000)] = 100.0
    stations: Annotated[dict[Identifier, StationMap], Field(min_length=1, max_length=1000)]

    @model_validator(mode="after")
    def _namespace_where_used(self) -> SourceMap:
        if self.namespace_uri is None and "{ns}" in self.model_dump_json():
            raise ValueError("namespace_uri: needed to resolve {ns} in the node ids")
        for station_id, station in self.stations.items():
            if station_id in ("status", "cmd", "alarms"):
                raise ValueError(f"stations.{station_id}: reserved for line-level topics")
            bad = sorted(set(station.state_values.values()) - set(STATION_STATES))
            if bad:  # the Literal already refuses them; kept for a clear message
                raise ValueError(f"stations.{station_id}.state_values: unknown {bad}")
        seen: dict[str, str] = {}
        for place, node in self.nodes():
            if node in seen:
                raise ValueError(
                    f"{place}: the node {node} is also {seen[node]}; a node has one role"
                )
            seen[node] = place
        return self

    def nodes(self) -> list[tuple[str, str]]:
        """(where in the map, node id) of every node the map names, in map order."""
        found = [
            (name, node)
            for name in ("status", "clock", "speed_factor")
            if (node := getattr(self, name)) is not None
        ]
        for station_id, station in self.stations.items():
            at = f"stations.{station_id}"
            for name in ("state", "state_reason", "processing_time_s"):
                node = getattr(station, name)
                if node is not None:
                    found.append((f"{at}.{name}", node))
            for name in ("started", "good", "scrap", "rework"):
                node = getattr(station.counters, name)
                if node is not None:
                    found.append((f"{at}.counters.{name}", node))
            found += [(f"{at}.sensors.{name}", node) for name, node in station.sensors.items()]
            found += [(f"{at}.setpoints.{name}", node) for name, node in station.setpoints.items()]
        return found

    def exits_line(self, station: str) -> bool:
        flagged = self.stations[station].exits_line
        if flagged is not None:
            return flagged
        return station == list(self.stations)[-1]


def parse_map(data: object, source: str = "<opcua map>") -> SourceMap:
    try:
        return SourceMap.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_problems(exc, source, "OPC UA map")) from None


def load_map(path: str | Path) -> SourceMap:
    file = Path(path)
    return parse_map(read_yaml(file, "OPC UA map"), str(file))
