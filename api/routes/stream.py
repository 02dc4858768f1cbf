"""The live stream: twin updates as Server-Sent Events (see docs/api.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from api.deps import LineDep, TwinDep
from api.stream import StreamEvent, Subscription, TwinStream

router = APIRouter(tags=["stream"])

DESCRIPTION = """\
Server-Sent Events with the twin's updates: one `text/event-stream` that stays
open. Every event has an integer `id` that grows, and JSON `data`:

* `reset`: `{"reason", "twin"}`, where `twin` is the whole line as `GET /twin`
  returns it (only the requested stations). Replace whatever you hold. A stream
  starts with one (`reason: new`), unless it resumes; `expired` when the
  `Last-Event-ID` is older than the replay buffer (the last 1,000 events) or
  unknown (for example from before a restart); `overflow` when this client read
  too slowly and its queue filled: the events it missed are replaced by this
  snapshot.
* `line`: the line without its stations: status, `sim_time_s`, `kpis`, `models`.
* `station`: one station as `GET /stations/{station_id}` returns it, when it changed.
* `alarm`: one change of an alarm, as `GET /alarms/history` lists it (`event`:
  `raise`, `clear`, `acknowledge`, `shelve`, ...; `before`, `after`, `by`, ...).
  A station's alarms follow `?station=`, the line's follow `?line=`. A `reset`
  does not list alarms: read `GET /alarms` after one.

`?station=` (repeatable) keeps only those stations' events (an unknown station
is a 422); `?line=false` drops the line events.

Reconnecting with the `Last-Event-ID` header (a browser's EventSource sends it)
or `?last_event_id=` (the header wins) replays the events after that id first,
with no gap and no duplicate. The twin is sampled every 0.5 s; an idle stream
gets a `: ping` comment every 15 s.
"""


@dataclass(frozen=True, slots=True)
class StreamRequest:
    stations: list[str] | None
    line: bool
    last_event_id: int | None


def get_stream(line: LineDep) -> TwinStream:
    hub = line.stream
    if hub is None or not hub.running:
        raise HTTPException(status_code=503, detail="the live stream is not running")
    return hub


def stream_request(
    twin: TwinDep,
    station: Annotated[
        list[str] | None,
        Query(description="Only these stations (repeat the parameter); default all."),
    ] = None,
    line: Annotated[bool, Query(description="Include the line events.")] = True,
    last_event_id: Annotated[
        int | None, Query(ge=0, description="For clients that cannot set Last-Event-ID.")
    ] = None,
    last_event_id_header: Annotated[
        int | None,
        Header(alias="Last-Event-ID", ge=0, description="Resume after this event id."),
    ] = None,
) -> StreamRequest:
    """Checked before the stream opens, so that bad input is a 422, not a broken stream."""
    if station is not None:
        known = twin.station_ids()
        unknown = [name for name in station if name not in known]
        if unknown:
            listed = ", ".join(known) or "none seen yet"
            raise HTTPException(
                status_code=422,
                detail=[
                    {
                        "loc": ["query", "station"],
                        "msg": f"unknown station {', '.join(map(repr, unknown))}; "
                        f"known stations: {listed}",
                        "type": "value_error",
                    }
                ],
            )
    # An EventSource's header is its latest id; the URL keeps the first one.
    resume = last_event_id_header if last_event_id_header is not None else last_event_id
    return StreamRequest(stations=station, line=line, last_event_id=resume)


StreamDep = Annotated[TwinStream, Depends(get_stream)]
StreamRequestDep = Annotated[StreamRequest, Depends(stream_request)]


def encode(event: StreamEvent) -> bytes:
    # The data is compact JSON: one line, so one ``data:`` field.
    return f"id: {event.id}\nevent: {event.kind}\ndata: {event.data}\n\n".encode()


class EventStreamResponse(StreamingResponse):
    """``text/event-stream``: what the route declares, for OpenAPI."""

    media_type = "text/event-stream"


class EventStream(EventStreamResponse):
    """A subscription's events as ``text/event-stream``, with a comment as heartbeat.

    The subscription ends with the response however it ends (the client leaves,
    the server stops): the hub never keeps a client that is gone."""

    def __init__(self, hub: TwinStream, subscription: Subscription) -> None:
        self.hub = hub
        self.subscription = subscription
        super().__init__(
            self._events(),
            # No caching, and no buffering in nginx-style proxies.
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _events(self) -> AsyncIterator[bytes]:
        while True:
            try:
                event = await asyncio.wait_for(self.subscription.next(), self.hub.heartbeat_s)
            except TimeoutError:
                yield b": ping\n\n"
                continue
            if event is None:
                return
            yield encode(event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.hub.unsubscribe(self.subscription)


@router.get(
    "/stream",
    response_class=EventStreamResponse,
    summary="Live twin updates (Server-Sent Events)",
    description=DESCRIPTION,
    responses={
        200: {"description": "An open event stream", "content": {"text/event-stream": {}}},
        503: {"description": "The stream hub is not running (it starts with the app)"},
    },
)
async def stream_twin(hub: StreamDep, wanted: StreamRequestDep) -> EventStream:
    # On the event loop, like the hub's producer, and without awaiting: no event
    # can fall between the replayed ones and the live queue.
    return EventStream(
        hub,
        hub.subscribe(wanted.stations, line=wanted.line, last_event_id=wanted.last_event_id),
    )
