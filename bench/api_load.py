"""API load: ``GET /twin`` against a trivial endpoint of the same app, and the live
stream fanned out to 100 clients, in the same run.

The server is the real app: ``api.runtime.line.Stack`` (embedded amqtt broker, the
default line live at 60x, ingest, twin, history in a temporary directory; live
scoring off so that the run does not depend on the local model registry) in
``api.app.create_app``, served by uvicorn on a free loopback port in a process
of its own, with access logs off. The benchmark adds three routes to that app:
two baselines returning a two-key dict through the same middleware and server,
``GET /_bench/trivial`` (a plain ``def``: FastAPI runs it in its thread pool)
and ``GET /_bench/trivial-async`` (an ``async def``: no thread hop), and
``GET /_bench/entered``, which hands over the timestamps described below after
the stream phase. ``GET /twin`` is ``async`` and serves JSON made once per
change of the twin, so between two messages many requests share one body; the
ratio is taken against the faster of the two baselines in each round.

Request load comes from this process (the server's interpreter lock is not
shared with it): ``--clients`` keep-alive connections, each sending its next
request when the last is answered, for ``--duration`` seconds a phase, from a
lean asyncio client (``bench/_load.py``) so that the client is not the
bottleneck. Each round runs the three endpoints back to back, each first in
turn, after a short warm-up of each. A round's ratio is its twin rps over its
faster baseline's rps, and the headline is the median round's ratio.
Latency is per request, from writing it to having the whole body, under that
closed-loop load; p99 is the median round's. Target: ``GET /twin`` reaches at
least 0.5x the trivial endpoint's requests per second.

Stream: ``--sse-clients`` clients open ``GET /stream`` at once, each on its own
connection, and read for ``--sse-duration`` seconds once all have their first
event (the reset). Delivery latency is end to end: from the moment the update
entered the twin to the moment a client has the event that carries it. The
server's ``TwinState`` is a subclass that notes (``perf_counter``, the
machine-wide monotonic clock, as this process reads it) when each message moved
the twin's simulated clock forward; every ``line`` event carries the twin's
``sim_time_s``, so it names the message it reflects. A ``station`` event is
measured against the ``line`` event before it on the same connection (the
hub emits a sample's line event first), which can only read high. The figure
includes the hub's sampling period (the twin is sampled every 0.5 s, so an
update waits up to 0.5 s for its sample) and counts every (client, event)
delivery of the events sent in the window; an event some client got and
another did not (after a grace period) is a drop. Target: p99 under 1 s, no
drops.

Run: ``.venv/bin/python bench/api_load.py [--quick]``; under a minute by default.
Progress goes to stderr; the last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import logging
import multiprocessing
import os
import platform
import signal
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import fastapi
import httpx
import uvicorn
from _load import LoadResult, SseClient, load, percentile
from _results import emit
from fastapi import Response

from api.app import create_app
from api.cli.up import serve as run_server
from api.runtime.line import Stack
from api.runtime.options import StackOptions
from twin.config.line import load_config
from twin.state.line import TwinState

TARGET = 0.5
SSE_TARGET_S = 1.0
HOST = "127.0.0.1"
TRIVIAL = "/_bench/trivial"
TRIVIAL_ASYNC = "/_bench/trivial-async"
BASELINES = (TRIVIAL, TRIVIAL_ASYNC)
TWIN = "/twin"
WARMUP_S = 1.0
IDLE_S = 1.0
SSE_GRACE_S = 1.5  # after the window, for the last events to reach every client
READY_TIMEOUT_S = 60.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


# -- the server: the real app, plus the baseline route and the timestamps ---------------------
class StampedTwin(TwinState):
    """The project's twin, noting when each message moved its simulated clock forward."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entered: dict[float, float] = {}  # sim_time_s -> perf_counter s

    def _advance_clock(self, sim_time: float) -> None:
        before = self._sim_time
        super()._advance_clock(sim_time)
        if self._sim_time != before and self._sim_time is not None:
            self.entered[self._sim_time] = time.perf_counter()


