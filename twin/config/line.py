"""The line configuration: what a production line is made of.

A line is a chain of stations in flow order. Parts are released into the first
station's input buffer by a release policy: ``saturated`` (unlimited raw
material, the first station never starves), ``open`` (an arrival process) or
``conwip`` (a closed loop holding ``wip_cap`` parts: each part that leaves
releases a new one). A station has one or more parallel machines that take
parts from its input buffer, may need a setup when the product changes,
process them (the time depends on the speed setpoint), suffer microstops and
breakdowns, make defects with a probability that depends on their setpoints
and tool wear, and pass good parts into the next buffer, blocking while it is
full. A detected defect is scrapped, or sent back for rework.

The schema is a set of pydantic models read from YAML. Loading never raises a
raw traceback at the user: every problem becomes a ``ConfigError`` whose message
names the field (``stations[2].processing_time.mean_s``) and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from twin.config.distributions import (
    DISTRIBUTION_NAMES,
    Deterministic,
    Duration,
    PositiveSeconds,
)
from twin.errors import problem_list

# A name that is safe as one MQTT topic level and as a URL path segment.
IDENTIFIER_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Money = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]

DEFAULT_BUFFER_CAPACITY = 5
UNLIMITED = "unlimited"


class ConfigError(ValueError):
    """A line configuration that cannot be used, with a message for humans."""


class _Strict(BaseModel):
    # strict: a string or a boolean where a number belongs is an error, never a
    # coercion ("0.7" or yes for a speed), in a YAML file as in an API body.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# -- release ---------------------------------------------------------------------------
class Release(_Strict):
    """How parts enter the line."""

    policy: Literal["saturated", "open", "conwip"] = "saturated"
    interarrival: Duration | None = Field(
        default=None, description="open: time between arrivals (exponential = Poisson)."
    )
    wip_cap: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        default=None,
        description="conwip: the parts circulating (w). open: optional WIP limit; "
        "arrivals wait while the line holds this many.",
    )
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=1, description="Consecutive parts of the same product (fewer setups)."
    )

    @model_validator(mode="after")
    def _policy_needs(self) -> Release:
        if self.policy == "open" and self.interarrival is None:
            raise ValueError("an open line needs interarrival (the time between arrivals)")
        if self.policy == "conwip" and self.wip_cap is None:
            raise ValueError("a conwip line needs wip_cap (the number of parts w)")
        if self.policy != "open" and self.interarrival is not None:
            raise ValueError(f"interarrival applies to open lines only, not {self.policy}")
        if self.policy == "saturated" and self.wip_cap is not None:
            raise ValueError("wip_cap applies to conwip and open lines, not saturated")
        return self


class Product(_Strict):
    id: Identifier
    name: str = ""
    mix: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        default=1.0, description="Relative share of releases."
    )
    material_cost: Money = 0.0
    price: Money = 0.0


# -- losses ----------------------------------------------------------------------------
class Failures(_Strict):
    """Breakdowns: exponential time to failure with mean ``mtbf_s``, exponential repair."""

    basis: Literal["operation", "time"] = Field(
        default="operation",
        description="operation: the failure clock runs only while processing; "
        "time: it runs always, idle or not.",
    )
    mtbf_s: PositiveSeconds
    mttr_s: PositiveSeconds


class Microstops(_Strict):
    """Short jams, cleared by the operator: speed losses, not breakdowns."""

    mean_between_s: PositiveSeconds = Field(description="Mean processing time between jams.")
    duration: Duration


class Setup(_Strict):
    """Changeover when a machine switches to another product."""

    time: Duration


# -- process physics -------------------------------------------------------------------
class Setpoint(_Strict):
    min: Finite
    max: Finite
    default: Finite

    @model_validator(mode="after")
    def _ordered(self) -> Setpoint:
        if not self.min <= self.default <= self.max:
            raise ValueError(
                f"needs min <= default <= max (got {self.min}, {self.default}, {self.max})"
            )
        return self


class Quality(_Strict):
    """Defect probability as a function of setpoints and wear (see docs/physics.md).

    log-odds(defect) = logit(base) + ((speed - best_speed) / speed_tolerance)^2
                     + ((temperature - best_temperature_c) / temperature_tolerance_c)^2
                     + wear_sensitivity * wear^2 + Normal(0, noise_sd)
    """

    base_defect_probability: Annotated[float, Field(gt=0, lt=1)]
    best_speed: Finite = 1.0
    speed_tolerance: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 0.3
    best_temperature_c: Finite | None = None
    temperature_tolerance_c: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 10.0
    wear_sensitivity: Annotated[float, Field(ge=0, le=100)] = 0.0
    noise_sd: Annotated[float, Field(ge=0, le=10)] = 0.0


class Wear(_Strict):
    """Tool wear: grows by ``per_part * speed^speed_exponent`` per part, 1.0 = worn out."""

    per_part: Annotated[float, Field(gt=0, le=1)]
    speed_exponent: Annotated[float, Field(ge=0, le=5)] = 1.0
    preventive_at: Annotated[float, Field(gt=0, le=100)] | None = Field(
        default=None, description="Planned maintenance when wear reaches this level."
    )
    maintenance_time: Duration = Deterministic(distribution="deterministic", mean_s=600)


class Process(_Strict):
    """Setpoints the operator (or the optimiser) can change while the line runs."""

    speed: Setpoint = Setpoint(min=1.0, max=1.0, default=1.0)
    temperature_c: Setpoint | None = None
    quality: Quality | None = None
    wear: Wear | None = None

    @model_validator(mode="after")
    def _speed_positive(self) -> Process:
        if self.speed.min <= 0:
            raise ValueError("speed.min must be > 0: speed divides the processing time")
        quality = self.quality
        if (
            quality is not None
            and quality.best_temperature_c is not None
            and (self.temperature_c is None)
        ):
            raise ValueError("quality.best_temperature_c needs a temperature_c setpoint")
        return self


class Rework(_Strict):
    probability: Probability = Field(description="Share of detected defects that are reworked.")
    to: Identifier = Field(description="Station whose queue reworked parts rejoin.")


# -- economics ---------------------------------------------------------------------------
class Power(_Strict):
    """Electrical power by state, kW. ``running`` scales with the speed setpoint."""

    running: Money = 0.0
    setup: Money | None = None
    idle: Money = 0.0
    down: Money = 0.0

    def by_state(self, state: str) -> float:
        if state == "running":
            return self.running
        if state in ("setup", "maintenance"):
            return self.setup if self.setup is not None else self.idle
        if state == "down":
            return self.down
        return self.idle


class Costs(_Strict):
    labour_per_h: Money = 0.0
    overhead_per_h: Money = 0.0
    power_kw: Power = Power()


class Economics(_Strict):
    currency: Annotated[str, Field(min_length=1, max_length=8)] = "EUR"
    energy_price_per_kwh: Money = 0.0


# -- calendar ----------------------------------------------------------------------------
class PlannedStop(_Strict):
    start_h: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    duration_h: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    reason: Annotated[str, Field(min_length=1, max_length=80)] = "planned downtime"


class Calendar(_Strict):
    """Planned downtime (no shift, breaks) repeating every ``period_h``.

    Machines finish the part in hand, then stop until the planned stop ends.
    Planned downtime is outside the planned busy time (ISO 22400 PDOT).
    """

    period_h: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 24.0
    start_at_h: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        default=0.0, description="Hour of the period at which the simulation starts."
    )
    clock_at_start_h: Annotated[float, Field(ge=0, lt=24, allow_inf_nan=False)] | None = Field(
        default=None,
        description="Time of day (hours after midnight) at which the simulation starts; "
        "default start_at_h (a 24 h period that begins at midnight). Set it when the "
        "period begins at another time of day (a 12 h period from 06:00: 6).",
    )
    planned_downtime: list[PlannedStop] = []

    @model_validator(mode="after")
    def _inside_period(self) -> Calendar:
        for stop in self.planned_downtime:
            if stop.start_h >= self.period_h:
                raise ValueError(f"planned stop at {stop.start_h:g} h starts after period_h")
            if stop.duration_h >= self.period_h:
                raise ValueError(f"planned stop at {stop.start_h:g} h lasts a whole period")
        spans = self.segments_h()
        for (_, end, _), (start, _, _) in zip(spans, spans[1:], strict=False):
            if start < end:
                raise ValueError("planned stops overlap")
        if sum(end - start for start, end, _ in spans) >= self.period_h:
            raise ValueError("planned downtime leaves no time to produce")
        if self.start_at_h >= self.period_h:
            raise ValueError(f"start_at_h must be below period_h {self.period_h:g}")
        return self

    def segments_h(self) -> list[tuple[float, float, str]]:
        """Planned stops as (start, end, reason) within one period, sorted; a stop
        that runs past the end of the period wraps to its start (22:00 + 8 h)."""
        segments = []
        for stop in self.planned_downtime:
            end = stop.start_h + stop.duration_h
            if end <= self.period_h:
                segments.append((stop.start_h, end, stop.reason))
            else:
                segments.append((stop.start_h, self.period_h, stop.reason))
                segments.append((0.0, end - self.period_h, stop.reason))
        return sorted(segments)

    @property
    def time_of_day_at_start_h(self) -> float:
        """Time of day (hours after midnight) at simulation time 0."""
        if self.clock_at_start_h is not None:
            return self.clock_at_start_h
        return self.start_at_h % 24.0


# -- sensors display ---------------------------------------------------------------------
class Thermal(_Strict):
    """First-order thermal model: the station heats towards its operating
    temperature while it processes and cools towards ambient otherwise."""

    ambient_c: Annotated[float, Field(ge=-50, le=100)] = 22.0
    operating_c: Annotated[float, Field(ge=-50, le=1500)] = 55.0
    time_constant_s: PositiveSeconds = 600.0


class Vibration(_Strict):
    """Vibration velocity RMS by activity (mm/s); running rises with tool wear."""

    idle_mm_s: Annotated[float, Field(ge=0, le=100)] = 0.4
    running_mm_s: Annotated[float, Field(ge=0, le=100)] = 2.8
    wear_gain: Annotated[float, Field(ge=0, le=100)] = Field(
        default=1.0, description="Running vibration grows by this fraction per unit of wear."
    )


# -- sensors ---------------------------------------------------------------------------
SensorName = Literal["temperature_c", "vibration_mm_s", "spindle_rpm", "power_kw", "pressure_bar"]
SENSOR_NAMES: tuple[str, ...] = (
    "temperature_c",
    "vibration_mm_s",
    "spindle_rpm",
    "power_kw",
    "pressure_bar",
)


class SensorSpec(_Strict):
    """How one sensor measures: sampling, noise, drift and resolution."""

    period_s: PositiveSeconds | None = Field(
        default=None, description="Sampling period; default sensors.telemetry_period_s."
    )
    noise_sd: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    drift_per_h: Finite = Field(default=0.0, description="Slow zero drift, units per hour.")
    resolution: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0


class StationSensors(_Strict):
    """The sensors fitted to a station; absent ones are not measured."""

    temperature_c: SensorSpec | None = SensorSpec(noise_sd=0.25, resolution=0.01)
    vibration_mm_s: SensorSpec | None = SensorSpec(noise_sd=0.08, resolution=0.001)
    spindle_rpm: SensorSpec | None = None
    power_kw: SensorSpec | None = None
    pressure_bar: SensorSpec | None = None
    nominal_rpm: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 6000.0
    pressure_running_bar: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 6.0
    pressure_idle_bar: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 6.5


class SensorFault(_Strict):
    """A fault injected into one sensor for a while (see docs/mqtt.md)."""

    station: Identifier
    sensor: SensorName
    mode: Literal["stuck", "spike", "dropout", "offset"]
    start_h: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    duration_h: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    magnitude: Finite = Field(
        default=0.0, description="spike: added to a sample; offset: added to every sample."
    )
    probability: Probability = Field(default=0.1, description="spike: share of samples hit.")


# -- stations ----------------------------------------------------------------------------
Text = Annotated[str, Field(min_length=1, max_length=200)]


class Address(_Strict):
    """The manufacturer's address (IDTA 02006-3-0 AddressInformation)."""

    street: Text
    zipcode: Annotated[str, Field(min_length=1, max_length=20)]
    city: Text
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = Field(
        description="ISO 3166-1 alpha-2 code, such as DE."
    )


