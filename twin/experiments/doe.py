"""Designs of experiments: which line configs a sweep runs.

A sweep spec names factors, each a field of the line config reached by a dotted
path (``stations.machining.machines``, ``buffers.welding``, ``release.wip_cap``),
with either a list of ``levels`` or a ``low``/``high`` range. The design turns
them into design points: every combination of levels (``grid``), or ``points``
draws of a Latin hypercube (``lhs``, each factor's range cut into ``points``
strata with one point in each) or of independent uniforms (``random``). The
draws come from the spec's seed alone, so a spec always gives the same design.

Friendly names map onto the config's real structure: a station is named by
its id (or its index), ``buffers.<station>`` is its ``input_buffer_capacity``,
``stations.<station>.setpoints.<name>`` the default of a process setpoint,
``failures.mtbf_h``/``mttr_h`` are the ``*_s`` fields in hours. Every factor
is checked against the base config before anything runs, and an error names
the factor (``factors[1] (buffers.weldng): ...``).
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from twin.config.line import (
    ConfigError,
    LineConfig,
    parse_config,
    read_yaml,
)
from twin.errors import problem_list

# A level of a factor as written in YAML: a number, or a word ("unlimited", "conwip").
Level = int | float | str
PathPart = str | int
MAX_DESIGN_POINTS = 100_000
HOURS = 3600.0


class SweepSpecError(ValueError):
    """A sweep spec that cannot be run, with a message naming the field or factor."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Factor(_Strict):
    """One parameter of the line that the sweep varies."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    levels: Annotated[list[Level], Field(min_length=1, max_length=10_000)] | None = None
    low: Annotated[float, Field(allow_inf_nan=False)] | None = None
    high: Annotated[float, Field(allow_inf_nan=False)] | None = None
    integer: bool = Field(default=False, description="low/high: whole numbers only.")
    steps: Annotated[int, Field(ge=2, le=10_000)] | None = Field(
        default=None, description="grid with low/high: evenly spaced levels (default 2)."
    )

    @model_validator(mode="after")
    def _levels_or_range(self) -> Factor:
        has_range = self.low is not None or self.high is not None
        if self.levels is not None and has_range:
            raise ValueError("give levels or low/high, not both")
        if self.levels is None:
            if self.low is None or self.high is None:
                raise ValueError("needs levels, or both low and high")
            if not self.low < self.high:
                raise ValueError(f"needs low < high (got {self.low:g} and {self.high:g})")
            if self.integer and not (self.low.is_integer() and self.high.is_integer()):
                raise ValueError("integer: low and high must be whole numbers")
        else:
            if self.integer:
                raise ValueError("integer applies to low/high; levels are taken as written")
            if self.steps is not None:
                raise ValueError("steps applies to low/high; levels are already a list")
        return self

    def _range(self) -> tuple[float, float]:
        if self.low is None or self.high is None:  # the validator makes this impossible
            raise SweepSpecError(f"factor {self.name!r} has neither levels nor low/high")
        return self.low, self.high

    def grid_levels(self) -> list[Level]:
        """The levels of this factor in a grid design."""
        if self.levels is not None:
            return list(self.levels)
        values = np.linspace(*self._range(), self.steps or 2)
        if self.integer:
            return list(dict.fromkeys(int(round(value)) for value in values))
        return [float(value) for value in values]

    def pick(self, fraction: float) -> Level:
        """The level at ``fraction`` in [0, 1) of this factor's range: equal shares
        of [0, 1) go to each level (or whole number), so strata stay balanced."""
        if self.levels is not None:
            return self.levels[min(int(fraction * len(self.levels)), len(self.levels) - 1)]
        low, high = self._range()
        if self.integer:
            span = int(high - low)
            return int(low) + min(int(fraction * (span + 1)), span)
        return float(low + fraction * (high - low))

    def extremes(self) -> list[Level]:
        """The levels that bound what this factor can take, to check it up front."""
        if self.levels is not None:
            return list(self.levels)
        low, high = self._range()
        if self.integer:
            return [int(low), int(high)]
        return [low, high]


class SweepSpec(_Strict):
    """A design of experiments over a line's parameters, with replications."""

    factors: Annotated[list[Factor], Field(min_length=1, max_length=50)]
    design: Literal["grid", "lhs", "random"] = "grid"
    points: Annotated[int, Field(ge=1, le=MAX_DESIGN_POINTS)] | None = Field(
        default=None, description="lhs and random: the number of design points."
    )
    replications: Annotated[int, Field(ge=1, le=10_000)] = 5
    hours: Annotated[float, Field(gt=0, le=1_000_000, allow_inf_nan=False)] = 8.0
    warmup_hours: Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)] = 0.0
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 42
    confidence: Annotated[float, Field(gt=0, lt=1)] = 0.95
    common_random_numbers: bool = Field(
        default=False,
        description="Replication r uses the same seed at every design point, which "
        "sharpens comparisons between points.",
    )
    config: str | None = Field(
        default=None, description="Line config YAML, relative to the spec file."
    )

    @model_validator(mode="after")
    def _design_needs(self) -> SweepSpec:
        names = [factor.name for factor in self.factors]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"factor {name!r} is listed twice")
        if self.design == "grid":
            if self.points is not None:
                raise ValueError("points applies to lhs and random designs; a grid has them all")
            size = math.prod(len(factor.grid_levels()) for factor in self.factors)
            if size > MAX_DESIGN_POINTS:
                raise ValueError(
                    f"the grid has {size:,} points; the limit is {MAX_DESIGN_POINTS:,}"
                )
        elif self.points is None:
            raise ValueError(f"a {self.design} design needs points (the number of design points)")
        return self


