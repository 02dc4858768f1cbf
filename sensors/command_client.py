"""Sending commands to a running line and collecting its answers.

The caller's side of the command channel (docs/mqtt.md): each command goes to
its station's ``cmd`` topic (or the line's), and the line answers each on the
matching ``cmd/ack`` topic with the command's id, accepted or rejected with a
reason. The acks are subscribed before anything is sent, so a fast answer is
never missed. ``factory-twin cmd`` sends one command this way, and
``factory-twin optimize --apply`` sends a recommendation's setpoints.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from sensors.mqtt import BrokerAddress, connect, disconnect, new_client
from sensors.topics import LineTopics
from twin.contract import SCHEMA_VERSION

SUBSCRIBE_TIMEOUT_S = 5.0


@dataclass
class Command:
    """One command: ``target`` is a station id, or None for the line."""

    target: str | None
    action: str
    fields: dict[str, Any] = field(default_factory=dict)
    command_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def command_payload(command: Command, source: str) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "ts_ms": time.time_ns() // 1_000_000,
        "source": source,
        "command_id": command.command_id,
        "action": command.action,
        **command.fields,
    }


def send_commands(
    address: BrokerAddress,
    topics: LineTopics,
    commands: Sequence[Command],
    *,
    timeout: float = 5.0,
    source: str | None = None,
) -> dict[str, dict[str, Any] | None]:
    """Send ``commands`` in order and wait up to ``timeout`` seconds for their acks.

    Returns each command's ack by command id; None where none came in time.
    Raises ``sensors.mqtt.MqttError`` when the broker cannot be reached.
    """
    sender = source or f"factory-twin-cli-{uuid.uuid4().hex[:8]}"
    wanted = {command.command_id for command in commands}
    answers: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    all_answered = threading.Event()
    ack_topics = sorted({topics.ack_for(command.target) for command in commands})
    subscribed = threading.Event()
    pending_subscriptions = [len(ack_topics)]

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            ack = json.loads(message.payload)
        except ValueError:
            return
        if not isinstance(ack, dict) or ack.get("command_id") not in wanted:
            return
        with lock:
            answers[str(ack["command_id"])] = ack
            if len(answers) == len(wanted):
                all_answered.set()

    def on_subscribe(*_: object) -> None:
        with lock:
            pending_subscriptions[0] -= 1
            if pending_subscriptions[0] <= 0:
                subscribed.set()

    # The client id is this call's own: a broker drops the older of two connections
    # with one id, so callers that share a source (the API's concurrent requests)
    # would knock each other off. The payload's source stays the caller's name.
    client = new_client(f"{sender}-{uuid.uuid4().hex[:12]}" if source else sender)
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    connect(client, address)
    try:
        for topic in ack_topics:
            client.subscribe(topic, qos=1)
        subscribed.wait(SUBSCRIBE_TIMEOUT_S)
        deadline = time.monotonic() + timeout
        for command in commands:
            topic = (
                topics.line_command
                if command.target is None
                else topics.station(command.target, "cmd")
            )
            payload = json.dumps(command_payload(command, sender))
            client.publish(topic, payload, qos=1).wait_for_publish(timeout)
        if wanted:
            all_answered.wait(max(0.0, deadline - time.monotonic()))
    finally:
        disconnect(client)
    with lock:
        return {command.command_id: answers.get(command.command_id) for command in commands}


__all__ = ["Command", "command_payload", "send_commands"]
