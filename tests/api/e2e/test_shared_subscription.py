"""Scale-out ingest: two ingests share one line's stream through an MQTT 5
shared subscription on mosquitto; together they lose nothing and see nothing
twice, and so do two workers sharing the streams of a site's two lines. On the
MQTT 3.1.1 embedded broker the option degrades to a plain subscription with a
warning."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest
import simpy
from helpers import bare_publisher, get_free_port, wait_until
from pydantic import BaseModel

from api.runtime.line import Stack
from api.runtime.options import StackOptions
from sensors.ingest import Ingest
from sensors.mqtt import connect, disconnect, new_client, parse_mqtt_url
from sensors.publisher import PlantPublisher
from sensors.topics import LineTopics
from twin.config.line import LineConfig, load_config, parse_config
from twin.contract import LineStatus, StationState, Telemetry
from twin.sim.plant import Plant
from twin.state.line import TwinState

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


def line_named(line_id: str) -> LineConfig:
    data = load_config().model_dump(mode="json")
    data["line"]["id"] = line_id
    return parse_config(data, line_id)


CHANNEL_OF: dict[type[BaseModel], str] = {
    Telemetry: "telemetry",
    StationState: "state",
    LineStatus: "status",
}


def run_plant(plant: Plant, hours: float) -> None:
    """As fast as the machine goes, with a breath between simulated minutes."""
    end = hours * 3600.0
    while plant.now < end:
        plant.run(until=min(end, plant.now + 60.0))
        time.sleep(0.002)


def assert_drained(member: mqtt.Client, marker: mqtt.Client, topic: str) -> None:
    """Wait until ``member`` takes a marker published on ``topic`` now: the broker
    (mosquitto queues each session's messages in order) delivered everything queued
    for it before, and paho handed it to the ingest (one network thread, in order).
    Markers are sent until one arrives: those before the subscription took hold are lost."""
    arrived = threading.Event()
    member.message_callback_add(topic, lambda client, userdata, message: arrived.set())
    member.subscribe(topic, qos=1)

    def marker_arrived() -> bool:
        marker.publish(topic, b"marker", qos=1)
        return arrived.is_set()

    assert wait_until(marker_arrived, timeout=60, interval=0.2), f"no marker on {topic}"
    member.unsubscribe(topic)


def test_two_lines_and_two_workers_in_one_group_lose_nothing(mosquitto: object) -> None:
    """A site of two lines, two ingest workers in one shared group.

    An ``Ingest`` takes one line's branch (its topics parse only that line), so
    a worker is one ingest per line, each on its own MQTT 5 client, and every
    ingest subscribes with the same group: ``$share/twins/factory/v1/{site}/
    {area}/{line}/#``. The broker then splits each line's stream between that
    line's two members. Afterwards, per line, the members' accepted messages
    add up to what the line's publisher published, no (source, topic, seq) was
    taken twice, and the members' twins count every part started exactly once.
    """
    address = parse_mqtt_url(mosquitto.url)  # type: ignore[attr-defined]
    configs = [line_named("line1"), line_named("line2")]
    workers = ("worker-a", "worker-b")
    taken: dict[str, list[tuple[str | None, str, str, int]]] = {}
    ingests: dict[tuple[str, str], Ingest] = {}
    member_clients: dict[tuple[str, str], mqtt.Client] = {}
    clients = []

    def recorder(line_id: str) -> Callable[[str | None, BaseModel], None]:
        def record(station: str | None, message: BaseModel) -> None:
            channel = CHANNEL_OF.get(type(message), "event")
            taken[line_id].append((station, channel, message.source, message.seq))  # type: ignore[attr-defined]

        return record

    try:
        for config in configs:
            line = config.line
            taken[line.id] = []
            topics = LineTopics(line.site, line.area, line.id)
            for worker in workers:
                client = new_client(f"{worker}-{line.id}", mqtt5=True)
                clients.append(client)
                ingest = Ingest(
                    TwinState(line.site, line.area, line.id),
                    topics,
                    client,
                    shared_group="twins",
                    on_accepted=recorder(line.id),
                )
                ingests[(worker, line.id)] = ingest
                member_clients[(worker, line.id)] = client
                connect(client, address)
                assert ingest.subscribed.wait(10)
                assert ingest.subscription == f"$share/twins/{topics.prefix}/#"

        plants: dict[str, Plant] = {}
        publishers: dict[str, PlantPublisher] = {}
        for seed, config in enumerate(configs, start=7):
            line = config.line
            plant = Plant(config, seed=seed, env=simpy.Environment())
            client = new_client(f"plant-{line.id}")
            clients.append(client)
            publisher = PlantPublisher(
                plant,
                client,
                LineTopics(line.site, line.area, line.id),
                rng=random.Random(seed),
            )
            publisher.attach()
            connect(client, address)
            publisher.announce()
            plants[line.id], publishers[line.id] = plant, publisher
        threads = [
            threading.Thread(target=run_plant, args=(plant, 3.0), daemon=True)
            for plant in plants.values()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)  # a hang bound: three simulated hours run in seconds
            assert not thread.is_alive()
        for publisher in publishers.values():
            assert publisher.flush(20)
            assert not publisher.dropped

        def accepted(line_id: str) -> int:
            return sum(ingests[(worker, line_id)].stats.accepted for worker in workers)

        for line_id, publisher in publishers.items():
            published = sum(publisher.published.values())
            assert wait_until(lambda n=line_id, p=published: accepted(n) >= p, 60), (
                line_id,
                accepted(line_id),
                published,
            )
        # Anything extra (a duplicate) was queued before a marker sent now: each member
        # takes a marker on its own connection, after all the broker had for it.
        marker = bare_publisher(mosquitto.url)  # type: ignore[attr-defined]
        try:
            for (worker, line_id), client in member_clients.items():
                assert_drained(client, marker, f"barrier/{worker}-{line_id}")
        finally:
            marker.disconnect()
            marker.loop_stop()

        for line_id, publisher in publishers.items():
            members = [ingests[(worker, line_id)] for worker in workers]
            assert accepted(line_id) == sum(publisher.published.values())
            # The broker really split the line: each member took a share.
            assert all(member.stats.accepted > 0 for member in members)
            assert len(set(taken[line_id])) == len(taken[line_id])
            assert {source for _, _, source, _ in taken[line_id]} == {publisher.source}
            assert all(member.stats.unknown_topic == 0 for member in members)
            assert all(sum(member.stats.malformed.values()) == 0 for member in members)
            parts = sum(station.parts_started for station in plants[line_id].stations)
            assert parts > 100
            assert sum(started(member.twin) for member in members) == parts
    finally:
        for client in clients:
            disconnect(client)
