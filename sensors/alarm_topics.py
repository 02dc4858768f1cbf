"""The twin's alarms on the line's MQTT tree, for a SCADA or an HMI to subscribe to.

Each alarm that is not normal is one retained message (``AlarmMessage``, QoS 1) on
``{prefix}/alarms/{kind}/{station}/{what}``: a subscriber to ``{prefix}/alarms/#``
gets every standing alarm at once, then each change as it comes. When an alarm is
normal again its retained message is removed (an empty retained message, as MQTT
defines it). The twin publishes on the client it already has (its ingest's): it
reads the line, so it can reach the broker, and nothing more needs a login.

Publishing never stops the twin: a publish the client refuses (the broker is
away) is counted (``refused``) and the next change of that alarm says its state
again; ``republish`` says every alarm again, as at a start.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import MQTT_ERR_SUCCESS

from sensors.topics import LineTopics
from twin.contract import SCHEMA_VERSION, AlarmMessage

log = logging.getLogger(__name__)


class AlarmTopics:
    """Publishes the line's alarms, retained, on its tree."""

    def __init__(self, client: mqtt.Client, topics: LineTopics, source: str | None = None) -> None:
        self.client = client
        self.topics = topics
        self.source = source or f"twin-{topics.line}-{uuid.uuid4().hex[:8]}"
        self.sent: Counter[str] = Counter()
        self.refused = 0
        self._seq: Counter[str] = Counter()
        self._lock = threading.Lock()

    def topic(self, kind: str, station: str | None, what: str | None) -> str:
        return self.topics.alarm(kind, station, what)

    def publish(self, topic: str, fields: dict[str, Any] | None) -> bool:
        """The alarm on ``topic`` as ``fields`` say it is (``AlarmMessage`` without
        the header), or removed (None: it is normal)."""
        with self._lock:
            if fields is None:
                payload = b""
            else:
                message = AlarmMessage(
                    schema_version=SCHEMA_VERSION,
                    ts_ms=time.time_ns() // 1_000_000,
                    seq=self._seq[topic],
                    source=self.source,
                    **fields,
                )
                self._seq[topic] += 1
                payload = message.model_dump_json().encode()
            info = self.client.publish(topic, payload, qos=1, retain=True)
            if info.rc != MQTT_ERR_SUCCESS:
                self.refused += 1
                log.warning("alarm on %s not published (paho rc %s)", topic, info.rc)
                return False
            self.sent["removed" if fields is None else "alarm"] += 1
            return True

    def health(self) -> dict[str, Any]:
        return {"sent": dict(self.sent), "refused": self.refused, "filter": self.topics.alarms}
