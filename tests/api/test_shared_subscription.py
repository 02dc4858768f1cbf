"""Scale-out ingest: two ingests share one line's stream through an MQTT 5
shared subscription on mosquitto; together they lose nothing and see nothing
twice. On the MQTT 3.1.1 embedded broker the option degrades to a plain
subscription with a warning."""

from __future__ import annotations

import logging

import pytest
from helpers import get_free_port, wait_until

from api.runtime import Stack, StackOptions
from sensors.ingest import Ingest
from sensors.mqtt import connect, disconnect, new_client, parse_mqtt_url
from twin.config import load_config
from twin.state import TwinState

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def started(twin: TwinState) -> int:
    return sum(station.started for station in twin.view().stations)


def test_two_ingests_split_the_stream_and_lose_nothing(mosquitto: object) -> None:
    url: str = mosquitto.url  # type: ignore[attr-defined]
    config = load_config()
    line = config.line
    second_twin = TwinState(line.site, line.area, line.id)
    stack = Stack(config, StackOptions(speed=600, seed=4, mqtt_url=url, shared_group="twins"))
    client = new_client("second-ingest", mqtt5=True)
    second = Ingest(second_twin, stack.topics, client, shared_group="twins")
    connect(client, parse_mqtt_url(url))
    assert second.subscribed.wait(10)
    stack.start()
    try:
        assert stack.ingest is not None
        assert stack.plant is not None
        assert stack.ingest.shared_group == "twins"
        assert wait_until(lambda: started(stack.twin) > 20 and started(second_twin) > 20, 30)
        stack.stop_plant(flush_timeout=20)
        total = sum(station.parts_started for station in stack.plant.stations)
        assert wait_until(lambda: started(stack.twin) + started(second_twin) == total, 20), (
            started(stack.twin),
            started(second_twin),
            total,
        )
        first_health, second_health = stack.ingest.health(), second.health()
        assert first_health["duplicates"] == second_health["duplicates"] == 0
        assert sum(first_health["malformed"].values()) == 0
    finally:
        stack.stop()
        disconnect(client)


def test_shared_subscription_degrades_on_an_mqtt_311_broker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stack = Stack(
        load_config(),
        StackOptions(speed=600, mqtt_port=get_free_port(), shared_group="twins"),
    )
    with caplog.at_level(logging.WARNING):
        stack.start()
    try:
        assert stack.ingest is not None
        assert stack.ingest.shared_group is None
        assert "does not speak MQTT 5" in caplog.text
        assert wait_until(lambda: started(stack.twin) > 0, timeout=20)
    finally:
        stack.stop()
