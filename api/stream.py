"""The live stream hub: twin updates as numbered events for Server-Sent Events.

One producer task samples the twin every ``period_s`` and, when the twin has
taken messages since the last sample, turns what changed into events: a
``line`` event (status, clock and KPIs) and one ``station`` event per station
whose view changed. Each event gets the next integer id and goes into a ring
buffer (for resuming) and into the queue of every client that wants it.

The producer never waits for a client. A client's queue is bounded; when it is
full the client is *coalesced*: the hub drops what was queued for it and
stops queueing, and the next event the hub hands it is one ``reset`` with a
full snapshot, in place of everything it missed. A slow client
therefore costs a bounded queue, never the ingest's time.

Ids start at the hub's start time in microseconds, so they keep growing across
restarts: an id from before a restart is older than the buffer and resumes
with a ``reset``, never in the middle of an unrelated sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from twin.state.line import TwinState
from twin.state.views import LineView

log = logging.getLogger(__name__)

EventKind = Literal["line", "station", "reset", "alarm"]
ResetReason = Literal["new", "expired", "overflow"]


class StreamReset(BaseModel):
    """The ``reset`` event: drop what you hold, this is the whole twin as of this id."""

    reason: ResetReason = Field(
        description="new: a stream without Last-Event-ID; expired: the id is older than "
        "the replay buffer (or unknown); overflow: this client fell behind."
    )
    twin: LineView = Field(description="As GET /twin, with only the requested stations.")


@dataclass(frozen=True, slots=True)
class StreamEvent:
    id: int
    kind: EventKind
    station: str | None
    data: str  # JSON, serialized once for every client


class Subscription:
    """One client: what it asked for, its bounded queue, and whether it owes a reset."""

    def __init__(
        self,
        hub: TwinStream,
        stations: frozenset[str] | None,
        line: bool,
        queue_size: int,
    ) -> None:
        self.hub = hub
        self.stations = stations
        self.line = line
        self.queue_size = queue_size
        self.backlog: deque[StreamEvent] = deque()  # replayed events, sent first
        self.queue: deque[StreamEvent] = deque()
        self.reset_reason: ResetReason | None = None
        self.overflows = 0
        self.closed = False
        self._wakeup = asyncio.Event()

    def wants(self, event: StreamEvent) -> bool:
        if event.kind == "line" or (event.kind == "alarm" and event.station is None):
            return self.line
        return self.stations is None or event.station in self.stations

    def offer(self, event: StreamEvent) -> None:
        """Called by the producer: never waits."""
        if self.closed or self.reset_reason is not None or not self.wants(event):
            return  # a client owing a reset gets the news in its snapshot
        if len(self.queue) >= self.queue_size:
            # The snapshot supersedes everything still queued: free it now.
            self.backlog.clear()
            self.queue.clear()
            self.reset_reason = "overflow"
            self.overflows += 1
            self.hub.overflows += 1
        else:
            self.queue.append(event)
        self._wakeup.set()

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()

    async def next(self) -> StreamEvent | None:
        """The next event for this client; None once the hub has stopped."""
        while True:
            if self.closed:
                return None
            if self.backlog:
                return self.backlog.popleft()
            if self.queue:
                return self.queue.popleft()
            if self.reset_reason is not None:
                # No await from here to the return: the snapshot and the id it
                # carries are those of the hub's latest sample, and every later
                # event will be offered to this client again.
                reason, self.reset_reason = self.reset_reason, None
                return self.hub.reset_event(self, reason)
            self._wakeup.clear()
            await self._wakeup.wait()


class TwinStream:
    """Samples a ``TwinState`` and fans its changes out to subscribers."""

    def __init__(
        self,
        twin: TwinState,
        *,
        period_s: float = 0.5,
        buffer_size: int = 1000,
        client_queue_size: int = 256,
        heartbeat_s: float = 15.0,
        first_id: int | None = None,
    ) -> None:
        self.twin = twin
        self.period_s = period_s
        self.heartbeat_s = heartbeat_s  # idle streams get a comment this often
        self.buffer_size = buffer_size
        self.client_queue_size = client_queue_size
        self.first_id = time.time_ns() // 1000 if first_id is None else first_id
        self.last_id = self.first_id - 1
        self.buffer: deque[StreamEvent] = deque(maxlen=buffer_size)
        self.subscribers: set[Subscription] = set()
        self.samples = 0
        self.errors = 0
        self.overflows = 0
        self.resets = 0
        self._latest: LineView | None = None
        self._last_line: str | None = None
        self._last_stations: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._run(), name="twin-stream")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for subscription in list(self.subscribers):
            subscription.close()
        self.subscribers.clear()

    def end_clients(self) -> None:
        """End every client's stream (the server is stopping); the hub runs on."""
        for subscription in list(self.subscribers):
            subscription.close()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def stats(self) -> dict[str, int]:
        return {
            "clients": len(self.subscribers),
            "last_id": self.last_id,
            "buffered": len(self.buffer),
            "samples": self.samples,
            "errors": self.errors,
            "overflows": self.overflows,
            "resets": self.resets,
        }

    # -- clients ------------------------------------------------------------------
    def subscribe(
        self,
        stations: Iterable[str] | None = None,
        *,
        line: bool = True,
        last_event_id: int | None = None,
    ) -> Subscription:
        """A new client. With ``last_event_id`` still in the buffer (or the newest
        id), the events after it are replayed first; otherwise it starts with a reset."""
        subscription = Subscription(
            self,
            frozenset(stations) if stations is not None else None,
            line,
            self.client_queue_size,
        )
        if last_event_id is not None and self.resumable(last_event_id):
            subscription.backlog.extend(
                event
                for event in self.buffer
                if event.id > last_event_id and subscription.wants(event)
            )
        else:
            subscription.reset_reason = "new" if last_event_id is None else "expired"
        self.subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.close()
        self.subscribers.discard(subscription)

    def resumable(self, last_event_id: int) -> bool:
        oldest = self.buffer[0].id if self.buffer else self.last_id + 1
        return oldest - 1 <= last_event_id <= self.last_id

    def reset_event(self, subscription: Subscription, reason: ResetReason) -> StreamEvent:
        view = self._latest if self._latest is not None else self.twin.view()
        if subscription.stations is not None:
            view = view.model_copy(
                update={"stations": [s for s in view.stations if s.id in subscription.stations]}
            )
        self.resets += 1
        reset = StreamReset(reason=reason, twin=view)
        return StreamEvent(self.last_id, "reset", None, reset.model_dump_json())

    # -- producer -----------------------------------------------------------------
    async def _run(self) -> None:
        seen_updates: int | None = None
        while True:
            try:
                updates = self.twin.updates
                if updates != seen_updates:
                    seen_updates = updates
                    # Off the event loop: the twin's lock is shared with the ingest.
                    sample = await asyncio.to_thread(self._sample)
                    self._publish(*sample)
            except Exception:
                self.errors += 1
                log.exception("sampling the twin for the live stream failed")
            await asyncio.sleep(self.period_s)

    def _sample(self) -> tuple[LineView, str, dict[str, str]]:
        view = self.twin.view()
        # The line event is a LineSummary: the view without its stations.
        stations = {station.id: station.model_dump_json() for station in view.stations}
        return view, view.model_dump_json(exclude={"stations"}), stations

    def _publish(self, view: LineView, line: str, stations: dict[str, str]) -> None:
        """Number and fan out what changed; runs on the loop, without awaiting."""
        self.samples += 1
        self._latest = view
        if line != self._last_line:
            self._last_line = line
            self._emit("line", None, line)
        for station_id, data in stations.items():
            if self._last_stations.get(station_id) != data:
                self._last_stations[station_id] = data
                self._emit("station", station_id, data)

    def alarm(self, station: str | None, data: str) -> None:
        """An alarm's change (``data``: its JSON), from any thread: numbered and fanned
        out on the hub's loop like the twin's own events. Dropped while the hub is
        not running (nobody is listening)."""
        loop = self._loop
        if loop is None or not self.running:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._emit, "alarm", station, data)

    def _emit(self, kind: EventKind, station: str | None, data: str) -> None:
        self.last_id += 1
        event = StreamEvent(self.last_id, kind, station, data)
        self.buffer.append(event)
        for subscription in self.subscribers:
            subscription.offer(event)
