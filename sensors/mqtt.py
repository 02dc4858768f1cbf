"""MQTT client plumbing shared by the plant's publisher and the twin's ingest.

Clients use paho-mqtt 2.x with VERSION2 callbacks and MQTT 3.1.1, which every
broker we support speaks (the embedded brokers listen for nothing newer).
Connecting waits for the broker's CONNACK, so a wrong address or a refused
login fails at start with a message that says what to do, not later in a
callback nobody reads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

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


# Bytes read from the kernel at once, and packets handled per wake-up at most
# (so that writes, acknowledgements and keep-alives still get their turn).
READ_AHEAD_BYTES = 64 * 1024
MAX_PACKETS_PER_READ = 128


class _SocketProxy:
    """Stands in for a socket, passing on what it does not change."""

    __slots__ = ("_sock",)

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        fileno: int = self._sock.fileno()
        return fileno


class ReadAheadSocket(_SocketProxy):
    """A paho socket that reads ahead: one ``recv`` serves many small packets.

    paho reads each packet's header a byte at a time, so a 200-byte telemetry
    sample costs four system calls and as many hand-overs of the interpreter
    lock. This wrapper fetches what the kernel has (up to ``READ_AHEAD_BYTES``)
    and hands it out from memory. ``pending()`` reports what it holds; paho
    checks it (as it does for TLS sockets) and reads on instead of waiting in
    ``select()`` for bytes that have already arrived.
    """

    __slots__ = ("_buffer", "_pos")

    def __init__(self, sock: Any) -> None:
        super().__init__(sock)
        self._buffer = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        if self._pos >= len(self._buffer):
            # Nothing held: read what the kernel has. BlockingIOError (nothing
            # there) and b"" (closed) reach paho as from a plain socket.
            data: bytes = self._sock.recv(max(size, READ_AHEAD_BYTES))
            if len(data) <= size:
                return data
            self._buffer, self._pos = data, 0
        start = self._pos
        self._pos = min(start + size, len(self._buffer))
        return self._buffer[start : self._pos]

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._buffer) - self._pos + inner

    def send(self, buffer: bytes | bytearray) -> int:
        sent: int = self._sock.send(buffer)
        return sent

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)


class _Wake:
    """Whether a wake-up byte sits unread in paho's socket pair."""

    __slots__ = ("armed",)

    def __init__(self) -> None:
        self.armed = False


class _WakeWriter(_SocketProxy):
    """paho's wake-up socket, writing only when no wake-up is pending."""

    __slots__ = ("_wake",)

    def __init__(self, sock: Any, wake: _Wake) -> None:
        super().__init__(sock)
        self._wake = wake

    def send(self, data: bytes) -> int:
        if self._wake.armed:
            return len(data)
        self._wake.armed = True
        sent: int = self._sock.send(data)
        return sent


class _WakeReader(_WakeWriter):
    __slots__ = ()

    def recv(self, size: int) -> bytes:
        data: bytes = self._sock.recv(size)
        # Cleared after reading: a packet queued from here on gets its own
        # wake-up, and one queued before is written by the pass that follows.
        self._wake.armed = False
        return data


class Client(mqtt.Client):
    """paho's client, cheaper per message; the protocol and its handling are paho's.

    Three of paho's internals (paho-mqtt 2.x, pinned below 3) are extended,
    each small and exercised by every MQTT test:

    - the socket it creates is wrapped in ``ReadAheadSocket``;
    - one read wake-up handles every packet already received (up to
      ``MAX_PACKETS_PER_READ``) rather than one packet per ``select()``;
    - ``publish()`` from another thread wakes the network thread only when no
      wake-up is already pending (paho writes a byte to its socket pair for
      every message, so a flood costs a system call and a thread switch each).

    At our message rates these take about a third off the cost of a message
    (``bench/mqtt_throughput.py``).
    """

    @property
    def _sockpairR(self) -> Any:  # noqa: N802 - paho's name
        return self.__dict__.get("_wake_reader")

    @_sockpairR.setter
    def _sockpairR(self, sock: Any) -> None:  # noqa: N802
        wake = self.__dict__.setdefault("_wake", _Wake())
        wake.armed = False
        self.__dict__["_wake_reader"] = None if sock is None else _WakeReader(sock, wake)

    @property
    def _sockpairW(self) -> Any:  # noqa: N802
        return self.__dict__.get("_wake_writer")

    @_sockpairW.setter
    def _sockpairW(self, sock: Any) -> None:  # noqa: N802
        wake = self.__dict__.setdefault("_wake", _Wake())
        self.__dict__["_wake_writer"] = None if sock is None else _WakeWriter(sock, wake)

    def _create_socket(self) -> Any:
        return ReadAheadSocket(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        for _ in range(MAX_PACKETS_PER_READ):
            sock = self._sock
            if rc != mqtt.MQTT_ERR_SUCCESS or not isinstance(sock, ReadAheadSocket):
                break
            if sock.pending() == 0:
                break
            rc = super().loop_read(max_packets)
        return rc


def new_client(client_id: str, *, persistent: bool = False, mqtt5: bool = False) -> mqtt.Client:
    """A paho client; ``persistent`` asks the broker to keep its session
    (subscriptions and queued QoS 1 messages) while it is disconnected;
    ``mqtt5`` speaks MQTT 5 (shared subscriptions), else MQTT 3.1.1."""
    if mqtt5:
        client = Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    else:
        client = Client(
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
            if getattr(client, "_protocol", None) == mqtt.MQTTv5
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
