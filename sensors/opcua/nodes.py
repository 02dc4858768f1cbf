"""The line's OPC UA address space, as names: what the server builds and a map reads.

One place says where each value of a line lives in OPC UA, so that the server,
the map it can write for its own line (``line_map``) and docs/opcua.md agree.
Node ids are strings in the project's namespace, readable and stable across
restarts: ``ns=<idx>;s=<site>/<area>/<line>/<station>/State``.

The engineering units are those of UNECE Recommendation 20, the OPC UA way
(``EUInformation`` with namespace ``http://www.opcfoundation.org/UA/units/un/cefact``).
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.config.line import LineConfig, Setpoint, Station

NAMESPACE_URI = "urn:factory-twin:opcua"
UNECE_NAMESPACE = "http://www.opcfoundation.org/UA/units/un/cefact"


@dataclass(frozen=True, slots=True)
class Unit:
    code: str  # UNECE Recommendation 20 common code
    symbol: str
    description: str

    @property
    def unit_id(self) -> int:
        """The UnitId OPC UA Part 8 derives from the common code."""
        value = 0
        for char in self.code:
            value = (value << 8) | ord(char)
        return value


UNITS: dict[str, Unit] = {
    "temperature_c": Unit("CEL", "°C", "degree Celsius"),
    "vibration_mm_s": Unit("C16", "mm/s", "millimetre per second"),
    "spindle_rpm": Unit("RPM", "r/min", "revolutions per minute"),
    "power_kw": Unit("KWT", "kW", "kilowatt"),
    "pressure_bar": Unit("BAR", "bar", "bar"),
    "speed": Unit("C62", "1", "one: a factor of the nominal speed"),
    "seconds": Unit("SEC", "s", "second"),
}

# Sensor name in the contract -> browse name in OPC UA.
SENSOR_BROWSE_NAMES: dict[str, str] = {
    "temperature_c": "Temperature",
    "vibration_mm_s": "Vibration",
    "spindle_rpm": "SpindleSpeed",
    "power_kw": "Power",
    "pressure_bar": "Pressure",
}
SETPOINT_BROWSE_NAMES: dict[str, str] = {"speed": "Speed", "temperature_c": "Temperature"}
# The counters each station keeps of the parts it saw (one per result, and the
# parts it started and shipped out of the line).
COUNTERS: tuple[str, ...] = (
    "PartsStarted",
    "PartsGood",
    "PartsScrap",
    "PartsRework",
    "PartsShipped",
)

# OPC UA for Machinery (OPC 40001-1) MachineryItemState, for each station state.
MACHINERY_ITEM_STATE: dict[str, str] = {
    "running": "Executing",
    "starved": "NotExecuting",
    "blocked": "NotExecuting",
    "stopped": "NotExecuting",
    "planned_downtime": "NotExecuting",
    "setup": "OutOfService",
    "maintenance": "OutOfService",
    "down": "OutOfService",
}


@dataclass(frozen=True, slots=True)
class LinePath:
    site: str
    area: str
    line: str

    @property
    def line_path(self) -> str:
        return f"{self.site}/{self.area}/{self.line}"

    def line_node(self, name: str) -> str:
        return f"{self.line_path}/{name}"

    def station(self, station: str) -> str:
        return f"{self.line_path}/{station}"

    def station_node(self, station: str, *names: str) -> str:
        return "/".join((self.line_path, station, *names))


def line_map(config: LineConfig) -> dict[str, object]:
    """The OPC UA source's map (docs/opcua.md) of a line this project's server serves:
    what ``up --twin-only --opcua-source … --opcua-map`` needs to mirror it. Its
    counters start with the server (``counters_from: zero``): what they hold at the
    twin's first read is what the line made before the twin."""
    info = config.line
    path = LinePath(info.site, info.area, info.id)

    def node(*names: str) -> str:
        return "ns={ns};s=" + "/".join((path.line_path, *names))

    stations: dict[str, object] = {}
    for spec in config.stations:
        at = (path.line_path, spec.id)
        capacity = spec.input_buffer_capacity
        stations[spec.id] = {
            "name": spec.name or spec.id,
            "state": node(*at[1:], "State"),
            "state_reason": node(*at[1:], "StateReason"),
            "counters": {
                name: node(spec.id, "Counters", counter)
                for name, counter in (
                    ("started", "PartsStarted"),
                    ("good", "PartsGood"),
                    ("scrap", "PartsScrap"),
                    ("rework", "PartsRework"),
                )
            },
            "sensors": {
                name: node(spec.id, "Sensors", SENSOR_BROWSE_NAMES[name])
                for name in SENSOR_BROWSE_NAMES
                if getattr(spec.sensors, name) is not None
            },
            "setpoints": {
                name: node(spec.id, "Setpoints", SETPOINT_BROWSE_NAMES[name])
                for name in changeable_setpoints(spec)
            },
            "ideal_cycle_time_s": spec.planned_runtime_per_unit_s(),
            "machines": spec.machines,
            "input_buffer_capacity": capacity if isinstance(capacity, int) else None,
        }
    return {
        "namespace_uri": NAMESPACE_URI,
        "line": {"site": info.site, "area": info.area, "id": info.id, "name": info.name},
        "status": node("Status"),
        "clock": node("SimTime"),
        "speed_factor": node("SpeedFactor"),
        "counters_from": "zero",
        "stations": stations,
    }


def changeable_setpoints(spec: Station) -> dict[str, Setpoint]:
    """A station's setpoints that can change (a speed fixed at 1 is none)."""
    found: dict[str, Setpoint] = {}
    speed = spec.process.speed
    if speed.min < speed.max:
        found["speed"] = speed
    if spec.process.temperature_c is not None:
        found["temperature_c"] = spec.process.temperature_c
    return found
