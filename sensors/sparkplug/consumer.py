"""The twin's ears on Sparkplug B: a host application for one line's edge node.

``SparkplugIngest`` subscribes to the line's Sparkplug group, keeps the alias map
each BIRTH gives, rebuilds from every DATA payload the contract message the JSON
tree carried (``sensors.sparkplug.metrics``) and hands it, as that JSON, to the
ingest's own pipeline (``Ingest.handle``): the same decoding, sequence checks,
twin state and ``on_accepted`` hook (learner, history). A twin fed this way is
the twin fed over JSON.

Session checks (Sparkplug 3.0, host side):

- Each NBIRTH starts a session: aliases from it and its DBIRTHs, seq from 0. Its
  line status, when it has one, goes to the twin as a birth message; a DBIRTH's
  station state as a state snapshot (what a retained JSON state would give a
  twin that joins late).
- A seq that is not the one expected (a message lost, 0 to 255 and round), a DATA
  or DBIRTH with no NBIRTH before it, or a DATA of a device with no DBIRTH, asks
  the node for a rebirth (NCMD ``Node Control/Rebirth`` = true; at most one every
  ``REBIRTH_INTERVAL_S`` while none came) and counts it. DATA after a gap is still
  used: its aliases have not changed, and the contract's own sequence numbers
  count what was lost.
- An NDEATH whose bdSeq is the session's ends it and tells the twin the line is
  offline, as the JSON last will does; one with another bdSeq (an older
  connection's will, delivered late) is counted and ignored.

A payload that cannot be used is dropped and counted by kind
(``sensors.sparkplug.codec.ERROR_KINDS``; ``/healthz`` ``ingest.sparkplug``):
not protobuf, too large, a missing field, an unknown alias, a value of the
wrong type, a NaN or infinite number, data before its birth. Nothing a payload
holds stops the ingest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import paho.mqtt.client as mqtt
from pydantic import BaseModel

from sensors.codec import DEFAULT_MAX_PAYLOAD_BYTES
from sensors.ingest import Ingest
from sensors.sparkplug.codec import (
    BD_SEQ,
    ERROR_KINDS,
    REBIRTH,
    DataType,
    SparkplugError,
    Value,
    command_payload,
    decode_payload,
    metric_value,
)
from sensors.sparkplug.metrics import SCHEMA_VERSION, SOURCE, rebuild_station, rebuild_status
from sensors.sparkplug.sparkplug_b_pb2 import Payload
from sensors.sparkplug.topics import ParsedSparkplugTopic, SparkplugIds
from sensors.topics import Channel, LineTopics
from twin.state.line import TwinState

log = logging.getLogger(__name__)
REBIRTH_INTERVAL_S = 2.0


@dataclass
class _Session:
    """One NBIRTH's session of the edge node."""

    bd_seq: int
    source: str
    schema_version: str
    next_seq: int = 1
    # alias -> (name, datatype); the node's under None.
    aliases: dict[str | None, dict[int, tuple[str, int]]] = field(default_factory=dict)
    names: dict[str | None, dict[str, int]] = field(default_factory=dict)


@dataclass
class SparkplugStats:
    payloads: int = 0
    births: int = 0
    device_births: int = 0
    deaths: int = 0
    stale_deaths: int = 0
    seq_gaps: int = 0
    rebirth_requests: int = 0
    other_nodes: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


