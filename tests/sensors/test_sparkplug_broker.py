"""Sparkplug B over Debian's mosquitto: what an outside decoder reads, the session
rules across a broker restart, rebirth on a seq gap, and commands.

The outside decoder is Debian's C++ ``protoc --decode_raw``: it knows nothing of
our ``.proto`` and prints field numbers, which are checked here against the
numbers of the Sparkplug B specification, written out below.
"""

from __future__ import annotations

import codecs
import json
import random
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from helpers import Mosquitto, Recorder, bare_publisher, find_binary, missing, wait_until
from paho.mqtt.enums import CallbackAPIVersion

from api.runtime.line import Stack
from api.runtime.options import StackOptions
from sensors.mqtt import connect, disconnect, new_client, parse_mqtt_url
from sensors.publisher import PlantPublisher
from sensors.sparkplug.codec import DataType, command_payload, decode_payload, encode_payload
from sensors.sparkplug.consumer import SparkplugIngest
from sensors.sparkplug.edge import EdgeNode, devices_of
from sensors.sparkplug.topics import SparkplugIds
from sensors.topics import LineTopics
from twin.config.line import load_config
from twin.contract import SCHEMA_VERSION
from twin.sim.plant import Plant
from twin.state.line import TwinState

pytestmark = [pytest.mark.integration]

# The Sparkplug B payload's field numbers, from the specification.
PAYLOAD_TIMESTAMP, PAYLOAD_METRICS, PAYLOAD_SEQ = 1, 2, 3
METRIC_NAME, METRIC_ALIAS, METRIC_TIMESTAMP, METRIC_DATATYPE = 1, 2, 3, 4
METRIC_IS_NULL, METRIC_PROPERTIES = 7, 9
METRIC_INT, METRIC_LONG, METRIC_DOUBLE, METRIC_BOOLEAN, METRIC_STRING = 10, 11, 13, 14, 15
INT64, UINT64, DOUBLE, BOOLEAN, STRING = 4, 8, 10, 11, 12

Raw = list[tuple[int, Any]]


def decode_raw(protoc: str, payload: bytes) -> Raw:
    """``protoc --decode_raw`` of the payload, as (field number, value) pairs; a
    nested message is a list of its own pairs."""
    text = subprocess.run(
        [protoc, "--decode_raw"], input=payload, capture_output=True, check=True
    ).stdout.decode()
    stack: list[Raw] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if line == "}":
            inner = stack.pop()
            stack[-1][-1] = (stack[-1][-1][0], inner)
        elif line.endswith("{"):
            stack[-1].append((int(line[:-1].strip()), None))
            stack.append([])
        else:
            number, _, value = line.partition(": ")
            stack[-1].append((int(number), _scalar(value)))
    assert len(stack) == 1
    return stack[0]


def _scalar(text: str) -> Any:
    if text.startswith('"'):
        return codecs.escape_decode(text[1:-1].encode())[0].decode()
    if text.startswith("0x"):
        return int(text, 16)  # fixed64 (a double) or fixed32
    return int(text)


def field(raw: Raw, number: int) -> Any:
    values = [value for found, value in raw if found == number]
    assert len(values) <= 1, (number, raw)
    return values[0] if values else None


def as_double(bits: int) -> float:
    value: float = struct.unpack("<d", struct.pack("<Q", bits))[0]
    return value


def protoc_binary() -> str:
    protoc = find_binary("protoc")
    if protoc is None:
        missing("protoc", "protobuf-compiler")
    assert protoc is not None
    return protoc


