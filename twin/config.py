"""The line configuration: what a production line is made of.

A line is a serial chain of stations. Each station draws parts from its input
buffer (the first station from an unlimited stock of raw material), processes
them for a random time, sometimes breaks down, sometimes makes a defect, and
passes good parts into the next buffer, blocking while that buffer is full.

The schema is a set of pydantic models read from YAML. Loading never raises a
raw traceback at the user: every problem becomes a ``ConfigError`` whose message
names the field (``stations[2].processing_time.mean_s``) and what is wrong.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# A name that is safe as one MQTT topic level and as a URL path segment.
IDENTIFIER_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]

DEFAULT_BUFFER_CAPACITY = 5


class ConfigError(ValueError):
    """A line configuration that cannot be used, with a message for humans."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Deterministic(_Strict):
    """Always the same duration."""

    distribution: Literal["deterministic"]
    mean_s: PositiveSeconds


class Exponential(_Strict):
    """Memoryless durations: coefficient of variation 1."""

    distribution: Literal["exponential"]
    mean_s: PositiveSeconds


class Lognormal(_Strict):
    """Right-skewed durations given by their mean and coefficient of variation."""

    distribution: Literal["lognormal"]
    mean_s: PositiveSeconds
    cv: Annotated[float, Field(gt=0, le=5, allow_inf_nan=False)]


class Triangular(_Strict):
    """Durations between a minimum and a maximum, most often near the mode."""

    distribution: Literal["triangular"]
    min_s: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    mode_s: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    max_s: PositiveSeconds

    @model_validator(mode="after")
    def _ordered(self) -> Triangular:
        if not self.min_s <= self.mode_s <= self.max_s:
            raise ValueError("needs min_s <= mode_s <= max_s")
        return self

    @property
    def mean_s(self) -> float:
        return (self.min_s + self.mode_s + self.max_s) / 3


Duration = Annotated[
    Deterministic | Exponential | Lognormal | Triangular,
    Field(discriminator="distribution"),
]


class Thermal(_Strict):
    """First-order thermal model: the station heats towards its operating
    temperature while it processes and cools towards ambient otherwise."""

    ambient_c: Annotated[float, Field(ge=-50, le=100)] = 22.0
    operating_c: Annotated[float, Field(ge=-50, le=1500)] = 55.0
    time_constant_s: PositiveSeconds = 600.0


class Vibration(_Strict):
    """Vibration velocity RMS by machine activity (ISO 10816 style, mm/s)."""

    idle_mm_s: Annotated[float, Field(ge=0, le=100)] = 0.4
    running_mm_s: Annotated[float, Field(ge=0, le=100)] = 2.8


class Station(_Strict):
    id: Identifier
    name: str = ""
    processing_time: Duration
    input_buffer_capacity: Annotated[int | None, Field(ge=1, le=100_000)] = None
    mtbf_s: PositiveSeconds | None = Field(
        default=None, description="Mean processing time between failures; none = never fails."
    )
    mttr_s: PositiveSeconds | None = Field(default=None, description="Mean time to repair.")
    defect_probability: Annotated[float, Field(ge=0, le=1)] = 0.0
    thermal: Thermal = Thermal()
    vibration: Vibration = Vibration()

    @model_validator(mode="after")
    def _failure_pair(self) -> Station:
        if (self.mtbf_s is None) != (self.mttr_s is None):
            raise ValueError("mtbf_s and mttr_s go together: give both or neither")
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.id.replace("_", " ").capitalize()

    @property
    def ideal_cycle_time_s(self) -> float:
        """The planned runtime per unit (ISO 22400 PRU): the mean processing time."""
        return float(self.processing_time.mean_s)


class Sensors(_Strict):
    telemetry_period_s: PositiveSeconds = 10.0
    temperature_noise_c: Annotated[float, Field(ge=0, le=50)] = 0.25
    vibration_noise_mm_s: Annotated[float, Field(ge=0, le=50)] = 0.08


class LineInfo(_Strict):
    """Where the line sits in the ISA-95 hierarchy; these become topic levels."""

    id: Identifier
    name: str = ""
    site: Identifier = "site1"
    area: Identifier = "area1"


class LineConfig(_Strict):
    line: LineInfo
    stations: Annotated[list[Station], Field(min_length=1, max_length=500)]
    sensors: Sensors = Sensors()

    @model_validator(mode="after")
    def _check_stations(self) -> LineConfig:
        seen: set[str] = set()
        for station in self.stations:
            if station.id in seen:
                raise ValueError(f"station id {station.id!r} is used twice")
            seen.add(station.id)
        if self.stations[0].input_buffer_capacity is not None:
            raise ValueError(
                f"stations[0] ({self.stations[0].id}) draws from unlimited raw material, "
                "so input_buffer_capacity does not apply to it"
            )
        return self

    def buffer_capacity(self, index: int) -> int:
        """Capacity of the buffer in front of station ``index`` (1 or later)."""
        if index < 1:
            raise ValueError("the first station has no input buffer")
        capacity = self.stations[index].input_buffer_capacity
        return DEFAULT_BUFFER_CAPACITY if capacity is None else capacity


def _format_location(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in {"deterministic", "exponential", "lognormal", "triangular"}:
            # pydantic puts the union member's tag in the location; the user never wrote it.
            continue
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def _describe(error: Any) -> str:
    where = _format_location(tuple(error["loc"]))
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{where}: required field is missing"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown field (check the spelling)"
    if error["type"] == "union_tag_invalid":
        got = error.get("ctx", {}).get("tag", "?")
        return (
            f"{where}: unknown distribution {got!r}; "
            "use deterministic, exponential, lognormal or triangular"
        )
    if error["type"] == "union_tag_not_found":
        return f"{where}: needs a 'distribution' field"
    got = error.get("input")
    if isinstance(got, dict | list) or got is None:
        return f"{where}: {message}"
    return f"{where}: {message} (got {got!r})"


def parse_config(data: object, source: str = "<config>") -> LineConfig:
    """Validate already-parsed YAML/JSON data into a ``LineConfig``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with 'line' and 'stations'")
    try:
        return LineConfig.model_validate(data)
    except ValidationError as exc:
        problems = "\n".join(f"  - {_describe(error)}" for error in exc.errors())
        count = exc.error_count()
        raise ConfigError(
            f"{source}: {count} problem{'s' if count > 1 else ''} in the line config:\n{problems}"
        ) from None


def load_config(path: str | Path | None = None) -> LineConfig:
    """Load a line config from YAML; ``None`` loads the packaged default line."""
    if path is None:
        text = resources.files("twin.lines").joinpath("default.yaml").read_text("utf-8")
        source = "default line"
    else:
        file = Path(path)
        source = str(file)
        try:
            text = file.read_text("utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{source}: config file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source}: cannot read the config file: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}") from None
    return parse_config(data, source)