class DesignPoint(_Strict):
    index: int
    values: dict[str, Level]


def parse_spec(data: object, source: str = "<sweep spec>") -> SweepSpec:
    if not isinstance(data, dict):
        raise SweepSpecError(f"{source}: the top level must be a mapping with 'factors'")
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise SweepSpecError(problem_list(exc, source, "sweep spec")) from None


def load_spec(path: str | Path) -> SweepSpec:
    file = Path(path)
    try:
        data = read_yaml(file, "sweep spec")
    except ConfigError as exc:
        raise SweepSpecError(str(exc)) from None
    return parse_spec(data, str(file))


def spec_config_path(spec: SweepSpec, spec_file: str | Path) -> Path | None:
    """The line config a spec names, relative to the spec file."""
    if spec.config is None:
        return None
    return Path(spec_file).parent / spec.config


def with_overrides(spec: SweepSpec, **changes: Any) -> SweepSpec:
    """The spec with fields replaced (``None`` leaves a field alone), validated again."""
    data = spec.model_dump()
    data.update({name: value for name, value in changes.items() if value is not None})
    return parse_spec(data, "sweep spec")


# -- design -------------------------------------------------------------------------------
def design_points(spec: SweepSpec) -> list[DesignPoint]:
    """The design's points, from the spec's seed alone."""
    names = [factor.name for factor in spec.factors]
    if spec.design == "grid":
        rows: list[tuple[Level, ...]] = list(
            itertools.product(*(factor.grid_levels() for factor in spec.factors))
        )
    else:
        points = spec.points or 0  # the validator makes lhs and random give points
        rng = np.random.default_rng(spec.seed)
        if spec.design == "lhs":
            from scipy.stats import qmc  # here: a worker that only simulates never pays

            fractions = qmc.LatinHypercube(d=len(spec.factors), rng=rng).random(points)
        else:
            fractions = rng.random((points, len(spec.factors)))
        rows = [
            tuple(factor.pick(float(u)) for factor, u in zip(spec.factors, row, strict=True))
            for row in fractions
        ]
    return [
        DesignPoint(index=index, values=dict(zip(names, row, strict=True)))
        for index, row in enumerate(rows)
    ]


# -- factors onto the config ----------------------------------------------------------------
@dataclass(frozen=True)
class FactorTarget:
    """Where a factor's value goes in the config's data, and its unit conversion."""

    factor: str
    path: tuple[PathPart, ...]
    scale: float = 1.0


def _aliased(parts: list[str]) -> tuple[list[str], float]:
    """Friendly names rewritten to the config's own paths, with a unit scale."""
    if len(parts) == 2 and parts[0] == "buffers":
        return ["stations", parts[1], "input_buffer_capacity"], 1.0
    if len(parts) == 3 and parts[0] == "stations" and parts[2] == "buffer":
        return ["stations", parts[1], "input_buffer_capacity"], 1.0
    if len(parts) == 4 and parts[0] == "stations" and parts[2] == "setpoints":
        return ["stations", parts[1], "process", parts[3], "default"], 1.0
    if len(parts) == 4 and parts[2] == "failures" and parts[3] in ("mtbf_h", "mttr_h"):
        return [*parts[:3], parts[3].removesuffix("_h") + "_s"], HOURS
    return parts, 1.0


def _child(node: Any, part: str, walked: str) -> tuple[PathPart, Any]:
    """The key (or list index) and value of ``part`` inside ``node``."""
    if isinstance(node, list):
        if part.isdigit() and int(part) < len(node):
            return int(part), node[int(part)]
        ids = [item.get("id") for item in node if isinstance(item, dict)]
        if part in ids:
            return ids.index(part), node[ids.index(part)]
        raise KeyError(f"{walked} has no {part!r}; use an index below {len(node)} or one of {ids}")
    if not isinstance(node, dict) or part not in node:
        known = ", ".join(sorted(node)) if isinstance(node, dict) else "nothing"
        raise KeyError(f"{walked or 'the line config'} has no {part!r}; it has {known}")
    return part, node[part]