class Nameplate(_Strict):
    """What the maker's nameplate says of the line or a station, for its Asset
    Administration Shell (IDTA 02006-3-0 Digital Nameplate). The designation is the
    line's or station's name. IDTA also requires product_uri, order_code and address;
    what is not given is left out of the shell, never made up (docs/aas.md)."""

    manufacturer: Text
    product_uri: (
        Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$", max_length=500)] | None
    ) = Field(default=None, description="A URI that names the product, such as https://...")
    order_code: Text | None = None
    serial_number: Text | None = None
    year_of_construction: Annotated[int, Field(ge=1800, le=2200)] | None = None
    address: Address | None = None


class Station(_Strict):
    id: Identifier
    name: str = ""
    machines: Annotated[int, Field(ge=1, le=1000)] = 1
    processing_time: Duration = Field(description="Time per part at speed 1.")
    processing_time_by_product: dict[Identifier, Duration] = {}
    ideal_cycle_time_s: PositiveSeconds | None = Field(
        default=None,
        description="Planned runtime per unit (ISO 22400 PRU) of one machine, for the "
        "products that use processing_time; default: its mean at the maximum speed. "
        "At most that nominal time: a station is never rated slower than it can run.",
    )
    ideal_cycle_time_by_product_s: dict[Identifier, PositiveSeconds] = Field(
        default={},
        description="PRU of the products listed, as ideal_cycle_time_s; default: the "
        "product's own mean processing time at the maximum speed.",
    )
    input_buffer_capacity: (
        Annotated[int, Field(ge=1, le=10_000_000)] | Literal["unlimited"] | None
    ) = None
    failures: Failures | None = None
    microstops: Microstops | None = None
    setup: Setup | None = None
    defect_probability: Probability = 0.0
    process: Process = Process()
    rework: Rework | None = None
    costs: Costs = Costs()
    nameplate: Nameplate | None = None
    sensors: StationSensors = StationSensors()
    thermal: Thermal = Thermal()
    vibration: Vibration = Vibration()

    @model_validator(mode="after")
    def _one_quality_model(self) -> Station:
        if self.defect_probability and self.process.quality is not None:
            raise ValueError(
                "give defect_probability or process.quality, not both "
                "(process.quality.base_defect_probability replaces it)"
            )
        return self

    @model_validator(mode="after")
    def _rated_no_slower_than_nominal(self) -> Station:
        # A PRU above the nominal time at the fastest speed would make a station
        # running flat out look better than ideal: effectiveness above 1.
        explicit: list[tuple[str | None, str, float | None]] = [
            (None, "ideal_cycle_time_s", self.ideal_cycle_time_s)
        ]
        explicit += [
            (product, f"ideal_cycle_time_by_product_s.{product}", seconds)
            for product, seconds in self.ideal_cycle_time_by_product_s.items()
        ]
        for product, field, seconds in explicit:
            nominal = self.nominal_at_max_speed_s(product)
            if seconds is not None and seconds > nominal:
                raise ValueError(
                    f"{field}: {seconds:g} s exceeds the nominal time at the maximum speed "
                    f"({self._processing_time(product).mean:g} s / speed "
                    f"{self.process.speed.max:g} = {nominal:g} s); the planned runtime per "
                    "unit is the fastest allowed cycle"
                )
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.id.replace("_", " ").capitalize()

    def _processing_time(self, product: str | None) -> Duration:
        if product is None:
            return self.processing_time
        return self.processing_time_by_product.get(product, self.processing_time)

    def nominal_at_max_speed_s(self, product: str | None = None) -> float:
        """Mean processing time of ``product`` (default: ``processing_time``) at the
        maximum speed setpoint."""
        return float(self._processing_time(product).mean) / self.process.speed.max

    def planned_runtime_per_unit_s(self, product: str | None = None) -> float:
        """ISO 22400 PRU of one machine: its rated (fastest allowed) cycle for
        ``product`` (default: the products that use ``processing_time``).

        An explicit ``ideal_cycle_time_by_product_s`` or ``ideal_cycle_time_s``
        wins; otherwise the nominal (mean) time at the maximum speed. The speed
        setpoint never changes it, so a faster setpoint shows as a higher
        effectiveness, never one above 1 by construction.
        """
        if product is not None:
            explicit = self.ideal_cycle_time_by_product_s.get(product)
            if explicit is not None:
                return explicit
            if product in self.processing_time_by_product:
                return self.nominal_at_max_speed_s(product)
        if self.ideal_cycle_time_s is not None:
            return self.ideal_cycle_time_s
        return self.nominal_at_max_speed_s(None)

    @property
    def unbounded_buffer(self) -> bool:
        return self.input_buffer_capacity == UNLIMITED


