"""MQTT client plumbing shared by the plant's publisher and the twin's ingest.

Clients use paho-mqtt 2.x with VERSION2 callbacks and MQTT 3.1.1, which every
broker we support speaks (the embedded amqtt broker speaks nothing newer).
Connecting waits for the broker's CONNACK, so a wrong address or a refused
login fails at start with a message that says what to do, not later in a
callback nobody reads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

DEFAULT_PORT = 1883
CONNECT_TIMEOUT_S = 10.0


class MqttError(RuntimeError):
    """A broker that cannot be used, with a message for humans."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:
        # Never print the password.
        user = f"{self.username}@" if self.username else ""
        return f"mqtt://{user}{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> BrokerAddress:
    """Parse ``mqtt://[user[:password]@]host[:port]``."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt":
        raise MqttError(
            f"mqtt_url {url!r}: scheme must be 'mqtt' (for example mqtt://127.0.0.1:1883)"
        )
    if not parts.hostname:
        raise MqttError(f"mqtt_url {url!r}: no host (for example mqtt://127.0.0.1:1883)")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise MqttError(f"mqtt_url {url!r}: the port is not a number in 1-65535") from None
    return BrokerAddress(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def new_client(client_id: str, *, persistent: bool = False) -> mqtt.Client:
    """A paho client; ``persistent`` asks the broker to keep its session
    (subscriptions and queued QoS 1 messages) while it is disconnected."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        clean_session=not persistent,
    )
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    # Never drop a queued message inside paho; the broker-side limits are ours too.
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(100)
    return client


def connect(
    client: mqtt.Client, address: BrokerAddress, timeout: float = CONNECT_TIMEOUT_S
) -> None:
    """Connect, start the network thread and wait for the broker's answer.

    Call ``will_set`` and set callbacks before this. Any ``on_connect`` already
    set on the client is still called.
    """
    if address.username:
        client.username_pw_set(address.username, address.password)
    answered = threading.Event()
    outcome: dict[str, object] = {}
    user_on_connect: Any = client.on_connect

    def on_connect(
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        outcome["reason"] = reason_code
        answered.set()
        if user_on_connect is not None:
            user_on_connect(client, userdata, flags, reason_code, properties)

    client.on_connect = on_connect
    try:
        client.connect(address.host, address.port, keepalive=30)
    except OSError as exc:
        raise MqttError(
            f"cannot reach the MQTT broker at {address}: {exc.strerror or exc}. "
            "Is it running? Leave mqtt_url unset to use the embedded broker."
        ) from None
    client.loop_start()
    if not answered.wait(timeout):
        client.loop_stop()
        raise MqttError(f"the MQTT broker at {address} did not answer within {timeout:.0f} s")
    reason = outcome["reason"]
    if isinstance(reason, ReasonCode) and reason.is_failure:
        client.loop_stop()
        client.disconnect()
        raise MqttError(f"the MQTT broker at {address} refused the connection: {reason}")


def disconnect(client: mqtt.Client) -> None:
    try:
        client.disconnect()
    finally:
        client.loop_stop()
