"""MQTT throughput: the project's telemetry pipeline against bare paho, in the same run.

Both halves run against a private Debian mosquitto that this benchmark starts on
a free loopback port (unlimited queues, no persistence) and stops by PID.

Baseline: a bare paho publisher and a bare paho subscriber (VERSION2 callbacks,
MQTT 3.1.1) in this process. The publisher sends N messages at QoS 0 as fast as
it can, with a payload the size of a real encoded telemetry sample on a real
telemetry topic; the figure is messages per second from the first publish to
the last receipt, and the loss is N minus the messages received.

Subject: the default line as a ``Plant`` on a plain SimPy environment, with a
telemetry period of 0.05 s so that telemetry dominates, a ``PlantPublisher`` on
a real paho client, and an ``Ingest`` (its own client) feeding a ``TwinState``.
The plant runs until the publisher has published about N telemetry messages;
the figure is messages per second from the first publish to the ingest having
accepted the last of them. Telemetry loss is published minus accepted (and the
ingest's sequence gaps); QoS 1 events must arrive every one. Latency is the
wall-clock time from the ``ts_ms`` stamped at publish to the ingest having
applied the sample (``ts_ms`` is whole milliseconds, floored, so each figure may
read up to 1 ms high); the publisher floods, so it is latency under full load.

Each half runs a few times; the fastest run of each counts. Target: the
pipeline reaches at least 0.7x the bare-paho rate.

Run: ``.venv/bin/python bench/mqtt_throughput.py [--quick]``.
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import paho.mqtt
import paho.mqtt.client as mqtt
import pydantic
import simpy
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from sensors.ingest import Ingest
from sensors.mqtt import BrokerAddress, connect, disconnect, new_client
from sensors.publisher import PlantPublisher
from sensors.topics import LineTopics
from twin.config import LineConfig, load_config, parse_config
from twin.plant import Plant
from twin.state import TwinState

TARGET = 0.7
TELEMETRY_PERIOD_S = 0.05
MOSQUITTO = "/usr/sbin/mosquitto"
# A run ends when nothing more has arrived for this long (loss), or at the cap.
IDLE_TIMEOUT_S = 3.0
RUN_TIMEOUT_S = 60.0


# -- the broker ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Broker:
    """A private mosquitto on a free loopback port, stopped by PID."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> BrokerAddress:
        return BrokerAddress("127.0.0.1", self.port)

    def start(self) -> None:
        config = self.workdir / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "max_queued_messages 0\n"
            "persistence false\n" + ("user root\n" if os.geteuid() == 0 else "")
        )
        with open(self.workdir / "mosquitto.log", "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=log
            )
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.process.returncode}: "
                    + (self.workdir / "mosquitto.log").read_text(errors="replace")
                )
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.settimeout(0.2)
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"mosquitto does not listen on 127.0.0.1:{self.port} after 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


def wait_quiet(count: Any, target: int) -> None:
    """Wait until ``count()`` reaches ``target``, or stops moving (loss), or the cap."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    last, moved = count(), time.monotonic()
    while last < target and time.monotonic() < deadline:
        time.sleep(0.005)
        now = count()
        if now != last:
            last, moved = now, time.monotonic()
        elif time.monotonic() - moved > IDLE_TIMEOUT_S:
            return


def wait_settled(count: Any, quiet_s: float = 0.3) -> None:
    """Wait until ``count()`` has not moved for ``quiet_s``."""
    last, moved = count(), time.monotonic()
    while time.monotonic() - moved < quiet_s:
        time.sleep(0.01)
        if count() != last:
            last, moved = count(), time.monotonic()


# -- the plant and a real telemetry payload ---------------------------------------------------
def bench_config() -> LineConfig:
    data = load_config().model_dump(mode="json")
    data.setdefault("sensors", {})["telemetry_period_s"] = TELEMETRY_PERIOD_S
    for station in data["stations"]:
        # A sensor with its own period would not follow the line's telemetry period.
        for spec in (station.get("sensors") or {}).values():
            if isinstance(spec, dict) and spec.get("period_s") is not None:
                spec["period_s"] = None
    return parse_config(data, "benchmark line")


def topics_for(config: LineConfig) -> LineTopics:
    return LineTopics(site=config.line.site, area=config.line.area, line=config.line.id)


class _Capture:
    """Just enough of a paho client to catch what the publisher hands over."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def will_set(self, *args: Any, **kwargs: Any) -> None:
        pass

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> Any:
        self.sent.append((topic, payload))
        return mqtt.MQTTMessageInfo(0)


def sample_telemetry(config: LineConfig) -> tuple[str, bytes]:
    """A telemetry topic and payload of median size, as the project's publisher sends them."""
    plant = Plant(config, env=simpy.Environment(), seed=1)
    capture = _Capture()
    publisher = PlantPublisher(
        plant, cast(mqtt.Client, capture), topics_for(config), rng=random.Random(1)
    )
    publisher.attach()
    plant.run(until=TELEMETRY_PERIOD_S * 20)
    samples = sorted(
        (sent for sent in capture.sent if sent[0].endswith("/telemetry")),
        key=lambda sent: len(sent[1]),
    )
    return samples[len(samples) // 2]


# -- baseline: bare paho ---------------------------------------------------------------------
@dataclass
class Run:
    sent: int
    received: int
    seconds: float
    send_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0

    @property
    def loss(self) -> int:
        return self.sent - self.received


def bare_client(name: str) -> mqtt.Client:
    return mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-{name}-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv311,
    )


