"""The Sparkplug B topic namespace, and how the ISA-95 line maps onto it.

Sparkplug topics are ``spBv1.0/{group_id}/{message_type}/{edge_node_id}[/{device_id}]``.
A line is one edge node: the group is the line's site and area joined by a colon
(``plant-a:fabrication``), the edge node id is the line id, and each station is
a device of it. Our ids are lower case letters, digits, ``_`` and ``-``, so the
colon cannot be part of one and the group names its site and area without
ambiguity. Sparkplug ids may not hold ``/``, ``+`` or ``#`` (they are topic
levels); ``SparkplugIds`` refuses them. The group can be set
(``FACTORY_TWIN_SPARKPLUG_GROUP``) for a host that groups its nodes otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NAMESPACE = "spBv1.0"
MessageType = Literal[
    "NBIRTH", "NDEATH", "NDATA", "NCMD", "DBIRTH", "DDEATH", "DDATA", "DCMD", "STATE"
]
MESSAGE_TYPES: frozenset[str] = frozenset(
    {"NBIRTH", "NDEATH", "NDATA", "NCMD", "DBIRTH", "DDEATH", "DDATA", "DCMD"}
)
_FORBIDDEN = set("/+#")


def check_id(kind: str, value: str) -> str:
    """``value`` as a Sparkplug ``kind`` id, or a ValueError saying why not."""
    if not value or _FORBIDDEN & set(value):
        raise ValueError(f"Sparkplug {kind} {value!r} must be non-empty, without / + or #")
    return value


def default_group(site: str, area: str) -> str:
    return f"{site}:{area}"


@dataclass(frozen=True, slots=True)
class ParsedSparkplugTopic:
    message_type: str
    edge_node: str
    device: str | None


@dataclass(frozen=True, slots=True)
class SparkplugIds:
    """The group and edge node ids of one line."""

    group: str
    node: str

    def __post_init__(self) -> None:
        check_id("group_id", self.group)
        check_id("edge_node_id", self.node)

    @classmethod
    def for_line(cls, site: str, area: str, line: str, group: str | None = None) -> SparkplugIds:
        return cls(group or default_group(site, area), line)

    def topic(self, message_type: MessageType, device: str | None = None) -> str:
        base = f"{NAMESPACE}/{self.group}/{message_type}/{self.node}"
        return base if device is None else f"{base}/{check_id('device_id', device)}"

    @property
    def subscription(self) -> str:
        """Every message of the group (a host's view of it)."""
        return f"{NAMESPACE}/{self.group}/#"

    @property
    def commands(self) -> list[str]:
        """What the edge node listens to: its NCMD and its devices' DCMD."""
        return [self.topic("NCMD"), f"{self.topic('DCMD')}/+"]

    def parse(self, topic: str) -> ParsedSparkplugTopic | None:
        """The message type, edge node and device of a topic of this group; None if
        it is not one."""
        parts = topic.split("/")
        if len(parts) not in (4, 5) or parts[0] != NAMESPACE or parts[1] != self.group:
            return None
        if parts[2] not in MESSAGE_TYPES:
            return None
        device = parts[4] if len(parts) == 5 else None
        if parts[2].startswith("D") != (device is not None):
            return None
        return ParsedSparkplugTopic(parts[2], parts[3], device)
