"""The line as a Sparkplug B edge node, beside the JSON tree.

The edge node hears every message the plant's publisher sends (its tap, on the
plant's thread) and republishes it as Sparkplug B on a connection of its own:
a line status as the node's NDATA, a station's telemetry, event or state as
that station's DDATA (the metric map is ``sensors.sparkplug.metrics``). It
measures nothing itself, so the two protocols carry the same samples.

Session rules (Sparkplug 3.0):

- Before every connect the NDEATH is registered as the MQTT will, with the
  bdSeq the NBIRTH of that connection will carry. bdSeq moves on after each
  connection that was accepted (0 to 255, then 0 again), so attempts that fail
  while the broker is away do not use numbers up. With a ``bd_seq_file`` it also
  moves on across restarts of the process.
- Once connected it subscribes to its NCMD and DCMD topics, then publishes the
  NBIRTH (seq 0, bdSeq, ``Node Control/Rebirth``, every node metric with its
  alias and datatype) and one DBIRTH per station; only then DATA. One seq
  counter (0 to 255) runs across NBIRTH, DBIRTH, NDATA, DDATA and DDEATH.
- ``Node Control/Rebirth`` = true in an NCMD publishes the NBIRTH and every
  DBIRTH again (same bdSeq, seq from 0). A metric not in the births yet (a
  process value first seen) is born in a new DBIRTH of its device first.
- On a clean stop it sends DDEATH for each station and the NDEATH itself.

Commands: writes to ``Setpoint/…`` and ``Control/…`` metrics (DCMD) and to the
node's ``Control/…`` metrics (NCMD) become the JSON commands of the contract and
go through the plant's ``CommandHandler.submit``: the same checks, the same
answer on ``cmd/ack``, and that answer as ``Command/LastAck`` (the ``CommandAck``
JSON) in a DDATA or NDATA. Every payload is QoS 0 and not retained, as the
specification asks; the NDEATH is QoS 1.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.client import MQTT_ERR_SUCCESS

from sensors.mqtt import BrokerAddress, connect
from sensors.paho_internals import outbox_of
from sensors.publisher import DEFAULT_PACE_OUTBOX, PlantPublisher
from sensors.sparkplug.codec import (
    BD_SEQ,
    REBIRTH,
    DataType,
    Metric,
    SparkplugError,
    Value,
    WireMetric,
    decode_payload,
    encode_data,
    encode_payload,
    metric_value,
    pack_double,
    wire_metric,
)
from sensors.sparkplug.metrics import (
    LAST_ACK,
    LINE_CONTROLS,
    PROCESS,
    SCHEMA_VERSION,
    SETPOINT,
    SOURCE,
    SPEED_CONTROL,
    STATION_CONTROLS,
    MetricDef,
    message_fields,
    message_metrics,
    node_metric_defs,
    station_metric_defs,
    status_metrics,
)
from sensors.sparkplug.topics import MessageType, SparkplugIds
from twin.contract import SCHEMA_VERSION as CONTRACT_VERSION
from twin.contract import CommandAck

log = logging.getLogger(__name__)
BIRTH_TIMEOUT_S = 10.0
# Who sends the commands a Sparkplug host writes, as the contract's ``source`` says.
COMMAND_SOURCE = "sparkplug-host"


class CommandSink(Protocol):
    """Where commands go: the plant's ``sensors.commands.CommandHandler``."""

    def submit(
        self,
        station: str | None,
        payload: bytes,
        reply: Callable[[CommandAck], None] | None = None,
        *,
        via: str | None = None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One station as a device: its sensors, process values and setpoints (with
    their values at the start)."""

    station: str
    sensors: tuple[str, ...]
    process_names: tuple[str, ...]
    setpoints: Mapping[str, float]


def devices_of(publisher: PlantPublisher) -> list[DeviceSpec]:
    """The devices of a plant's publisher: the stations in flow order, with the
    sensors it measures and the setpoints the plant starts with."""
    plant = publisher.plant
    devices = []
    for spec, station in zip(plant.config.stations, plant.stations, strict=True):
        setpoints = dict(station.setpoints)
        devices.append(
            DeviceSpec(
                station=spec.id,
                sensors=tuple(name for sid, name in publisher.sensors if sid == spec.id),
                # A part's process values are the setpoints and the tool's wear
                # (twin.sim.machine); another name is born when it first comes.
                process_names=(*setpoints, "wear"),
                setpoints=setpoints,
            )
        )
    return devices


@dataclass(frozen=True, slots=True)
class _Plan:
    """(metric, field, wire form) of each field of a shape of message the device has
    a metric for, and the fields it has none for yet; whether a null field is left
    out (a reading that was not due) rather than sent as a null metric."""

    fields: list[tuple[str, str, WireMetric]]
    unborn: tuple[str, ...]
    skips_null: bool


@dataclass
class _Scope:
    """The node (device None) or one device: its metrics, aliases and last values."""

    device: str | None
    defs: dict[str, MetricDef] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    # name -> its last value, and when it came (ms)
    values: dict[str, Value] = field(default_factory=dict)
    stamps: dict[str, int] = field(default_factory=dict)
    # name -> the DATA metric's wire form (``codec.wire_metric``): made once per metric.
    wire: dict[str, WireMetric] = field(default_factory=dict)
    # Each shape of station message's way to its metrics (``_station_data``), made
    # on first use and again once a metric is defined.
    plans: dict[str, _Plan] = field(default_factory=dict)

    def remember(self, values: Mapping[str, Value], stamp: int) -> None:
        self.values.update(values)
        self.stamps.update(dict.fromkeys(values, stamp))


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _next_bd_seq(path: Path | None) -> int:
    """The bdSeq of this process's first connection: the one after the last this
    node used (kept in ``path``), so that a host never takes the will of a session
    before a restart, delivered late, for the death of the new one. 0 without a
    file, or with one that does not hold a number from 0 to 255 (said in the log)."""
    if path is None or not path.exists():
        return 0
    try:
        last = int(path.read_text(encoding="utf-8").strip())
        if not 0 <= last <= 255:
            raise ValueError(f"{last} is not from 0 to 255")
    except (OSError, ValueError) as exc:
        log.warning("Sparkplug bdSeq file %s unusable (%s): starting at 0", path, exc)
        return 0
    return (last + 1) % 256


def _keep_bd_seq(path: Path | None, bd_seq: int) -> None:
    """Write the bdSeq of the connection made, whole or not at all."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(path.name + ".tmp")
        scratch.write_text(f"{bd_seq}\n", encoding="utf-8")
        scratch.replace(path)
    except OSError as exc:  # the line goes on; the next start may reuse a number
        log.warning("Sparkplug bdSeq not kept in %s: %s", path, exc)


class EdgeNode:
    def __init__(
        self,
        client: mqtt.Client,
        ids: SparkplugIds,
        devices: Sequence[DeviceSpec],
        *,
        source: str,
        commands: CommandSink | None = None,
        bd_seq_file: Path | None = None,
    ) -> None:
        self.client = client
        self.ids = ids
        self.source = source
        self.commands = commands
        self.outbox = outbox_of(client)
        # The plant's thread (taps), paho's (births, commands) and the command
        # handler's (answers) all publish: one lock keeps seq in wire order.
        self._lock = threading.RLock()
        self._seq = 0
        # The bdSeq the will of the next connect carries, and that of the connection
        # made (its NBIRTH's; None before the first).
        self.bd_seq_file = bd_seq_file
        self._will_bd_seq = _next_bd_seq(bd_seq_file)
        self._bd_seq: int | None = None
        self.born = threading.Event()
        self._next_alias = 0
        self._scopes: dict[str | None, _Scope] = {}
        # Each device's DATA topic (the node's: None), made on first use.
        self._data_topics: dict[str | None, str] = {}
        node = self._scope(None)
        for definition in node_metric_defs(device.station for device in devices):
            self._define(node, definition)
        now = _wall_ms()
        node.remember({REBIRTH: False, SOURCE: source, SCHEMA_VERSION: CONTRACT_VERSION}, now)
        node.remember(dict.fromkeys(LINE_CONTROLS, False), now)
        for device in devices:
            scope = self._scope(device.station)
            for definition in station_metric_defs(
                device.sensors, device.process_names, device.setpoints
            ):
                self._define(scope, definition)
            scope.remember(dict.fromkeys(STATION_CONTROLS, False), now)
            scope.remember({SETPOINT + n: value for n, value in device.setpoints.items()}, now)
        self.published: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.rebirths = 0
        self.commands_taken: Counter[str] = Counter()

    # -- metrics --------------------------------------------------------------------
    def _scope(self, device: str | None) -> _Scope:
        scope = self._scopes.get(device)
        if scope is None:
            scope = self._scopes[device] = _Scope(device)
        return scope

    def _define(self, scope: _Scope, definition: MetricDef) -> None:
        # Aliases are unique across the node and all its devices (specification).
        scope.defs[definition.name] = definition
        scope.aliases[definition.name] = self._next_alias
        scope.wire[definition.name] = wire_metric(self._next_alias, int(definition.datatype))
        scope.plans.clear()
        self._next_alias += 1

    def aliases(self, device: str | None = None) -> dict[str, int]:
        """The alias of each metric of the node (None) or a device."""
        with self._lock:
            return dict(self._scope(device).aliases)

    # -- wiring ---------------------------------------------------------------------
    def attach(self, publisher: PlantPublisher) -> None:
        """Hear every message ``publisher`` sends."""
        publisher.add_tap(self.tap)

    def start(self, address: BrokerAddress, timeout: float = BIRTH_TIMEOUT_S) -> None:
        """Connect (the NDEATH as the will) and wait until the births are out, so that
        no message of the line finds the node unborn."""
        client = self.client
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._set_will()
        connect(client, address)
        if not self.born.wait(timeout):
            log.warning("the Sparkplug B births did not go out within %g s", timeout)

    @staticmethod
    def _death(bd_seq: int) -> bytes:
        now = _wall_ms()
        metric = Metric(bd_seq, DataType.INT64, name=BD_SEQ, timestamp=now)
        return encode_payload([metric], timestamp=now, seq=None, birth=True)

    def _set_will(self) -> None:
        death = self._death(self._will_bd_seq)
        self.client.will_set(self.ids.topic("NDEATH"), death, qos=1, retain=False)

    def _on_pre_connect(self, client: mqtt.Client, userdata: object) -> None:
        with self._lock:
            self._set_will()

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if getattr(reason_code, "is_failure", False):
            return
        # Subscribed before the births, so a host's first command is not missed.
        client.subscribe([(topic, 0) for topic in self.ids.commands])
        with self._lock:
            self._bd_seq = self._will_bd_seq
            # The will of the next connection carries the next number; failed
            # attempts before it keep it.
            self._will_bd_seq = (self._bd_seq + 1) % 256
            _keep_bd_seq(self.bd_seq_file, self._bd_seq)
            self._births()
        self.born.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self.born.clear()

    # -- publishing -----------------------------------------------------------------
    def _send(
        self, message_type: MessageType, device: str | None, metrics: list[Metric], birth: bool
    ) -> bool:
        """Publish one payload with the next seq (under the lock)."""
        payload = encode_payload(metrics, timestamp=_wall_ms(), seq=self._seq, birth=birth)
        return self._publish(message_type, self.ids.topic(message_type, device), payload)

    def _publish(self, message_type: MessageType, topic: str, payload: bytes) -> bool:
        """Hand ``payload`` (numbered with the current seq) to paho; the seq moves on
        only once it is handed over (under the lock)."""
        info = self.client.publish(topic, payload, qos=0)
        if info.rc != MQTT_ERR_SUCCESS:
            self.dropped[message_type] += 1
            return False
        if self.outbox.tracks:
            self.outbox.track(info.mid, 0)
        self._seq = (self._seq + 1) % 256
        self.published[message_type] += 1
        return True

    def _birth_metrics(self, scope: _Scope, now: int) -> list[Metric]:
        metrics = []
        for name, definition in scope.defs.items():
            value, stamp = scope.values.get(name), scope.stamps.get(name, now)
            metrics.append(
                Metric(
                    value,
                    definition.datatype,
                    alias=scope.aliases[name],
                    name=name,
                    timestamp=stamp,
                    unit=definition.unit,
                )
            )
        return metrics

    def _births(self) -> None:
        """NBIRTH (seq 0) and every DBIRTH, under the lock."""
        now = _wall_ms()
        node = self._scope(None)
        # The NBIRTH names the bdSeq of the will registered for this connection.
        node.remember({BD_SEQ: self._bd_seq}, now)
        self._seq = 0
        self._send("NBIRTH", None, self._birth_metrics(node, now), birth=True)
        for device, scope in self._scopes.items():
            if device is not None:
                self._send("DBIRTH", device, self._birth_metrics(scope, now), birth=True)

    def rebirth(self) -> None:
        """Publish the NBIRTH and every DBIRTH again, as a host's rebirth asks."""
        with self._lock:
            if not self.born.is_set():
                return  # the births follow the connection
            self.rebirths += 1
            self._births()

    def _update(
        self, device: str | None, values: list[tuple[str, Value]], stamp: int
    ) -> list[bytes]:
        """Remember the values; the DATA metrics for them (``codec.data_metric``). A
        metric the births did not name is defined and its device born again first.
        A line's status and a message with a new metric come this way; a station's
        messages take ``_station_data``, which writes a double inline."""
        scope = self._scopes.get(device) or self._scope(device)
        wire = scope.wire
        scope.remember(dict(values), stamp)
        metrics: list[bytes] = []
        append = metrics.append
        unborn: list[str] = []
        for name, value in values:
            form = wire.get(name)
            if form is None:
                self._define(scope, MetricDef(name, _datatype_of(value)))
                form = wire[name]
                unborn.append(name)
            append(form[1](value))
        if unborn and self.born.is_set():
            log.info("Sparkplug metrics %s are new: %s born again", unborn, device or "the node")
            if device is None:
                self._births()
            else:
                self._send("DBIRTH", device, self._birth_metrics(scope, stamp), birth=True)
        return metrics

    def _send_data(self, device: str | None, metrics: list[bytes], stamp: int) -> bool:
        """Publish one NDATA or DDATA with the next seq (under the lock)."""
        payload = encode_data(metrics, timestamp=stamp, seq=self._seq)
        message_type: MessageType = "NDATA" if device is None else "DDATA"
        topic = self._data_topics.get(device)
        if topic is None:
            topic = self._data_topics[device] = self.ids.topic(message_type, device)
        return self._publish(message_type, topic, payload)

    def _station_data(
        self, device: str, channel: str, message: Mapping[str, Any], stamp: int
    ) -> list[bytes] | None:
        """``_update`` for a station's message (every message of a line but its
        status), without the (name, value) list: the device keeps, for each shape of
        message (``metrics.message_fields``), its metrics' wire forms in a list made
        once. None when the message has a value the device has no metric for yet:
        ``_update`` defines it, and the lists are made again."""
        scope = self._scopes.get(device)
        if scope is None:
            return None
        key, fields = message_fields(channel, message)
        plan = scope.plans.get(key)
        if plan is None:
            wire = scope.wire
            plan = scope.plans[key] = _Plan(
                [(metric, name, wire[metric]) for metric, name in fields if metric in wire],
                tuple(name for metric, name in fields if metric not in wire),
                skips_null=channel == "telemetry",
            )
        get = message.get
        for name in plan.unborn:
            if not plan.skips_null or get(name) is not None:
                return None
        values, stamps = scope.values, scope.stamps
        metrics: list[bytes] = []
        append = metrics.append
        skips_null = plan.skips_null
        for metric, name, (head, encode) in plan.fields:
            value = get(name)
            if value is None and skips_null:
                continue  # a reading that was not due
            values[metric] = value
            stamps[metric] = stamp
            if head is not None and value.__class__ is float:
                append(head + pack_double(value))
            else:
                append(encode(value))
        process = get("process") if channel == "event" else None
        if process:
            wire = scope.wire
            for name, value in process.items():
                metric = PROCESS + name
                form = wire.get(metric)
                if form is None:
                    return None
                values[metric] = value
                stamps[metric] = stamp
                append(form[1](value))
        return metrics

    def tap(self, station: str | None, channel: str, message: dict[str, Any]) -> None:
        """A message the plant's publisher sent (``PlantPublisher.add_tap``)."""
        stamp = int(message["ts_ms"])
        with self._lock:
            if channel == "status":
                metrics = self._update(None, status_metrics(message), stamp)
            elif station is not None and channel in ("telemetry", "event", "state"):
                planned = self._station_data(station, channel, message, stamp)
                metrics = (
                    planned
                    if planned is not None
                    else self._update(station, message_metrics(channel, message), stamp)
                )
            else:
                return
            if not self.born.is_set():
                # Kept for the births that follow the reconnect; lost as data.
                self.dropped["not born"] += 1
                return
            self._send_data(None if channel == "status" else station, metrics, stamp)

    def _publish_values(self, device: str | None, values: list[tuple[str, Value]]) -> None:
        with self._lock:
            stamp = _wall_ms()
            metrics = self._update(device, values, stamp)
            if self.born.is_set():
                self._send_data(device, metrics, stamp)

    # -- commands -------------------------------------------------------------------
    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            self.handle_command(message.topic, bytes(message.payload))
        except Exception:  # a host's command never stops the line
            log.exception("Sparkplug command on %s failed", message.topic)

    def handle_command(self, topic: str, data: bytes) -> None:
        parsed = self.ids.parse(topic)
        if parsed is None or parsed.edge_node != self.ids.node:
            return
        if parsed.message_type not in ("NCMD", "DCMD"):
            return
        device = parsed.device
        try:
            payload = decode_payload(data)
        except SparkplugError as exc:
            self.commands_taken[f"rejected: {exc.kind}"] += 1
            log.warning("Sparkplug command on %s dropped: %s", topic, exc.detail)
            return
        with self._lock:
            scope = self._scopes.get(device)
            if scope is None:
                self.commands_taken["rejected: unknown device"] += 1
                return
            by_alias = {alias: name for name, alias in scope.aliases.items()}
        stamp = int(payload.timestamp) if payload.HasField("timestamp") else _wall_ms()
        for metric in payload.metrics:
            name = metric.name if metric.HasField("name") else by_alias.get(metric.alias)
            definition = scope.defs.get(name) if name is not None else None
            if name is None or definition is None:
                self.commands_taken["rejected: unknown metric"] += 1
                log.warning("Sparkplug command on %s for an unknown metric", topic)
                continue
            datatype = metric.datatype if metric.HasField("datatype") else definition.datatype
            try:
                # NaN and infinities go on to the command's own checks, which refuse
                # them with the reason an MQTT command would get.
                value = metric_value(metric, datatype, name, finite=False)
            except SparkplugError as exc:
                self.commands_taken[f"rejected: {exc.kind}"] += 1
                log.warning("Sparkplug command %s on %s dropped: %s", name, topic, exc.detail)
                continue
            self._command(device, name, value, stamp, topic)

    def _command(self, device: str | None, name: str, value: Value, stamp: int, via: str) -> None:
        if device is None and name == REBIRTH:
            if value is True:
                self.commands_taken["rebirth"] += 1
                self.rebirth()
            return
        fields: dict[str, Any]
        if device is None and name in LINE_CONTROLS:
            if value is not True:
                return  # a momentary button's release
            fields = {"action": LINE_CONTROLS[name]}
        elif device is None and name == SPEED_CONTROL:
            fields = {"action": "set_speed", "factor": value}
        elif device is not None and name in STATION_CONTROLS:
            if value is not True:
                return
            fields = {"action": STATION_CONTROLS[name]}
        elif device is not None and name.startswith(SETPOINT):
            fields = {"action": "set_setpoint", "setpoint": name[len(SETPOINT) :], "value": value}
        else:
            self.commands_taken["rejected: not writable"] += 1
            log.warning("Sparkplug command on %s: %s is not writable", via, name)
            return
        sink = self.commands
        if sink is None:
            self.commands_taken["rejected: no plant"] += 1
            return
        command = {
            "schema_version": CONTRACT_VERSION,
            "ts_ms": stamp,
            "source": COMMAND_SOURCE,
            "command_id": f"spb-{uuid.uuid4().hex}",
            **fields,
        }
        self.commands_taken[str(fields["action"])] += 1
        # json, not orjson: a NaN stays a NaN, for the contract to refuse.
        payload = json.dumps(command).encode()
        sink.submit(device, payload, reply=self._replier(device, name, value), via=via)

    def _replier(self, device: str | None, name: str, value: Value) -> Callable[[CommandAck], None]:
        def reply(ack: CommandAck) -> None:
            values: list[tuple[str, Value]] = [(LAST_ACK, ack.model_dump_json())]
            if ack.accepted and ack.action == "set_setpoint" and device is not None:
                values.append((name, value))  # the setpoint now in force
            elif ack.accepted and ack.action == "set_speed" and ack.speed_asked is not None:
                values.append((SPEED_CONTROL, ack.speed_asked))
            self._publish_values(device, values)

        return reply

    # -- shutdown and health --------------------------------------------------------
    def stop(self, timeout: float = 2.0) -> None:
        """DDEATH for each device, then the NDEATH (QoS 1, waited for): a host knows at
        once that the line is gone, without waiting for the broker's keep-alive."""
        with self._lock:
            if not self.born.is_set():
                return
            for device in self._scopes:
                if device is not None:
                    self._send("DDEATH", device, [], birth=False)
            assert self._bd_seq is not None  # noqa: S101 - born, so connected
            death = self._death(self._bd_seq)
            info = self.client.publish(self.ids.topic("NDEATH"), death, qos=1)
            self.born.clear()
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):
            log.debug("the NDEATH did not go out", exc_info=True)

    def pressure(self) -> float:
        """Packets not yet written, over the size at which the live line slows down:
        the line paces itself on this connection too."""
        return self.outbox.unwritten() / DEFAULT_PACE_OUTBOX

    def health(self) -> dict[str, Any]:
        with self._lock:
            return {
                "group_id": self.ids.group,
                "edge_node_id": self.ids.node,
                "born": self.born.is_set(),
                "bd_seq": self._bd_seq,
                "seq": self._seq,
                "published": dict(self.published),
                "dropped": dict(self.dropped),
                "rebirths": self.rebirths,
                "commands": dict(self.commands_taken),
            }


def _datatype_of(value: Value) -> DataType:
    if isinstance(value, bool):
        return DataType.BOOLEAN
    if isinstance(value, int):
        return DataType.INT64
    if isinstance(value, float):
        return DataType.DOUBLE
    return DataType.STRING