@pytest.fixture
def persistent_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    binary = find_binary("mosquitto")
    if binary is None:
        missing("mosquitto", "mosquitto")
    assert binary is not None
    # Sparkplug B is QoS 0: the recorder's persistent session must keep the births
    # the node sends after a restart while the recorder itself is reconnecting (which
    # of the two gets back first is a race, lost now and then on a busy machine).
    broker = Mosquitto(
        binary,
        tmp_path,
        persistence=True,
        extra="allow_anonymous true\nqueue_qos0_messages true\n",
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def line_parts() -> tuple[Any, LineTopics, SparkplugIds]:
    config = load_config()
    line = config.line
    return (
        config,
        LineTopics(line.site, line.area, line.id),
        SparkplugIds.for_line(line.site, line.area, line.id),
    )


def start_node(url: str, publisher: PlantPublisher, ids: SparkplugIds) -> EdgeNode:
    node = EdgeNode(
        new_client(f"test-spb-{uuid.uuid4().hex[:8]}"),
        ids,
        devices_of(publisher),
        source=publisher.source,
    )
    node.attach(publisher)
    node.start(parse_mqtt_url(url))
    assert node.born.is_set()
    return node


def test_an_outside_decoder_reads_births_and_data_and_ddata_is_the_json_reading(
    mosquitto: Mosquitto,
) -> None:
    protoc = protoc_binary()
    config, topics, ids = line_parts()
    spb = Recorder(mosquitto.url, f"spBv1.0/{ids.group}/#", qos=0)
    telemetry = Recorder(mosquitto.url, f"{topics.prefix}/+/telemetry", qos=0)
    plant = Plant(config, seed=7)
    plant_client = new_client("test-plant-json")
    publisher = PlantPublisher(plant, plant_client, topics, rng=random.Random(7))
    publisher.attach()
    connect(plant_client, parse_mqtt_url(mosquitto.url))
    node = start_node(mosquitto.url, publisher, ids)
    try:
        publisher.announce()
        plant.run(until=1200)
        sent_json = publisher.published["telemetry"]
        assert wait_until(
            lambda: (
                len(telemetry.snapshot()) == sent_json
                and len(spb.snapshot()) == sum(node.published.values())
            ),
            timeout=30,
        )
    finally:
        node.stop()
        # The NDEATH of the clean stop reaches the recorder before it closes.
        wait_until(lambda: any("/NDEATH/" in topic for topic, _, _ in spb.snapshot()), 10)
        disconnect(node.client)
        disconnect(plant_client)
        spb.close()
        telemetry.close()
    messages = spb.snapshot()
    raws = [(topic.split("/"), decode_raw(protoc, payload)) for topic, payload, _ in messages]
    # One seq across every message of the node, 0 first (the NBIRTH), round at 256.
    assert [field(raw, PAYLOAD_SEQ) for parts, raw in raws if parts[2] != "NDEATH"] == [
        n % 256 for n in range(len(raws) - 1)
    ]
    kinds = [parts[2] for parts, _ in raws]
    assert kinds[: 1 + len(config.stations)] == ["NBIRTH"] + ["DBIRTH"] * len(config.stations)
    aliases: dict[tuple[str | None, str], int] = {}
    for parts, raw in raws:
        assert field(raw, PAYLOAD_TIMESTAMP) > 1_600_000_000_000  # ms since the epoch
        metrics = [value for number, value in raw if number == PAYLOAD_METRICS]
        if parts[2] in ("NBIRTH", "DBIRTH"):
            device = parts[4] if parts[2] == "DBIRTH" else None
            for metric in metrics:
                name = field(metric, METRIC_NAME)
                assert isinstance(name, str)
                assert field(metric, METRIC_DATATYPE) is not None, name
                assert field(metric, METRIC_TIMESTAMP) is not None, name
                aliases[(device, name)] = field(metric, METRIC_ALIAS)
        elif parts[2] == "DDATA":
            for metric in metrics:
                assert field(metric, METRIC_NAME) is None  # aliases only in DATA
                assert field(metric, METRIC_DATATYPE) is None
                assert field(metric, METRIC_ALIAS) is not None
    assert len(set(aliases.values())) == len(aliases)  # unique across node and devices
    nbirth = [value for number, value in raws[0][1] if number == PAYLOAD_METRICS]
    by_name = {field(metric, METRIC_NAME): metric for metric in nbirth}
    assert field(by_name["bdSeq"], METRIC_DATATYPE) == INT64
    assert field(by_name["bdSeq"], METRIC_LONG) == 0
    assert field(by_name["Node Control/Rebirth"], METRIC_DATATYPE) == BOOLEAN
    assert field(by_name["Node Control/Rebirth"], METRIC_BOOLEAN) == 0
    dbirth = [value for number, value in raws[2][1] if number == PAYLOAD_METRICS]
    machining = {field(metric, METRIC_NAME): metric for metric in dbirth}
    assert raws[2][0][4] == "machining"
    temperature = machining["Telemetry/temperature_c"]
    assert field(temperature, METRIC_DATATYPE) == DOUBLE
    assert field(temperature, METRIC_PROPERTIES) == [(1, "engUnit"), (2, [(1, STRING), (8, "°C")])]
    assert field(machining["Telemetry/seq"], METRIC_DATATYPE) == UINT64
    # Each telemetry DDATA carries the JSON tree's sample of the same moment, exactly.
    readings: dict[tuple[str, int], dict[int, Any]] = {}
    for parts, raw in raws:
        if parts[2] != "DDATA":
            continue
        values = {
            field(metric, METRIC_ALIAS): metric
            for number, metric in raw
            if number == PAYLOAD_METRICS
        }
        seq_metric = values.get(aliases[(parts[4], "Telemetry/seq")])
        if seq_metric is not None:
            readings[(parts[4], field(seq_metric, METRIC_LONG))] = values
    compared = 0
    for topic, payload, _ in telemetry.snapshot():
        station = topics.parse(topic).station  # type: ignore[union-attr]
        sample = json.loads(payload)
        values = readings[(station, sample["seq"])]
        for name in ("temperature_c", "vibration_mm_s", "spindle_rpm", "power_kw", "pressure_bar"):
            alias = aliases.get((station, f"Telemetry/{name}"))
            if name not in sample:
                assert alias is None or alias not in values
                continue
            assert as_double(field(values[alias], METRIC_DOUBLE)) == sample[name], (station, name)
            compared += 1
        sim_time = values[aliases[(station, "Telemetry/sim_time_s")]]
        assert as_double(field(sim_time, METRIC_DOUBLE)) == sample["sim_time_s"]
    assert compared > 200


class PersistentRecorder:
    """A subscriber with a persistent session (QoS 1), so that what the broker
    publishes while it goes down (a will) reaches it, then or after the restart."""

    def __init__(self, url: str, topic: str) -> None:
        address = parse_mqtt_url(url)
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"spb-recorder-{uuid.uuid4().hex[:8]}",
            clean_session=False,
        )
        self.client.reconnect_delay_set(1, 2)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def of(self, kind: str) -> list[Any]:
        with self._lock:
            return [decode_payload(p) for t, p in self.messages if t.split("/")[2] == kind]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def bd_seq(payload: Any) -> int:
    return int(next(metric.long_value for metric in payload.metrics if metric.name == "bdSeq"))


