"""The MQTT topic tree, ISA-95 shaped and versioned.

Station topics are ``{root}/v1/{site}/{area}/{line}/{station}/{channel}`` with
channel ``telemetry``, ``event``, ``state``, ``cmd`` or ``cmd/ack``. The line's
retained status (birth message and last will) is ``{root}/v1/{site}/{area}/{line}/status``,
and line commands go to ``.../{line}/cmd`` with answers on ``.../{line}/cmd/ack``.
The twin's alarms (1.3) are retained on ``.../{line}/alarms/{kind}/{station}/{what}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from twin.contract import SUPPORTED_MAJOR

Channel = Literal["telemetry", "event", "state", "cmd", "cmd/ack", "status", "alarms"]
STATION_CHANNELS: frozenset[str] = frozenset({"telemetry", "event", "state", "cmd", "cmd/ack"})
DEFAULT_ROOT = "factory"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    station: str | None
    channel: Channel


@dataclass(frozen=True, slots=True)
class LineTopics:
    """Topic names of one line."""

    site: str
    area: str
    line: str
    root: str = DEFAULT_ROOT
    # Computed once: parse() runs for every message on the ingest's hot path.
    prefix: str = field(init=False, repr=False, compare=False)
    _prefix_slash: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        prefix = f"{self.root}/v{SUPPORTED_MAJOR}/{self.site}/{self.area}/{self.line}"
        object.__setattr__(self, "prefix", prefix)
        object.__setattr__(self, "_prefix_slash", prefix + "/")

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def line_command(self) -> str:
        return f"{self.prefix}/cmd"

    @property
    def line_ack(self) -> str:
        return f"{self.prefix}/cmd/ack"

    @property
    def station_commands(self) -> str:
        """A filter for every station's command topic."""
        return f"{self.prefix}/+/cmd"

    def ack_for(self, station: str | None) -> str:
        return self.line_ack if station is None else self.station(station, "cmd/ack")

    @property
    def subscription(self) -> str:
        """A filter that matches every topic of this line."""
        return f"{self.prefix}/#"

    def alarm(self, kind: str, station: str | None, what: str | None) -> str:
        """The retained topic of one alarm (``-`` for what it names none of)."""
        return f"{self.prefix}/alarms/{kind}/{station or '-'}/{what or '-'}"

    @property
    def alarms(self) -> str:
        """Every alarm of the line."""
        return f"{self.prefix}/alarms/#"

    def station(self, station: str, channel: Channel) -> str:
        if channel == "status":
            raise ValueError("status is a line topic, not a station topic")
        return f"{self.prefix}/{station}/{channel}"

    def parse(self, topic: str) -> ParsedTopic | None:
        """Station and channel of a topic of this line, or None if it is not one."""
        if not topic.startswith(self._prefix_slash):
            return None
        rest = topic[len(self._prefix_slash) :]
        if rest in ("status", "cmd", "cmd/ack"):
            return ParsedTopic(None, rest)  # type: ignore[arg-type]
        if rest.startswith("alarms/"):
            return ParsedTopic(None, "alarms")
        station, _, channel = rest.partition("/")
        if not station or channel not in STATION_CHANNELS:
            return None
        return ParsedTopic(station, channel)  # type: ignore[arg-type]
