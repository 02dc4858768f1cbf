"""The JSON Schemas say what the pydantic contract says.

A real line is told to publish payloads valid against ``docs/schemas/``: the
schemas must accept what the twin's decoder accepts and reject what it rejects.
Both verdicts are compared on the plant's own messages of every channel, on
commands and acknowledgements, and on each of them broken in several ways.
"""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema
import pytest
from helpers import MemoryClient
from jsonschema.validators import validator_for

from sensors.codec import DecodeError, decode
from sensors.publisher import PlantPublisher
from sensors.topics import LineTopics
from twin.config.line import load_config
from twin.contract import (
    PAYLOAD_TYPES,
    SCHEMA_VERSION,
    SENSOR_RANGES,
    _in_range,
    json_schemas,
)
from twin.sim.plant import Plant

NOW_MS = 1_700_000_000_000


def _plant_payloads() -> dict[str, list[dict[str, Any]]]:
    """The documents a plant publishes in its first 20 minutes, by channel: its
    birth message, heartbeat and last will among them."""
    config = load_config()
    plant = Plant(config, seed=5)
    client = MemoryClient()
    topics = LineTopics(config.line.site, config.line.area, config.line.id)
    publisher = PlantPublisher(plant, client, topics, rng=random.Random(5))  # type: ignore[arg-type]
    publisher.attach()
    publisher.announce()
    plant.run(until=1200)
    publisher.heartbeat(force=True)
    found: dict[str, list[dict[str, Any]]] = {}
    for topic, payload, _qos, _retain in [*client.messages, publisher.last_will()]:
        channel = next(name for name in PAYLOAD_TYPES if topic.endswith("/" + name))
        found.setdefault(channel, []).append(json.loads(payload))
    return found


def _commands() -> list[dict[str, Any]]:
    head = {"schema_version": SCHEMA_VERSION, "ts_ms": NOW_MS, "source": "api-1"}
    return [
        {**head, "command_id": "c1", "action": "set_setpoint", "setpoint": "speed", "value": 1.1},
        {**head, "command_id": "c2", "action": "stop"},
        {**head, "command_id": "c3", "action": "set_speed", "factor": 1000},
    ]


def _acks() -> list[dict[str, Any]]:
    head = {"schema_version": SCHEMA_VERSION, "ts_ms": NOW_MS, "seq": 0, "source": "plant-1"}
    return [
        {**head, "sim_time_s": 5.0, "command_id": "c1", "action": "stop", "accepted": True,
         "reason": ""},
        {**head, "sim_time_s": 6.0, "command_id": None, "action": None, "accepted": False,
         "reason": "no readable command_id", "speed_asked": 2.0, "speed_factor": 1.5},
    ]  # fmt: skip


