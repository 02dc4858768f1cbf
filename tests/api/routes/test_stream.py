"""GET /stream over real HTTP: uvicorn on a free port, a twin fed by a running plant.

The plant runs in a thread of its own and publishes through the ingest in
memory (no broker), so the twin keeps changing while clients read the stream.
The hub samples every 0.1 s with 64-event client queues, so that a stuck client
overflows within a second or two, and an idle stream is pinged every 0.4 s.
"""

from __future__ import annotations

import functools
import json
import random
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from helpers import MemoryClient, wait_until

import api.app as app_module
from api.app import create_app
from api.stream import StreamReset, TwinStream
from sensors.ingest import Ingest
from sensors.mqtt import new_client
from sensors.publisher import PlantPublisher
from sensors.topics import LineTopics
from twin.config.line import load_config
from twin.sim.plant import Plant
from twin.state.line import TwinState
from twin.state.views import LineSummary, StationView

pytestmark = pytest.mark.integration

QUEUE_SIZE = 64
HEARTBEAT_S = 0.4


@dataclass(frozen=True)
class Event:
    kind: str  # "message" when the event has no name, "comment" for ": ..." lines
    id: int | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def parse_sse(lines: Iterable[str]) -> Iterator[Event]:
    kind, event_id, data = "message", None, list[str]()
    for line in lines:
        if line == "":
            if data:
                yield Event(kind, event_id, "\n".join(data))
            kind, event_id, data = "message", None, []
        elif line.startswith(":"):
            yield Event("comment", None, line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                kind = value
            elif name == "id":
                event_id = int(value)
            elif name == "data":
                data.append(value)


class _Forward(MemoryClient):
    """Hands each publish to the ingest and keeps nothing (the plant runs for a while)."""

    def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False
    ) -> MemoryClient.Info:
        if self.forward is not None:
            self.forward(topic, payload)
        return self.Info()


class LiveLine:
    """A plant advancing 2 simulated seconds every 20 ms, published into a twin."""

    def __init__(self) -> None:
        config = load_config()
        topics = LineTopics(site=config.line.site, area=config.line.area, line=config.line.id)
        self.twin = TwinState(config.line.site, config.line.area, config.line.id)
        self.ingest = Ingest(self.twin, topics, new_client("unused"))
        self.plant = Plant(config, seed=11)
        publisher = PlantPublisher(
            self.plant,
            _Forward(self.ingest.handle),  # type: ignore[arg-type]
            topics,
            rng=random.Random(11),
        )
        publisher.attach()
        publisher.announce()
        self.plant.run(until=120)
        self.feeding = threading.Event()
        self.feeding.set()
        # Rounds the feeder went without feeding: one counted after feeding was
        # cleared began after the feeder's last run ended.
        self.idle_rounds = 0
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._feed, name="plant", daemon=True)

    def _feed(self) -> None:
        while not self._halt.is_set():
            if self.feeding.is_set():
                self.plant.run(until=self.plant.env.now + 2)
            else:
                self.idle_rounds += 1
            time.sleep(0.02)  # the feed's pace: 2 simulated seconds a round

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(10)
        assert not self._thread.is_alive()


@dataclass
class Live:
    line: LiveLine
    app: FastAPI
    url: str
    port: int

    @property
    def hub(self) -> TwinStream:
        hub: TwinStream = self.app.state.stream
        return hub


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    line = LiveLine()
    line.start()
    # Small kernel send buffers (the accepted sockets inherit them): a client that
    # reads nothing backs the server up within a second, not after megabytes.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    listener.bind(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    with pytest.MonkeyPatch.context() as patch:
        # The lifespan builds the hub: make it quick and its queues small.
        patch.setattr(
            app_module,
            "TwinStream",
            functools.partial(
                TwinStream, period_s=0.1, client_queue_size=QUEUE_SIZE, heartbeat_s=HEARTBEAT_S
            ),
        )
        app = create_app(twin_state=line.twin, ingest=line.ingest)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_level="warning",
                timeout_graceful_shutdown=2,
            )
        )
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [listener]}, name="api", daemon=True
        )
        thread.start()
        assert wait_until(lambda: server.started, timeout=20), "API did not start"
    try:
        yield Live(line, app, f"http://127.0.0.1:{port}", port)
    finally:
        server.should_exit = True
        thread.join(15)
        line.stop()
        listener.close()
    assert not thread.is_alive()
    assert not app.state.stream.running