def bare_connect(client: mqtt.Client, address: BrokerAddress) -> None:
    client.connect(address.host, address.port, keepalive=30)
    client.loop_start()


def baseline(address: BrokerAddress, topic: str, payload: bytes, count: int) -> Run:
    received = [0]
    last = [0.0]
    subscribed = threading.Event()
    connected = threading.Event()

    def on_connect(
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        client.subscribe(topic, qos=0)

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        received[0] += 1
        last[0] = time.perf_counter()

    subscriber = bare_client("sub")
    subscriber.on_connect = on_connect
    subscriber.on_subscribe = lambda client, userdata, mid, codes, props: subscribed.set()
    subscriber.on_message = on_message
    publisher = bare_client("pub")
    publisher.on_connect = lambda client, userdata, flags, code, props: connected.set()
    bare_connect(subscriber, address)
    bare_connect(publisher, address)
    try:
        if not (subscribed.wait(10) and connected.wait(10)):
            raise TimeoutError("bare paho clients: no CONNACK/SUBACK within 10 s")
        started = time.perf_counter()
        for _ in range(count):
            publisher.publish(topic, payload, qos=0)
        sent_at = time.perf_counter()
        wait_quiet(lambda: received[0], count)
        return Run(count, received[0], last[0] - started, sent_at - started)
    finally:
        for client in (publisher, subscriber):
            client.disconnect()
            client.loop_stop()


# -- subject: plant -> publisher -> broker -> ingest -> twin ----------------------------------
class TimedIngest(Ingest):
    """The project's ingest, noting when it applied each message (nothing else changes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (topic, payload, wall-clock s, perf_counter s) of every accepted message
        self.applied: list[tuple[str, bytes, float, float]] = []

    def handle(self, topic: str, payload: bytes) -> bool:
        accepted = super().handle(topic, payload)
        if accepted:
            self.applied.append((topic, payload, time.time(), time.perf_counter()))
        return accepted


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def pipeline(address: BrokerAddress, config: LineConfig, telemetry: int) -> Run:
    topics = topics_for(config)
    twin = TwinState(config.line.site, config.line.area, config.line.id)
    ingest_client = new_client(f"bench-ingest-{uuid.uuid4().hex[:8]}")
    ingest = TimedIngest(twin, topics, ingest_client)
    plant = Plant(config, env=simpy.Environment(), seed=7)
    plant_client = new_client(f"bench-plant-{uuid.uuid4().hex[:8]}")
    publisher = PlantPublisher(plant, plant_client, topics, rng=random.Random(7))
    publisher.attach()
    connect(ingest_client, address)
    try:
        if not ingest.subscribed.wait(10):
            raise TimeoutError("the ingest got no SUBACK within 10 s")
        connect(plant_client, address)
        publisher.announce()
        publisher.flush(10)
        # Let the birth message and any retained states of earlier runs arrive first.
        wait_settled(lambda: ingest.stats.accepted)
        before = ingest.stats.accepted
        step = 1.0  # simulated seconds between checks of the telemetry count
        started = time.perf_counter()
        while publisher.published["telemetry"] < telemetry:
            plant.run(until=plant.now + step)
        sent_at = time.perf_counter()
        flushed = publisher.flush(30)
        # Everything the plant published in the window: the birth message went before.
        sent = sum(n for kind, n in publisher.published.items() if kind != "status")
        wait_quiet(lambda: ingest.stats.accepted - before, sent)
        health = ingest.health()
    finally:
        disconnect(plant_client)
        disconnect(ingest_client)

    # Only this run's messages: a retained state of an earlier run may arrive late.
    window = [
        entry
        for entry in ingest.applied
        if not entry[0].endswith("/status")
        and json.loads(entry[1]).get("source") == publisher.source
    ]
    received = len(window)
    seconds = window[-1][3] - started if window else float("inf")
    accepted: Counter[str] = Counter()
    latencies_ms: list[float] = []
    for topic, payload, applied_at, _ in window:
        channel = topic.rsplit("/", 1)[-1]
        accepted[channel] += 1
        if channel == "telemetry":
            latencies_ms.append(applied_at * 1000.0 - json.loads(payload)["ts_ms"])
    published = publisher.published
    events_published = sum(
        n for kind, n in published.items() if kind not in ("telemetry", "state", "status")
    )
    extra = {
        "telemetry_published": published["telemetry"],
        "telemetry_accepted": accepted["telemetry"],
        "events_published": events_published,
        "events_accepted": accepted["event"],
        "state_published": published["state"],
        "state_accepted": accepted["state"],
        "flushed": flushed,
        "dropped": dict(publisher.dropped),
        "gaps": health["gaps"],
        "gaps_by_channel": health["gaps_by_channel"],
        "duplicates": health["duplicates"],
        "malformed": sum(health["malformed"].values()),
        "sim_seconds": plant.now,
        "p50_ms": statistics.median(latencies_ms) if latencies_ms else float("nan"),
        "p99_ms": percentile(latencies_ms, 0.99) if latencies_ms else float("nan"),
        "max_ms": max(latencies_ms) if latencies_ms else float("nan"),
    }
    return Run(sent, received, seconds, sent_at - started, extra)


def best(runs: list[Run]) -> Run:
    return max(runs, key=lambda run: run.rate)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages, for a smoke test")
    args = parser.parse_args()
    count = 5_000 if args.quick else 30_000
    repeats = 2 if args.quick else 3

    binary = shutil.which("mosquitto") or MOSQUITTO
    if not Path(binary).exists():
        print(f"mosquitto not found at {MOSQUITTO}: apt-get install mosquitto", file=sys.stderr)
        return 2
    config = bench_config()
    topic, payload = sample_telemetry(config)

    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as workdir:
        broker = Broker(binary, Path(workdir))
        broker.start()
        try:
            base_runs, pipe_runs = [], []
            for _ in range(repeats):  # interleaved, so that drift hits both alike
                base_runs.append(baseline(broker.address, topic, payload, count))
                pipe_runs.append(pipeline(broker.address, config, count))
        finally:
            broker.stop()

    base, pipe = best(base_runs), best(pipe_runs)
    ratio = pipe.rate / base.rate
    extra = pipe.extra
    telemetry_loss = extra["telemetry_published"] - extra["telemetry_accepted"]
    event_loss = (extra["events_published"] - extra["events_accepted"]) + (
        extra["state_published"] - extra["state_accepted"]
    )
    events_ok = all(
        run.extra["events_published"] == run.extra["events_accepted"]
        and run.extra["state_published"] == run.extra["state_accepted"]
        and run.extra["flushed"]
        for run in pipe_runs
    )
    stations = len(config.stations)
    print(
        f"mosquitto {broker.port}, {count:,} messages of {len(payload)} bytes, "
        f"best of {repeats} (QoS 0)"
    )
    print(
        f"  bare paho  {base.rate:>10,.0f} msg/s  ({base.received:,} of {base.sent:,} "
        f"in {base.seconds:.2f} s; publish loop {base.send_seconds:.2f} s; loss {base.loss})"
    )
    print(
        f"  pipeline   {pipe.rate:>10,.0f} msg/s  ({pipe.received:,} of {pipe.sent:,} "
        f"in {pipe.seconds:.2f} s; plant+publish {pipe.send_seconds:.2f} s; loss {pipe.loss})"
    )
    print(f"  ratio      {ratio:>10.2f}  (target >= {TARGET})")
    print(
        f"pipeline: {stations} stations, telemetry every {TELEMETRY_PERIOD_S} s simulated, "
        f"{extra['sim_seconds']:,.0f} s simulated"
    )
    print(
        f"  telemetry  {extra['telemetry_accepted']:,} of {extra['telemetry_published']:,} "
        f"accepted (loss {telemetry_loss}, ingest gaps {extra['gaps_by_channel']['telemetry']})"
    )
    print(
        f"  QoS 1      {extra['events_accepted']:,} of {extra['events_published']:,} events, "
        f"{extra['state_accepted']} of {extra['state_published']} states accepted "
        f"(every run: {'no loss' if events_ok else 'LOSS'}; flushed {extra['flushed']})"
    )
    print(
        f"  latency    p50 {extra['p50_ms']:.1f} ms  p99 {extra['p99_ms']:.1f} ms  "
        f"max {extra['max_ms']:.1f} ms  (publish -> twin, under full load; ts_ms floors to 1 ms)"
    )
    print(
        "  all runs   bare "
        + ", ".join(f"{run.rate:,.0f}" for run in base_runs)
        + "; pipeline "
        + ", ".join(f"{run.rate:,.0f}" for run in pipe_runs)
        + " msg/s"
    )

    figures = {
        "benchmark": "mqtt_throughput",
        "ratio": round(ratio, 3),
        "target": TARGET,
        "met": ratio >= TARGET,
        "messages": count,
        "payload_bytes": len(payload),
        "baseline_msg_per_s": round(base.rate),
        "pipeline_msg_per_s": round(pipe.rate),
        "baseline_loss": base.loss,
        "pipeline_loss": pipe.loss,
        "telemetry_loss": telemetry_loss,
        "telemetry_gaps": extra["gaps_by_channel"]["telemetry"],
        "qos1_events_published": extra["events_published"] + extra["state_published"],
        "qos1_events_lost": event_loss,
        "qos1_zero_loss": events_ok,
        "latency_p50_ms": round(extra["p50_ms"], 2),
        "latency_p99_ms": round(extra["p99_ms"], 2),
        "python": platform.python_version(),
        "paho_mqtt": paho.mqtt.__version__,
        "pydantic": pydantic.VERSION,
        "simpy": simpy.__version__,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
