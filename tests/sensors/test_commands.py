"""The plant's command handler: every kind of bad command is answered, none applied."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import MemoryClient

from sensors.commands import CommandHandler
from sensors.topics import LineTopics
from twin.config.line import load_config
from twin.contract import SCHEMA_VERSION, CommandAck
from twin.sim.plant import Plant

CONFIG = load_config()
TOPICS = LineTopics(CONFIG.line.site, CONFIG.line.area, CONFIG.line.id)


class Control:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.speed = 60.0
        self.speed_in_force = 60.0

    def pause(self) -> None:
        self.calls.append(("pause", None))

    def resume(self) -> None:
        self.calls.append(("resume", None))

    def set_speed(self, speed: float) -> None:
        self.calls.append(("set_speed", speed))
        self.speed = speed
        self.speed_in_force = min(speed, 100.0)  # a pipeline that carries 100x


@pytest.fixture
def setup() -> tuple[CommandHandler, MemoryClient, Plant, Control]:
    plant = Plant(CONFIG, seed=1)
    client = MemoryClient()
    control = Control()
    handler = CommandHandler(plant, client, TOPICS, source="test-plant", control=control)  # type: ignore[arg-type]
    return handler, client, plant, control


_ids = iter(range(1_000_000))


def command(action: str, **fields: Any) -> bytes:
    payload = {
        "schema_version": SCHEMA_VERSION,
        "ts_ms": 1,
        "source": "tester",
        "command_id": f"c{next(_ids)}",
        "action": action,
        **fields,
    }
    return json.dumps(payload).encode()


def last_ack(client: MemoryClient) -> tuple[str, CommandAck]:
    topic, payload, qos, _retain = client.messages[-1]
    assert qos == 1
    return topic, CommandAck.model_validate_json(payload)


def test_setpoint_is_applied_and_acknowledged(setup: Any) -> None:
    handler, client, plant, _ = setup
    handler.handle(
        TOPICS.station("machining", "cmd"), command("set_setpoint", setpoint="speed", value=1.25)
    )
    topic, ack = last_ack(client)
    assert topic == TOPICS.station("machining", "cmd/ack")
    assert ack.accepted
    assert ack.action == "set_setpoint"
    assert "speed set to 1.25" in ack.reason
    assert plant.by_id["machining"].setpoints["speed"] == 1.25


@pytest.mark.parametrize(
    ("topic_station", "payload", "reason"),
    [
        ("machining", command("set_setpoint", setpoint="speed", value=9), "out of range"),
        ("machining", command("set_setpoint", setpoint="speed", value="fast"), "value"),
        ("machining", command("set_setpoint", setpoint="torque", value=1), "no setpoint 'torque'"),
        ("lathe", command("stop"), "unknown station 'lathe'"),
        ("machining", command("explode"), "unknown action 'explode'"),
        ("machining", command("pause"), "pause is a line command"),
        (None, command("maintenance"), "maintenance is a station command"),
        ("machining", b"{not json", "not valid JSON"),
        ("machining", b'{"action": "stop"}', "command_id"),
    ],
    ids=[
        "out-of-range",
        "wrong-type",
        "unknown-setpoint",
        "unknown-station",
        "unknown-action",
        "line-action-on-station",
        "station-action-on-line",
        "not-json",
        "missing-id",
    ],
)
def test_invalid_commands_are_rejected_with_a_reason(
    setup: Any, topic_station: str | None, payload: bytes, reason: str
) -> None:
    handler, client, plant, control = setup
    before = dict(plant.by_id["machining"].setpoints)
    topic = TOPICS.line_command if topic_station is None else TOPICS.station(topic_station, "cmd")
    handler.handle(topic, payload)
    ack_topic, ack = last_ack(client)
    assert ack_topic == TOPICS.ack_for(topic_station)
    assert not ack.accepted
    assert reason in ack.reason
    assert plant.by_id["machining"].setpoints == before
    assert control.calls == []
    assert handler.rejected == 1


def test_a_duplicate_command_id_is_not_applied_twice(setup: Any) -> None:
    handler, client, plant, _ = setup
    payload = command("maintenance")
    handler.handle(TOPICS.station("welding", "cmd"), payload)
    handler.handle(TOPICS.station("welding", "cmd"), payload)
    assert [CommandAck.model_validate_json(m[1]).accepted for m in client.messages] == [True, False]
    assert "duplicate command_id" in CommandAck.model_validate_json(client.messages[1][1]).reason


def test_stop_start_and_maintenance_reach_the_plant(setup: Any) -> None:
    handler, _client, plant, _ = setup
    welding = plant.by_id["welding"]
    handler.handle(TOPICS.station("welding", "cmd"), command("stop"))
    plant.run(until=600)
    assert welding.state == "stopped"
    handler.handle(TOPICS.station("welding", "cmd"), command("start"))
    plant.run(until=1200)
    assert welding.state != "stopped"
    handler.handle(TOPICS.station("machining", "cmd"), command("maintenance"))
    plant.run(until=2400)
    assert plant.by_id["machining"].maintenances == 1


def test_line_commands_go_to_the_live_control(setup: Any) -> None:
    handler, client, _plant, control = setup
    handler.handle(TOPICS.line_command, command("pause"))
    handler.handle(TOPICS.line_command, command("set_speed", factor=250))
    handler.handle(TOPICS.line_command, command("resume"))
    handler.handle(TOPICS.line_command, command("set_speed", factor=5000))
    assert control.calls == [("pause", None), ("set_speed", 250.0), ("resume", None)]
    speed_ack = CommandAck.model_validate_json(client.messages[-3][1])
    # The ack says which speed is in force when the pipeline carries less than asked.
    assert (speed_ack.speed_asked, speed_ack.speed_factor) == (250.0, 100.0)
    assert "250x asked; 100x in force" in speed_ack.reason
    topic, ack = last_ack(client)
    assert topic == TOPICS.line_ack
    assert not ack.accepted
    assert "factor" in ack.reason


def test_unsubscribed_topics_are_ignored(setup: Any) -> None:
    handler, client, _plant, _ = setup
    handler.handle(TOPICS.station("welding", "telemetry"), b"{}")
    handler.handle("elsewhere/cmd", b"{}")
    assert client.messages == []


def test_the_subscriptions_count_as_in_place_only_once_the_broker_confirms_them(
    setup: Any,
) -> None:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    handler, _, _, _ = setup

    class Client:
        def __init__(self) -> None:
            self.subscribed: list[Any] = []

        def subscribe(self, topics: Any) -> None:
            self.subscribed.append(topics)

    client = Client()
    granted = ReasonCode(PacketTypes.SUBACK, identifier=1)
    refused = ReasonCode(PacketTypes.SUBACK, identifier=0x87)  # not authorized
    handler.on_connect(client, None, None, ReasonCode(PacketTypes.CONNACK, identifier=0), None)
    assert not handler.subscribed.is_set()
    assert client.subscribed == [handler.subscriptions()]
    handler.on_subscribe(client, None, 1, [granted, refused], None)
    assert not handler.subscribed.is_set()
    handler.on_subscribe(client, None, 2, [granted, granted], None)
    assert handler.subscribed.is_set()
    # A reconnect subscribes again: in place only when confirmed again.
    handler.on_connect(client, None, None, ReasonCode(PacketTypes.CONNACK, identifier=0), None)
    assert not handler.subscribed.is_set()