class Reader(threading.Thread):
    """Reads /stream in a thread and keeps every event, comments included."""

    def __init__(
        self,
        live: Live,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.url = live.url + "/stream"
        self.params = params
        self.headers = headers
        self.events: list[Event] = []
        self.status: int | None = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self.start()

    def run(self) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(5.0)) as client,
                client.stream("GET", self.url, params=self.params, headers=self.headers) as resp,
            ):
                self.status = resp.status_code
                for event in parse_sse(resp.iter_lines()):
                    with self._lock:
                        self.events.append(event)
                    if self._halt.is_set():
                        return
        except BaseException as error:  # reported by the test that reads it
            self.error = error

    def snapshot(self, *, comments: bool = False) -> list[Event]:
        with self._lock:
            return [e for e in self.events if comments or e.kind != "comment"]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Event]:
        assert wait_until(lambda: len(self.snapshot()) >= count or self.error is not None, timeout)
        assert self.error is None, self.error
        return self.snapshot()

    def close(self) -> list[Event]:
        self._halt.set()
        self.join(10)
        assert not self.is_alive(), "reader did not stop"
        assert self.error is None, self.error
        return self.snapshot()


def test_a_client_receives_the_twins_updates(live: Live) -> None:
    reader = Reader(live)
    try:
        events = reader.wait_for(30)
    finally:
        events = reader.close()
    assert reader.status == 200
    first, rest = events[0], events[1:]
    assert first.kind == "reset"
    reset = StreamReset.model_validate_json(first.data)
    assert reset.reason == "new"
    assert [s.id for s in reset.twin.stations] == [s.id for s in live.line.plant.stations]
    ids = [event.id for event in events]
    assert all(isinstance(i, int) for i in ids)
    assert ids == sorted(set(ids)), "ids must grow strictly"  # type: ignore[type-var]
    assert {event.kind for event in rest} == {"line", "station"}
    stations = [StationView.model_validate_json(e.data) for e in rest if e.kind == "station"]
    lines = [LineSummary.model_validate_json(e.data) for e in rest if e.kind == "line"]
    # The twin moves on: the same station comes again, changed.
    by_station: dict[str, list[StationView]] = {}
    for view in stations:
        by_station.setdefault(view.id, []).append(view)
    repeated = [views for views in by_station.values() if len(views) > 1]
    assert repeated
    assert all(a != b for views in repeated for a, b in zip(views, views[1:], strict=False))
    clocks = [summary.sim_time_s for summary in lines]
    assert len(clocks) >= 2
    assert clocks == sorted(clocks)  # type: ignore[type-var]
    assert clocks[0] != clocks[-1]


def test_a_reconnect_resumes_without_gap_or_duplicate(live: Live) -> None:
    steady = Reader(live)  # connected throughout: the reference
    readers = [steady]
    try:
        steady.wait_for(5)
        readers.append(first := Reader(live))
        first.wait_for(8)
        last_id = first.close()[-1].id
        assert last_id is not None
        # Let the line move on while nobody listens on that connection.
        assert wait_until(lambda: live.hub.last_id >= last_id + 12, timeout=10)
        gap_end = live.hub.last_id
        readers.append(resumed := Reader(live, headers={"Last-Event-ID": str(last_id)}))
        readers.append(by_query := Reader(live, params={"last_event_id": last_id}))
        got = resumed.wait_for(40)[:40]
        got_by_query = by_query.wait_for(40)[:40]
        assert wait_until(lambda: (steady.snapshot()[-1].id or 0) >= (got[-1].id or 0), 10)
        reference = [e for e in steady.snapshot() if e.id is not None and e.id > last_id][:40]
    finally:
        for reader in readers:
            if reader.is_alive():
                reader.close()
    assert steady.snapshot()[0].kind == "reset"
    assert all(event.kind != "reset" for event in got + got_by_query)
    assert [e.id for e in got] == [e.id for e in reference]
    assert got == reference
    assert got_by_query == reference
    assert got[0].id == last_id + 1
    assert (got[0].id or 0) <= gap_end, "the reconnect replayed what happened in between"


def test_an_id_older_than_the_buffer_starts_with_a_reset(live: Live) -> None:
    for stale in ("1", str(live.hub.last_id + 1_000_000)):
        reader = Reader(live, headers={"Last-Event-ID": stale})
        try:
            events = reader.wait_for(2)
        finally:
            reader.close()
        assert events[0].kind == "reset"
        assert StreamReset.model_validate_json(events[0].data).reason == "expired"
        assert (events[1].id or 0) > (events[0].id or 0)


