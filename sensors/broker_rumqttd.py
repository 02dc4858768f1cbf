"""The default embedded broker: rumqttd, compiled into the ``iotcore`` wheel.

rumqttd is a broker written in Rust; the ``iotcore`` wheel from PyPI carries it
compiled for Linux, macOS and Windows, so it installs with the rest of the
project and needs no system package. ``iotcore.Broker`` runs it in a child
process (rumqttd has no shutdown call): the broker then has a core of its own
instead of taking turns with the plant, the twin and the API for one
interpreter, which is what held the in-process amqtt to about a third of what
the bottling line publishes at 60x (docs/scaling.md). The child ends with its
parent: it reads a pipe from the parent and exits once that closes, which the
kernel does when the parent dies, even by kill -9.

What the twin needs of a broker, and how rumqttd is set up for it:

- logins: its ``auth`` table of user names and passwords, the twin's and the
  plant's (anyone else is refused: rumqttd closes the connection without a
  CONNACK, which ``sensors.mqtt.connect`` reports as a refused login);
- retained messages, the last will, QoS 1, persistent sessions, MQTT 3.1.1:
  rumqttd's own, each exercised by the broker tests;
- bounded memory: rumqttd keeps every topic's messages in a log of segments
  and drops the oldest segment past ``SEGMENT_COUNT``, whether read or not, so
  the broker holds at most ``SEGMENT_BYTES * SEGMENT_COUNT`` per topic (a
  subscriber further behind than that on a topic loses the oldest messages,
  and the ingest counts the gap);
- the largest message: ``MAX_MESSAGE_BYTES``; a client that publishes a larger
  one is disconnected (the ingest's own limit, 64 KiB by default, is lower).

The config goes to the child in a file readable only by this user, removed as
soon as the broker listens: it holds the passwords.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sensors.mqtt import MqttError

log = logging.getLogger(__name__)
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 3.0
# The largest message the broker takes: above every limit the ingest allows by
# default, and no larger than one segment (rumqttd requires that).
MAX_MESSAGE_BYTES = 1024 * 1024
SEGMENT_BYTES = MAX_MESSAGE_BYTES
# Segments kept per topic: at 60x the busiest topic of a shipped line carries
# about 15 KB/s, so 8 MiB is several minutes of a twin that fell behind.
SEGMENT_COUNT = 8
# Messages handed to a connection per pass of the router, and unacknowledged
# QoS 1 messages per connection.
OUTGOING_BATCH = 200
MAX_INFLIGHT = 100


def _toml_string(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=True)


def rumqttd_config(host: str, port: int, logins: Mapping[str, str]) -> str:
    """rumqttd's TOML config: one MQTT 3.1.1 listener on ``host:port``, taking only
    ``logins`` (user name to password) when there are any."""
    auth = ""
    if logins:
        pairs = ", ".join(
            f"{_toml_string(user)} = {_toml_string(password)}" for user, password in logins.items()
        )
        auth = f"auth = {{ {pairs} }}\n"
    return (
        "id = 0\n"
        "[router]\n"
        "id = 0\n"
        "max_connections = 1000\n"
        f"max_outgoing_packet_count = {OUTGOING_BATCH}\n"
        f"max_segment_size = {SEGMENT_BYTES}\n"
        f"max_segment_count = {SEGMENT_COUNT}\n"
        "[v4.1]\n"
        'name = "v4-1"\n'
        f"listen = {_toml_string(f'{host}:{port}')}\n"
        "next_connection_delay_ms = 1\n"
        "[v4.1.connections]\n"
        "connection_timeout_ms = 60000\n"
        f"max_payload_size = {MAX_MESSAGE_BYTES}\n"
        f"max_inflight_count = {MAX_INFLIGHT}\n"
        "dynamic_filters = true\n" + auth
    )


def rumqttd_available() -> bool:
    try:
        import iotcore  # noqa: F401
    except ImportError:
        return False
    return True


class RumqttdBroker:
    """rumqttd in a child process, listening on ``host:port``."""

    kind = "rumqttd"

    def __init__(self, host: str, port: int, logins: Mapping[str, str]) -> None:
        self.host = host
        self.port = port
        self.logins = dict(logins)
        self._broker: Any = None

    @property
    def pid(self) -> int | None:
        process = getattr(self._broker, "_process", None)
        return None if process is None else int(process.pid)

    def start(self) -> None:
        from iotcore import Broker

        with tempfile.TemporaryDirectory(prefix="factory-twin-broker-") as folder:
            path = Path(folder) / "rumqttd.toml"
            # Created readable by this user only, before the passwords go in.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(rumqttd_config(self.host, self.port, self.logins))
            try:
                broker = Broker(config_path=str(path))
                broker.start(timeout=START_TIMEOUT_S)
            except (OSError, RuntimeError, ValueError) as exc:
                raise MqttError(
                    f"the embedded MQTT broker (rumqttd) failed to start: {exc}"
                ) from None
            # The child has read its config; the passwords leave the disk here.
        self._broker = broker
        log.info("embedded MQTT broker (rumqttd) listening on %s:%d", self.host, self.port)

    def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            broker.stop(timeout=STOP_TIMEOUT_S)


__all__ = ["MAX_MESSAGE_BYTES", "RumqttdBroker", "rumqttd_available", "rumqttd_config"]