def _broken(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The same document broken in ways the contract refuses."""
    variants = []
    for key in ("schema_version", "ts_ms", "source"):
        variants.append({k: v for k, v in document.items() if k != key})
    variants.append({**document, "ts_ms": -1})
    variants.append({**document, "ts_ms": str(document["ts_ms"])})
    variants.append({**document, "schema_version": "1"})
    variants.append({**document, "source": ""})
    return variants


def _alarms() -> list[dict[str, Any]]:
    """The twin's alarm messages as it publishes them: a shelved alarm with its
    evidence, and an acknowledged one of the line."""
    from api.routes.alarms import message_fields
    from sensors.alarm_topics import AlarmTopics
    from twin.alarms.lifecycle import AlarmBook, AlarmKey

    client = MemoryClient()
    config = load_config()
    publisher = AlarmTopics(
        client,  # type: ignore[arg-type]
        LineTopics(config.line.site, config.line.area, config.line.id),
    )
    book = AlarmBook()
    silent = AlarmKey("broken_sensor", "welding", None)
    book.condition(
        silent, True, 60.0, priority="high", message="silent", evidence={"since_s": 9.5, "n": 3}
    )
    book.condition(AlarmKey("lag"), True, 61.0, priority="medium", message="behind")
    book.acknowledge("lag:-:-", 62.0, "anna")
    book.shelve(silent.id, 63.0, 600.0, "repair", "anna")
    for alarm in book.alarms():
        key = alarm.key
        topic = publisher.topic(key.kind, key.station, key.sensor)
        publisher.publish(topic, message_fields(alarm, alarm.changed_s or 0.0))
    return [json.loads(payload) for _, payload, _, _ in client.messages]


@pytest.fixture(scope="module")
def documents() -> dict[str, list[dict[str, Any]]]:
    found = _plant_payloads()
    found["cmd"] = _commands()
    found["cmd/ack"] = _acks()
    found["alarms"] = _alarms()
    return found


def _schema_accepts(schema: dict[str, Any], document: Any) -> bool:
    return bool(jsonschema.Draft202012Validator(schema).is_valid(document))


def _contract_accepts(channel: str, document: Any) -> bool:
    try:
        decode(channel, json.dumps(document).encode())
    except DecodeError:
        return False
    return True


def test_there_is_one_schema_per_channel_named_as_its_file() -> None:
    schemas = json_schemas()
    # A topic's last levels with "/" as "_": the file docs/schemas/<name>.schema.json.
    assert sorted(schemas) == sorted(channel.replace("/", "_") for channel in PAYLOAD_TYPES)
    assert "cmd_ack" in schemas
    ids = [schema["$id"] for schema in schemas.values()]
    assert len(set(ids)) == len(ids)
    for name, schema in schemas.items():
        assert schema["$id"].startswith("urn:factory-twin:schema:")
        assert schema["$id"].endswith(f":{name}")
        # The contract's major version is in the id: a 2.x schema is another schema.
        assert f":v{SCHEMA_VERSION.split('.')[0]}:" in schema["$id"]
        assert validator_for(schema, default=None) is jsonschema.Draft202012Validator
        jsonschema.Draft202012Validator.check_schema(schema)
    # A model's schema is titled with its name; the event union, which has none, "Event".
    for channel, kind in PAYLOAD_TYPES.items():
        if isinstance(kind, type):
            assert schemas[channel.replace("/", "_")]["title"] == kind.__name__
    assert schemas["event"]["title"] == "Event"


def test_every_channel_was_exercised(documents: dict[str, list[dict[str, Any]]]) -> None:
    assert sorted(documents) == sorted(PAYLOAD_TYPES)


def test_the_schemas_and_the_contract_accept_the_same_documents(
    documents: dict[str, list[dict[str, Any]]],
) -> None:
    schemas = json_schemas()
    checked = 0
    for channel, found in documents.items():
        schema = schemas[channel.replace("/", "_")]
        for document in found[:10]:
            assert _contract_accepts(channel, document), (channel, document)
            assert _schema_accepts(schema, document), (channel, document)
            for broken in _broken(document):
                assert not _contract_accepts(channel, broken), (channel, broken)
                assert not _schema_accepts(schema, broken), (channel, broken)
                checked += 1
    assert checked > 6 * 7 * 3


@pytest.mark.parametrize("sensor", sorted(SENSOR_RANGES))
def test_a_sensor_reads_to_the_ends_of_its_range_and_no_further(sensor: str) -> None:
    """The contract's bounds are the sensor's measuring range (SENSOR_RANGES),
    both ends included; the schema says the same."""
    low, high = SENSOR_RANGES[sensor]
    schema = json_schemas()["telemetry"]
    head = {
        "schema_version": SCHEMA_VERSION,
        "ts_ms": NOW_MS,
        "seq": 0,
        "source": "plant-1",
        "sim_time_s": 1.0,
    }
    step = max(1e-6, (high - low) * 1e-9)
    for value, valid in ((low, True), (high, True), (low - step, False), (high + step, False)):
        document = {**head, sensor: value}
        assert _contract_accepts("telemetry", document) is valid, (sensor, value)
        assert _schema_accepts(schema, document) is valid, (sensor, value)


@pytest.mark.parametrize("sensor", sorted(SENSOR_RANGES))
def test_the_range_builder_gives_both_bounds_and_keeps_the_description(sensor: str) -> None:
    """The telemetry fields are built by ``_in_range`` when the contract is
    imported; called here again, its bounds are the sensor's range."""
    low, high = SENSOR_RANGES[sensor]
    field = _in_range(sensor, description="what it measures")
    bounds = {type(item).__name__: item for item in field.metadata}
    assert bounds["Ge"].ge == low
    assert bounds["Le"].le == high
    assert field.description == "what it measures"