@pytest.mark.slow
def test_after_a_broker_restart_the_will_and_the_next_birth_keep_the_bdseq_rules(
    persistent_mosquitto: Mosquitto,
) -> None:
    config, topics, ids = line_parts()
    publisher = PlantPublisher(
        Plant(config, seed=1), new_client("unused"), topics, rng=random.Random(1)
    )
    recorder = PersistentRecorder(persistent_mosquitto.url, f"spBv1.0/{ids.group}/#")
    node = start_node(persistent_mosquitto.url, publisher, ids)
    try:
        assert wait_until(lambda: len(recorder.of("DBIRTH")) == len(config.stations))
        first = recorder.of("NBIRTH")
        assert [(bd_seq(p), p.seq) for p in first] == [(0, 0)]
        persistent_mosquitto.stop()
        persistent_mosquitto.start()
        assert wait_until(lambda: len(recorder.of("NBIRTH")) == 2, timeout=60)
        assert wait_until(lambda: len(recorder.of("DBIRTH")) == 2 * len(config.stations))
        assert wait_until(lambda: len(recorder.of("NDEATH")) >= 1, timeout=20)
        # The broker sent the will of the lost connection: the NDEATH of bdSeq 0.
        assert {bd_seq(p) for p in recorder.of("NDEATH")} == {0}
        second = recorder.of("NBIRTH")[1]
        assert (bd_seq(second), second.seq) == (1, 0)
        births = recorder.of("DBIRTH")[len(config.stations) :]
        assert [p.seq for p in births] == list(range(1, len(config.stations) + 1))
        # A clean stop sends the NDEATH of the second connection itself.
        node.stop()
        assert wait_until(lambda: [bd_seq(p) for p in recorder.of("NDEATH")][-1:] == [1])
    finally:
        node.stop()
        disconnect(node.client)
        recorder.close()


