"""The other protocols' cost: OPC UA against a bare asyncua server, Sparkplug B against
the JSON tree, each with its baseline measured in the same run.

**OPC UA.** The messages of four simulated hours of the default line are recorded
once, as the plant's publisher hands them to its taps (``PlantPublisher.add_tap``).
The subject is ``LineOpcUaServer``: the messages are replayed into its ``tap`` from
this thread, as fast as it goes, and the figure is node values written per second
until its queue is empty. The baseline is a bare asyncua server with as many Double
variables, whose own loop writes the same number of values, round robin, each a new
``DataValue`` with its timestamps, letting its loop turn every 64 writes: what any
asyncua server pays per update, without our mapping of messages to nodes. Both
carry the same load: a client in a process of its own (``_opcua_subscriber.py``)
subscribed to every variable. Target: at least 0.7x the bare server.

**Sparkplug B.** The same recorded messages, every channel, go through one private
Debian mosquitto, each from its real publishing side: the JSON tree's encoding
(``orjson``, on the topic the publisher uses) or the edge node (``EdgeNode.tap``:
metrics, DATA payload, seq). Both at QoS 0 (Sparkplug B's own), so the figure
compares the encodings, not the QoS.

- On the broker (the headline): a bare paho subscriber in a process of its own
  receives them; messages per second from the first publish to the last received.
- Into a twin (the twin's source, printed beside it): the real ingests, ``Ingest``
  and ``SparkplugIngest``, feed a ``TwinState`` each; messages per second until the
  twin has taken the last, and the two twins must count the same parts.

Beside them, the mean payload bytes of the DATA messages. Target: Sparkplug B at
least 0.8x the JSON tree's rate on the broker, with a smaller payload.

Each round runs every half once, interleaved, the Sparkplug B and JSON halves in
turn first; a ratio is the median round's, with the rounds' range. The headline
``ratio`` is the lower of the two ratios over their targets (1.0: both met).
Run: ``.venv/bin/python bench/protocols.py [--quick]``. The last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson
from _results import emit
from mqtt_throughput import MOSQUITTO, Broker, free_port

from sensors.mqtt import new_client
from sensors.opcua.nodes import NAMESPACE_URI, changeable_setpoints
from sensors.opcua.server import LineOpcUaServer
from sensors.publisher import PlantPublisher
from sensors.topics import LineTopics
from twin.config.line import SENSOR_NAMES, LineConfig, load_config
from twin.sim.plant import Plant

OPCUA_TARGET = 0.7
SPARKPLUG_TARGET = 0.8
BARE_NAMESPACE = "urn:bench:bare"

Message = tuple[str | None, str, dict[str, Any]]


def record_messages(config: LineConfig, hours: float, seed: int) -> list[Message]:
    """What the plant's publisher tells its taps over ``hours`` of a batch run (the
    broker is not connected: nothing is sent, every message is still built)."""
    plant = Plant(config, seed=seed)
    topics = LineTopics(config.line.site, config.line.area, config.line.id)
    publisher = PlantPublisher(plant, new_client("bench-unsent"), topics, rng=random.Random(seed))
    seen: list[Message] = []
    publisher.add_tap(
        lambda station, channel, message: seen.append((station, channel, dict(message)))
    )
    publisher.attach()
    plant.env.run(until=hours * 3600)
    return seen


class Subscriber:
    """``_opcua_subscriber.py`` in a child process, following every variable."""

    def __init__(self, url: str, namespace_uri: str) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("_opcua_subscriber.py")),
                url,
                namespace_uri,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        stdout = self.process.stdout
        if stdout is None:
            raise RuntimeError("the subscriber has no stdout")
        line = stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"the subscriber did not start: {line!r}")
        self.variables = int(line.split()[1])

    def close(self) -> int:
        """Stop it; the data changes it received."""
        out, _ = self.process.communicate("", timeout=120)
        return int(out.split()[-1]) if out.strip() else 0


def opcua_subject(config: LineConfig, messages: list[Message]) -> tuple[float, int, int]:
    """Values written per second by our server fed ``messages``, with a client
    subscribed to every variable; its variables, and the writes."""
    server = LineOpcUaServer(config, port=free_port())
    server.start()
    subscriber = Subscriber(server.endpoint, NAMESPACE_URI)
    try:
        start_updates = server.updates
        began = time.perf_counter()
        for station, channel, message in messages:
            server.tap(station, channel, message)
        deadline = time.monotonic() + 600
        while (server._queue or server._scheduled) and time.monotonic() < deadline:
            time.sleep(0.001)
        elapsed = time.perf_counter() - began
        writes = server.updates - start_updates
        return writes / elapsed, server.variables, writes
    finally:
        subscriber.close()
        server.stop()


def opcua_bare(variables: int, writes: int) -> float:
    """Values written per second by a bare asyncua server of ``variables`` Doubles,
    with a client subscribed to every one."""
    from asyncua import Server, ua

    rate: list[float] = []
    ready, go, finish = threading.Event(), threading.Event(), threading.Event()
    port = free_port()

    async def main() -> None:
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bare/")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(BARE_NAMESPACE)
        folder = await server.nodes.objects.add_object(idx, "Bare")
        nodes = [
            (await folder.add_variable(idx, f"V{i}", 0.0, varianttype=ua.VariantType.Double)).nodeid
            for i in range(variables)
        ]
        write = server.iserver.aspace.write_attribute_value
        attribute = ua.AttributeIds.Value
        async with server:
            ready.set()
            while not go.is_set():
                await asyncio.sleep(0.01)
            began = time.perf_counter()
            for i in range(writes):
                now = datetime.now(UTC)
                value = ua.DataValue(
                    ua.Variant(float(i), ua.VariantType.Double),
                    SourceTimestamp=now,
                    ServerTimestamp=now,
                )
                await write(nodes[i % variables], attribute, value)
                if i % 64 == 63:
                    await asyncio.sleep(0)  # the subscription's turn, as ours gets between bursts
            rate.append(writes / (time.perf_counter() - began))
            while not finish.is_set():  # serve until the subscriber has left
                await asyncio.sleep(0.01)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(60):
        raise RuntimeError("the bare server did not start")
    subscriber = Subscriber(f"opc.tcp://127.0.0.1:{port}/bare/", BARE_NAMESPACE)
    try:
        go.set()
        deadline = time.monotonic() + 600
        while not rate and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        subscriber.close()
        finish.set()
        thread.join(30)
    if not rate:
        raise RuntimeError("the bare server did not finish its writes")
    return rate[0]


class Receiver:
    """A real ingest (JSON's or Sparkplug B's) into a twin: how many messages the twin
    took, when it took the last, and the payload bytes of the DATA messages it got."""

    def __init__(self, config: LineConfig, port: int, encoding: str) -> None:
        from sensors.ingest import Ingest
        from sensors.mqtt import BrokerAddress, connect
        from sensors.sparkplug.consumer import SparkplugIngest
        from sensors.sparkplug.topics import SparkplugIds
        from twin.state.line import TwinState

        info = config.line
        topics = LineTopics(info.site, info.area, info.id)
        self.twin = TwinState(info.site, info.area, info.id)
        self.client = new_client(f"bench-{encoding}-{uuid.uuid4().hex[:8]}")
        self.taken = 0
        self.last = 0.0
        self.sizes: list[int] = []
        self.ingest: Any
        if encoding == "json":
            self.ingest = Ingest(self.twin, topics, self.client, on_accepted=self._took, qos=0)
        else:
            ids = SparkplugIds.for_line(info.site, info.area, info.id)
            self.ingest = SparkplugIngest(
                self.twin, topics, self.client, ids, on_accepted=self._took
            )
        on_message = self.client.on_message

        def measured(client: Any, userdata: Any, message: Any) -> None:
            if "BIRTH" not in message.topic:
                self.sizes.append(len(message.payload))
            on_message(client, userdata, message)

        self.client.on_message = measured
        connect(self.client, BrokerAddress("127.0.0.1", port))
        if not self.ingest.subscribed.wait(10):
            raise RuntimeError("no SUBACK from mosquitto")

    def _took(self, station: str | None, message: Any) -> None:
        self.taken += 1
        self.last = time.perf_counter()

    def close(self) -> None:
        from sensors.mqtt import disconnect

        disconnect(self.client)


def stream_pair(
    config: LineConfig, port: int, messages: list[Message], encoding: str
) -> tuple[float, float, dict[str, tuple[int, int]]]:
    """The line's recorded messages, every channel, through mosquitto into a twin:
    messages per second from the first publish to the twin having taken the last;
    the mean payload bytes; the twin's (started, good) per station."""
    from sensors.mqtt import disconnect

    receiver = Receiver(config, port, encoding)
    client = new_client(f"bench-pub-{encoding}-{uuid.uuid4().hex[:8]}")
    try:
        publish = _publisher(config, client, port, encoding)
        births = receiver.taken
        began = time.perf_counter()
        for station, channel, message in messages:
            publish(station, channel, message)
        # Until the twin has taken them all, or nothing more comes for a while.
        expected = births + len(messages)
        quiet_since = time.monotonic()
        seen = receiver.taken
        while receiver.taken < expected and time.monotonic() - quiet_since < 5:
            time.sleep(0.005)
            if receiver.taken != seen:
                seen, quiet_since = receiver.taken, time.monotonic()
        took = receiver.taken - births
        rate = took / (receiver.last - began)
        counts = {s.id: (s.started, s.good) for s in receiver.twin.view().stations}
        size = statistics.fmean(receiver.sizes) if receiver.sizes else 0.0
        return rate, size, counts
    finally:
        disconnect(client)
        receiver.close()


