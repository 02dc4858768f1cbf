"""A twin of a line that speaks OPC UA: subscribe to its server, feed the same ingest.

``OpcUaSource`` subscribes to every node its map names (``sensors.opcua.source_map``)
and turns each data change into the message the MQTT contract would carry, then
hands it to the ingest as JSON, through ``Ingest.handle``: the same checks, the
same twin state, KPIs, history and alarms as a line on MQTT. Nothing downstream
knows where the line's messages came from.

What an OPC UA server gives and what it does not (docs/opcua.md, "What is lost"):

- **States** arrive as values. Each change becomes a ``state_changed`` event and
  the retained ``state``. A change quicker than the publishing interval may be
  missed: the server samples, it does not queue every value.
- **Parts** are not events on most servers but counters. Each rise of a counter
  becomes that many ``part_started`` or ``part_finished`` events, all at the time
  of the change. Part ids are numbered here. A part's processing time is the
  ``processing_time_s`` node's, where the map gives one, else 0 (unknown). Parts
  made while the twin was away are counted when it is back, at that time; those
  made before its first read are not its parts (``counters_from: zero`` shows
  how many in ``before_twin``).
- **Sensors** become one telemetry sample per change.
- **Time.** The line's clock is the ``clock`` node where the map gives one (a
  simulated line), else the server's source timestamps from the first value on
  (a real line runs in real time). The line's status goes out again at least
  every ``STATUS_EVERY_S`` of wall time while the clock moves, as a line on MQTT
  sends its heartbeat: each is a reference of the line's time to the twin, which
  judges every message's time against the latest (a clock that leapt, after the
  twin was held up, is then the line's, not a message from the future). With a
  clock node, the values that arrive before its first reading are held and sent
  once it is known, so that none is stamped at time 0 of a line that has been
  running for hours.

It reconnects with a back-off when the server goes away, and carries its counters
over: the first values after a reconnect are compared with the last before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from asyncua import Client, ua

from sensors.opcua.source_map import SourceMap
from sensors.topics import LineTopics
from twin.contract import PACKML_STATE, SCHEMA_VERSION, STATE_CATEGORY

log = logging.getLogger(__name__)
# asyncua logs every publish at INFO: a line of log per data change.
logging.getLogger("asyncua").setLevel(logging.WARNING)

# An expanded node id's namespace URI (``nsu=urn:acme:line;s=...``): up to the first
# ';' (the map refuses a URI with one in it).
_EXPANDED = re.compile(r"^nsu=([^;]+);")
RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 30.0
# A counter that jumps by more than this at once is taken for a reset or a fault,
# not for that many parts: it is followed from its new value.
MAX_PARTS_PER_CHANGE = 100_000
# Values held while the clock node has not been read yet (a subscription's first
# notification carries one per node): more than that and the oldest are dropped, counted.
MAX_HELD_BEFORE_CLOCK = 100_000
# The line's status, with its clock, at least this often (wall seconds) while the clock moves.
STATUS_EVERY_S = 1.0
Feed = Callable[[str, bytes], bool]  # Ingest.handle(topic, payload)


@dataclass(frozen=True, slots=True)
class _Binding:
    """What one subscribed node is: (kind, station or None, name)."""

    kind: (
        str  # state, state_reason, counter, sensor, setpoint, processing_time, status, clock, speed
    )
    station: str | None = None
    name: str = ""


@dataclass
class SourceStats:
    changes: int = 0
    fed: int = 0
    refused: int = 0
    reconnects: int = 0
    counter_resets: int = 0
    unknown_states: Counter[str] = field(default_factory=Counter)
    dropped_before_clock: int = 0
    # With counters_from zero: each counter's value at the first read, by "station: name".
    before_twin: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None


@dataclass
class _StationNow:
    state: str | None = None
    reason: str = ""
    counters: dict[str, int] = field(default_factory=dict)
    setpoints: dict[str, float] = field(default_factory=dict)
    processing_time_s: float = 0.0
    part_ids: int = 0
    started_ids: int = 0


class OpcUaSource:
    """Follow one line's OPC UA server and feed its messages to ``feed``."""

    def __init__(
        self,
        endpoint: str,
        line_map: SourceMap,
        topics: LineTopics,
        feed: Feed,
        *,
        username: str | None = None,
        password: str | None = None,
        security: str | None = None,
        application_uri: str | None = None,
        on_connected: Callable[[bool], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # The URI in the client certificate: a server checks the two agree.
        self.application_uri = application_uri
        self.endpoint = endpoint
        self.on_connected = on_connected
        self.map = line_map
        self.topics = topics
        self.feed = feed
        self.username = username
        self.password = password
        # asyncua's security string: "Basic256Sha256,SignAndEncrypt,cert.der,key.pem".
        self.security = security
        self.source = f"opcua-{uuid.uuid4().hex[:8]}"
        self.stats = SourceStats()
        self.connected = threading.Event()
        self._stations = {station: _StationNow() for station in line_map.stations}
        self._seq: dict[str, int] = {}
        self._clock_s: float | None = None
        self._first_timestamp: datetime | None = None
        # Changes that came before the clock node's first reading, in order.
        self._held: deque[tuple[_Binding, Any, datetime | None]] = deque()
        self._monotonic = monotonic
        # When the status last went out, and the clock it carried.
        self._status_at = 0.0
        self._status_clock: float | None = None
        self._status = "online"
        self._speed: float | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    # -- life ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="opcua-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        asyncio.run(self._follow())

    def _set_connected(self, up: bool) -> None:
        if up:
            self.connected.set()
        else:
            self.connected.clear()
        if self.on_connected is not None:
            self.on_connected(up)

    async def _follow(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        delay = RECONNECT_MIN_S
        while not self._stopping.is_set():
            try:
                await self._session()
                delay = RECONNECT_MIN_S
            except Exception as exc:  # the server went away, or refused us
                self._set_connected(False)
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "OPC UA source %s: %s; trying again in %g s",
                    self.endpoint,
                    self.stats.last_error,
                    delay,
                )
            if self._stopping.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(RECONNECT_MAX_S, delay * 2)
            self.stats.reconnects += 1

    async def _session(self) -> None:
        assert self._stopping is not None  # noqa: S101
        client = Client(self.endpoint, timeout=10)
        if self.username:
            client.set_user(self.username)
            client.set_password(self.password or "")
        if self.security:
            if self.application_uri:
                client.application_uri = self.application_uri
            await client.set_security_string(self.security)
        async with client:
            bindings = await self._resolve(client)
            subscription = await client.create_subscription(
                self.map.publishing_interval_ms, _Handler(self, bindings)
            )
            nodes = [client.get_node(node_id) for node_id in bindings]
            # Every change, not only the last in an interval: a queue per item.
            await subscription.subscribe_data_change(nodes, queuesize=100)
            self._set_connected(True)
            log.info("OPC UA source %s: following %d nodes", self.endpoint, len(nodes))
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 2.0)
                # Raises once the server is gone: the session ends and is made again.
                await client.check_connection()
            self._set_connected(False)

    async def _resolve(self, client: Client) -> dict[ua.NodeId, _Binding]:
        line_map = self.map
        ns = ""
        if line_map.namespace_uri is not None:
            try:
                ns = str(await client.get_namespace_index(line_map.namespace_uri))
            except ValueError:
                raise RuntimeError(
                    f"the server has no namespace {line_map.namespace_uri!r} (namespace_uri "
                    "in the map)"
                ) from None
        # An expanded node id names its namespace by URI: the server's index for it.
        uris = {
            match.group(1)
            for _, text in line_map.nodes()
            if (match := _EXPANDED.match(text)) is not None
        }
        indices: dict[str, int] = {}
        for uri in sorted(uris):
            try:
                indices[uri] = int(await client.get_namespace_index(uri))
            except ValueError:
                raise RuntimeError(
                    f"the server has no namespace {uri!r} (nsu= in the map)"
                ) from None
        found: dict[ua.NodeId, _Binding] = {}

        def bind(text: str | None, binding: _Binding) -> None:
            if text is None:
                return
            text = text.replace("{ns}", ns)
            expanded = _EXPANDED.match(text)
            if expanded is not None:
                text = f"ns={indices[expanded.group(1)]};{text[expanded.end() :]}"
            found[ua.NodeId.from_string(text)] = binding

        bind(line_map.status, _Binding("status"))
        bind(line_map.clock, _Binding("clock"))
        bind(line_map.speed_factor, _Binding("speed"))
        for station, spec in line_map.stations.items():
            bind(spec.state, _Binding("state", station))
            bind(spec.state_reason, _Binding("state_reason", station))
            bind(spec.processing_time_s, _Binding("processing_time", station))
            for name in ("started", "good", "scrap", "rework"):
                bind(getattr(spec.counters, name), _Binding("counter", station, name))
            for name, text in spec.sensors.items():
                bind(text, _Binding("sensor", station, name))
            for name, text in spec.setpoints.items():
                bind(text, _Binding("setpoint", station, name))
        # A node the server does not have is named now, not silently never heard.
        for node_id, binding in found.items():
            try:
                await client.get_node(node_id).read_browse_name()
            except ua.UaStatusCodeError as exc:
                where = f"stations.{binding.station}" if binding.station else "the line"
                raise RuntimeError(
                    f"the map's {binding.kind} node {node_id.to_string()} of {where} is not on "
                    f"the server: {exc}"
                ) from None
        return found

    # -- data changes to messages --------------------------------------------------------
    def on_change(self, binding: _Binding, value: Any, timestamp: datetime | None) -> None:
        with self._lock:
            self.stats.changes += 1
            if binding.kind != "clock" and self.map.clock is not None and self._clock_s is None:
                # No time to stamp it with yet: held until the clock's first reading.
                if len(self._held) >= MAX_HELD_BEFORE_CLOCK:
                    self._held.popleft()
                    self.stats.dropped_before_clock += 1
                self._held.append((binding, value, timestamp))
                return
            self._apply(binding, value, timestamp)
            if self._held and self._clock_s is not None:
                held, self._held = self._held, deque()
                for change in held:
                    self._apply(*change)
            if (
                self._clock_s is not None
                and self._clock_s != self._status_clock
                and self._monotonic() - self._status_at >= STATUS_EVERY_S
            ):
                self._send_status()

    def _apply(self, binding: _Binding, value: Any, timestamp: datetime | None) -> None:
        self._advance_clock(timestamp)
        kind = binding.kind
        if kind == "clock":
            if _is_number(value):
                self._clock_s = max(self._clock_s or 0.0, float(value))
        elif kind == "speed":
            if _is_number(value) and value > 0:
                self._speed = float(value)
                self._send_status()
        elif kind == "status":
            self._status = _status_of(value)
            self._send_status()
        elif binding.station is not None:
            self._station_change(binding, value)

    def _advance_clock(self, timestamp: datetime | None) -> None:
        if self.map.clock is not None or timestamp is None:
            return
        if self._first_timestamp is None:
            self._first_timestamp = timestamp
            self._send_status()
        self._clock_s = max(
            self._clock_s or 0.0, (timestamp - self._first_timestamp).total_seconds()
        )

    def _station_change(self, binding: _Binding, value: Any) -> None:
        station = binding.station
        assert station is not None  # noqa: S101
        now = self._stations[station]
        kind = binding.kind
        if kind == "sensor":
            if value is None:
                return  # no reading (a server waiting for its first, or a bad status)
            self._send(station, "telemetry", {binding.name: _number_or_none(value)})
        elif kind == "setpoint":
            if _is_number(value):
                now.setpoints[binding.name] = float(value)
        elif kind == "processing_time":
            if _is_number(value) and value >= 0:
                now.processing_time_s = float(value)
        elif kind == "state_reason":
            now.reason = str(value)[:200]
        elif kind == "state":
            self._state_change(station, now, value)
        elif kind == "counter":
            self._counter_change(station, now, binding.name, value)

    def _state_change(self, station: str, now: _StationNow, value: Any) -> None:
        spec = self.map.stations[station]
        if value is None or value == "":
            return  # no state yet
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        key = str(int(value)) if numeric else str(value)
        state = spec.state_values.get(key, key) if spec.state_values else key
        if state not in STATE_CATEGORY:
            self.stats.unknown_states[f"{station}: {key}"] += 1
            log.warning("station %s: state %r is not in the map's state_values", station, key)
            return
        if state == now.state:
            return
        reason = now.reason or f"OPC UA state {key}"
        self._send(
            station,
            "event",
            {
                "event": "state_changed",
                "machine": 0,
                "from_state": now.state,
                "to_state": state,
                "reason": reason,
                "category": STATE_CATEGORY[state],
                "packml": PACKML_STATE[state],
            },
        )
        now.state = state
        self._send(
            station,
            "state",
            {
                "state": state,
                "reason": reason,
                "since_sim_time_s": self._now(),
                "packml": PACKML_STATE[state],
            },
        )

    def _counter_change(self, station: str, now: _StationNow, name: str, value: Any) -> None:
        if not _is_number(value) or value < 0:
            self.stats.refused += 1
            return
        count = int(value)
        last = now.counters.get(name)
        now.counters[name] = count
        if last is None:
            # What was made before the twin's first read is not the twin's: counted
            # now, a day's parts would land in the first second it watched, and every
            # ratio over its window would be that many times too high. Counters that
            # start with the line say how many that was (/healthz: before_twin).
            if self.map.counters_from == "zero" and count:
                self.stats.before_twin[f"{station}: {name}"] = count
            return
        parts = count - last
        if parts < 0 or parts > MAX_PARTS_PER_CHANGE:
            self.stats.counter_resets += 1
            log.warning(
                "station %s: counter %s went from %d to %d: followed from there",
                station,
                name,
                last,
                count,
            )
            return
        for _ in range(parts):
            if name == "started":
                now.started_ids += 1
                self._send(
                    station,
                    "event",
                    {
                        "event": "part_started",
                        "part_id": now.started_ids,
                        "machine": 0,
                        "input_buffer_level": None,
                    },
                )
            else:
                now.part_ids += 1
                self._send(
                    station,
                    "event",
                    {
                        "event": "part_finished",
                        "part_id": now.part_ids,
                        "machine": 0,
                        "result": name,
                        "processing_time_s": now.processing_time_s,
                        "exits_line": name == "good" and self.map.exits_line(station),
                        "output_buffer_level": None,
                        "process": dict(now.setpoints) or None,
                    },
                )

    # -- out -----------------------------------------------------------------------------
    def _now(self) -> float:
        return self._clock_s or 0.0

    def _send(self, station: str, channel: str, fields: dict[str, Any]) -> None:
        topic = self.topics.station(station, channel)  # type: ignore[arg-type]
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        message = {
            "schema_version": SCHEMA_VERSION,
            "ts_ms": time.time_ns() // 1_000_000,
            "seq": seq,
            "source": self.source,
            "sim_time_s": self._now(),
            **fields,
        }
        self._hand_over(topic, message)

    def _send_status(self) -> None:
        self._status_at, self._status_clock = self._monotonic(), self._clock_s
        topic = self.topics.status
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        message: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "ts_ms": time.time_ns() // 1_000_000,
            "seq": seq,
            "source": self.source,
            "status": self._status,
            "sim_time_s": self._now(),
            "speed_factor": self._speed,
        }
        description = self._description()
        if description is not None:
            message["description"] = description
        self._hand_over(topic, message)

    def _hand_over(self, topic: str, message: dict[str, Any]) -> None:
        # Finite numbers only: a NaN or an infinity goes as null and is refused by the
        # ingest, counted, as any bad value from a line.
        if self.feed(topic, orjson.dumps(message)):
            self.stats.fed += 1
        else:
            self.stats.refused += 1

    def _description(self) -> dict[str, Any] | None:
        """A line description from the map, where it gives every station's rated cycle."""
        stations = self.map.stations
        if any(spec.ideal_cycle_time_s is None for spec in stations.values()):
            return None
        return {
            "name": self.map.line.name or self.map.line.id,
            "stations": [
                {
                    "id": station,
                    "name": spec.name or station,
                    "position": position,
                    "ideal_cycle_time_s": spec.ideal_cycle_time_s,
                    "input_buffer_capacity": spec.input_buffer_capacity,
                    "machines": spec.machines,
                }
                for position, (station, spec) in enumerate(stations.items())
            ],
        }

    def health(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "endpoint": self.endpoint,
            "connected": self.connected.is_set(),
            "changes": stats.changes,
            "fed": stats.fed,
            "refused": stats.refused,
            "reconnects": stats.reconnects,
            "counter_resets": stats.counter_resets,
            "unknown_states": dict(stats.unknown_states),
            "waiting_for_clock": len(self._held),
            "dropped_before_clock": stats.dropped_before_clock,
            "before_twin": dict(stats.before_twin),
            "last_error": stats.last_error,
        }


