"""Sparkplug B without a broker: the payload module, the metric map, the session
rules and what the consumer does with bad payloads.

The edge node and the consumer are wired back to back in memory (each publish of
one is handed to the other), beside the JSON tree of the same plant, so that every
contract message the consumer rebuilds can be set beside the one the JSON tree
carried.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import paho.mqtt.client as mqtt
import pytest
from google.protobuf import descriptor_pb2
from helpers import REPO, MemoryClient, find_binary, missing
from pydantic import BaseModel

from sensors.codec import decode
from sensors.ingest import Ingest
from sensors.mqtt import new_client
from sensors.publisher import PlantPublisher
from sensors.sparkplug import TELEMETRY_ALIASES, encode_telemetry_ddata, sparkplug_b_pb2
from sensors.sparkplug.codec import (
    DataType,
    Metric,
    SparkplugError,
    decode_payload,
    encode_payload,
    metric_value,
)
from sensors.sparkplug.consumer import SparkplugIngest
from sensors.sparkplug.edge import EdgeNode, devices_of
from sensors.sparkplug.topics import SparkplugIds
from sensors.topics import LineTopics
from twin.config.line import LineConfig, load_config
from twin.sim.plant import Plant
from twin.state.line import TwinState

PACKAGE = REPO / "sensors" / "sparkplug"


class Wire:
    """Stands in for a paho client: records each publish and hands it on to
    ``deliver`` when given (the other side's handler)."""

    def __init__(self, deliver: Callable[[str, bytes], object] | None = None) -> None:
        self.deliver = deliver
        self.messages: list[tuple[str, bytes]] = []
        self.will: bytes | None = None
        self.on_pre_connect: Any = None
        self.on_connect: Any = None
        self.on_disconnect: Any = None
        self.on_message: Any = None
        self.on_subscribe: Any = None

    def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        self.messages.append((topic, payload))
        if self.deliver is not None:
            self.deliver(topic, payload)
        return mqtt.MQTTMessageInfo(0)

    def will_set(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.will = payload

    def subscribe(self, *args: object, **kwargs: object) -> None:
        return None


class BackToBack:
    """A plant publishing JSON to an ingest and, through its tap, Sparkplug B to a
    consumer; the consumer's own publishes (rebirth requests) wait in ``requests``
    for ``answer_requests`` (in a process they come back on paho's thread)."""

    def __init__(self, config: LineConfig, seed: int) -> None:
        line = config.line
        self.topics = LineTopics(line.site, line.area, line.id)
        self.ids = SparkplugIds.for_line(line.site, line.area, line.id)
        self.plant = Plant(config, seed=seed)
        self.json_twin = TwinState(line.site, line.area, line.id)
        self.json_ingest = Ingest(self.json_twin, self.topics, new_client("unused-json"))
        self.json_seen: list[tuple[str, bytes]] = []
        self.spb_seen: list[tuple[str, bytes]] = []
        self.json_client = MemoryClient(self._json)
        self.publisher = PlantPublisher(
            self.plant,
            self.json_client,  # type: ignore[arg-type]
            self.topics,
            rng=random.Random(seed),
        )
        self.spb_twin = TwinState(line.site, line.area, line.id)
        self.requests = Wire()
        self.consumer = SparkplugIngest(
            self.spb_twin, self.topics, cast(mqtt.Client, self.requests), self.ids
        )
        taken = self.consumer.handle

        def rebuilt(topic: str, payload: bytes) -> bool:
            self.spb_seen.append((topic, payload))
            return taken(topic, payload)

        self.consumer.handle = rebuilt  # type: ignore[method-assign]
        self.wire = Wire(self.consumer.handle_sparkplug)
        self.node = EdgeNode(
            cast(mqtt.Client, self.wire),
            self.ids,
            devices_of(self.publisher),
            source=self.publisher.source,
            commands=None,
        )
        self.connect()
        self.node.attach(self.publisher)
        self.publisher.attach()
        self.publisher.announce()

    def _json(self, topic: str, payload: bytes) -> None:
        if not topic.endswith("cmd") and not topic.endswith("cmd/ack"):
            self.json_seen.append((topic, payload))
        self.json_ingest.handle(topic, payload)

    def connect(self) -> None:
        """What paho does at a (re)connect: the will, then on_connect."""
        self.node._on_pre_connect(cast(mqtt.Client, self.wire), None)
        self.node._on_connect(cast(mqtt.Client, self.wire), None, None, None, None)

    def answer_requests(self) -> int:
        pending, self.requests.messages = self.requests.messages, []
        for topic, payload in pending:
            self.node.handle_command(topic, payload)
        return len(pending)


def contract(topic: str, payload: bytes, topics: LineTopics) -> BaseModel:
    parsed = topics.parse(topic)
    assert parsed is not None, topic
    decoded: BaseModel = decode(parsed.channel, payload)
    return decoded


def station_counts(twin: TwinState) -> list[tuple[str, int, int, int, int, str]]:
    return [
        (station.id, station.started, station.good, station.scrap, station.rework, station.state)
        for station in twin.view().stations
    ]


def test_the_committed_module_is_what_protoc_makes_of_our_proto(tmp_path: Path) -> None:
    protoc = find_binary("protoc")
    if protoc is None:
        missing("protoc", "protobuf-compiler")
    assert protoc is not None
    out = tmp_path / "set.pb"
    subprocess.run(
        [protoc, f"-I{PACKAGE}", f"--descriptor_set_out={out}", "sparkplug_b.proto"], check=True
    )
    compiled = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    # protoc leaves the JSON names out of the descriptor it embeds in Python modules.
    for message in [compiled.message_type[0], *compiled.message_type[0].nested_type]:
        for field in message.field:
            field.ClearField("json_name")
    committed = descriptor_pb2.FileDescriptorProto.FromString(
        sparkplug_b_pb2.DESCRIPTOR.serialized_pb
    )
    assert committed == compiled, "run: python scripts/sparkplug_proto.py"
    assert committed.package == "org.eclipse.tahu.protobuf"


@pytest.mark.parametrize(
    ("datatype", "value"),
    [
        (DataType.INT32, -5),
        (DataType.INT64, -(2**40)),
        (DataType.UINT32, 2**32 - 1),
        (DataType.UINT64, 2**63),
        (DataType.DOUBLE, 0.1),
        (DataType.BOOLEAN, True),
        (DataType.STRING, "°C"),
        (DataType.UINT32, None),
    ],
)
def test_values_read_back_as_written(datatype: DataType, value: Any) -> None:
    data = encode_payload([Metric(value, datatype, alias=1)], timestamp=1, seq=0)
    metric = decode_payload(data).metrics[0]
    assert metric_value(metric, datatype, "m") == value


def test_a_value_in_the_wrong_field_or_not_finite_is_refused() -> None:
    metric = decode_payload(
        encode_payload([Metric("x", DataType.STRING, alias=1)], timestamp=1, seq=0)
    ).metrics[0]
    with pytest.raises(SparkplugError) as wrong:
        metric_value(metric, DataType.DOUBLE, "m")
    assert wrong.value.kind == "wrong_type"
    for number in (float("nan"), float("inf"), float("-inf")):
        metric = decode_payload(
            encode_payload([Metric(number, DataType.DOUBLE, alias=1)], timestamp=1, seq=0)
        ).metrics[0]
        with pytest.raises(SparkplugError) as refused:
            metric_value(metric, DataType.DOUBLE, "m")
        assert refused.value.kind == "not_finite"


@pytest.mark.parametrize("seed", [3, 8])
def test_the_consumer_rebuilds_every_message_the_json_tree_carried(seed: int) -> None:
    line = BackToBack(load_config(), seed)
    line.plant.run(until=4 * 3600)
    topics = line.topics
    assert len(line.json_seen) > 2000
    assert [contract(t, p, topics) for t, p in line.spb_seen] == [
        contract(t, p, topics) for t, p in line.json_seen
    ]
    assert station_counts(line.spb_twin) == station_counts(line.json_twin)
    assert line.spb_twin.view().kpis == line.json_twin.view().kpis
    health = line.consumer.health()["sparkplug"]
    # Over 256 messages, so seq went round at least once, and never skipped.
    assert line.node.published["DDATA"] > 256
    assert health["seq_gaps"] == 0
    assert health["rebirth_requests"] == 0
    assert health["births"] == 1
    assert health["device_births"] == len(line.plant.stations)


@pytest.mark.parametrize(("template", "seed"), [("smt.yaml", 4), ("cnc_cell.yaml", 11)])
def test_every_data_payload_is_what_protobuf_writes_for_the_message_it_carries(
    template: str, seed: int
) -> None:
    """The edge node writes DATA payloads its own way (a plan per shape of message,
    doubles inline): each one, over an hour of a line other than the default,
    against protobuf's encoder fed the metrics ``message_metrics`` names."""
    from sensors.sparkplug.metrics import message_metrics, status_metrics

    line = BackToBack(load_config(REPO / "examples" / "lines" / template), seed)
    heard: list[tuple[str | None, str, dict[str, Any]]] = []
    line.publisher.add_tap(
        lambda station, channel, message: heard.append((station, channel, dict(message)))
    )
    line.wire.messages.clear()
    line.plant.run(until=3600)
    written = [(t, p) for t, p in line.wire.messages if "DATA/" in t]
    carried = [m for m in heard if m[1] in ("telemetry", "event", "state", "status")]
    assert len(written) == len(carried) > 500
    kinds = set()
    for (topic, payload), (station, channel, message) in zip(written, carried, strict=True):
        device = None if channel == "status" else station
        values = (
            status_metrics(message) if channel == "status" else message_metrics(channel, message)
        )
        defs = line.node._scopes[device].defs
        aliases = line.node.aliases(device)
        expected = encode_payload(
            [Metric(value, defs[name].datatype, alias=aliases[name]) for name, value in values],
            timestamp=int(message["ts_ms"]),
            seq=decode_payload(payload).seq,
        )
        assert payload == expected, (topic, channel, message)
        kinds.add(message.get("event", channel))
    # Every shape of message went through: samples, states, each kind of event.
    assert {"telemetry", "state", "part_started", "part_finished", "state_changed"} <= kinds


def test_seq_runs_0_to_255_across_all_messages_and_births_start_at_0() -> None:
    line = BackToBack(load_config(), 1)
    line.plant.run(until=1800)
    seqs = [decode_payload(p).seq for t, p in line.wire.messages if "/NDEATH/" not in t]
    assert seqs[0] == 0  # the NBIRTH
    assert seqs == [n % 256 for n in range(len(seqs))]
    assert max(seqs) == 255


def test_bdseq_of_the_will_is_the_next_nbirths_and_wraps_at_256() -> None:
    line = BackToBack(load_config(), 1)
    line.node._will_bd_seq = 254
    births: list[int] = []
    wills: list[int] = []
    for _ in range(3):
        line.wire.messages.clear()
        line.node._on_pre_connect(cast(mqtt.Client, line.wire), None)
        assert line.wire.will is not None
        wills.append(int(decode_payload(line.wire.will).metrics[0].long_value))
        line.node._on_connect(cast(mqtt.Client, line.wire), None, None, None, None)
        topic, payload = line.wire.messages[0]
        assert topic == line.ids.topic("NBIRTH")
        birth = decode_payload(payload)
        assert birth.seq == 0
        births.append(next(int(m.long_value) for m in birth.metrics if m.name == "bdSeq"))
    assert births == wills == [254, 255, 0]


def test_a_new_metric_is_born_before_its_first_data() -> None:
    line = BackToBack(load_config(), 1)
    line.wire.messages.clear()
    line.node.tap("welding", "event", _part_finished(process={"speed": 1.0, "flux_l_min": 3.5}))
    kinds = [topic.split("/")[2] for topic, _ in line.wire.messages]
    assert kinds == ["DBIRTH", "DDATA"]
    birth = decode_payload(line.wire.messages[0][1])
    assert "Event/process/flux_l_min" in {metric.name for metric in birth.metrics}
    assert line.consumer.health()["sparkplug"]["dropped"]["unknown_alias"] == 0


def _part_finished(**fields: Any) -> dict[str, Any]:
    message = {
        "schema_version": "1.2",
        "ts_ms": 1,
        "seq": 0,
        "source": "x",
        "sim_time_s": 1.0,
        "event": "part_finished",
        "part_id": 1,
        "machine": 0,
        "product": None,
        "result": "good",
        "processing_time_s": 1.0,
        "exits_line": False,
        "output_buffer_level": 0,
        "process": None,
    }
    message.update(fields)
    return message


def test_bad_payloads_are_counted_by_kind_and_dropped_and_the_consumer_carries_on() -> None:
    line = BackToBack(load_config(), 5)
    line.plant.run(until=1800)
    consumer, ids = line.consumer, line.ids
    aliases = line.node.aliases("welding")
    topic = ids.topic("DDATA", "welding")

    def expected_seq() -> int:
        session = consumer._session
        assert session is not None
        return session.next_seq

    def send(metrics: list[Metric], seq: int | None = -1) -> int:
        data = encode_payload(
            metrics, timestamp=1, seq=expected_seq() if seq == -1 else seq, birth=False
        )
        return consumer.handle_sparkplug(topic, data)

    reading = aliases["Telemetry/temperature_c"]
    header = [
        Metric(10_000, DataType.UINT64, alias=aliases["Telemetry/seq"]),
        Metric(1800.0, DataType.DOUBLE, alias=aliases["Telemetry/sim_time_s"]),
    ]
    before = consumer.stats.accepted
    assert consumer.handle_sparkplug(topic, b"\xff\xfe not a protobuf payload") == 0
    assert send([Metric(1.0, DataType.DOUBLE, alias=99_999)]) == 0
    assert send([*header, Metric(float("nan"), DataType.DOUBLE, alias=reading)]) == 0
    assert send([*header, Metric(float("inf"), DataType.DOUBLE, alias=reading)]) == 0
    assert send([*header, Metric(float("-inf"), DataType.DOUBLE, alias=reading)]) == 0
    assert send([Metric(1.0, DataType.DOUBLE, alias=reading)], seq=None) == 0
    started = [
        Metric("part_started", DataType.STRING, alias=aliases["Event/kind"]),
        Metric(10_000, DataType.UINT64, alias=aliases["Event/seq"]),
        Metric(1800.0, DataType.DOUBLE, alias=aliases["Event/sim_time_s"]),
    ]
    assert send(started) == 0  # no part_id
    assert (
        consumer.handle_sparkplug(
            ids.topic("DDATA", "nowhere"), encode_payload([], timestamp=1, seq=0)
        )
        == 0
    )
    dropped = consumer.health()["sparkplug"]["dropped"]
    assert dropped == {
        "too_large": 0,
        "not_protobuf": 1,
        "missing_field": 2,
        "unknown_alias": 1,
        "wrong_type": 0,
        "not_finite": 3,
        "data_before_birth": 1,
    }
    assert consumer.stats.accepted == before  # nothing of them reached the twin
    # The unknown alias asked for a rebirth (one at a time); the node answers it.
    assert line.answer_requests() == 1
    assert consumer.health()["sparkplug"]["births"] == 2
    line.plant.run(until=3600)
    assert consumer.stats.accepted > before
    assert station_counts(line.spb_twin) == station_counts(line.json_twin)


def test_the_benchmarks_encoder_makes_the_edge_nodes_telemetry_payload() -> None:
    sample = {
        "schema_version": "1.2",
        "ts_ms": 1_795_865_287_021,
        "seq": 23,
        "source": "plant-line1-7653e463",
        "sim_time_s": 230.0,
        "temperature_c": 31.03,
        "vibration_mm_s": 3.46,
    }
    payload = decode_payload(encode_telemetry_ddata(sample, seq=7))
    assert payload.seq == 7
    assert payload.timestamp == sample["ts_ms"]
    by_alias = {metric.alias: metric for metric in payload.metrics}
    assert by_alias[TELEMETRY_ALIASES["Telemetry/temperature_c"]].double_value == 31.03
    assert by_alias[TELEMETRY_ALIASES["Telemetry/seq"]].long_value == 23
    assert not any(metric.HasField("name") for metric in payload.metrics)
    assert len(encode_telemetry_ddata(sample)) < len(
        b'{"schema_version":"1.2","ts_ms":1795865287021,"seq":23,'
        b'"source":"plant-line1-7653e463","sim_time_s":230.0,'
        b'"temperature_c":31.03,"vibration_mm_s":3.46}'
    )


def test_the_wire_level_data_encoder_writes_what_protobuf_writes() -> None:
    """``encode_data`` (the edge node's DATA payloads, byte by byte) against the
    protobuf library's own encoder, on random metrics of every datatype we send."""
    import random as random_module

    from sensors.sparkplug.codec import data_metric, encode_data, wire_metric

    rng = random_module.Random(19)
    samples = {
        DataType.DOUBLE: lambda: rng.choice((rng.uniform(-1e9, 1e9), rng.randint(-50, 50))),
        DataType.FLOAT: lambda: 0.5,
        DataType.INT32: lambda: rng.randint(-(2**31), 2**31 - 1),
        DataType.UINT32: lambda: rng.randint(0, 2**32 - 1),
        DataType.INT64: lambda: rng.randint(-(2**63), 2**63 - 1),
        DataType.UINT64: lambda: rng.randint(0, 2**64 - 1),
        DataType.DATETIME: lambda: rng.randint(0, 2**50),
        DataType.BOOLEAN: lambda: rng.random() < 0.5,
        DataType.STRING: lambda: "héllo, " * rng.randint(0, 40),
        DataType.TEXT: lambda: "x",
    }
    # Stamps at random, at the edges of the varint's groups, and a millisecond apart
    # (a line's messages: the payload's timestamp keeps its upper groups).
    edges = [0, 127, 128, 16383, 16384, 2**21 - 1, 2**21, 2**42 - 1, 2**42]
    close = [1_796_584_297_753 + step for step in range(0, 40_000, 97)]
    stamps = edges + close + [rng.randint(0, 2**45) for _ in range(500)]
    for stamp in stamps:
        seq = rng.randint(0, 255)
        chosen = [
            (rng.choice(list(samples)), rng.randint(0, 100_000)) for _ in range(rng.randint(0, 9))
        ]
        values = [None if rng.random() < 0.1 else samples[datatype]() for datatype, _ in chosen]
        expected = encode_payload(
            [
                Metric(value, datatype, alias=alias)
                for (datatype, alias), value in zip(chosen, values, strict=True)
            ],
            timestamp=stamp,
            seq=seq,
        )
        written = encode_data(
            [
                data_metric(wire_metric(alias, int(datatype)), value)
                for (datatype, alias), value in zip(chosen, values, strict=True)
            ],
            timestamp=stamp,
            seq=seq,
        )
        assert written == expected


def test_bdseq_moves_on_across_restarts_of_the_process_with_its_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A new process takes the bdSeq after the last one used, so that a host never
    takes a late will of the last session for the death of the new one; an
    unusable file starts again at 0, said in the log, and never stops the line."""
    from api.runtime.line import bd_seq_file

    ids = SparkplugIds.for_line("plant-a", "fabrication", "line1")
    file = bd_seq_file(str(tmp_path / "state" / "history.sqlite3"), ids)
    assert file is not None
    assert file.name == "sparkplug-plant-a_fabrication-line1.bdseq"
    assert bd_seq_file(None, ids) is None

    def connections(count: int) -> list[tuple[int, int]]:
        """One process's node connecting ``count`` times: (will's bdSeq, NBIRTH's)."""
        wire = Wire()
        node = EdgeNode(cast(mqtt.Client, wire), ids, [], source="test", bd_seq_file=file)
        seen = []
        for _ in range(count):
            wire.messages.clear()
            node._on_pre_connect(cast(mqtt.Client, wire), None)
            assert wire.will is not None
            will = int(decode_payload(wire.will).metrics[0].long_value)
            node._on_connect(cast(mqtt.Client, wire), None, None, None, None)
            topic, payload = wire.messages[0]
            assert "/NBIRTH/" in topic
            birth = {m.name: m for m in decode_payload(payload).metrics}
            seen.append((will, int(birth["bdSeq"].long_value)))
        return seen

    assert connections(2) == [(0, 0), (1, 1)]
    assert connections(1) == [(2, 2)]
    assert file.read_text().strip() == "2"
    file.write_text("255\n")
    assert connections(1) == [(0, 0)]
    for bad in ("abc", "300", ""):
        file.write_text(bad)
        caplog.clear()
        assert connections(1) == [(0, 0)]
        assert "unusable" in caplog.text