def test_the_ingest_asks_for_a_rebirth_on_a_seq_gap_and_carries_on_past_bad_payloads(
    mosquitto: Mosquitto,
) -> None:
    config, topics, ids = line_parts()
    line = config.line
    plant = Plant(config, seed=2)
    publisher = PlantPublisher(plant, new_client("unused"), topics, rng=random.Random(2))
    twin = TwinState(line.site, line.area, line.id)
    ingest_client = new_client(f"test-spb-ingest-{uuid.uuid4().hex[:8]}")
    ingest = SparkplugIngest(twin, topics, ingest_client, ids)
    connect(ingest_client, parse_mqtt_url(mosquitto.url))
    assert ingest.subscribed.wait(10)
    node = start_node(mosquitto.url, publisher, ids)
    outsider = bare_publisher(mosquitto.url)
    try:
        stats = ingest.sparkplug
        assert wait_until(lambda: stats.device_births == len(config.stations))
        assert stats.births == 1
        # A DDATA whose seq is not the next one: a message was lost.
        gap = encode_payload([], timestamp=int(time.time() * 1000), seq=200)
        outsider.publish(ids.topic("DDATA", "welding"), gap).wait_for_publish(5)
        assert wait_until(lambda: stats.births == 2, timeout=10)
        assert stats.seq_gaps == 1
        assert stats.rebirth_requests == 1
        assert node.rebirths == 1
        assert wait_until(lambda: stats.device_births == 2 * len(config.stations))
        # Bad payloads: counted by kind, dropped.
        outsider.publish(ids.topic("DDATA", "welding"), b"\x00garbage\xff").wait_for_publish(5)
        assert wait_until(lambda: stats.dropped["not_protobuf"] == 1)
        # ...and the ingest carries on with the line.
        publisher.attach()
        publisher.announce()
        plant.run(until=600)
        # The line's messages reach the twin over the broker after run() returns:
        # until then the twin may not know a station.
        assert wait_until(lambda: any(s.started > 0 for s in twin.view().stations[:1]))
        assert ingest.health()["sparkplug"]["online"] is True
    finally:
        node.stop()
        disconnect(node.client)
        disconnect(ingest_client)
        outsider.disconnect()
        outsider.loop_stop()


def _json_command(url: str, topic: str, **fields: Any) -> None:
    payload = {
        "schema_version": SCHEMA_VERSION,
        "ts_ms": 1,
        "source": "test",
        "command_id": f"test-{uuid.uuid4().hex}",
        **fields,
    }
    client = bare_publisher(url)
    client.publish(topic, json.dumps(payload), qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


@pytest.mark.slow
def test_a_dcmd_setpoint_gets_the_mqtt_commands_checks_and_reaches_the_plant(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    options = StackOptions(
        speed=600,
        seed=3,
        mqtt_url=mosquitto.url,
        sparkplug=True,
        scoring_period_s=0,
        first_training=False,
        history_path=str(tmp_path / "history.sqlite3"),
    )
    stack = Stack(load_config(), options)
    stack.start()
    try:
        node = stack.sparkplug
        assert node is not None
        ids, topics = node.ids, stack.topics
        acks = Recorder(mosquitto.url, topics.station("welding", "cmd/ack"))
        spb = Recorder(mosquitto.url, ids.topic("DDATA", "welding"), qos=0)
        last_ack = node.aliases("welding")["Command/LastAck"]

        def spb_acks() -> list[dict[str, Any]]:
            return [
                json.loads(metric.string_value)
                for _, payload, _ in spb.snapshot()
                for metric in decode_payload(payload).metrics
                if metric.alias == last_ack
            ]

        _json_command(
            mosquitto.url, topics.station("welding", "cmd"), action="set_setpoint",
            setpoint="speed", value=9.0,
        )  # fmt: skip
        assert wait_until(lambda: len(acks.snapshot()) == 1)
        over_mqtt = json.loads(acks.snapshot()[0][1])
        assert over_mqtt["accepted"] is False
        dcmd = bare_publisher(mosquitto.url)
        topic = ids.topic("DCMD", "welding")
        now = int(time.time() * 1000)
        dcmd.publish(topic, command_payload([("Setpoint/speed", DataType.DOUBLE, 9.0)], now))
        assert wait_until(lambda: len(spb_acks()) == 1)
        rejected = spb_acks()[0]
        assert rejected["accepted"] is False
        assert rejected["reason"] == over_mqtt["reason"]
        assert "out of range" in rejected["reason"]
        # The same answer went out on cmd/ack, as for any command.
        assert wait_until(lambda: len(acks.snapshot()) == 2)
        # A good value is applied: the next parts at welding are made at it.
        dcmd.publish(topic, command_payload([("Setpoint/speed", DataType.DOUBLE, 1.15)], now))
        assert wait_until(lambda: len(spb_acks()) == 2)
        assert spb_acks()[1]["accepted"] is True

        def welding_speed() -> float | None:
            welding = next(s for s in stack.twin.view().stations if s.id == "welding")
            return welding.process.get("speed")

        assert wait_until(lambda: welding_speed() == 1.15, timeout=60)
        dcmd.disconnect()
        dcmd.loop_stop()
        acks.close()
        spb.close()
    finally:
        stack.stop()