class SparkplugIngest(Ingest):
    """An ``Ingest`` whose line speaks Sparkplug B (see the module's docstring)."""

    def __init__(
        self,
        twin: TwinState,
        topics: LineTopics,
        client: mqtt.Client,
        ids: SparkplugIds,
        *,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        qos: int = 0,
        on_accepted: Callable[[str | None, BaseModel], None] | None = None,
    ) -> None:
        super().__init__(
            twin,
            topics,
            client,
            max_payload_bytes=max_payload_bytes,
            qos=qos,
            on_accepted=on_accepted,
        )
        self.ids = ids
        self.sparkplug = SparkplugStats()
        self._session: _Session | None = None
        self._rebirth_asked_at: float | None = None
        self._spb_lock = threading.Lock()

    @property
    def subscription(self) -> str:
        return self.ids.subscription

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            self.handle_sparkplug(message.topic, bytes(message.payload))
        except Exception:
            # Whatever a payload does, the ingest keeps running.
            log.exception("Sparkplug ingest failed on a message on %s", message.topic)

    # -- the pipeline ---------------------------------------------------------------
    def handle_sparkplug(self, topic: str, data: bytes) -> int:
        """Take one Sparkplug message; the number of contract messages the twin took."""
        parsed = self.ids.parse(topic)
        if parsed is None:
            with self._lock:
                self.stats.unknown_topic += 1
            return 0
        if parsed.edge_node != self.ids.node:
            self.sparkplug.other_nodes += 1
            return 0
        if parsed.message_type in ("NCMD", "DCMD"):
            return 0  # commands are the line's business (our own rebirth requests)
        with self._spb_lock:
            self.sparkplug.payloads += 1
            try:
                if len(data) > self.max_payload_bytes:
                    raise SparkplugError(
                        "too_large", f"payload over {self.max_payload_bytes} bytes"
                    )
                messages = self._session_step(parsed, decode_payload(data))
            except SparkplugError as exc:
                self._drop(exc, topic)
                return 0
        taken = 0
        for channel, station, message in messages:
            json_topic = (
                self.topics.status
                if station is None
                else self.topics.station(station, cast(Channel, channel))
            )
            taken += self.handle(json_topic, orjson.dumps(message))
        return taken

    def _drop(self, exc: SparkplugError, topic: str) -> None:
        self.sparkplug.dropped[exc.kind] += 1
        with self._lock:
            self._reject(exc.kind, topic, exc.detail)
        if exc.kind in ("data_before_birth", "unknown_alias"):
            self._ask_rebirth(exc.detail)

    def _ask_rebirth(self, why: str) -> None:
        """Publish NCMD Node Control/Rebirth (under the Sparkplug lock)."""
        now = time.monotonic()
        asked = self._rebirth_asked_at
        if asked is not None and now - asked < REBIRTH_INTERVAL_S:
            return  # one is on its way
        self._rebirth_asked_at = now
        self.sparkplug.rebirth_requests += 1
        log.info("asking %s for a rebirth: %s", self.ids.topic("NCMD"), why)
        payload = command_payload([(REBIRTH, DataType.BOOLEAN, True)], time.time_ns() // 1_000_000)
        self.client.publish(self.ids.topic("NCMD"), payload, qos=0)

    def _check_seq(self, session: _Session, payload: Payload, what: str) -> None:
        if not payload.HasField("seq"):
            raise SparkplugError("missing_field", f"{what} without seq")
        seq = int(payload.seq)
        if seq != session.next_seq:
            self.sparkplug.seq_gaps += 1
            self._ask_rebirth(f"{what} seq {seq}, expected {session.next_seq}")
        session.next_seq = (seq + 1) % 256

    def _session_step(
        self, parsed: ParsedSparkplugTopic, payload: Payload
    ) -> list[tuple[str, str | None, dict[str, Any]]]:
        """Check one payload against the session; the contract messages it carries
        as (channel, station or None, message)."""
        kind, device = parsed.message_type, parsed.device
        stamp = int(payload.timestamp) if payload.HasField("timestamp") else 0
        if kind == "NBIRTH":
            return self._nbirth(payload, stamp)
        session = self._session
        if kind == "NDEATH":
            values, _ = _named_values(payload, "NDEATH")
            if session is None or values.get(BD_SEQ) != session.bd_seq:
                self.sparkplug.stale_deaths += 1
                return []
            self.sparkplug.deaths += 1
            self._session = None
            offline = {
                "schema_version": session.schema_version,
                "ts_ms": stamp,
                "seq": 0,
                "source": session.source,
                "status": "offline",
                "sim_time_s": None,
            }
            return [("status", None, offline)]
        if session is None:
            raise SparkplugError("data_before_birth", f"{kind} before the node's NBIRTH")
        self._check_seq(session, payload, kind)
        if kind == "DBIRTH":
            assert device is not None  # noqa: S101 - the topic has one
            values, stamps = _named_values(payload, "DBIRTH")
            session.aliases[device], session.names[device] = _alias_maps(payload)
            self.sparkplug.device_births += 1
            return self._station(session, device, values, stamps, stamp, ("state",))
        if kind == "DDEATH":
            session.aliases.pop(device, None)
            session.names.pop(device, None)
            return []
        aliases = session.aliases.get(device)
        if aliases is None:
            raise SparkplugError("data_before_birth", f"{kind} of {device} before its DBIRTH")
        values, stamps = _aliased_values(payload, aliases, session.names[device])
        if kind == "NDATA":
            status = rebuild_status(
                values,
                stamps,
                source=session.source,
                schema_version=session.schema_version,
                timestamp=stamp,
            )
            return [] if status is None else [("status", None, status)]
        assert device is not None  # noqa: S101 - DDATA
        return self._station(session, device, values, stamps, stamp)

    def _nbirth(self, payload: Payload, stamp: int) -> list[tuple[str, str | None, dict[str, Any]]]:
        values, stamps = _named_values(payload, "NBIRTH")
        bd_seq, source = values.get(BD_SEQ), values.get(SOURCE)
        version = values.get(SCHEMA_VERSION)
        if (
            not isinstance(bd_seq, int)
            or not isinstance(source, str)
            or not isinstance(version, str)
        ):
            raise SparkplugError(
                "missing_field", "an NBIRTH needs bdSeq, Line/source and Line/schema_version"
            )
        if not payload.HasField("seq"):
            raise SparkplugError("missing_field", "NBIRTH without seq")
        session = _Session(bd_seq=bd_seq, source=source, schema_version=version)
        session.aliases[None], session.names[None] = _alias_maps(payload)
        session.next_seq = (int(payload.seq) + 1) % 256
        self._session = session
        self._rebirth_asked_at = None
        self.sparkplug.births += 1
        status = rebuild_status(
            values, stamps, source=source, schema_version=version, timestamp=stamp
        )
        return [] if status is None else [("status", None, status)]

    @staticmethod
    def _station(
        session: _Session,
        device: str,
        values: dict[str, Value],
        stamps: dict[str, int],
        stamp: int,
        groups: tuple[str, ...] = ("event", "state", "telemetry"),
    ) -> list[tuple[str, str | None, dict[str, Any]]]:
        messages = rebuild_station(
            values,
            stamps,
            source=session.source,
            schema_version=session.schema_version,
            timestamp=stamp,
            groups=groups,
        )
        return [(channel, device, message) for channel, message in messages]

    # -- health ---------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        health = super().health()
        with self._spb_lock:
            stats, session = self.sparkplug, self._session
            health["sparkplug"] = {
                "group_id": self.ids.group,
                "edge_node_id": self.ids.node,
                "online": session is not None,
                "bd_seq": session.bd_seq if session is not None else None,
                "payloads": stats.payloads,
                "births": stats.births,
                "device_births": stats.device_births,
                "deaths": stats.deaths,
                "stale_deaths": stats.stale_deaths,
                "seq_gaps": stats.seq_gaps,
                "rebirth_requests": stats.rebirth_requests,
                "other_nodes": stats.other_nodes,
                "dropped": {kind: stats.dropped[kind] for kind in ERROR_KINDS},
            }
        return health


def _alias_maps(payload: Payload) -> tuple[dict[int, tuple[str, int]], dict[str, int]]:
    """alias -> (name, datatype), and name -> datatype, from a BIRTH's metrics."""
    aliases: dict[int, tuple[str, int]] = {}
    names: dict[str, int] = {}
    for metric in payload.metrics:
        names[metric.name] = metric.datatype
        if metric.HasField("alias"):
            aliases[int(metric.alias)] = (metric.name, int(metric.datatype))
    return aliases, names


def _named_values(payload: Payload, what: str) -> tuple[dict[str, Value], dict[str, int]]:
    """A BIRTH's (or death's) metrics by name: each must say its name and datatype."""
    values: dict[str, Value] = {}
    stamps: dict[str, int] = {}
    for metric in payload.metrics:
        if not metric.HasField("name") or not metric.HasField("datatype"):
            raise SparkplugError("missing_field", f"a metric of an {what} without name or datatype")
        values[metric.name] = metric_value(metric, metric.datatype, metric.name)
        if metric.HasField("timestamp"):
            stamps[metric.name] = int(metric.timestamp)
    return values, stamps


def _aliased_values(
    payload: Payload, aliases: dict[int, tuple[str, int]], names: dict[str, int]
) -> tuple[dict[str, Value], dict[str, int]]:
    """A DATA payload's metrics by name, through the BIRTH's aliases (or names). Every
    DATA of the line comes through here: a finite Double, the common metric, is read
    on the spot; anything else goes through ``metric_value``'s checks."""
    values: dict[str, Value] = {}
    stamps: dict[str, int] = {}
    for metric in payload.metrics:
        alias = metric.alias
        if alias or metric.HasField("alias"):
            known = aliases.get(alias)
            if known is None:
                raise SparkplugError("unknown_alias", f"alias {alias} is not in the birth")
            name, datatype = known
        elif metric.HasField("name") and metric.name in names:
            name, datatype = metric.name, names[metric.name]
        else:
            raise SparkplugError("unknown_alias", f"metric {metric.name!r} is not in the birth")
        if datatype == DataType.DOUBLE and metric.WhichOneof("value") == "double_value":
            number = metric.double_value
            if number - number != 0:  # NaN or an infinity
                raise SparkplugError("not_finite", f"{name}: {number} is not a finite number")
            values[name] = number
        else:
            values[name] = metric_value(metric, datatype, name)
        stamp = metric.timestamp
        if stamp or metric.HasField("timestamp"):
            stamps[name] = stamp
    return values, stamps
