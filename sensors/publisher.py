"""The plant's voice: measures the plant and publishes what it sees over MQTT.

The publisher listens to plant events (parts started and finished, state
changes) and publishes each on the station's ``event`` topic; state changes are
also published retained on ``state``. A SimPy process samples every station's
sensors each ``telemetry_period_s`` of simulation time and publishes the
readings on ``telemetry``. Birth and last will go to the line's ``status``.

Sequence numbers run per topic, because MQTT orders messages only within one
topic; ``source`` is new at every start so that a restarted publisher is not
mistaken for a stream of duplicates.

A live line also publishes a heartbeat on ``status`` every ``HEARTBEAT_WALL_S``
(QoS 0, not retained): how many messages it has published on each station's
event and telemetry topic by its current time. The twin's watermark rests on it
(docs/mqtt.md, "Heartbeat and watermark").

**Back-pressure.** paho is the outbox. Its size (QoS 1 messages not yet
acknowledged or not yet sent, and packets not yet written, QoS 0 among them;
counted by ``sensors.paho_internals``, which says how when paho's tables cannot
be read) is
a pressure on the live runner, which slows the line before the outbox reaches its
bound (``twin.sim.live``). Should it reach it all the same (a burst within one slice),
a live line's publisher waits for room rather than drop: the plant's own thread
stops, so the line slows down. Messages are dropped, and counted by reason, only
when the line cannot wait: ``broker unreachable`` (no connection: a QoS 0 sample,
or a full outbox while disconnected) or ``outbox full`` (a batch plant, or a wait
past ``MAX_WAIT_S``).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import simpy
from paho.mqtt.client import MQTT_ERR_NO_CONN, MQTT_ERR_QUEUE_SIZE, MQTT_ERR_SUCCESS
from pydantic import BaseModel

from sensors.codec import encode
from sensors.paho_internals import Outbox, outbox_of
from sensors.sampling import SensorProbe, sampling_clock, sampling_groups
from sensors.signals import Sensor, SensorModel
from sensors.topics import LineTopics
from twin.config.line import SENSOR_NAMES, SensorFault
from twin.contract import (
    PACKML_STATE,
    SCHEMA_VERSION,
    STATE_CATEGORY,
    CalendarDescription,
    LineDescription,
    LineStatus,
    StationDescription,
)
from twin.sim.events import PartFinishedEvent, PartStartedEvent, PlantEvent, StateChangedEvent
from twin.sim.live import LiveRunner
from twin.sim.plant import Plant
from twin.state.clock import describe_calendar

# A protocol adapter that speaks the line in another standard (OPC UA, Sparkplug B)
# hears every message as it goes out: (station or None for the line, channel,
# the message as a dict of the contract's fields). On the plant's thread; it must
# be quick and must not keep the dict (the publisher does not reuse it, but a
# tap that hands it to another thread should copy what it needs).
Tap = Callable[[str | None, str, dict[str, Any]], None]

# Compact JSON: orjson, about half the cost of pydantic's encoder per message, on
# the path every reading takes (a backfill encodes half a million messages a
# simulated week); its floats are the shortest that read back exactly. Readings
# are finite by construction; were one not, it would go as null (no reading:
# orjson's way with NaN and infinities), never as a NaN that breaks JSON. Bound
# to the module's name, not wrapped: no Python frame per message.
_dumps: Callable[[dict[str, Any]], bytes] = orjson.dumps


@dataclass(frozen=True, slots=True)
class QosPolicy:
    telemetry: int = 0
    event: int = 1
    state: int = 1
    status: int = 1


# Messages paho may hold (QoS 1 unacknowledged or queued; packets not yet written):
# the memory bound at any speed. paho numbers its messages in 16 bits, so no more
# than 65,535 QoS 1 messages can wait at once.
DEFAULT_MAX_OUTBOX = 50_000
# The outbox at which the live line's pressure reaches 1 and it slows down.
DEFAULT_PACE_OUTBOX = 2_000
# Wall seconds a live line waits for room in a full outbox before it drops.
MAX_WAIT_S = 60.0
# Wall seconds between two heartbeats of a live line; of a line standing still
# (paused: the same time and counts), between two repeats.
HEARTBEAT_WALL_S = 0.25
HEARTBEAT_IDLE_WALL_S = 5.0
log = logging.getLogger(__name__)


def new_source_id(line: str) -> str:
    return f"plant-{line}-{uuid.uuid4().hex[:8]}"


def _capacity(capacity: float) -> int | None:
    return None if math.isinf(capacity) else int(capacity)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class PlantPublisher:
    def __init__(
        self,
        plant: Plant,
        client: mqtt.Client,
        topics: LineTopics,
        *,
        rng: random.Random,
        source: str | None = None,
        qos: QosPolicy | None = None,
        max_outbox: int = DEFAULT_MAX_OUTBOX,
        pace_outbox: int = DEFAULT_PACE_OUTBOX,
        live: LiveRunner | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self.plant = plant
        # The live runner whose pause and speed the status announces; None: a batch
        # plant (a backfill), never paused, as fast as it runs.
        self.live = live
        self.client = client
        # What the client holds of the messages handed to it (default: as its kind
        # and paho's version allow, ``sensors.paho_internals.outbox_of``).
        self.outbox = outbox if outbox is not None else outbox_of(client)
        self._track = self.outbox.track if self.outbox.tracks else None
        self.topics = topics
        self.rng = rng
        self.source = source or new_source_id(topics.line)
        self.qos = qos or QosPolicy()
        sensors = plant.config.sensors
        self.telemetry_period_s = sensors.telemetry_period_s
        # Every fitted sensor of every station, with its faults from the config.
        self.sensors: dict[tuple[str, str], Sensor] = {}
        for spec in plant.config.stations:
            for name in SENSOR_NAMES:
                sensor_spec = getattr(spec.sensors, name)
                if sensor_spec is not None:
                    self.sensors[(spec.id, name)] = Sensor(
                        SensorModel.from_spec(sensor_spec, name),
                        [f for f in sensors.faults if f.station == spec.id and f.sensor == name],
                    )
        # Per-topic sequence counters: the next seq of each topic. Station topics
        # are numbered on the plant's thread only; the status topic under the lock
        # (announce() may come from another thread).
        self._seq: dict[str, int] = {}
        # (station, event topic, telemetry topic): what the heartbeat counts.
        self._streams = [
            (spec.id, topics.station(spec.id, "event"), topics.station(spec.id, "telemetry"))
            for spec in plant.config.stations
        ]
        self._station_of_telemetry = {telemetry: station for station, _, telemetry in self._streams}
        self._heartbeat_at = 0.0
        self._heartbeat_said: tuple[float, tuple[dict[str, int], dict[str, int]]] | None = None
        self._headline: dict[str, str] = {}
        self._event_topics: dict[str, str] = {}
        self._lock = threading.Lock()
        self.max_outbox = max_outbox
        self.pace_outbox = pace_outbox
        # Waits for room in a full outbox (the line slowed down), and their wall seconds.
        self.waits = 0
        self.waited_s = 0.0
        # Messages not handed over: the outbox was full, or a QoS 0 sample found
        # the broker gone. Counted by kind, never silent.
        self.dropped: Counter[str] = Counter()
        # What this publisher handed to the broker, by message kind; tests and
        # benchmarks compare it with what the twin saw.
        self.published: Counter[str] = Counter()
        self._taps: list[Tap] = []

    # -- wiring ------------------------------------------------------------------
    def last_will(self) -> tuple[str, bytes, int, bool]:
        will = LineStatus(
            schema_version=SCHEMA_VERSION,
            ts_ms=_wall_ms(),
            seq=0,
            source=self.source,
            status="offline",
            sim_time_s=None,
        )
        return self.topics.status, encode(will), self.qos.status, True

    def add_tap(self, tap: Tap) -> None:
        """Let ``tap`` hear every message this publisher sends (see ``Tap``)."""
        self._taps.append(tap)

    def _tell_taps(self, station: str | None, channel: str, message: dict[str, Any]) -> None:
        for tap in self._taps:
            try:
                tap(station, channel, message)
            except Exception:  # another protocol's trouble never stops the line
                log.exception("a %s tap failed on %s", channel, station or "the line")

    def attach(self) -> None:
        """Start listening to the plant and sampling its sensors."""
        topic, payload, qos, retain = self.last_will()
        self.client.will_set(topic, payload, qos=qos, retain=retain)
        self.plant.add_listener(self.on_plant_event)
        self.plant.env.process(self.sample_sensors())
        if self.live is not None:
            # A pause, a resume or a new speed goes out as the retained status again.
            self.live.add_listener(self.announce)
            self.live.add_pressure(self.outbox_pressure)
            self.live.add_tick(self.heartbeat)

    def describe_calendar(self) -> CalendarDescription | None:
        calendar = self.plant.config.calendar
        return describe_calendar(calendar) if calendar is not None else None

    def shortest_sampling_period_s(self) -> float | None:
        """The shortest period at which any sensor of the line is sampled."""
        config = self.plant.config
        default = config.sensors.telemetry_period_s
        periods = [
            getattr(spec.sensors, name).period_s or default
            for spec in config.stations
            for name in SENSOR_NAMES
            if getattr(spec.sensors, name) is not None
        ]
        return min(periods) if periods else None

    def describe_line(self) -> LineDescription:
        config = self.plant.config
        return LineDescription(
            calendar=self.describe_calendar(),
            telemetry_period_s=self.shortest_sampling_period_s(),
            name=config.line.name or config.line.id,
            stations=[
                StationDescription(
                    id=spec.id,
                    name=spec.display_name,
                    position=index,
                    ideal_cycle_time_s=spec.planned_runtime_per_unit_s(),
                    input_buffer_capacity=_capacity(config.buffer_capacity(index)),
                    machines=spec.machines,
                    ideal_cycle_time_by_product_s=(
                        dict(station.ideal_by_product) if len(config.products) > 1 else None
                    ),
                )
                for index, (spec, station) in enumerate(
                    zip(config.stations, self.plant.stations, strict=True)
                )
            ],
        )

    def announce(self, status: str = "online") -> None:
        """Publish the retained line status: the birth message, or a clean goodbye;
        again after every pause, resume and change of speed of the live line."""
        message = self._status(status, self.describe_line())
        self._publish(self.topics.status, message, "status", self.qos.status, retain=True)

    def _status(self, status: str, description: LineDescription | None) -> LineStatus:
        live = self.live
        # A batch plant (a backfill) hands over in order: no counts, no watermark needed.
        published_events, published_telemetry = (
            self.published_counts() if live is not None else (None, None)
        )
        return LineStatus(
            schema_version=SCHEMA_VERSION,
            ts_ms=_wall_ms(),
            seq=self._next_seq(self.topics.status),
            source=self.source,
            status="online" if status == "online" else "offline",
            sim_time_s=self.plant.now,
            description=description,
            paused=live.paused if live is not None else False,
            speed_factor=live.speed_in_force if live is not None else None,
            speed_asked=live.speed if live is not None else None,
            published_events=published_events,
            published_telemetry=published_telemetry,
        )

    def published_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Messages published so far on each station's event and telemetry topic (by
        station): with the plant's time, what the heartbeat says."""
        seq = self._seq
        return (
            {station: seq.get(event, 0) for station, event, _ in self._streams},
            {station: seq.get(telemetry, 0) for station, _, telemetry in self._streams},
        )

    def heartbeat(self, force: bool = False) -> None:
        """Publish the heartbeat if one is due, or ``force``d (the live runner's tick,
        on the plant's thread, so that the counts and the time agree): QoS 0, so that
        it overtakes events waiting in the outbox, and not retained (the birth keeps
        the description)."""
        now = time.monotonic()
        if not force and now - self._heartbeat_at < HEARTBEAT_WALL_S:
            return
        said = (self.plant.now, self.published_counts())
        if (
            not force
            and said == self._heartbeat_said
            and (now - self._heartbeat_at < HEARTBEAT_IDLE_WALL_S)
        ):
            return  # nothing moved: a repeat now and then, in case one was lost
        self._heartbeat_at, self._heartbeat_said = now, said
        self._publish(self.topics.status, self._status("online", None), "heartbeat", 0)

    # -- publishing --------------------------------------------------------------
    def _next_seq(self, topic: str) -> int:
        with self._lock:
            seq = self._seq.get(topic, 0)
            self._seq[topic] = seq + 1
            return seq

    def _outbox_size(self) -> int:
        """Messages paho holds: QoS 1 not yet acknowledged, or not yet sent.

        paho is the outbox: it keeps QoS 1 messages across a lost connection
        and sends them again after the reconnect.
        """
        return self.outbox.held()

    def _packets_queued(self) -> int:
        """Packets paho has not written to the socket yet: where QoS 0 waits."""
        return self.outbox.unwritten()

    def outbox_pressure(self) -> float:
        """The outbox as a share of the size at which the live line slows down."""
        return max(self._outbox_size(), self._packets_queued()) / self.pace_outbox

    def _connected(self) -> bool:
        is_connected = getattr(self.client, "is_connected", None)
        return bool(is_connected()) if is_connected is not None else True

    def _full(self, qos: int) -> bool:
        if qos > 0:
            return self._outbox_size() >= self.max_outbox
        return self._packets_queued() >= self.max_outbox

    def _wait_for_room(self, qos: int) -> bool:
        """A live line waits for room in a full outbox while the broker is connected:
        the plant's thread stops, so the line slows down rather than drop. False:
        still full (disconnected, stopping, or past ``MAX_WAIT_S``)."""
        live = self.live
        if live is None:
            return False
        start = time.monotonic()
        self.waits += 1
        try:
            while self._full(qos):
                if not self._connected() or live.stopping:
                    return False
                if time.monotonic() - start > MAX_WAIT_S:
                    return False
                time.sleep(0.005)
            return True
        finally:
            self.waited_s += time.monotonic() - start

    def _publish(
        self, topic: str, message: BaseModel, kind: str, qos: int, retain: bool = False
    ) -> None:
        self._send(topic, encode(message), kind, qos, retain)
        if self._taps:
            self._tell_taps(None, "status", message.model_dump(mode="json"))

    def _send(self, topic: str, payload: bytes, kind: str, qos: int, retain: bool = False) -> None:
        if self._full(qos) and not self._wait_for_room(qos):
            # Overflow policy: refuse the newest message and count it; what is
            # already queued keeps its place and order.
            self._drop(kind, "outbox full" if self._connected() else "broker unreachable")
            return
        info = self.client.publish(topic, payload, qos, retain)
        rc = info.rc
        # paho keeps a QoS 1 message that finds no connection, and sends it after the
        # reconnect: handed over all the same.
        if rc != MQTT_ERR_SUCCESS and not (qos > 0 and rc == MQTT_ERR_NO_CONN):
            if rc == MQTT_ERR_QUEUE_SIZE:
                self._drop(kind, "outbox full")
            elif rc == MQTT_ERR_NO_CONN:
                self._drop(kind, "broker unreachable")
            else:
                self._drop(kind, f"publish failed (paho rc {int(rc)})")
            return
        if self._track is not None:
            self._track(info.mid, qos)
        # No lock: once the line runs only the plant's thread publishes, and
        # one dict update is atomic under the interpreter lock.
        self.published[kind] += 1

    def _drop(self, kind: str, why: str) -> None:
        with self._lock:
            self.dropped[f"{kind}: {why}"] += 1
            first = self.dropped[f"{kind}: {why}"] == 1
        if first:
            log.warning("dropping %s messages: %s (counted in dropped)", kind, why)

    def _header(self, topic: str) -> dict[str, Any]:
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        return {
            "schema_version": SCHEMA_VERSION,
            "ts_ms": time.time_ns() // 1_000_000,
            "seq": seq,
            "source": self.source,
            "sim_time_s": float(self.plant.env.now),
        }

    def on_plant_event(self, event: PlantEvent) -> None:
        """Publish one plant event; a state change also updates the retained state.

        Events are encoded straight to JSON, as telemetry is (``publish_telemetry``):
        the plant hands over values of the contract's types (converted here where
        they might not be), so each payload is valid against the contract, as the
        tests check of every payload on every topic. Building and validating a
        model per event cost more than the rest of its publishing.
        """
        topic = self._event_topics.get(event.station)
        if topic is None:
            topic = self._event_topics[event.station] = self.topics.station(event.station, "event")
        message = self._header(topic)
        if isinstance(event, StateChangedEvent):
            message["event"] = "state_changed"
            message["machine"] = event.machine
            message["from_state"] = event.from_state
            message["to_state"] = event.to_state
            message["reason"] = event.reason
            message["category"] = STATE_CATEGORY[event.to_state]
            message["packml"] = PACKML_STATE[event.to_state]
            kind = "state_changed"
        elif isinstance(event, PartStartedEvent):
            message["event"] = "part_started"
            message["part_id"] = event.part_id
            message["machine"] = event.machine
            message["product"] = event.product
            message["input_buffer_level"] = event.input_buffer_level
            kind = "part_started"
        elif isinstance(event, PartFinishedEvent):
            message["event"] = "part_finished"
            message["part_id"] = event.part_id
            message["machine"] = event.machine
            message["product"] = event.product
            message["result"] = event.outcome
            message["processing_time_s"] = float(event.processing_time_s)
            message["exits_line"] = event.exits_line
            message["output_buffer_level"] = event.output_buffer_level
            message["process"] = (
                None
                if event.process is None
                else {name: float(value) for name, value in event.process.items()}
            )
            kind = "part_shipped" if event.exits_line else f"part_finished_{event.outcome}"
        else:
            return
        self._send(topic, _dumps(message), kind, self.qos.event)
        if self._taps:
            self._tell_taps(event.station, "event", message)
        if isinstance(event, StateChangedEvent):
            self._publish_state(event)  # after the event it comes of

    def _publish_state(self, event: StateChangedEvent) -> None:
        """Publish the station's headline state, retained, when it changes."""
        headline = self.plant.by_id[event.station].state
        if self._headline.get(event.station) == headline:
            return
        self._headline[event.station] = headline
        topic = self.topics.station(event.station, "state")
        message = self._header(topic)
        message["state"] = headline
        message["reason"] = event.reason
        message["since_sim_time_s"] = float(event.time)
        message["packml"] = PACKML_STATE[headline]
        self._send(topic, _dumps(message), "state", self.qos.state, retain=True)
        if self._taps:
            self._tell_taps(event.station, "state", message)

    def inject_fault(self, fault: SensorFault) -> None:
        """Add a sensor fault while the line runs (from ``fault.start_h`` on)."""
        sensor = self.sensors.get((fault.station, fault.sensor))
        if sensor is None:
            raise ValueError(f"station {fault.station!r} has no {fault.sensor} sensor")
        sensor.faults.append(fault)

    def publish_telemetry(self, topic: str, sensors: Sequence[SensorProbe]) -> None:
        """Sample ``sensors`` (of the station of ``topic``) now and publish the readings
        as one sample; sensors in dropout send nothing.

        Telemetry is the bulk of the traffic, so it is encoded straight to JSON
        rather than through the contract model: every value is a finite float
        inside its sensor's range by construction (``SensorModel.measure``), so the
        payload is valid against the contract, as the tests check.
        """
        now = float(self.plant.env.now)
        rng = self.rng
        message: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "ts_ms": time.time_ns() // 1_000_000,
            "seq": 0,
            "source": self.source,
            "sim_time_s": now,
        }
        readings = 0
        for name, sensor, probe in sensors:
            if sensor.faults:
                value = sensor.read(probe(now), rng, now)
                if value is None:
                    continue  # dropout
            else:
                # Sensor.read's common case (no fault), without its frame: a reading
                # is taken about a million times a simulated week.
                sensor.last = value = sensor.model.measure(probe(now), rng, now)
            message[name] = value
            readings += 1
        if not readings:
            return
        # Numbered only when sent: a sample with every sensor in dropout is no lost
        # message (the heartbeat's counts and the twin's gaps agree).
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        message["seq"] = seq
        self._send(topic, _dumps(message), "telemetry", self.qos.telemetry)
        if self._taps:
            self._tell_taps(self._station_of_telemetry.get(topic), "telemetry", message)

    def sample_sensors(self) -> Generator[simpy.Event, Any, None]:
        """The SimPy process that samples every sensor of the line on one clock
        (``sensors.sampling.sampling_clock``); its groups are resolved when it starts."""
        groups = sampling_groups(self.plant, self.sensors, self.topics, self.telemetry_period_s)
        yield from sampling_clock(self.plant.env, groups, self.publish_telemetry)

    # -- shutdown ----------------------------------------------------------------
    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the broker acknowledged every QoS 1 message; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.pending() > 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def health(self) -> dict[str, Any]:
        live = self.live
        with self._lock:
            return {
                "source": self.source,
                "connected": self._connected(),
                "published": dict(self.published),
                "dropped": dict(self.dropped),
                "outbox_pending": self.pending(),
                "outbox_size": self._outbox_size(),
                "packets_queued": self._packets_queued(),
                "outbox_limit": self.max_outbox,
                "pace_outbox": self.pace_outbox,
                "outbox_waits": self.waits,
                "outbox_waited_s": self.waited_s,
                "speed_asked": live.speed if live is not None else None,
                "speed_in_force": live.speed_in_force if live is not None else None,
                "pressure": live.pressure if live is not None else None,
            }

    def pending(self) -> int:
        """QoS 1 and 2 messages the broker has not acknowledged yet (the outbox holds
        no others: QoS 0 leaves it once written)."""
        return self.outbox.held()
