"""The API under a garbage flood: ``GET /twin`` latency while 1,000 bad messages a
second arrive on the line's topics, against the same without them, in one run.

The server is the product as ``make run`` runs it: the default line live at 60x
on the embedded broker, the ingest, the twin and the API (``bench/api_load.py``'s
server process, live scoring off). The flood comes from a process of its own, a
plain paho client publishing on the line's topic tree at a steady rate, a mix of
what a broken or hostile publisher sends: payloads that are not JSON, JSON
that breaks the contract, non-finite numbers, messages for stations the line
does not have, messages from sources the line never announced, and times an
hour ahead. Every kind must be counted and dropped (the server's ``/healthz``
is read after the run to check that the flood arrived and was refused).

Latency: a few keep-alive connections, each sending its next ``GET /twin`` as
soon as the last is answered (``bench/_load.py``), as a dashboard and a few
tools polling it would; p95 over each phase. Rounds alternate quiet and flood.

Headline ``ratio``: the median flood round's p95 over the target, 50 ms (at or
below 1.0 meets it). Beside it, ``vs_quiet``: flood p95 over quiet p95.

Run: ``.venv/bin/python bench/flood.py [--quick]``. Progress goes to stderr; the
last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import platform
import random
import statistics
import sys
import time
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from _load import load
from _results import emit
from paho.mqtt.enums import CallbackAPIVersion

from sensors.topics import LineTopics
from twin.config.line import load_config
from twin.contract import SCHEMA_VERSION

HOST = "127.0.0.1"
TARGET_P95_S = 0.050
FLOOD_RATE = 1000.0
TWIN = "/twin"


def _payloads(
    topics: LineTopics, stations: list[str], rng: random.Random
) -> list[tuple[str, bytes]]:
    """One cycle of garbage, every kind in turn."""
    now_ms = time.time_ns() // 1_000_000
    header = {"schema_version": SCHEMA_VERSION, "ts_ms": now_ms, "seq": rng.randrange(10**9)}
    station = rng.choice(stations)
    ghost = f"ghost-{rng.randrange(100_000)}"
    telemetry = {**header, "source": "flood", "sim_time_s": 1.0, "temperature_c": 20.0}
    return [
        (topics.station(station, "telemetry"), b"\xff not json at all"),
        (topics.station(station, "event"), json.dumps({**header, "event": "exploded"}).encode()),
        (
            topics.station(station, "telemetry"),
            json.dumps(telemetry).replace('"temperature_c": 20.0', '"temperature_c": NaN').encode(),
        ),
        (topics.station(ghost, "telemetry"), json.dumps(telemetry).encode()),
        (
            topics.station(station, "telemetry"),
            json.dumps({**telemetry, "source": f"flood-{rng.randrange(10**6)}"}).encode(),
        ),
        (
            topics.station(station, "state"),
            json.dumps(
                {
                    **telemetry,
                    "sim_time_s": 10**9,
                    "state": "down",
                    "reason": "flood",
                    "since_sim_time_s": 10**9,
                }
            ).encode(),
        ),
    ]


def flood(mqtt_port: int, rate: float, stop: Any, sent: Any, ready: Any) -> None:
    """The flooding process: ``rate`` messages a second until ``stop`` is set;
    ``ready`` once it publishes (a spawned process takes a while to import)."""
    config = load_config()
    line = config.line
    topics = LineTopics(line.site, line.area, line.id)
    stations = [station.id for station in config.stations]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"flood-{time.monotonic_ns()}")
    client.connect(HOST, mqtt_port)
    client.loop_start()
    ready.set()
    rng = random.Random(7)
    started = time.perf_counter()
    count = 0
    try:
        while not stop.is_set():
            for topic, payload in _payloads(topics, stations, rng):
                client.publish(topic, payload, qos=0)
                count += 1
            due = started + count / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
    finally:
        sent.value = count
        client.loop_stop()
        client.disconnect()


def p95_of(port: int, clients: int, seconds: float) -> tuple[float, float]:
    result = asyncio.run(load(HOST, port, TWIN, clients, seconds))
    ordered = sorted(result.latencies_s)
    if not ordered:
        raise RuntimeError("no answer from /twin")
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)], result.rps


def main() -> int:
    # Here, not at the top: the spawned flooding process imports this module and
    # needs none of the server's modules.
    from api_load import free_port, log, serve, stop_server, wait_ready

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--clients", type=int, default=4, help="keep-alive connections")
    parser.add_argument("--rate", type=float, default=FLOOD_RATE, help="garbage messages/s")
    parser.add_argument("--quick", action="store_true", help="one short round")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 4.0
    context = multiprocessing.get_context("spawn")
    port, mqtt_port = free_port(), free_port()
    server = context.Process(target=serve, args=(port, mqtt_port, 60.0, 42), daemon=True)
    server.start()
    quiet: list[float] = []
    flooded: list[float] = []
    sent_total = 0
    try:
        base = f"http://{HOST}:{port}"
        wait_ready(base, len(load_config().stations), server.is_alive)
        with httpx.Client(base_url=base, timeout=10) as client:
            before = client.get("/healthz").json()["ingest"]
        for index in range(args.rounds):
            p95, rps = p95_of(port, args.clients, args.seconds)
            quiet.append(p95)
            log(f"round {index + 1}: quiet  p95 {p95 * 1000:6.1f} ms ({rps:,.0f} requests/s)")
            stop, sent, ready = context.Event(), context.Value("q", 0), context.Event()
            flooder = context.Process(target=flood, args=(mqtt_port, args.rate, stop, sent, ready))
            flooder.start()
            if not ready.wait(120):
                raise RuntimeError("the flooding process did not start")
            time.sleep(1.0)  # the flood at its rate before the measurement starts
            p95, rps = p95_of(port, args.clients, args.seconds)
            stop.set()
            flooder.join(10)
            sent_total += int(sent.value)
            flooded.append(p95)
            log(f"round {index + 1}: flood  p95 {p95 * 1000:6.1f} ms ({rps:,.0f} requests/s)")
        with httpx.Client(base_url=base, timeout=10) as client:
            after = client.get("/healthz").json()["ingest"]
            stations = len(client.get(TWIN).json()["stations"])
    finally:
        stop_server(server)
    refused = sum(after["malformed"].values()) - sum(before["malformed"].values())
    refused += sum(after["rejected"].values()) - sum(before["rejected"].values())
    # A made-up sequence number below one already seen on the topic is dropped as
    # a duplicate before the twin sees it: refused as well.
    refused += after["duplicates"] - before["duplicates"]
    flood_p95 = statistics.median(flooded)
    quiet_p95 = statistics.median(quiet)
    ratio = flood_p95 / TARGET_P95_S
    print(f"GET /twin p95, {args.clients} clients, {args.rounds} rounds of {args.seconds:g} s:")
    print(f"  quiet                      {quiet_p95 * 1000:7.1f} ms")
    print(f"  flood {args.rate:,.0f} msg/s          {flood_p95 * 1000:7.1f} ms")
    print(f"  target                     {TARGET_P95_S * 1000:7.1f} ms under the flood")
    print(f"  garbage sent {sent_total:,}, refused by the ingest and the twin {refused:,}")
    print(f"  stations in the twin afterwards: {stations}")
    emit(
        "flood",
        {
            "benchmark": "flood",
            "ratio": round(ratio, 3),
            "target": 1.0,
            "met": ratio <= 1.0,
            "flood_p95_ms": round(flood_p95 * 1000, 2),
            "quiet_p95_ms": round(quiet_p95 * 1000, 2),
            "vs_quiet": round(flood_p95 / quiet_p95, 2) if quiet_p95 > 0 else None,
            "target_p95_ms": TARGET_P95_S * 1000,
            "flood_rate": args.rate,
            "garbage_sent": sent_total,
            "garbage_refused": refused,
            "stations_after": stations,
            "rounds": args.rounds,
            "machine": platform.machine(),
            "cpus": multiprocessing.cpu_count(),
        },
        quick=args.quick,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
