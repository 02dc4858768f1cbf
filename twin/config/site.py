"""The site configuration: several production lines in one plant, sharing resources.

A site file names the site (the ISA-95 ``site`` level of every topic) and lists
its lines. Each line comes from a line config file (``config:``, relative to the
site file; ``default`` is the packaged demo line) or is written inline
(``inline:``), and the entry may rename it (``id``, ``name``) or move it to
another area (``area``). Every line of the file belongs to this site: its
``line.site`` is set from the site's id, whatever its own file said.

Resources that several lines share are listed beside the lines. A shared repair
crew serves the breakdowns of all its lines from one pool of technicians, in
the order the machines broke down, and replaces the lines' own ``repair_crew``
inside the site (a line run alone, by ``simulate`` or a what-if, keeps its own).

Loading never raises a raw traceback: every problem becomes a ``ConfigError``
that names the field (``lines[1].id``, ``shared_repair_crews[0].lines[2]``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from twin.config.line import (
    ConfigError,
    Identifier,
    LineConfig,
    RepairCrew,
    load_config,
    parse_config,
    read_yaml,
    with_changes,
)
from twin.errors import problem_list

SiteId = str
LineId = str
# ``config: default`` names the packaged demo line rather than a file.
PACKAGED_DEFAULT = "default"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SiteInfo(_Strict):
    id: Identifier
    name: str = ""


class SiteLine(_Strict):
    """One line of the site, as the site file lists it."""

    config: Annotated[str, Field(min_length=1)] | None = Field(
        default=None,
        description="A line config file, relative to the site file; 'default' is the "
        "packaged demo line.",
    )
    inline: dict[str, Any] | None = Field(
        default=None, description="A whole line config, written in the site file."
    )
    id: Identifier | None = Field(default=None, description="Replaces the config's line.id.")
    name: str | None = Field(default=None, description="Replaces the config's line.name.")
    area: Identifier | None = Field(default=None, description="Replaces the config's line.area.")

    @model_validator(mode="after")
    def _one_source(self) -> SiteLine:
        if (self.config is None) == (self.inline is None):
            raise ValueError("give either config (a file) or inline (a line config), not both")
        return self


class SharedRepairCrew(_Strict):
    """Technicians who repair the breakdowns of several lines, one at a time each."""

    id: Identifier
    size: Annotated[int, Field(ge=1, le=10_000)]
    lines: Annotated[list[Identifier], Field(min_length=1, max_length=1000)]


class SiteFile(_Strict):
    """The site file as written: lines by reference or inline."""

    site: SiteInfo
    lines: Annotated[list[SiteLine], Field(min_length=1, max_length=100)]
    shared_repair_crews: list[SharedRepairCrew] = []


class SiteConfig(_Strict):
    """A resolved site: every line's config loaded, renamed and placed in the site."""

    site: SiteInfo
    lines: Annotated[list[LineConfig], Field(min_length=1, max_length=100)]
    shared_repair_crews: list[SharedRepairCrew] = []

    @model_validator(mode="after")
    def _check_references(self) -> SiteConfig:
        seen: dict[str, int] = {}
        for index, line in enumerate(self.lines):
            line_id = line.line.id
            if line_id in seen:
                raise ValueError(
                    f"lines[{index}].id: line id {line_id!r} is used twice "
                    f"(lines[{seen[line_id]}] has it); give one of them another id"
                )
            seen[line_id] = index
            if line.line.site != self.site.id:
                raise ValueError(
                    f"lines[{index}].line.site: {line.line.site!r} is not this site "
                    f"({self.site.id!r})"
                )
        crew_of: dict[str, str] = {}
        crew_ids: set[str] = set()
        for index, crew in enumerate(self.shared_repair_crews):
            if crew.id in crew_ids:
                raise ValueError(
                    f"shared_repair_crews[{index}].id: crew id {crew.id!r} is used twice"
                )
            crew_ids.add(crew.id)
            for position, line_id in enumerate(crew.lines):
                where = f"shared_repair_crews[{index}].lines[{position}]"
                if line_id not in seen:
                    raise ValueError(
                        f"{where}: unknown line {line_id!r}; the site's lines are {list(seen)}"
                    )
                if line_id in crew_of:
                    raise ValueError(
                        f"{where}: line {line_id!r} is already served by crew "
                        f"{crew_of[line_id]!r}; a line has one repair crew"
                    )
                crew_of[line_id] = crew.id
        return self

    @property
    def line_ids(self) -> list[LineId]:
        return [line.line.id for line in self.lines]

    def line(self, line_id: LineId) -> LineConfig:
        for line in self.lines:
            if line.line.id == line_id:
                return line
        raise KeyError(line_id)

    def crew_of(self, line_id: LineId) -> SharedRepairCrew | None:
        """The shared crew that repairs ``line_id``'s breakdowns, if any."""
        for crew in self.shared_repair_crews:
            if line_id in crew.lines:
                return crew
        return None

    def separate_crews(self) -> SiteConfig:
        """The same site with every shared crew split: each of its lines gets a crew
        of the same size to itself. The counterfactual that shows what sharing costs."""
        lines = []
        for line in self.lines:
            crew = self.crew_of(line.line.id)
            if crew is not None:
                line = line.model_copy(update={"repair_crew": RepairCrew(size=crew.size)})
            lines.append(line)
        return SiteConfig(site=self.site, lines=lines, shared_repair_crews=[])


def line_seed(seed: int, line_id: LineId) -> int:
    """The seed of one line of a site: stable, and different for every line."""
    digest = hashlib.sha256(f"{seed}/{line_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _problems(exc: ValidationError, source: str, what: str) -> ConfigError:
    # The cross-reference checks above name the field in the message itself.
    return ConfigError(problem_list(exc, source, what, top_level=None))


def _resolve_line(
    entry: SiteLine, index: int, site: SiteInfo, base: Path, source: str
) -> LineConfig:
    where = f"{source}: lines[{index}]"
    try:
        if entry.inline is not None:
            config = parse_config(entry.inline, f"{where}.inline")
        elif entry.config == PACKAGED_DEFAULT:
            config = load_config(None)
        else:
            assert entry.config is not None  # noqa: S101 - checked by SiteLine
            config = load_config(base / entry.config)
    except ConfigError as exc:
        if entry.inline is not None:
            raise
        raise ConfigError(f"{where}.config: {exc}") from None
    changes: dict[str, Any] = {"line.site": site.id}
    for name in ("id", "name", "area"):
        value = getattr(entry, name)
        if value is not None:
            changes[f"line.{name}"] = value
    return with_changes(config, changes, where)


def parse_site(data: object, source: str = "<site>", base: Path | None = None) -> SiteConfig:
    """Validate already-parsed YAML into a ``SiteConfig``; line files are relative to ``base``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with 'site' and 'lines'")
    try:
        written = SiteFile.model_validate(data)
    except ValidationError as exc:
        raise _problems(exc, source, "site config") from None
    base = base if base is not None else Path.cwd()
    lines = [
        _resolve_line(entry, index, written.site, base, source)
        for index, entry in enumerate(written.lines)
    ]
    try:
        return SiteConfig(
            site=written.site, lines=lines, shared_repair_crews=written.shared_repair_crews
        )
    except ValidationError as exc:
        raise _problems(exc, source, "site config") from None


def load_site(path: str | Path) -> SiteConfig:
    """Load a site config from YAML; its line files are relative to it."""
    file = Path(path)
    return parse_site(read_yaml(file, "site file"), str(file), file.parent)