def _setpoint_names(process: dict[str, Any]) -> str:
    names = [
        name for name, value in process.items() if isinstance(value, dict) and "default" in value
    ]
    return ", ".join(names)


def resolve_factor(name: str, config: LineConfig) -> FactorTarget:
    """The config path of a factor's name; ``KeyError`` says what is wrong."""
    written = name.split(".")
    parts, scale = _aliased(written)
    setpoint = len(written) == 4 and written[0] == "stations" and written[2] == "setpoints"
    node: Any = config.model_dump(mode="json")
    path: list[PathPart] = []
    walked = ""
    for depth, part in enumerate(parts):
        if setpoint and depth == 3 and isinstance(node, dict) and node.get(part) is None:
            known = _setpoint_names(node)
            raise KeyError(f"station {written[1]!r} has no {part!r} setpoint; it has {known}")
        if node is None:
            # An optional section the base config leaves out (repair_crew):
            # the factor creates it, and validation says what else it needs.
            path.extend(parts[depth:])
            return FactorTarget(name, tuple(path), scale)
        key, node = _child(node, part, walked)
        path.append(key)
        walked = f"{walked}.{part}" if walked else part
    if isinstance(node, dict | list):
        inside = ", ".join(map(str, node)) if isinstance(node, dict) else "indexes"
        raise KeyError(f"{walked} is a section, not a value; name a field inside it: {inside}")
    return FactorTarget(name, tuple(path), scale)


def _set(data: Any, path: tuple[PathPart, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        if isinstance(node, dict) and node.get(part) is None:
            node[part] = {}
        node = node[part]
    node[path[-1]] = value


def _apply(base: dict[str, Any], targets: list[FactorTarget], values: dict[str, Level]) -> Any:
    data = copy.deepcopy(base)
    for target in targets:
        value = values[target.factor]
        if target.scale != 1.0 and isinstance(value, int | float):
            value = value * target.scale
        _set(data, target.path, value)
    release = data["release"]
    policy_set = any(target.path == ("release", "policy") for target in targets)
    if policy_set:
        # Switching the policy drops what the new one does not take: a saturated
        # line has no wip_cap and no first buffer, only an open one has arrivals.
        if release["policy"] != "open":
            release["interarrival"] = None
        if release["policy"] == "saturated":
            release["wip_cap"] = None
            data["stations"][0]["input_buffer_capacity"] = None
    return data


class DesignConfigs:
    """A spec's factors resolved against one base config: point values to configs."""

    def __init__(self, spec: SweepSpec, config: LineConfig) -> None:
        self.spec = spec
        self.base = config
        self._data = config.model_dump(mode="json")
        self.targets: list[FactorTarget] = []
        for index, factor in enumerate(spec.factors):
            where = f"factors[{index}] ({factor.name})"
            try:
                target = resolve_factor(factor.name, config)
            except KeyError as exc:
                raise SweepSpecError(f"{where}: {exc.args[0]}") from None
            current = self._value_at(target.path)
            whole = isinstance(current, int) and not isinstance(current, bool)
            if whole and factor.levels is None and not factor.integer:
                raise SweepSpecError(f"{where}: a whole-number field; add integer: true")
            self.targets.append(target)
        for index, (factor, target) in enumerate(zip(spec.factors, self.targets, strict=True)):
            for level in factor.extremes():
                self._check_level(index, factor, target, level)

    def _check_level(self, index: int, factor: Factor, target: FactorTarget, level: Level) -> None:
        """One factor's level on the base config; failing that, beside the other factors'
        first levels (a wip_cap needs the conwip level of a release.policy factor)."""
        where = f"factors[{index}] ({factor.name}) = {level!r}"
        try:
            parse_config(_apply(self._data, [target], {factor.name: level}), where)
        except ConfigError as alone:
            others = {other.name: other.extremes()[0] for other in self.spec.factors}
            try:
                parse_config(
                    _apply(self._data, self.targets, {**others, factor.name: level}), where
                )
            except ConfigError:
                raise SweepSpecError(str(alone)) from None

    def _value_at(self, path: tuple[PathPart, ...]) -> Any:
        node: Any = self._data
        for part in path:
            if node is None:
                return None
            node = node[part]
        return node

    def config(self, point: DesignPoint) -> LineConfig:
        where = f"design point {point.index} {point.values}"
        try:
            return parse_config(_apply(self._data, self.targets, point.values), where)
        except ConfigError as exc:
            raise SweepSpecError(str(exc)) from None


__all__ = [
    "DesignConfigs",
    "DesignPoint",
    "Factor",
    "FactorTarget",
    "SweepSpec",
    "SweepSpecError",
    "design_points",
    "load_spec",
    "parse_spec",
    "resolve_factor",
    "spec_config_path",
    "with_overrides",
]