def client_security(cert_dir: Path, site: str, area: str, line: str) -> str:
    """asyncua's security string for Basic256Sha256 sign and encrypt, with a client
    certificate made in ``cert_dir`` on first use (client-cert.der, client-key.pem):
    the source server must trust it, as it would UaExpert's."""
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from cryptography.x509.oid import ExtendedKeyUsageOID

    cert_dir.mkdir(parents=True, exist_ok=True)
    cert, key = cert_dir / "client-cert.der", cert_dir / "client-key.pem"
    asyncio.run(
        setup_self_signed_certificate(
            key,
            cert,
            f"urn:factory-twin:twin:{site}:{area}:{line}",
            socket.gethostname(),
            [ExtendedKeyUsageOID.CLIENT_AUTH],
            {"commonName": f"factory-twin twin of {site}/{area}/{line}"},
        )
    )
    return f"Basic256Sha256,SignAndEncrypt,{cert},{key}"


class _Handler:
    """asyncua's subscription handler: each data change, on the source's loop."""

    def __init__(self, source: OpcUaSource, bindings: dict[ua.NodeId, _Binding]) -> None:
        self.source = source
        self.bindings = bindings

    def datachange_notification(self, node: Any, value: Any, data: Any) -> None:
        binding = self.bindings.get(node.nodeid)
        if binding is None:
            return
        monitored = getattr(data, "monitored_item", None)
        data_value = getattr(monitored, "Value", None)
        timestamp = getattr(data_value, "SourceTimestamp", None) or getattr(
            data_value, "ServerTimestamp", None
        )
        try:
            self.source.on_change(binding, value, timestamp)
        except Exception:  # one odd value must not end the subscription
            log.exception("OPC UA source: a change of %s could not be taken", node.nodeid)

    def status_change_notification(self, status: Any) -> None:
        log.warning("OPC UA source: subscription status %s", status)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _number_or_none(value: Any) -> float | None:
    if not _is_number(value) or value in (float("inf"), float("-inf")):
        return None
    return float(value)


def _status_of(value: Any) -> str:
    if isinstance(value, bool):
        return "online" if value else "offline"
    return "offline" if str(value).strip().lower() in ("offline", "0", "false") else "online"
