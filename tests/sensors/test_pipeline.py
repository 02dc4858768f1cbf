"""Plant -> publisher -> MQTT -> outside clients and the ingest.

An outside client (``mosquitto_sub``, or a bare paho subscriber) sees every
documented topic, and every message validates against the shipped JSON Schema
files. Without a broker, the ingest's twin agrees with the plant's own report.
"""

from __future__ import annotations

import json
import random
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from helpers import (
    REPO,
    MemoryClient,
    Recorder,
    bare_publisher,
    find_binary,
    missing,
    wait_until,
)

from sensors.ingest import Ingest
from sensors.mqtt import connect, disconnect, new_client, parse_mqtt_url
from sensors.paho_internals import Acknowledgements
from sensors.publisher import PlantPublisher
from sensors.topics import LineTopics
from twin.config.line import LineConfig, load_config, parse_config
from twin.sim.plant import Plant
from twin.sim.report import plant_report
from twin.state.line import TwinState

SCHEMAS = REPO / "docs" / "schemas"


def schema_validators() -> dict[str, jsonschema.Draft202012Validator]:
    validators = {}
    for channel in ("telemetry", "event", "state", "status"):
        schema = json.loads((SCHEMAS / f"{channel}.schema.json").read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        validators[channel] = jsonschema.Draft202012Validator(schema)
    return validators


def topics_for(config: Any) -> LineTopics:
    return LineTopics(site=config.line.site, area=config.line.area, line=config.line.id)


def multi_machine_line() -> LineConfig:
    """Two products with setups, a 2-machine station, rework and a calendar."""
    return parse_config(
        {
            "line": {"id": "cell"},
            "release": {"policy": "saturated", "batch_size": 5},
            "products": [{"id": "a", "mix": 1}, {"id": "b", "mix": 1}],
            "calendar": {"period_h": 4, "planned_downtime": [{"start_h": 3, "duration_h": 0.5}]},
            "stations": [
                {
                    "id": "saw",
                    "processing_time": {"distribution": "exponential", "mean_s": 30},
                    "processing_time_by_product": {
                        "b": {"distribution": "exponential", "mean_s": 40}
                    },
                    "setup": {"time": {"distribution": "deterministic", "mean_s": 60}},
                },
                {
                    "id": "mill",
                    "machines": 2,
                    "processing_time": {"distribution": "lognormal", "mean_s": 70, "cv": 0.3},
                    "failures": {"basis": "time", "mtbf_s": 3000, "mttr_s": 300},
                    "input_buffer_capacity": 4,
                },
                {
                    "id": "check",
                    "processing_time": {"distribution": "deterministic", "mean_s": 20},
                    "defect_probability": 0.1,
                    "rework": {"probability": 0.5, "to": "mill"},
                    "input_buffer_capacity": 3,
                },
            ],
        },
        "multi-machine line",
    )


@pytest.mark.parametrize("make_config", [load_config, multi_machine_line], ids=["default", "cell"])
def test_twin_from_messages_agrees_with_the_plant(make_config: Callable[[], LineConfig]) -> None:
    config = make_config()
    topics = topics_for(config)
    plant = Plant(config, seed=11)
    client = MemoryClient()
    publisher = PlantPublisher(plant, client, topics, rng=random.Random(1))  # type: ignore[arg-type]
    publisher.attach()
    publisher.announce()
    plant.run(until=12 * 3600)

    twin = TwinState(config.line.site, config.line.area, config.line.id)
    ingest = Ingest(twin, topics, new_client("unused"))
    for topic, payload, _qos, _retain in client.messages:
        assert ingest.handle(topic, payload), topic
    view = twin.view()
    report = plant_report(plant, seed=11, hours=12)

    assert view.kpis.good == report.line_kpis.good == plant.parts_shipped
    assert view.kpis.scrap == report.line_kpis.scrap
    assert view.kpis.rework == report.line_kpis.rework
    assert view.kpis.work_in_process == report.line_kpis.work_in_process
    assert view.kpis.bottleneck == report.line_kpis.bottleneck
    assert view.kpis.constraint == report.line_kpis.constraint
    period = config.sensors.telemetry_period_s
    for mirrored, real, spec in zip(view.stations, report.stations, config.stations, strict=True):
        assert (mirrored.id, mirrored.started, mirrored.good, mirrored.scrap, mirrored.rework) == (
            real.id,
            real.started,
            real.good,
            real.scrap,
            real.rework,
        )
        assert len(mirrored.machines) == spec.machines
        # The twin's clock is the last message's sim time: at most one telemetry
        # period behind the plant, on each machine.
        slack = period * spec.machines
        for name in (
            "actual_production_time_s",
            "down_time_s",
            "setup_time_s",
            "starved_time_s",
            "blocked_time_s",
            "planned_downtime_s",
        ):
            assert getattr(mirrored.kpis, name) == pytest.approx(
                getattr(real.kpis, name), abs=slack
            ), (mirrored.id, name)
    assert view.kpis.oee == pytest.approx(report.line_kpis.oee, rel=0.01)
    assert ingest.health()["gaps"] == 0


def _example_line(name: str) -> Callable[[], LineConfig]:
    return lambda: load_config(REPO / "examples" / "lines" / f"{name}.yaml")


@pytest.mark.parametrize("seed", [3, 11])
@pytest.mark.parametrize(
    "make_config",
    [load_config, multi_machine_line, _example_line("smt"), _example_line("cnc_cell")],
    ids=["default", "cell", "smt", "cnc_cell"],
)
def test_without_the_lines_description_the_twin_still_names_the_plants_bottleneck(
    make_config: Callable[[], LineConfig], seed: int
) -> None:
    """The active-period method needs the state changes alone (docs/kpis.md): a twin
    whose birth message lost its description (no PRU, so no constraint) names the
    bottleneck the plant's own report names."""
    config = make_config()
    topics = topics_for(config)
    plant = Plant(config, seed=seed)
    client = MemoryClient()
    publisher = PlantPublisher(plant, client, topics, rng=random.Random(seed))  # type: ignore[arg-type]
    publisher.attach()
    publisher.announce()
    plant.run(until=4 * 3600)

    twin = TwinState(config.line.site, config.line.area, config.line.id)
    ingest = Ingest(twin, topics, new_client("unused"))
    stripped = 0
    for topic, payload, _qos, _retain in client.messages:
        document = json.loads(payload)
        if document.get("description") is not None:
            document["description"] = None
            payload = json.dumps(document).encode()
            stripped += 1
        assert ingest.handle(topic, payload), topic
    assert stripped == 1  # the birth
    kpis = twin.view().kpis
    report = plant_report(plant, seed=seed, hours=4)
    assert report.line_kpis.bottleneck is not None
    assert kpis.bottleneck == report.line_kpis.bottleneck
    assert kpis.constraint is None


def run_plant_over(url: str, sim_seconds: float) -> PlantPublisher:
    config = load_config()
    plant = Plant(config, seed=4)
    client = new_client("test-plant")
    publisher = PlantPublisher(plant, client, topics_for(config), rng=random.Random(4))
    publisher.attach()
    connect(client, parse_mqtt_url(url))
    publisher.announce()
    plant.run(until=sim_seconds)
    publisher.announce("offline")
    assert publisher.flush(30)
    disconnect(client)
    return publisher


def check_outside_messages(messages: list[tuple[str, bytes]], publisher: PlantPublisher) -> None:
    validators = schema_validators()
    seen: Counter[str] = Counter()
    sequences: dict[str, list[int]] = {}
    for topic, payload in messages:
        channel = topic.rsplit("/", 1)[-1]
        document = json.loads(payload)
        errors = list(validators[channel].iter_errors(document))
        assert errors == [], (topic, document, errors[0].message)
        kind = document.get("event", channel)
        if kind == "part_finished":
            kind = (
                "part_shipped" if document["exits_line"] else f"part_finished_{document['result']}"
            )
        seen[kind] += 1
        sequences.setdefault(topic, []).append(document["seq"])
    assert seen == publisher.published
    for topic, numbers in sequences.items():
        if not topic.endswith("/status"):
            assert numbers == list(range(len(numbers))), topic


READY_TOPIC = "test/subscribed"


@pytest.mark.integration
def test_mosquitto_sub_sees_valid_messages_on_every_topic(mosquitto: Any, tmp_path: Path) -> None:
    binary = find_binary("mosquitto_sub")
    if binary is None:
        missing("mosquitto_sub", "mosquitto-clients")
    assert binary is not None
    output = tmp_path / "sub.txt"
    with output.open("w") as sink:
        subscriber = subprocess.Popen(
            [
                binary,
                "-h", "127.0.0.1",
                "-p", str(mosquitto.port),
                "-q", "1",
                "-t", "factory/v1/#",
                "-t", READY_TOPIC,
                "-F", "%t %p",
            ],
            stdout=sink,
        )  # fmt: skip
        try:
            # mosquitto_sub has no "subscribed" signal: a retained message published
            # before it is delivered to it only once its subscription is in place.
            ready = bare_publisher(mosquitto.url)
            ready.publish(READY_TOPIC, b"ready", qos=1, retain=True).wait_for_publish(30)
            assert wait_until(lambda: READY_TOPIC in output.read_text(), timeout=60)
            ready.disconnect()
            ready.loop_stop()
            publisher = run_plant_over(mosquitto.url, 1800)
            total = sum(publisher.published.values())
            assert wait_until(
                lambda: len(output.read_text().splitlines()) >= total + 1, timeout=120
            ), f"{len(output.read_text().splitlines()) - 1} of {total} lines"
        finally:
            subscriber.terminate()
            subscriber.wait(5)
    lines = [line for line in output.read_text().splitlines() if not line.startswith(READY_TOPIC)]
    messages = [(line.split(" ", 1)[0], line.split(" ", 1)[1].encode()) for line in lines]
    check_outside_messages(messages, publisher)


@pytest.mark.integration
def test_bare_paho_client_sees_valid_messages_on_the_embedded_broker(
    embedded_broker: Any,
) -> None:
    recorder = Recorder(embedded_broker.url, "factory/v1/#")
    try:
        publisher = run_plant_over(embedded_broker.url, 1800)
        total = sum(publisher.published.values())
        assert wait_until(lambda: len(recorder.snapshot()) >= total, timeout=30)
    finally:
        recorder.close()
    check_outside_messages([(t, p) for t, p, _ in recorder.snapshot()], publisher)


def test_committed_schema_files_are_current() -> None:
    from twin.contract import json_schemas

    for channel, schema in json_schemas().items():
        committed = json.loads((SCHEMAS / f"{channel}.schema.json").read_text())
        assert committed == schema, f"docs/schemas/{channel}.schema.json is stale: make schemas"


def test_deliberately_dropped_messages_show_up_as_counted_gaps() -> None:
    config = load_config()
    topics = topics_for(config)
    plant = Plant(config, seed=2)
    client = MemoryClient()
    publisher = PlantPublisher(plant, client, topics, rng=random.Random(2))  # type: ignore[arg-type]
    publisher.attach()
    plant.run(until=3600)
    twin = TwinState(config.line.site, config.line.area, config.line.id)
    ingest = Ingest(twin, topics, new_client("unused"))
    dropped = {"telemetry": 0, "event": 0}
    for index, (topic, payload, _qos, _retain) in enumerate(client.messages):
        channel = topic.rsplit("/", 1)[-1]
        # Lose every 7th message of the sequenced channels, but not a stream's
        # first or last one: a loss shows when the next message comes, and a
        # twin that joins late cannot tell a missed first message from its join.
        later = any(t == topic for t, *_ in client.messages[index + 1 :])
        first = json.loads(payload).get("seq") == 0
        if channel in dropped and index % 7 == 0 and later and not first:
            dropped[channel] += 1
            continue
        ingest.handle(topic, payload)
    health = ingest.health()
    assert dropped["event"] > 0
    assert health["gaps_by_channel"] == dropped
    assert health["gaps"] == sum(dropped.values())
    assert health["duplicates"] == 0


class SlowBrokerClient(MemoryClient):
    """A client whose broker acknowledges nothing: its outbox, counted from
    acknowledgements (paho's public ``on_publish``, which never comes), only grows."""

    on_publish: Any = None
    on_disconnect: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.outbox = Acknowledgements(self)  # type: ignore[arg-type]

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> Any:
        super().publish(topic, payload, qos, retain)
        mid = len(self.messages)
        if qos == 0:  # written at once, as paho tells it (before publish returns)
            self.on_publish(self, None, mid, None, None)
        return type("Info", (), {"rc": 0, "mid": mid})()


def test_a_full_outbox_refuses_and_counts_new_messages() -> None:
    config = load_config()
    plant = Plant(config, seed=2)
    client = SlowBrokerClient()
    publisher = PlantPublisher(
        plant,
        client,  # type: ignore[arg-type]
        topics_for(config),
        rng=random.Random(2),
        max_outbox=25,
        outbox=client.outbox,
    )
    publisher.attach()
    plant.run(until=1800)
    assert publisher.pending() == 25
    refused = sum(count for kind, count in publisher.dropped.items() if "outbox full" in kind)
    assert refused > 0
    handed_over = sum(
        count for kind, count in publisher.published.items() if kind not in ("telemetry",)
    )
    assert handed_over == 25
    # Every QoS 1 message the plant's events make was either handed over or counted
    # as refused: the same run (same seed) through a client that takes everything
    # says how many there are.
    unlimited = MemoryClient()
    same = Plant(config, seed=2)
    PlantPublisher(same, unlimited, topics_for(config), rng=random.Random(2)).attach()  # type: ignore[arg-type]
    same.run(until=1800)
    made = sum(1 for _topic, _payload, qos, _retain in unlimited.messages if qos > 0)
    assert made > 25
    assert handed_over + refused == made
    assert publisher.published["telemetry"] > 0  # QoS 0 does not wait in the outbox
    assert not publisher.flush(timeout=0.1)
