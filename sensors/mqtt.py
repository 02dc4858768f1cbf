"""MQTT client plumbing shared by the plant's publisher and the twin's ingest.

Clients use paho-mqtt 2.x with VERSION2 callbacks and MQTT 3.1.1, which every
broker we support speaks (the embedded brokers listen for nothing newer).
Connecting waits for the broker's CONNACK, so a wrong address or a refused
login fails at start with a message that says what to do, not later in a
callback nobody reads. The client's speed-ups, which reach into paho's
internals, live in ``sensors.paho_internals`` with the check that guards them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from sensors.paho_internals import client_class

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
CONNECT_TIMEOUT_S = 10.0


class MqttError(RuntimeError):
    """A broker that cannot be used, with a message for humans."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int = DEFAULT_PORT
    username: str | None = None
    # Never printed: not in repr(), not in str().
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{user}{self.host}:{self.port}"

    def with_login(self, username: str | None, password: str | None) -> BrokerAddress:
        """This address with other credentials (none given: keep these)."""
        if username is None:
            return self
        return replace(self, username=username, password=password)

    def with_tls(
        self, ca_file: str | None, cert_file: str | None = None, key_file: str | None = None
    ) -> BrokerAddress:
        """This address over TLS, trusting ``ca_file`` (default: the system's CAs)."""
        if not (self.tls or ca_file or cert_file):
            return self
        return replace(self, tls=True, ca_file=ca_file, cert_file=cert_file, key_file=key_file)


def parse_mqtt_url(url: str) -> BrokerAddress:
    """Parse ``mqtt://[user[:password]@]host[:port]`` (``mqtts://`` for TLS)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise MqttError(
            f"mqtt_url {_redact(url)!r}: scheme must be 'mqtt' or 'mqtts' "
            "(for example mqtt://127.0.0.1:1883)"
        )
    tls = parts.scheme == "mqtts"
    if not parts.hostname:
        raise MqttError(f"mqtt_url {_redact(url)!r}: no host (for example mqtt://127.0.0.1:1883)")
    try:
        port = parts.port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT)
    except ValueError:
        raise MqttError(f"mqtt_url {_redact(url)!r}: the port is not a number in 1-65535") from None
    return BrokerAddress(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


def _redact(url: str) -> str:
    """The URL with any password replaced, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def new_client(client_id: str, *, persistent: bool = False, mqtt5: bool = False) -> mqtt.Client:
    """A paho client; ``persistent`` asks the broker to keep its session
    (subscriptions and queued QoS 1 messages) while it is disconnected;
    ``mqtt5`` speaks MQTT 5 (shared subscriptions), else MQTT 3.1.1."""
    # paho's own client where its internals are not as verified (sensors.paho_internals).
    make = client_class()
    if mqtt5:
        client = make(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    else:
        client = make(
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
    if address.tls:
        try:
            client.tls_set(
                ca_certs=address.ca_file, certfile=address.cert_file, keyfile=address.key_file
            )
        except (OSError, ValueError) as exc:
            raise MqttError(f"TLS setup for {address} failed: {exc}") from None
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

    user_on_disconnect: Any = client.on_disconnect

    def on_disconnect(
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        # Closed before any CONNACK: how some brokers (rumqttd) refuse a login.
        if not answered.is_set():
            outcome["closed"] = True
            answered.set()
        if user_on_disconnect is not None:
            user_on_disconnect(client, userdata, flags, reason_code, properties)

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect(address.host, address.port, keepalive=30)
    except OSError as exc:
        raise MqttError(
            f"cannot reach the MQTT broker at {address}: {exc.strerror or exc}"
        ) from None
    client.loop_start()
    if not answered.wait(timeout):
        client.loop_stop()
        raise MqttError(f"the MQTT broker at {address} did not answer within {timeout:.0f} s")
    if outcome.get("closed"):
        client.loop_stop()
        client.disconnect()
        who = f"user {address.username!r}" if address.username else "no user name given"
        # An MQTT 3.1.1 broker may close an MQTT 5 CONNECT the same way.
        protocol = (
            "it may not speak MQTT 5 (protocol version), or "
            if client.protocol == mqtt.MQTTv5
            else ""
        )
        raise MqttError(
            f"the MQTT broker at {address} refused the connection: it closed it without "
            f"accepting it; {protocol}it does not take this login ({who}): check the MQTT "
            "user name and password settings"
        )
    reason = outcome["reason"]
    if isinstance(reason, ReasonCode) and reason.is_failure:
        client.loop_stop()
        client.disconnect()
        hint = ""
        if str(reason) in ("Not authorized", "Bad user name or password"):
            hint = (
                f" (user {address.username!r})" if address.username else " (no user name given)"
            ) + "; check the MQTT user name and password settings"
        raise MqttError(f"the MQTT broker at {address} refused the connection: {reason}{hint}")


def disconnect(client: mqtt.Client) -> None:
    try:
        client.disconnect()
    finally:
        client.loop_stop()
