"""paho's internals are used only where verified; elsewhere the client still works.

A paho release outside the verified range, or one whose internals moved, is
played here by changing what ``sensors.paho_internals`` sees (the version it
reads, the attributes it looks for): the client must then be paho's own,
connect and deliver through a real broker (mosquitto and the embedded one), and
count its outbox from acknowledgements, which must agree with paho's own tables.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from helpers import Recorder, wait_until

from sensors import paho_internals
from sensors.mqtt import connect, disconnect, new_client, parse_mqtt_url
from sensors.paho_internals import (
    VERIFIED_FROM,
    VERIFIED_THROUGH,
    Acknowledgements,
    Client,
    NothingWaits,
    PahoTables,
    client_class,
    internals,
    outbox_of,
)
from sensors.publisher import PlantPublisher
from sensors.topics import LineTopics
from twin.config.line import load_config
from twin.sim.plant import Plant

BOTTLING = Path(__file__).parents[2] / "examples" / "lines" / "bottling.yaml"


@pytest.fixture(autouse=True)
def fresh_verdict() -> Iterator[None]:
    """Each test judges paho afresh, and leaves no verdict of its own behind."""
    internals.cache_clear()
    yield
    internals.cache_clear()


@pytest.fixture
def unverified(monkeypatch: pytest.MonkeyPatch) -> str:
    """paho as a release after the verified ones."""
    later = f"{VERIFIED_THROUGH[0]}.{VERIFIED_THROUGH[1] + 1}.0"
    monkeypatch.setattr(paho_internals, "paho_version", lambda: later)
    return later


def test_the_installed_paho_is_one_the_internals_were_verified_on() -> None:
    """An upgrade of paho past the verified releases shows here, not as a client
    that silently lost its speed-ups."""
    installed = tuple(int(part) for part in version("paho-mqtt").split(".")[:2])
    assert VERIFIED_FROM <= installed <= VERIFIED_THROUGH
    assert internals().usable, internals().reason
    assert client_class() is Client
    assert isinstance(outbox_of(new_client(f"t-{uuid.uuid4().hex[:8]}")), PahoTables)


@pytest.mark.parametrize("release", ["2.0.0", "3.0.0", "2.3.1", "not-a-version"])
def test_a_paho_outside_the_verified_releases_gets_no_internals_touched(
    release: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(paho_internals, "paho_version", lambda: release)
    with caplog.at_level(logging.WARNING, logger="sensors.paho_internals"):
        verdict = internals()
        client = new_client(f"t-{uuid.uuid4().hex[:8]}")
        outbox_of(client)
    assert not verdict.usable
    assert release in verdict.reason
    assert type(client) is mqtt.Client
    assert isinstance(outbox_of(client), Acknowledgements)
    warned = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warned) == 1, [record.getMessage() for record in warned]  # once, not per client
    assert release in warned[0].getMessage()


def test_internals_that_moved_are_not_touched(monkeypatch: pytest.MonkeyPatch) -> None:
    """The verified release, but a table renamed: as good as an unknown release."""
    renamed = (*paho_internals.INSTANCE_ATTRIBUTES[:-1], "_out_packets")
    monkeypatch.setattr(paho_internals, "INSTANCE_ATTRIBUTES", renamed)
    verdict = internals()
    assert not verdict.usable
    assert "_out_packets" in verdict.reason
    assert client_class() is mqtt.Client


def test_a_client_that_is_not_paho_holds_nothing() -> None:
    class Loopback:
        def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
            return None

    outbox = outbox_of(Loopback())
    assert isinstance(outbox, NothingWaits)
    assert (outbox.held(), outbox.unwritten(), outbox.tracks) == (0, 0, False)


def test_acknowledgements_count_what_was_handed_over_and_not_yet_settled() -> None:
    """The documented bookkeeping, message by message: a QoS 1 message is held until
    acknowledged, a QoS 0 packet until written or the connection is lost, and one
    settled before it was tracked (paho's thread was quicker) never counts."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    outbox = Acknowledgements(client)
    outbox.track(1, 1)
    outbox.track(2, 0)
    outbox.track(3, 1)
    assert (outbox.held(), outbox.unwritten()) == (2, 1)
    outbox.settled(4)  # acknowledged before ``publish`` returned to the tracker
    outbox.track(4, 1)
    assert (outbox.held(), outbox.unwritten()) == (2, 1)
    outbox.settled(1)
    assert (outbox.held(), outbox.unwritten()) == (1, 1)
    outbox.disconnected()  # paho drops unwritten QoS 0 packets, keeps QoS 1 messages
    assert (outbox.held(), outbox.unwritten()) == (1, 0)
    outbox.settled(3)  # acknowledged after the reconnect
    assert (outbox.held(), outbox.unwritten()) == (0, 0)


@pytest.mark.integration
def test_an_unverified_paho_connects_delivers_and_counts_its_outbox(
    unverified: str, broker_url: str
) -> None:
    """paho's own client, with the acknowledgement count beside paho's own tables:
    QoS 1 messages published before the connection are held (paho keeps them), and
    everything is delivered and settled once connected."""
    topic = f"test/{uuid.uuid4().hex[:8]}/fallback"
    recorder = Recorder(broker_url, topic, qos=1)
    client = new_client(f"fallback-{uuid.uuid4().hex[:8]}")
    assert type(client) is mqtt.Client
    published: list[int] = []
    client.on_publish = lambda c, u, mid, rc, p: published.append(mid)  # chained, not lost
    outbox, tables = outbox_of(client), PahoTables(client)
    assert isinstance(outbox, Acknowledgements)
    sent = 0

    def publish(qos: int) -> None:
        nonlocal sent
        info = client.publish(topic, str(sent).encode(), qos=qos)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS or (qos and info.rc == mqtt.MQTT_ERR_NO_CONN)
        outbox.track(info.mid, qos)
        sent += 1

    try:
        for _ in range(20):
            publish(1)  # no connection yet: paho keeps them for the connect
        assert outbox.held() == tables.held() == 20
        connect(client, parse_mqtt_url(broker_url))
        for index in range(200):
            publish(index % 2)
        assert wait_until(lambda: len(recorder.snapshot()) >= sent, timeout=30)
        assert sorted(int(payload) for _, payload, _ in recorder.snapshot()) == list(range(sent))
        assert wait_until(lambda: outbox.held() == tables.held() == 0, timeout=30)
        assert wait_until(lambda: outbox.unwritten() == tables.unwritten() == 0, timeout=30)
        assert len(published) == sent
    finally:
        disconnect(client)
        recorder.close()


@pytest.mark.integration
@pytest.mark.parametrize(("line", "seed", "span_s"), [(None, 3, 900.0), (BOTTLING, 11, 120.0)])
def test_the_plant_publishes_through_an_unverified_paho_and_flushes_honestly(
    unverified: str, broker_url: str, line: Path | None, seed: int, span_s: float
) -> None:
    """The publisher on paho's own client: every message it counts as published
    arrives, and ``flush`` waits for the acknowledgements (paho's tables agree)."""
    config = load_config(line)
    topics = LineTopics(
        site=config.line.site, area=config.line.area, line=config.line.id, root=f"t{seed}x"
    )
    recorder = Recorder(broker_url, topics.subscription, qos=1)
    client = new_client(f"plant-{uuid.uuid4().hex[:8]}")
    plant = Plant(config, seed=seed)
    publisher = PlantPublisher(plant, client, topics, rng=random.Random(seed))
    assert isinstance(publisher.outbox, Acknowledgements)
    tables = PahoTables(client)
    publisher.attach()
    connect(client, parse_mqtt_url(broker_url))
    try:
        publisher.announce("online")
        plant.run(until=span_s)
        assert publisher.flush(timeout=60)
        assert publisher.pending() == tables.held() == 0
        assert wait_until(lambda: publisher.outbox.unwritten() == tables.unwritten() == 0, 30)
        sent = sum(publisher.published.values())
        assert publisher.published["telemetry"] > 0  # QoS 0
        assert publisher.published["state_changed"] > 0  # QoS 1
        assert publisher.dropped == {}
        assert wait_until(lambda: len(recorder.snapshot()) >= sent, timeout=60)
        assert len(recorder.snapshot()) == sent
    finally:
        disconnect(client)
        recorder.close()