def serve(port: int, mqtt_port: int, speed: float, seed: int) -> None:
    """The server process: the stack and the app under uvicorn, until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.WARNING, format="server %(levelname)s %(name)s: %(message)s")
    config = load_config()
    stack = Stack(
        config,
        StackOptions(
            speed=speed,
            seed=seed,
            mqtt_port=mqtt_port,
            persistent_session=False,
            scoring_period_s=0,
        ),
    )
    line = config.line
    twin = StampedTwin(site=line.site, area=line.area, line=line.id)
    stack.twin = twin  # before start: the ingest is made with it
    app = create_app(stack=stack)

    @app.get(TRIVIAL, include_in_schema=False)
    def trivial() -> dict[str, str]:
        return {"status": "ok", "line": line.id}

    @app.get(TRIVIAL_ASYNC, include_in_schema=False)
    async def trivial_async() -> dict[str, str]:
        return {"status": "ok", "line": line.id}

    @app.get("/_bench/entered", include_in_schema=False)
    def entered() -> Response:
        with twin._lock:  # the ingest writes it under this lock
            pairs = list(twin.entered.items())
        return Response(json.dumps(pairs), media_type="application/json")

    # uvicorn shuts down gracefully on SIGINT or SIGTERM (the lifespan stops the
    # stack), then raises the signal again: this process then ends cleanly.
    run_server(app, stack, host=HOST, port=port, log_level="warning", access_log=False)


def wait_ready(base: str, stations: int, alive: Any) -> None:
    """Until ``/twin`` shows the line online with every station and its telemetry."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(base_url=base, timeout=5) as client:
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError("the server process ended before it was ready")
            try:
                view = client.get(TWIN).json()
            except (httpx.TransportError, ValueError):
                view = None
            if (
                view is not None
                and view.get("status") == "online"
                and len(view.get("stations", [])) == stations
                and all(station["telemetry"] is not None for station in view["stations"])
            ):
                return
            time.sleep(0.2)
    raise TimeoutError(f"the twin had no data for every station after {READY_TIMEOUT_S:.0f} s")


def stop_server(process: multiprocessing.process.BaseProcess) -> None:
    """SIGTERM (uvicorn's graceful shutdown stops the plant, clients and broker), then kill."""
    if process.is_alive():
        process.terminate()
        process.join(15)
    if process.is_alive():
        log("the server did not stop within 15 s: killing it")
        process.kill()
        process.join(5)


# -- CPU shares, to show who was saturated ------------------------------------------------------
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a process (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class Phase:
    result: LoadResult
    server_cpu: float  # CPU seconds per wall second over the phase (1.0 = one core)
    client_cpu: float


async def phase(port: int, server_pid: int, path: str, clients: int, duration: float) -> Phase:
    server_before, client_before = process_cpu_s(server_pid), time.process_time()
    started = time.perf_counter()
    result = await load(HOST, port, path, clients, duration)
    wall = time.perf_counter() - started
    return Phase(
        result,
        (process_cpu_s(server_pid) - server_before) / wall,
        (time.process_time() - client_before) / wall,
    )


# -- the stream --------------------------------------------------------------------------------
@dataclass
class StreamOutcome:
    clients: int
    latencies_s: list[float] = field(default_factory=list)  # one per (client, update)
    updates: int = 0  # updates that entered the twin in the window
    events: int = 0  # distinct events sent in the window
    expected: int = 0  # (client, event) pairs that should have been delivered
    drops: int = 0  # of those, not delivered
    late: int = 0  # (client, update) pairs with no event carrying them by the grace's end
    unknown_times: int = 0  # line events whose sim_time_s no message set (should be 0)
    overflows: int = 0
    failures: list[str] = field(default_factory=list)


async def stream_phase(port: int, clients: int, duration: float) -> StreamOutcome:
    readers = [SseClient(HOST, port) for _ in range(clients)]
    tasks = [asyncio.create_task(reader.run()) for reader in readers]
    try:
        await asyncio.wait_for(asyncio.gather(*(reader.first.wait() for reader in readers)), 30)
        window_start = time.perf_counter()
        await asyncio.sleep(duration)
        window_end = time.perf_counter()
        await asyncio.sleep(SSE_GRACE_S)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=10) as client:
        response = await client.get("/_bench/entered")
        response.raise_for_status()
        entered = [(sim_time, at) for sim_time, at in response.json()]
    return analyse(readers, entered, window_start, window_end)