def _count_messages(port: int, topic: str, expected: int, conn: Any) -> None:
    """A bare paho subscriber in a process of its own: the perf_counter time of the
    ``expected``-th message on ``topic`` (or of the last, after 5 quiet seconds)."""
    import paho.mqtt.client as mqtt

    got = 0
    last = 0.0
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        nonlocal got, last
        if "BIRTH" in message.topic:
            return
        got += 1
        last = time.perf_counter()
        if got >= expected:
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-count-{os.getpid()}")
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=0)
    client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    subscribed.wait(10)
    conn.send("ready")
    while not done.wait(5):
        if time.perf_counter() - last > 5 and got:
            break
    conn.send((got, last))
    client.disconnect()
    client.loop_stop()


def broker_pair(
    config: LineConfig, port: int, messages: list[Message], encoding: str
) -> tuple[float, int]:
    """The line's messages from the real publishing side (the JSON encoding, or the
    edge node) through mosquitto to a bare subscriber in another process: messages
    per second from the first publish to the last received; messages received."""
    import multiprocessing

    from sensors.mqtt import disconnect

    info = config.line
    topics = LineTopics(info.site, info.area, info.id)
    topic = f"{topics.prefix}/#" if encoding == "json" else f"spBv1.0/{info.site}:{info.area}/#"
    here, there = multiprocessing.Pipe()
    counter = multiprocessing.Process(
        target=_count_messages, args=(port, topic, len(messages), there), daemon=True
    )
    counter.start()
    if not here.poll(30) or here.recv() != "ready":
        raise RuntimeError("the counting subscriber did not start")
    client = new_client(f"bench-pub-{encoding}-{uuid.uuid4().hex[:8]}")
    try:
        publish = _publisher(config, client, port, encoding)
        began = time.perf_counter()
        for station, channel, message in messages:
            publish(station, channel, message)
        if not here.poll(120):
            raise RuntimeError("the counting subscriber did not finish")
        got, last = here.recv()
    finally:
        disconnect(client)
        counter.join(10)
    # perf_counter is the same clock in both processes (CLOCK_MONOTONIC).
    return got / (last - began), got


