"""The lines a broker carries, from their retained status messages.

Every line keeps its status retained at ``{root}/v1/{site}/{area}/{line}/status``
(docs/mqtt.md): the birth message while it runs, its last will once it is gone.
A subscriber to ``{root}/v1/+/+/+/status`` therefore gets one message per line
that ever announced itself on the broker, online or not, and nothing else. ``up
--twin-only`` without a line file finds the line it mirrors this way.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from sensors.mqtt import BrokerAddress, MqttError, connect, disconnect, new_client
from sensors.topics import DEFAULT_ROOT
from twin.contract import SUPPORTED_MAJOR, LineStatus

# After the subscription is granted the broker sends the retained messages at
# once; the search ends this long after the last one came.
QUIET_S = 0.5
SUBSCRIBE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class FoundLine:
    """One line that announced itself: where, whether it is online, and what it said."""

    site: str
    area: str
    line: str
    # online or offline; None when its status message cannot be read.
    status: str | None
    name: str | None = None
    stations: int | None = None

    @property
    def ref(self) -> str:
        return f"{self.site}/{self.area}/{self.line}"


def _found(topic: str, payload: bytes) -> FoundLine | None:
    parts = topic.split("/")
    if len(parts) != 6 or parts[5] != "status":
        return None
    site, area, line = parts[2:5]
    if not payload:  # a cleared retained message: the line was removed
        return None
    try:
        status = LineStatus.model_validate_json(payload)
    except ValidationError:
        return FoundLine(site, area, line, None)
    description = status.description
    return FoundLine(
        site,
        area,
        line,
        status.status,
        description.name if description is not None else None,
        len(description.stations) if description is not None else None,
    )


def find_lines(
    address: BrokerAddress, *, root: str = DEFAULT_ROOT, wait_s: float = 5.0
) -> list[FoundLine]:
    """The lines whose status the broker holds, sorted by site, area and line.
    Waits until the retained messages have come (``QUIET_S`` without a new one)
    or ``wait_s`` has passed. Raises ``MqttError`` when the broker cannot be reached."""
    found: dict[str, FoundLine] = {}
    lock = threading.Lock()
    subscribed = threading.Event()
    last = [time.monotonic()]

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        line = _found(message.topic, bytes(message.payload))
        with lock:
            last[0] = time.monotonic()
            if line is not None:
                found[line.ref] = line

    def on_subscribe(client: mqtt.Client, userdata: object, *args: object) -> None:
        last[0] = time.monotonic()
        subscribed.set()

    client = new_client(f"factory-twin-find-{uuid.uuid4().hex[:8]}")
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    connect(client, address)
    try:
        client.subscribe(f"{root}/v{SUPPORTED_MAJOR}/+/+/+/status", qos=1)
        if not subscribed.wait(SUBSCRIBE_TIMEOUT_S):
            raise MqttError(f"the broker at {address} did not grant a subscription")
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with lock:
                quiet = time.monotonic() - last[0] >= QUIET_S
                any_found = bool(found)
            if quiet and any_found:
                break
            time.sleep(0.05)
    finally:
        disconnect(client)
    return sorted(found.values(), key=lambda line: (line.site, line.area, line.line))


__all__ = ["FoundLine", "find_lines"]