def samples(reader: SseClient) -> list[tuple[float, float]]:
    """(sim_time_s, perf_counter s) of each whole sample this client got: a sample is a
    ``line`` event and the ``station`` events after it, and the client has it when its
    last event arrives."""
    found: list[tuple[float, float]] = []
    for event in reader.events:
        if event.kind == "line":
            found.append((json.loads(event.data)["sim_time_s"], event.at))
        elif event.kind == "station" and found:
            found[-1] = (found[-1][0], event.at)
    return found


def analyse(
    readers: list[SseClient], entered: list[tuple[float, float]], start: float, end: float
) -> StreamOutcome:
    outcome = StreamOutcome(clients=len(readers))
    outcome.failures = [reader.failure for reader in readers if reader.failure]
    known = {sim_time for sim_time, _ in entered}
    updates = [(sim_time, at) for sim_time, at in entered if start <= at < end]
    outcome.updates = len(updates)
    # Every event any client got in the window is owed to every client that was
    # subscribed when it was sent (an id after that client's reset).
    window = {
        event.id
        for reader in readers
        for event in reader.events
        if start <= event.at < end and event.kind in ("line", "station")
    }
    outcome.events = len(window)
    for reader in readers:
        if not reader.events:
            continue
        first_id = reader.events[0].id
        got = {event.id for event in reader.events}
        owed = {event_id for event_id in window if event_id > first_id}
        outcome.expected += len(owed)
        outcome.drops += len(owed - got)
        outcome.overflows += sum(
            1
            for event in reader.events
            if event.kind == "reset" and json.loads(event.data)["reason"] == "overflow"
        )
        got_samples = samples(reader)
        outcome.unknown_times += sum(1 for sim_time, _ in got_samples if sim_time not in known)
        # The twin's clock only grows, so a client's samples come in sim-time order:
        # an update reaches the client with the first sample at or after its sim time.
        sim_times = [sim_time for sim_time, _ in got_samples]
        for sim_time, at in updates:
            index = bisect.bisect_left(sim_times, sim_time)
            if index == len(got_samples):
                outcome.late += 1
            else:
                outcome.latencies_s.append(got_samples[index][1] - at)
    return outcome


# -- the run -----------------------------------------------------------------------------------
async def measure(
    args: argparse.Namespace, port: int, server_pid: int
) -> tuple[float, list[dict[str, Phase]], StreamOutcome]:
    # What the live plant, broker and ingest cost the server with no request at all.
    before, started = process_cpu_s(server_pid), time.perf_counter()
    await asyncio.sleep(IDLE_S)
    idle_cpu = (process_cpu_s(server_pid) - before) / (time.perf_counter() - started)
    log(f"server CPU with no requests: {idle_cpu:.2f} of a core")
    log(f"warm-up: {WARMUP_S:g} s on each endpoint")
    for path in (*BASELINES, TWIN):
        await load(HOST, port, path, args.clients, WARMUP_S)
    rounds: list[dict[str, Phase]] = []
    paths = [*BASELINES, TWIN]
    for index in range(args.rounds):
        order = paths[index % 3 :] + paths[: index % 3]  # each first in turn
        done = {
            path: await phase(port, server_pid, path, args.clients, args.duration) for path in order
        }
        rounds.append(done)
        log(
            f"round {index + 1}/{args.rounds}: trivial {done[TRIVIAL].result.rps:,.0f} rps, "
            f"async trivial {done[TRIVIAL_ASYNC].result.rps:,.0f} rps, twin "
            f"{done[TWIN].result.rps:,.0f} rps, ratio {round_ratio(done):.2f}"
        )
    log(f"stream: {args.sse_clients} clients for {args.sse_duration:g} s")
    stream = await stream_phase(port, args.sse_clients, args.sse_duration)
    return idle_cpu, rounds, stream