def test_a_station_filter_delivers_only_that_station(live: Live) -> None:
    only = Reader(live, params={"station": "welding", "line": "false"})
    pair = Reader(live, params={"station": ["welding", "machining"]})
    try:
        events = only.wait_for(10)
        assert wait_until(
            lambda: (
                {e.json()["id"] for e in pair.snapshot() if e.kind == "station"}
                == {"welding", "machining"}
            ),
            timeout=10,
        )
        assert wait_until(lambda: any(e.kind == "line" for e in pair.snapshot()), timeout=10)
    finally:
        only.close()
        pair_events = pair.close()
    reset = StreamReset.model_validate_json(events[0].data)
    assert [station.id for station in reset.twin.stations] == ["welding"]
    assert {e.kind for e in events[1:]} == {"station"}
    assert {e.json()["id"] for e in events[1:]} == {"welding"}
    reset = StreamReset.model_validate_json(pair_events[0].data)
    assert [station.id for station in reset.twin.stations] == ["machining", "welding"]
    assert {e.kind for e in pair_events[1:]} == {"line", "station"}
    assert {e.json()["id"] for e in pair_events[1:] if e.kind == "station"} == {
        "welding",
        "machining",
    }


def _read_until(sock: socket.socket, done: Any, timeout: float) -> bytes:
    received = b""
    deadline = time.monotonic() + timeout
    while not done(received) and time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        received += chunk
    return received


def test_a_stuck_client_is_coalesced_and_stalls_nobody(live: Live) -> None:
    hub, twin = live.hub, live.line.twin
    clients_before, overflows_before = set(hub.subscribers), hub.overflows
    fast = Reader(live)
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        fast.wait_for(3)
        # A tiny receive window, and no reading: the server's writes back up.
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.settimeout(0.5)
        stuck.connect(("127.0.0.1", live.port))
        # HTTP/1.0: the body is the bare event stream, closed by the server.
        stuck.sendall(b"GET /stream HTTP/1.0\r\nHost: test\r\n\r\n")
        assert wait_until(lambda: hub.overflows > overflows_before, timeout=60), hub.stats()
        lagging = [s for s in hub.subscribers if s.overflows]
        assert len(lagging) == 1, (len(clients_before), [vars(s) for s in lagging])
        assert len(lagging[0].queue) <= QUEUE_SIZE
        # While it is stuck, the twin, the hub and the fast client carry on. The claim
        # is that they progress, not how fast a busy machine lets them: the wait is
        # long, and ends as soon as they have moved on.
        updates, samples, fast_count = twin.updates, hub.samples, len(fast.snapshot())
        assert wait_until(
            lambda: (
                twin.updates > updates + 100
                and hub.samples > samples + 10
                and len(fast.snapshot()) > fast_count + 30
            ),
            timeout=120,
        ), (twin.updates - updates, hub.samples - samples, len(fast.snapshot()) - fast_count)
        assert hub.overflows == overflows_before + 1, "only the stuck client fell behind"
        # Now it reads: what it missed comes as one reset, then the stream goes on.
        body = _read_until(
            stuck,
            lambda data: (
                data.count(b"event: reset") >= 2
                and data.rsplit(b"event: reset", 1)[1].count(b"\n\n") >= 3
            ),
            timeout=60,
        )
    finally:
        stuck.close()
        fast_events = fast.close()
    head, _, stream = body.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    # Pings (comments, no id) come whenever the stream waits a heartbeat: on a busy
    # machine, anywhere in it.
    events = [e for e in parse_sse(stream.decode().split("\n")) if e.kind != "comment"]
    resets = [i for i, event in enumerate(events) if event.kind == "reset"]
    assert len(resets) == 2, [e.kind for e in events]
    assert resets[0] == 0
    assert StreamReset.model_validate_json(events[resets[1]].data).reason == "overflow"
    before, coalesced, after = events[: resets[1]], events[resets[1]], events[resets[1] + 1 :]
    ids = [e.id or 0 for e in events]
    assert ids == sorted(ids)
    assert (coalesced.id or 0) > (before[-1].id or 0) + 1, "events were skipped, not queued"
    assert after
    assert all((e.id or 0) > (coalesced.id or 0) for e in after)
    assert all(e.kind != "reset" for e in fast_events[1:]), "the fast client never fell behind"
    # This test's two clients leave (another test's client may leave meanwhile too).
    assert wait_until(lambda: not (hub.subscribers - clients_before), timeout=10), hub.stats()


