"""The watermark: the line time up to which every channel of the line has arrived.

A line's messages travel different paths: telemetry at QoS 0 goes straight to the
broker, events wait in the publisher's QoS 1 outbox when the broker is slow. The
newest ``sim_time_s`` seen is therefore not a time the twin knows the line at:
events of minutes before may still be on their way. The twin computes every KPI,
counter and ratio as of the watermark instead, and holds back what arrives
beyond it (``twin.state.line``).

The rule (docs/mqtt.md, "Heartbeat and watermark"):

* A **stream** is one station's event topic or one station's telemetry topic.
  MQTT keeps the order within one topic, so once a stream's message of line time
  ``t`` has arrived, all of its messages before ``t`` have (or were lost, which
  the sequence numbers count).
* The line's **heartbeat** (its status, QoS 0, every quarter second of wall time)
  says how many messages it had published on each stream at line time ``T``. A
  stream whose highest sequence number seen reaches that count is complete up to
  ``T`` inclusive, however quiet it is since: a station that is down sends no
  events, and its stream still moves on.
* A stream's clock is the later of the two: just before its newest message, or
  the newest heartbeat it covers. The **watermark** is the earliest clock of the
  streams the heartbeat names; it never goes back.
* A line that sends **no heartbeat** (a 1.0 or 1.1 publisher, a backfill) is
  trusted to send in order: the watermark is the newest message's time, nothing
  is held back, and the lag is not known (null).

The lag is the newest line time the twin knows (a heartbeat's, or any message's)
minus the watermark, in line seconds; in messages, what the newest heartbeat
says was published and the twin has not received yet.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

# (station, channel): channel is "event" or "telemetry".
StreamKey = tuple[str, str]
# Heartbeats not yet covered by every stream; past this, every other one is let
# go (the watermark then moves in longer steps, never wrongly).
MAX_PENDING_HEARTBEATS = 64


@dataclass(frozen=True, slots=True)
class Heartbeat:
    sim_time_s: float
    counts: Mapping[StreamKey, int]


class _Stream:
    __slots__ = ("last_seq", "last_time")

    def __init__(self, seq: int, sim_time: float) -> None:
        self.last_seq = seq
        self.last_time = sim_time


class Watermark:
    """Streams' progress and the line's heartbeats; not thread-safe (the twin's
    lock guards it)."""

    def __init__(self) -> None:
        self._streams: dict[StreamKey, _Stream] = {}
        self._pending: deque[Heartbeat] = deque()
        self._newest_heartbeat: Heartbeat | None = None
        # The newest heartbeat every named stream covers: all is in up to its time.
        self._base: float | None = None
        self._newest: float | None = None
        # The earliest line time seen: the lag before anything is complete.
        self._earliest = math.inf
        self.value: float | None = None

    @property
    def heartbeats(self) -> bool:
        """True once the line has sent a heartbeat: events are then held back."""
        return self._newest_heartbeat is not None

    def saw(self, station: str, channel: str, seq: int, sim_time: float) -> None:
        """A message of the stream (``channel`` "event" or "telemetry") arrived."""
        key = (station, channel)
        stream = self._streams.get(key)
        if stream is None:
            self._streams[key] = _Stream(seq, sim_time)
        else:
            if seq > stream.last_seq:
                stream.last_seq = seq
            if sim_time > stream.last_time:
                stream.last_time = sim_time
        newest = self._newest
        if newest is None or sim_time > newest:
            self._newest = sim_time
        if sim_time < self._earliest:
            self._earliest = sim_time

    def heartbeat(
        self,
        sim_time: float,
        events: Mapping[str, int] | None,
        telemetry: Mapping[str, int] | None,
    ) -> None:
        counts: dict[StreamKey, int] = {}
        for channel, published in (("event", events), ("telemetry", telemetry)):
            for station, count in (published or {}).items():
                counts[(station, channel)] = count
        beat = Heartbeat(sim_time, counts)
        self._earliest = min(self._earliest, sim_time)
        newest = self._newest_heartbeat
        if newest is not None and sim_time < newest.sim_time_s:
            return  # overtaken by a later one (QoS 0 keeps no order with QoS 1)
        self._newest_heartbeat = beat
        self._pending.append(beat)
        if len(self._pending) > MAX_PENDING_HEARTBEATS:
            # Keep the newest and every other older one: coverage in coarser steps.
            kept = list(self._pending)
            self._pending = deque(kept[-1::-2][::-1])

    def _received(self, key: StreamKey) -> int:
        """Messages of the stream up to its highest seq (lost ones included)."""
        stream = self._streams.get(key)
        return 0 if stream is None else stream.last_seq + 1

    def _covers(self, beat: Heartbeat, key: StreamKey) -> bool:
        count = beat.counts.get(key, 0)
        return count <= 0 or self._received(key) >= count

    def update(self) -> float | None:
        """Move the watermark on (never back) and return it."""
        newest = self._newest_heartbeat
        if newest is None:
            computed = self._newest
        else:
            pending = self._pending
            keys = list(newest.counts)
            # The front heartbeats every stream covers: all is in up to their time.
            while pending and all(self._covers(pending[0], key) for key in keys):
                self._base = pending.popleft().sim_time_s
            computed = None
            for key in keys:
                clock = self._base
                for beat in pending:  # counts grow with time: the covered ones lead
                    if not self._covers(beat, key):
                        break
                    clock = beat.sim_time_s
                stream = self._streams.get(key)
                if stream is not None:
                    # Just before its newest message: another of the same time may follow.
                    before = math.nextafter(stream.last_time, -math.inf)
                    clock = before if clock is None else max(clock, before)
                if clock is None:
                    computed = None
                    break
                computed = clock if computed is None else min(computed, clock)
        if computed is not None and (self.value is None or computed > self.value):
            self.value = computed
        return self.value

    def close(self) -> float | None:
        """The line went offline: everything it sent is in."""
        newest = self.newest_s
        if newest is not None and (self.value is None or newest > self.value):
            self.value = newest
        return self.value

    @property
    def newest_s(self) -> float | None:
        """The newest line time the twin knows of: a heartbeat's or a message's."""
        beat = self._newest_heartbeat
        times = [t for t in (self._newest, beat.sim_time_s if beat else None) if t is not None]
        return max(times) if times else None

    def lag_s(self) -> float | None:
        """Line seconds between the newest line time known and the watermark; None
        without a heartbeat (not known)."""
        beat = self._newest_heartbeat
        if beat is None:
            return None
        newest = self.newest_s
        assert newest is not None  # noqa: S101 - a heartbeat has a time
        value = self.value if self.value is not None else self._earliest
        return max(0.0, newest - min(value, newest))

    def lag_messages(self) -> int | None:
        """Messages the newest heartbeat says were published and have not arrived;
        None without a heartbeat."""
        beat = self._newest_heartbeat
        if beat is None:
            return None
        return sum(max(0, count - self._received(key)) for key, count in beat.counts.items())