def round_ratio(done: dict[str, Phase]) -> float:
    """Twin rps over the faster trivial endpoint's rps in the same round."""
    return done[TWIN].result.rps / max(done[path].result.rps for path in BASELINES)


def median_of(rounds: list[dict[str, Phase]], path: str, pick: Any) -> float:
    return float(statistics.median(pick(done[path]) for done in rounds))


def report(
    args: argparse.Namespace, idle_cpu: float, rounds: list[dict[str, Phase]], stream: StreamOutcome
) -> int:
    ratios = [round_ratio(done) for done in rounds]
    ratio = statistics.median(ratios)
    figures: dict[str, dict[str, float]] = {}
    for path in (*BASELINES, TWIN):
        figures[path] = {
            "rps": median_of(rounds, path, lambda p: p.result.rps),
            "p50_ms": median_of(rounds, path, lambda p: p.result.p(0.5)) * 1000,
            "p99_ms": median_of(rounds, path, lambda p: p.result.p(0.99)) * 1000,
            "server_cpu": median_of(rounds, path, lambda p: p.server_cpu),
            "client_cpu": median_of(rounds, path, lambda p: p.client_cpu),
            "bytes": rounds[-1][path].result.body_bytes,
        }
    failures = sum(done[path].result.failures for done in rounds for path in done)
    twin_met = ratio >= TARGET and failures == 0
    sse_p99 = percentile(stream.latencies_s, 0.99)
    sse_met = (
        sse_p99 < SSE_TARGET_S
        and stream.drops == 0
        and stream.late == 0
        and stream.updates > 0
        and not stream.failures
    )

    print(
        f"GET load: {args.clients} keep-alive connections, {args.duration:g} s a phase, "
        f"{args.rounds} rounds (each endpoint first in turn), medians of rounds"
    )
    print(f"  {'':<18}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}{'server CPU':>12}{'client CPU':>12}")
    for title, path in (
        ("trivial (def)", TRIVIAL),
        ("trivial (async)", TRIVIAL_ASYNC),
        ("GET /twin", TWIN),
    ):
        row = figures[path]
        print(
            f"  {title:<18}{row['rps']:>9,.0f}{row['p50_ms']:>9.1f}{row['p99_ms']:>9.1f}"
            f"{row['server_cpu']:>12.2f}{row['client_cpu']:>12.2f}"
        )
    print(
        f"  ratio to the faster trivial endpoint {ratio:.2f} (rounds {min(ratios):.2f} to "
        f"{max(ratios):.2f}; target >= {TARGET})"
        f"; /twin body {figures[TWIN]['bytes']:,.0f} bytes; {failures} failed requests"
    )
    print(f"  server CPU with no requests (live plant, broker, ingest): {idle_cpu:.2f}")
    sse_max = max(stream.latencies_s, default=float("nan"))
    print(
        f"stream: {stream.clients} clients, {args.sse_duration:g} s; {stream.events} events sent, "
        f"{stream.expected - stream.drops:,} of {stream.expected:,} (client, event) deliveries, "
        f"{stream.overflows} overflow resets"
    )
    print(
        f"  update -> client: {stream.updates} updates x {stream.clients} clients = "
        f"{len(stream.latencies_s):,} deliveries ({stream.late} late); p50 "
        f"{percentile(stream.latencies_s, 0.5) * 1000:.0f} ms, p99 {sse_p99 * 1000:.0f} ms, "
        f"max {sse_max * 1000:.0f} ms (target p99 < {SSE_TARGET_S:g} s; "
        "includes the hub's 0.5 s sampling period)"
    )
    for failure in stream.failures[:3]:
        print(f"  client failure: {failure}")

    summary = {
        "benchmark": "api_load",
        "ratio": round(ratio, 3),
        "target": TARGET,
        "met": twin_met and sse_met,
        "passed": {"twin_rps": twin_met, "sse_p99": sse_met},
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "rounds": args.rounds,
        "clients": args.clients,
        "duration_s": args.duration,
        "trivial_rps": round(figures[TRIVIAL]["rps"]),
        "trivial_async_rps": round(figures[TRIVIAL_ASYNC]["rps"]),
        "twin_rps": round(figures[TWIN]["rps"]),
        "trivial_p99_ms": round(figures[TRIVIAL]["p99_ms"], 2),
        "twin_p99_ms": round(figures[TWIN]["p99_ms"], 2),
        "trivial_async_p99_ms": round(figures[TRIVIAL_ASYNC]["p99_ms"], 2),
        "p99_ratio": round(
            figures[TWIN]["p99_ms"] / min(figures[path]["p99_ms"] for path in BASELINES), 3
        ),
        "twin_body_bytes": figures[TWIN]["bytes"],
        "server_cpu": {
            "trivial": round(figures[TRIVIAL]["server_cpu"], 2),
            "trivial_async": round(figures[TRIVIAL_ASYNC]["server_cpu"], 2),
            "twin": round(figures[TWIN]["server_cpu"], 2),
        },
        "server_idle_cpu": round(idle_cpu, 2),
        "client_cpu": {
            "trivial": round(figures[TRIVIAL]["client_cpu"], 2),
            "trivial_async": round(figures[TRIVIAL_ASYNC]["client_cpu"], 2),
            "twin": round(figures[TWIN]["client_cpu"], 2),
        },
        "failed_requests": failures,
        "sse_clients": stream.clients,
        "sse_p50_s": round(percentile(stream.latencies_s, 0.5), 4),
        "sse_p99_s": round(sse_p99, 4),
        "sse_max_s": round(sse_max, 4),
        "sse_target_s": SSE_TARGET_S,
        "sse_updates": stream.updates,
        "sse_deliveries": len(stream.latencies_s),
        "sse_late": stream.late,
        "sse_events": stream.events,
        "sse_event_deliveries": stream.expected - stream.drops,
        "sse_drops": stream.drops,
        "sse_overflows": stream.overflows,
        "sse_unknown_times": stream.unknown_times,
        "sse_failures": len(stream.failures),
        "speed": args.speed,
        "python": platform.python_version(),
        "fastapi": fastapi.__version__,
        "uvicorn": uvicorn.__version__,
    }
    emit("api_load", summary, quick=args.quick)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, for a smoke test")
    parser.add_argument("--duration", type=float, help="seconds per load phase (default 2.5)")
    parser.add_argument("--rounds", type=int, help="paired rounds (default 5)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent GET connections")
    parser.add_argument("--sse-clients", type=int, default=100, help="concurrent stream clients")
    parser.add_argument("--sse-duration", type=float, help="seconds of stream (default 8)")
    parser.add_argument("--speed", type=float, default=60.0, help="the live plant's speed-up")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    args.duration = args.duration or (1.5 if args.quick else 2.5)
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.sse_duration = args.sse_duration or (4.0 if args.quick else 8.0)
    if min(args.duration, args.sse_duration) <= 0 or min(args.rounds, args.clients) < 1:
        parser.error("durations must be > 0, rounds and clients >= 1")
    if args.sse_clients < 1:
        parser.error("--sse-clients must be >= 1")

    begun = time.perf_counter()
    # A plain kill of this process stops the server too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stations = len(load_config().stations)
    port, mqtt_port = free_port(), free_port()
    server = multiprocessing.get_context("spawn").Process(
        target=serve, args=(port, mqtt_port, args.speed, args.seed), name="api-load-server"
    )
    log(f"starting the app on {HOST}:{port} (embedded broker on {mqtt_port}, {args.speed:g}x)")
    server.start()
    try:
        wait_ready(f"http://{HOST}:{port}", stations, server.is_alive)
        log(f"the twin shows all {stations} stations")
        assert server.pid is not None  # noqa: S101 - started
        idle_cpu, rounds, stream = asyncio.run(measure(args, port, server.pid))
    except KeyboardInterrupt:
        log("interrupted: stopping the server")
        return 130
    finally:
        stop_server(server)
    log(f"done in {time.perf_counter() - begun:.0f} s, server stopped")
    return report(args, idle_cpu, rounds, stream)


if __name__ == "__main__":
    sys.exit(main())
