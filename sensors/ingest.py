"""The twin's ears: subscribe to a line, validate and decode, feed the twin state.

Every message is checked before it touches the twin. A payload that is too
large, not JSON, of an unknown contract version or breaking the contract is
counted by kind and dropped; the ingest carries on with the next message.
Telemetry and event streams carry per-topic sequence numbers: the ingest drops
duplicates (QoS 1 may deliver twice) and counts gaps, so loss is never silent.

paho runs the callbacks on its network thread; the twin state is thread-safe,
so the ingest writes to it directly.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel

from sensors.codec import DECODE_ERROR_KINDS, DEFAULT_MAX_PAYLOAD_BYTES, DecodeError, decode
from sensors.mqtt import BrokerAddress, MqttError, connect, new_client
from sensors.topics import LineTopics, ParsedTopic
from twin.contract import (
    LineStatus,
    PartFinished,
    PartStarted,
    StateChanged,
    StationState,
    Telemetry,
)
from twin.state.line import TwinState

log = logging.getLogger(__name__)

# Remember at most this many missing sequence numbers per stream, so that a
# late (reordered) message can still be accepted instead of taken for a duplicate.
MAX_TRACKED_MISSING = 1024
# Parsed topics are remembered (a line has a few dozen); a flood of odd topics
# cannot grow the memory past this.
MAX_CACHED_TOPICS = 4096
# Asking again for the retained messages on a resumed session: done once none has
# come for RETAINED_QUIET_S after the subscription's answer or the last of them, and
# at most RETAINED_MAX_S after asking.
RETAINED_QUIET_S = 1.0
RETAINED_MAX_S = 10.0
# Streams (source, topic) whose sequence numbers are followed: a line's own are a
# few hundred per run; the oldest is forgotten past this.
MAX_SEQUENCE_STREAMS = 10_000


@dataclass
class _Stream:
    last: int
    missing: set[int] = field(default_factory=set)


class SequenceTracker:
    """Duplicate and gap detection for (source, topic) streams."""

    def __init__(self) -> None:
        self._streams: dict[tuple[str, str], _Stream] = {}
        self.gaps_by_channel: Counter[str] = Counter()
        self.gaps = 0
        self.duplicates = 0
        self.late = 0
        self.forgotten = 0

    def size(self) -> int:
        return len(self._streams)

    def accept(self, source: str, topic: str, seq: int, channel: str = "") -> bool:
        """True if the message is new; False if it is a duplicate to drop."""
        key = (source, topic)
        stream = self._streams.get(key)
        if stream is None:
            if len(self._streams) >= MAX_SEQUENCE_STREAMS:
                # A flood of made-up sources or topics: forget the oldest stream
                # (a source of a run long gone) rather than grow without bound.
                del self._streams[next(iter(self._streams))]
                self.forgotten += 1
            self._streams[key] = _Stream(last=seq)
            return True
        if seq > stream.last:
            if seq > stream.last + 1:
                self.gaps += seq - stream.last - 1
                self.gaps_by_channel[channel] += seq - stream.last - 1
                for missing in range(max(stream.last + 1, seq - MAX_TRACKED_MISSING), seq):
                    stream.missing.add(missing)
                while len(stream.missing) > MAX_TRACKED_MISSING:
                    stream.missing.remove(min(stream.missing))
            stream.last = seq
            return True
        if seq in stream.missing:
            stream.missing.remove(seq)
            self.gaps -= 1
            self.gaps_by_channel[channel] -= 1
            self.late += 1
            return True
        self.duplicates += 1
        return False


@dataclass
class IngestStats:
    received: int = 0
    accepted: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    unknown_topic: int = 0
    last_error: dict[str, str] | None = None
    last_message_monotonic: float | None = None


class Ingest:
    def __init__(
        self,
        twin: TwinState,
        topics: LineTopics,
        client: mqtt.Client,
        *,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        qos: int = 1,
        shared_group: str | None = None,
        on_accepted: Callable[[str | None, BaseModel], None] | None = None,
        retained_from: BrokerAddress | None = None,
    ) -> None:
        self.twin = twin
        # The broker to ask again for the retained messages (the line's birth, each
        # station's state) when a persistent session is resumed (see _on_connect).
        self.retained_from = retained_from
        self.retained_taken = 0  # retained messages taken on that clean session
        self.topics = topics
        self.client = client
        self.max_payload_bytes = max_payload_bytes
        self.qos = qos
        # MQTT 5 shared subscription: the broker splits the line's stream
        # among every ingest of the group. Each then sees only a share of each
        # sequence, so gaps are not counted per ingest (sum the groups instead).
        self.shared_group = shared_group
        self.track_sequences = not shared_group
        # Nor can its twin tell from the line's heartbeats what has arrived: it keeps
        # no watermark (twin.state.watermark) and holds nothing back.
        twin.whole_stream = not shared_group
        # Told of every message the twin took (station, message), after it took
        # it: history records what the twin knew.
        self.on_accepted = on_accepted
        self.stats = IngestStats()
        self.sequences = SequenceTracker()
        self.connected = False
        self.subscribed = threading.Event()
        self._lock = threading.Lock()
        self._parsed: dict[str, ParsedTopic] = {}
        # The station messages by exact type, for the hot path; anything else (the
        # line status) goes through _apply.
        self._appliers: dict[type, Callable[[str, Any], bool]] = {
            Telemetry: twin.apply_telemetry,
            StationState: twin.apply_station_state,
            PartStarted: twin.apply_event,
            PartFinished: twin.apply_event,
            StateChanged: twin.apply_event,
        }
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message

    @property
    def subscription(self) -> str:
        if self.shared_group:
            return f"$share/{self.shared_group}/{self.topics.subscription}"
        return self.topics.subscription

    # -- paho callbacks (network thread) ------------------------------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("MQTT connection refused: %s", reason_code)
            return
        self.connected = True
        # Subscribing here restores the subscription after every reconnect.
        client.subscribe(self.subscription, qos=self.qos)
        if flags.session_present and self.retained_from is not None and not self.shared_group:
            # A resumed session already holds the subscription, and a broker need not
            # send the retained messages again for it (the embedded rumqttd does not):
            # without the birth the twin would know no stations' order, names or
            # calendar. A clean session of its own asks for them.
            threading.Thread(
                target=self._fetch_retained, name="ingest-retained", daemon=True
            ).start()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.connected = False
        self.subscribed.clear()
        if reason_code.is_failure:
            log.warning("MQTT connection lost (%s); reconnecting", reason_code)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if any(code.is_failure for code in reason_codes):
            log.error("subscription to %s refused: %s", self.topics.subscription, reason_codes)
            return
        self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            self.handle(message.topic, bytes(message.payload))
        except Exception:
            # Whatever a message does, the ingest keeps running.
            log.exception("ingest failed on a message on %s", message.topic)

    def _fetch_retained(self) -> None:
        """Take the line's retained status and station states on a clean session of
        their own, then leave (on a thread of its own: it waits for the broker)."""
        address = self.retained_from
        assert address is not None  # noqa: S101 - the caller checked
        client = new_client(f"factory-twin-retained-{uuid.uuid4().hex[:8]}")
        prefix = self.topics.prefix
        last = [monotonic()]
        answered = threading.Event()

        def on_connect(
            client: mqtt.Client, userdata: object, flags: Any, reason: ReasonCode, props: Any
        ) -> None:
            if not reason.is_failure:
                client.subscribe([(f"{prefix}/status", 1), (f"{prefix}/+/state", 1)])

        def on_subscribe(client: mqtt.Client, userdata: object, *args: Any) -> None:
            last[0] = monotonic()  # the quiet is counted from the answer, however late
            answered.set()

        def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
            if not message.retain:
                return  # live: the session's own subscription has it
            last[0] = monotonic()
            try:
                self.handle(message.topic, bytes(message.payload), record=False)
                self.retained_taken += 1
            except Exception:
                log.exception("ingest failed on a retained message on %s", message.topic)

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        started = monotonic()
        try:
            connect(client, address)
        except MqttError as exc:
            log.warning("could not ask %s again for the retained messages: %s", address, exc)
            return
        try:
            # The retained messages follow the subscription's answer at once: done
            # once none has come for a while after it.
            answered.wait(RETAINED_MAX_S)
            while answered.is_set() and monotonic() - started < RETAINED_MAX_S:
                time.sleep(0.1)
                if monotonic() - last[0] >= RETAINED_QUIET_S:
                    break
        finally:
            client.disconnect()
            client.loop_stop()

    # -- the pipeline ------------------------------------------------------------
    def _reject(self, kind: str, topic: str, detail: str) -> None:
        self.stats.malformed[kind] += 1
        self.stats.last_error = {"kind": kind, "topic": topic, "detail": detail}
        if self.stats.malformed[kind] == 1:
            log.warning("dropped a %s message on %s: %s", kind, topic, detail)
        else:
            log.debug("dropped a %s message on %s: %s", kind, topic, detail)

    def handle(self, topic: str, payload: bytes, *, record: bool = True) -> bool:
        """Validate, decode and apply one message; True if the twin took it.
        ``record=False``: history is not told (a retained snapshot asked for again)."""
        # Every message of the line (and every one of a backfill) comes through here:
        # each step is a lookup or two.
        stats = self.stats
        with self._lock:
            stats.received += 1
            stats.last_message_monotonic = monotonic()
            parsed = self._parsed.get(topic)
            if parsed is None:
                parsed = self.topics.parse(topic)
                if parsed is not None and len(self._parsed) < MAX_CACHED_TOPICS:
                    self._parsed[topic] = parsed
                if parsed is None:
                    stats.unknown_topic += 1
                    return False
            channel = parsed.channel
            if channel == "cmd" or channel == "cmd/ack" or channel == "alarms":
                # Commands are the plant's business; alarms are the twin's own output.
                return False
            try:
                decoded: Any = decode(channel, payload, self.max_payload_bytes)
            except DecodeError as exc:
                self._reject(exc.kind, topic, exc.detail)
                return False
            if (
                (channel == "telemetry" or channel == "event")
                and self.track_sequences
                and not self.sequences.accept(decoded.source, topic, decoded.seq, channel)
            ):
                return False
            apply = self._appliers.get(type(decoded))
            if apply is not None:
                taken = parsed.station is not None and apply(parsed.station, decoded)
            else:
                taken = self._apply(parsed.station, decoded)
            if not taken:
                # Left out by the twin (twin.state.admission counts why): not history either.
                return False
            stats.accepted += 1
        on_accepted = self.on_accepted
        if on_accepted is not None and record:
            try:
                on_accepted(parsed.station, decoded)
            except Exception:
                # History trouble must not stop the twin; the store counts its own errors.
                log.exception("recording a message on %s failed", topic)
        return True

    def _apply(self, station: str | None, message: BaseModel) -> bool:
        if isinstance(message, LineStatus):
            return self.twin.apply_line_status(message)
        if station is None:
            return False
        if isinstance(message, Telemetry):
            return self.twin.apply_telemetry(station, message)
        if isinstance(message, StationState):
            return self.twin.apply_station_state(station, message)
        return self.twin.apply_event(station, message)  # type: ignore[arg-type]

    # -- health ------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        with self._lock:
            age = None
            if self.stats.last_message_monotonic is not None:
                age = time.monotonic() - self.stats.last_message_monotonic
            return {
                "connected": self.connected,
                "received": self.stats.received,
                "accepted": self.stats.accepted,
                "malformed": {kind: self.stats.malformed[kind] for kind in DECODE_ERROR_KINDS},
                "unknown_topic": self.stats.unknown_topic,
                "duplicates": self.sequences.duplicates,
                "gaps": self.sequences.gaps,
                "gaps_by_channel": {
                    channel: self.sequences.gaps_by_channel[channel]
                    for channel in ("telemetry", "event")
                },
                "late": self.sequences.late,
                "last_error": self.stats.last_error,
                "rejected": self.twin.rejected(),
                "sequence_streams": self.sequences.size(),
                "last_message_age_s": age,
            }