def _publisher(config: LineConfig, client: Any, port: int, encoding: str) -> Any:
    """The publishing side of ``encoding``, connected: publish(station, channel, message)."""
    from sensors.mqtt import BrokerAddress, connect
    from sensors.sparkplug.edge import DeviceSpec, EdgeNode
    from sensors.sparkplug.topics import SparkplugIds

    info = config.line
    topics = LineTopics(info.site, info.area, info.id)
    if encoding == "json":
        connect(client, BrokerAddress("127.0.0.1", port))
        send = client.publish

        def publish(station: str | None, channel: str, message: dict[str, Any]) -> None:
            topic = topics.status if station is None else topics.station(station, channel)  # type: ignore[arg-type]
            send(topic, orjson.dumps(message), 0)

        return publish
    devices = [
        DeviceSpec(
            station=spec.id,
            sensors=tuple(n for n in SENSOR_NAMES if getattr(spec.sensors, n) is not None),
            process_names=(*changeable_setpoints(spec), "wear"),
            setpoints={n: sp.default for n, sp in changeable_setpoints(spec).items()},
        )
        for spec in config.stations
    ]
    node = EdgeNode(
        client, SparkplugIds.for_line(info.site, info.area, info.id), devices, source="bench"
    )
    node.start(BrokerAddress("127.0.0.1", port))
    return node.tap


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, a shorter recording")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rounds = args.rounds or (3 if args.quick else 7)
    config = load_config(None)
    messages = record_messages(config, hours=1.0 if args.quick else 4.0, seed=7)
    print(f"OPC UA: {len(messages)} plant messages recorded; {rounds} rounds", flush=True)
    ratios, subject_rates, bare_rates = [], [], []
    variables = writes = 0
    for number in range(1, rounds + 1):
        subject, variables, writes = opcua_subject(config, messages)
        bare = opcua_bare(variables, writes)
        ratios.append(subject / bare)
        subject_rates.append(subject)
        bare_rates.append(bare)
        print(
            f"  round {number}: ours {subject:,.0f} values/s, bare asyncua {bare:,.0f} values/s "
            f"({variables} variables, {writes} writes): {subject / bare:.2f}x",
            flush=True,
        )
    opcua_ratio = statistics.median(ratios)
    print(
        f"OPC UA server: {opcua_ratio:.2f}x a bare asyncua server (median of {rounds}; "
        f"spread {min(ratios):.2f} to {max(ratios):.2f}); target >= {OPCUA_TARGET}x",
        flush=True,
    )
    print(f"Sparkplug B: the same {len(messages)} messages through mosquitto; {rounds} rounds")
    spb_ratios, json_rates, spb_rates, twin_ratios = [], [], [], []
    json_bytes = spb_bytes = 0.0
    with tempfile.TemporaryDirectory() as workdir:
        broker = Broker(shutil.which("mosquitto") or MOSQUITTO, Path(workdir))
        broker.start()
        try:
            for number in range(1, rounds + 1):
                # Each round runs the two the other way round from the last, so that
                # neither always goes first (onto a broker that has just been busy).
                order = ("json", "sparkplug") if number % 2 else ("sparkplug", "json")
                rates = {e: broker_pair(config, broker.port, messages, e) for e in order}
                (json_rate, json_n), (spb_rate, spb_n) = rates["json"], rates["sparkplug"]
                if json_n != len(messages) or spb_n != len(messages):
                    raise SystemExit(f"lost: json {json_n}, sparkplug {spb_n} of {len(messages)}")
                streams = {e: stream_pair(config, broker.port, messages, e) for e in order}
                json_twin, json_bytes, json_counts = streams["json"]
                spb_twin, spb_bytes, spb_counts = streams["sparkplug"]
                if json_counts != spb_counts:
                    raise SystemExit(
                        f"the twins differ: json {json_counts}, sparkplug {spb_counts}"
                    )
                spb_ratios.append(spb_rate / json_rate)
                twin_ratios.append(spb_twin / json_twin)
                json_rates.append(json_rate)
                spb_rates.append(spb_rate)
                print(
                    f"  round {number}: on the broker JSON {json_rate:,.0f} msg/s, Sparkplug B "
                    f"{spb_rate:,.0f} msg/s: {spb_rate / json_rate:.2f}x; into a twin JSON "
                    f"{json_twin:,.0f} msg/s, Sparkplug B {spb_twin:,.0f} msg/s: "
                    f"{spb_twin / json_twin:.2f}x",
                    flush=True,
                )
        finally:
            broker.stop()
    twin_ratio = statistics.median(twin_ratios)
    spb_ratio = statistics.median(spb_ratios)
    print(
        f"Sparkplug B: {spb_ratio:.2f}x the JSON tree's rate (median of {rounds}; spread "
        f"{min(spb_ratios):.2f} to {max(spb_ratios):.2f}), {spb_bytes:.0f} B a message against "
        f"{json_bytes:.0f} B; target >= {SPARKPLUG_TARGET}x and smaller",
        flush=True,
    )
    print(
        f"Sparkplug B into a twin (the twin's source): {twin_ratio:.2f}x the JSON tree's rate "
        f"(median of {rounds}; spread {min(twin_ratios):.2f} to {max(twin_ratios):.2f})",
        flush=True,
    )
    # The headline is the weaker of the two against its own target.
    headline = min(opcua_ratio / OPCUA_TARGET, spb_ratio / SPARKPLUG_TARGET)
    figures: dict[str, Any] = {
        "ratio": round(headline, 3),
        "target": 1.0,
        "headline": "the lower of opcua_ratio/opcua_target and sparkplug_ratio/sparkplug_target",
        "opcua_ratio": round(opcua_ratio, 3),
        "opcua_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "opcua_target": OPCUA_TARGET,
        "opcua_values_per_s": round(statistics.median(subject_rates)),
        "opcua_bare_values_per_s": round(statistics.median(bare_rates)),
        "opcua_variables": variables,
        "opcua_writes_per_round": writes,
        "sparkplug_ratio": round(spb_ratio, 3),
        "sparkplug_target": SPARKPLUG_TARGET,
        "sparkplug_msgs_per_s": round(statistics.median(spb_rates)),
        "json_msgs_per_s": round(statistics.median(json_rates)),
        "sparkplug_range": [round(min(spb_ratios), 3), round(max(spb_ratios), 3)],
        "sparkplug_twin_ratio": round(twin_ratio, 3),
        "sparkplug_twin_range": [round(min(twin_ratios), 3), round(max(twin_ratios), 3)],
        "sparkplug_bytes": round(spb_bytes, 1),
        "json_bytes": round(json_bytes, 1),
        "stream_messages": len(messages),
        "rounds": rounds,
    }
    figures["met"] = bool(
        opcua_ratio >= OPCUA_TARGET and spb_ratio >= SPARKPLUG_TARGET and spb_bytes < json_bytes
    )
    emit("protocols", figures, quick=args.quick)
    import _tables

    _tables.update("protocols-opcua", "protocols-sparkplug")
    # A target missed is a figure, not a failure: make bench goes on to the next.
    return 0


if __name__ == "__main__":
    threading.excepthook = lambda hook: None  # a server thread ending with the run is no failure
    sys.exit(main())