class Sensors(_Strict):
    telemetry_period_s: PositiveSeconds = 10.0
    faults: list[SensorFault] = []


class LineInfo(_Strict):
    """Where the line sits in the ISA-95 hierarchy; these become topic levels."""

    id: Identifier
    name: str = ""
    site: Identifier = "site1"
    area: Identifier = "area1"
    nameplate: Nameplate | None = None


class RepairCrew(_Strict):
    size: Annotated[int, Field(ge=1, le=10_000)]


class LineConfig(_Strict):
    line: LineInfo
    release: Release = Release()
    products: Annotated[list[Product], Field(min_length=1, max_length=1000)] = [Product(id="part")]
    stations: Annotated[list[Station], Field(min_length=1, max_length=1000)]
    repair_crew: RepairCrew | None = None
    calendar: Calendar | None = None
    economics: Economics = Economics()
    sensors: Sensors = Sensors()

    @model_validator(mode="after")
    def _check_references(self) -> LineConfig:
        station_ids: dict[str, int] = {}
        for index, station in enumerate(self.stations):
            if station.id in station_ids:
                raise ValueError(f"station id {station.id!r} is used twice")
            if station.id in ("status", "cmd", "alarms"):
                raise ValueError(
                    f"stations[{index}].id: {station.id!r} is reserved for line-level topics"
                )
            station_ids[station.id] = index
        product_ids = {product.id for product in self.products}
        if len(product_ids) != len(self.products):
            raise ValueError("product ids must be unique")
        first = self.stations[0]
        if self.release.policy == "saturated" and first.input_buffer_capacity is not None:
            raise ValueError(
                f"stations[0] ({first.id}) draws from unlimited raw material on a saturated "
                "line, so input_buffer_capacity does not apply to it"
            )
        for index, station in enumerate(self.stations):
            for field in ("processing_time_by_product", "ideal_cycle_time_by_product_s"):
                for product in getattr(station, field):
                    if product not in product_ids:
                        raise ValueError(
                            f"stations[{index}].{field}: unknown product "
                            f"{product!r}; products are {sorted(product_ids)}"
                        )
            if station.rework is not None:
                target = station_ids.get(station.rework.to)
                if target is None:
                    raise ValueError(
                        f"stations[{index}].rework.to: unknown station {station.rework.to!r}; "
                        f"stations are {list(station_ids)}"
                    )
                if target > index:
                    raise ValueError(
                        f"stations[{index}].rework.to: {station.rework.to!r} is downstream; "
                        "rework goes back to this station or one before it"
                    )
        for index, fault in enumerate(self.sensors.faults):
            if fault.station not in station_ids:
                raise ValueError(
                    f"sensors.faults[{index}].station: unknown station {fault.station!r}"
                )
            if getattr(self.stations[station_ids[fault.station]].sensors, fault.sensor) is None:
                raise ValueError(
                    f"sensors.faults[{index}]: station {fault.station!r} has no "
                    f"{fault.sensor} sensor"
                )
        return self

    def buffer_capacity(self, index: int) -> float:
        """Capacity of the input buffer of station ``index`` (inf when unlimited)."""
        station = self.stations[index]
        capacity = station.input_buffer_capacity
        if capacity == UNLIMITED:
            return float("inf")
        if capacity is None:
            if index == 0:
                return float("inf")
            return DEFAULT_BUFFER_CAPACITY
        return float(capacity)

    def config_hash(self) -> str:
        """A short, stable fingerprint of the resolved config."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def describe_problems(exc: ValidationError, source: str, what: str) -> str:
    """A line config's validation error for humans (``twin.errors.problem_list``):
    the tag of a distribution, which pydantic puts in the location, left out."""
    return problem_list(exc, source, what, hidden=DISTRIBUTION_NAMES)


def with_changes(
    config: LineConfig, changes: dict[str, Any], source: str = "<changed config>"
) -> LineConfig:
    """A copy of ``config`` with fields changed by dotted path, validated again.

    ``{"release.wip_cap": 8, "stations.1.process.speed.default": 1.2}``: a
    number in the path indexes a list. For parameter sweeps and experiments.
    """
    data = config.model_dump(mode="json", exclude_none=True)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        target: Any = data
        try:
            for part in parents:
                target = target[int(part)] if isinstance(target, list) else target[part]
        except (KeyError, IndexError, ValueError):
            raise ConfigError(f"{source}: no field {path!r} to change") from None
        if isinstance(target, list):
            target[int(leaf)] = value
        else:
            target[leaf] = value
    return parse_config(data, source)


def with_faults(
    config: LineConfig, faults: Iterable[SensorFault], source: str = "<faulted config>"
) -> LineConfig:
    """A copy of ``config`` whose sensors have ``faults`` injected (in place of its
    own), validated again: a fault on a station or sensor the line lacks is refused."""
    dumped = [fault.model_dump(mode="json") for fault in faults]
    return with_changes(config, {"sensors.faults": dumped}, source)


def parse_config(data: object, source: str = "<config>") -> LineConfig:
    """Validate already-parsed YAML/JSON data into a ``LineConfig``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with 'line' and 'stations'")
    try:
        return LineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_problems(exc, source, "line config")) from None


def read_yaml(file: Path, what: str) -> Any:
    """A YAML file's data; ``ConfigError`` naming the file (and the line and column
    of a syntax error) when it cannot be read or parsed. ``what``: "config file"."""
    source = str(file)
    try:
        text = file.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read the {what}: {exc}") from None
    return _parse_yaml(text, source)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}") from None


def load_config(path: str | Path | None = None) -> LineConfig:
    """Load a line config from YAML; ``None`` loads the packaged default line."""
    if path is None:
        text = resources.files("twin.lines").joinpath("default.yaml").read_text("utf-8")
        return parse_config(_parse_yaml(text, "default line"), "default line")
    return parse_config(read_yaml(Path(path), "config file"), str(path))