def test_an_idle_stream_gets_pings(live: Live) -> None:
    twin = live.line.twin
    live.line.feeding.clear()
    try:
        # The feeder stopped (a round without feeding, begun after the clear), and
        # the hub's latest sample is the twin as it now stays: nothing is left to send.
        idle_rounds = live.line.idle_rounds
        assert wait_until(lambda: live.line.idle_rounds > idle_rounds, timeout=60)
        assert wait_until(lambda: live.hub._latest == twin.view(), timeout=60)
        reader = Reader(live)
        try:
            assert wait_until(
                lambda: [e.kind for e in reader.snapshot(comments=True)].count("comment") >= 2,
                timeout=60,
            ), reader.snapshot(comments=True)
        finally:
            events = reader.close()
    finally:
        live.line.feeding.set()
    comments = [e for e in reader.snapshot(comments=True) if e.kind == "comment"]
    assert {comment.data for comment in comments} == {"ping"}
    assert [e.kind for e in events] == ["reset"]


def test_bad_input_is_a_422(live: Live) -> None:
    with httpx.Client(base_url=live.url, timeout=5) as client:
        unknown = client.get("/stream", params={"station": ["welding", "nope"]})
        assert unknown.status_code == 422
        detail = unknown.json()["detail"][0]
        assert detail["loc"] == ["query", "station"]
        assert "'nope'" in detail["msg"]
        assert "'welding'" not in detail["msg"].split(";")[0]
        assert "cutting" in detail["msg"]
        for headers, params, where in (
            ({"Last-Event-ID": "abc"}, {}, ["header", "Last-Event-ID"]),
            ({"Last-Event-ID": "-5"}, {}, ["header", "Last-Event-ID"]),
            ({}, {"last_event_id": "12x"}, ["query", "last_event_id"]),
        ):
            response = client.get("/stream", headers=headers, params=params)
            assert response.status_code == 422, (headers, params)
            assert response.json()["detail"][0]["loc"] == where


def test_the_stream_is_documented(live: Live) -> None:
    with httpx.Client(base_url=live.url, timeout=5) as client:
        operation = client.get("/openapi.json").json()["paths"]["/stream"]["get"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    for word in ("reset", "line", "station", "Last-Event-ID", "overflow"):
        assert word in operation["description"]
    assert {p["name"] for p in operation["parameters"]} == {
        "station",
        "line",
        "last_event_id",
        "Last-Event-ID",
    }


def test_without_the_lifespan_the_stream_is_a_503() -> None:
    client = TestClient(create_app(twin_state=TwinState("s", "a", "l")))
    response = client.get("/stream")
    assert response.status_code == 503
    assert "not running" in response.json()["detail"]


def test_an_alarms_changes_go_out_as_alarm_events(live: Live) -> None:
    """Every change of an alarm is an ``alarm`` event on the line's stream, as the
    alarm history lists it; a station's alarms follow the station filter."""
    from api.deps import every_line
    from api.routes.alarms import book_of
    from twin.alarms.lifecycle import AlarmKey

    everything = Reader(live)
    welding = Reader(live, params={"station": "welding", "line": "false"})
    try:
        everything.wait_for(1)
        welding.wait_for(1)
        book = book_of(live.app.state, every_line(live.app.state)[0])
        for station in ("welding", "cutting"):
            key = AlarmKey("offset", station, "temperature_c")
            book.record(book.book.condition(key, True, 10.0, priority="high", message="hot"))
        book.record(book.book.acknowledge("offset:welding:temperature_c", 11.0, "anna"))
        book.record(
            book.book.condition(AlarmKey("offset", "welding", "temperature_c"), False, 12.0)
        )

        def alarms(reader: Reader) -> list[dict[str, Any]]:
            return [e.json() for e in reader.snapshot() if e.kind == "alarm"]

        assert wait_until(lambda: len(alarms(everything)) == 4, timeout=10)
        assert wait_until(lambda: len(alarms(welding)) == 3, timeout=10)
    finally:
        everything.close()
        welding.close()
    seen = alarms(everything)
    assert [(a["alarm_id"], a["event"], a["after"]) for a in seen] == [
        ("offset:welding:temperature_c", "raise", "unacknowledged"),
        ("offset:cutting:temperature_c", "raise", "unacknowledged"),
        ("offset:welding:temperature_c", "acknowledge", "acknowledged"),
        ("offset:welding:temperature_c", "clear", "normal"),
    ]
    assert seen[2]["by"] == "anna"
    assert {a["station"] for a in alarms(welding)} == {"welding"}
