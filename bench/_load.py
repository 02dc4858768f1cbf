"""A lean HTTP/1.1 load generator and Server-Sent Events reader for the API benchmark.

Plain asyncio streams, keep-alive connections and hand-parsed responses: the
client's work per request is small (it used under a tenth of a core while
the server saturated one), so that on a 2-core machine the figure is the
server's, not the client's; a general-purpose client does far more per request
and would compete with the server it measures. Only what the benchmark needs: ``GET`` with a
``Content-Length`` body, and ``text/event-stream`` in chunked encoding, as
uvicorn sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in 0..1); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def request_bytes(host: str, port: int, path: str, accept: str = "application/json") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: {accept}\r\n\r\n".encode()


def _header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(status, body) of one response with a ``Content-Length``."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = _header(head, b"content-length")
    if length is None:
        raise ValueError(f"a response without Content-Length: {head!r}")
    return status, await reader.readexactly(int(length))


@dataclass
class LoadResult:
    """One closed-loop load phase against one path."""

    path: str
    seconds: float
    latencies_s: list[float] = field(default_factory=list)
    failures: int = 0
    body_bytes: int = 0

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def p(self, fraction: float) -> float:
        return percentile(self.latencies_s, fraction)


async def load(host: str, port: int, path: str, connections: int, duration_s: float) -> LoadResult:
    """``connections`` keep-alive connections, each sending its next request as soon as
    the last one is answered, for ``duration_s``. A request is timed from writing it
    to having its whole body; rps counts completed 200s over the phase's wall time
    (from the start to the last answer, connection setup excluded)."""
    request = request_bytes(host, port, path)
    opened = [await asyncio.open_connection(host, port) for _ in range(connections)]
    result = LoadResult(path, 0.0)
    started = time.perf_counter()
    deadline = started + duration_s

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        latencies = result.latencies_s
        while True:
            sent = time.perf_counter()
            if sent >= deadline:
                return
            writer.write(request)
            status, body = await read_response(reader)
            if status == 200:
                latencies.append(time.perf_counter() - sent)
                result.body_bytes = len(body)
            else:
                result.failures += 1

    try:
        await asyncio.gather(*(worker(reader, writer) for reader, writer in opened))
        result.seconds = time.perf_counter() - started
    finally:
        for _, writer in opened:
            writer.close()
        for _, writer in opened:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    return result


@dataclass(frozen=True, slots=True)
class Received:
    """One Server-Sent Event as a client got it."""

    at: float  # perf_counter seconds when the chunk that completed it was read
    id: int
    kind: str
    data: bytes


def parse_event(block: bytes, at: float) -> Received | None:
    """One ``id/event/data`` block; None for a comment (the heartbeat)."""
    event_id, kind, data = -1, "message", b""
    for line in block.split(b"\n"):
        name, _, value = line.partition(b": ")
        if name == b"id":
            event_id = int(value)
        elif name == b"event":
            kind = value.decode()
        elif name == b"data":
            data = value
    return None if event_id < 0 else Received(at, event_id, kind, data)


class SseClient:
    """One ``GET /stream`` reader, noting the arrival time of every event."""

    def __init__(self, host: str, port: int, path: str = "/stream") -> None:
        self.request = request_bytes(host, port, path, accept="text/event-stream")
        self.host = host
        self.port = port
        self.events: list[Received] = []
        self.first = asyncio.Event()  # the first event (the reset) has arrived
        self.failure: str | None = None

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(self.request)
            head = await reader.readuntil(b"\r\n\r\n")
            if int(head[9:12]) != 200 or _header(head, b"transfer-encoding") != b"chunked":
                self.failure = f"unexpected response: {head!r}"
                return
            pending = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    return
                chunk = await reader.readexactly(size + 2)
                at = time.perf_counter()
                pending += chunk[:-2]
                *blocks, pending = pending.split(b"\n\n")
                for block in blocks:
                    event = parse_event(block, at)
                    if event is not None:
                        self.events.append(event)
                        self.first.set()
        except asyncio.IncompleteReadError:
            self.failure = "the server closed the stream"
        finally:
            writer.close()
