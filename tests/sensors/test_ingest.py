"""The ingest over a real broker: bad messages are counted and dropped, the
twin keeps updating; duplicates and gaps are detected per stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import bare_publisher, wait_until

from sensors.ingest import Ingest, SequenceTracker
from sensors.mqtt import connect, disconnect, new_client, parse_mqtt_url
from sensors.topics import LineTopics
from twin.contract import SCHEMA_VERSION
from twin.state.line import TwinState

TOPICS = LineTopics(site="s", area="a", line="l")
TELEMETRY = TOPICS.station("press", "telemetry")


def telemetry(seq: int, temperature: float, **changes: Any) -> bytes:
    payload: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "ts_ms": 1,
        "seq": seq,
        "source": "outside-publisher",
        "sim_time_s": float(seq),
        "temperature_c": temperature,
        "vibration_mm_s": 1.0,
    }
    payload.update(changes)
    return json.dumps(payload).encode()


@pytest.fixture
def ingest(broker_url: str) -> Iterator[Ingest]:
    twin = TwinState("s", "a", "l")
    client = new_client("test-ingest")
    subject = Ingest(twin, TOPICS, client, max_payload_bytes=4096)
    connect(client, parse_mqtt_url(broker_url))
    assert subject.subscribed.wait(10)
    yield subject
    disconnect(client)


def temperature(ingest: Ingest) -> float | None:
    stations = ingest.twin.view().stations
    if not stations or stations[0].telemetry is None:
        return None
    return stations[0].telemetry.temperature_c


@pytest.mark.integration
def test_malformed_messages_are_counted_dropped_and_survived(
    ingest: Ingest, broker_url: str
) -> None:
    publisher = bare_publisher(broker_url)
    try:
        publisher.publish(TELEMETRY, telemetry(0, 20.0), qos=1).wait_for_publish(5)
        assert wait_until(lambda: temperature(ingest) == 20.0)

        bad = {
            "not_json": b"{this is not json",
            "invalid": telemetry(1, 99.0, temperature_c="hot"),
            "unknown_version": telemetry(2, 99.0, schema_version="2.0"),
            "too_large": telemetry(3, 99.0, padding="x" * 5000),
        }
        for kind, payload in bad.items():
            publisher.publish(TELEMETRY, payload, qos=1).wait_for_publish(5)
            assert wait_until(lambda kind=kind: ingest.health()["malformed"][kind] == 1), kind
            # Dropped: the twin still shows the last good reading.
            assert temperature(ingest) == 20.0

        publisher.publish(TELEMETRY, telemetry(4, 21.5), qos=1).wait_for_publish(5)
        assert wait_until(lambda: temperature(ingest) == 21.5)
        health = ingest.health()
        assert health["malformed"] == {
            "too_large": 1,
            "not_json": 1,
            "unknown_version": 1,
            "invalid": 1,
        }
        assert health["accepted"] == 2
        assert health["last_error"]["kind"] == "too_large"
        assert health["connected"] is True
    finally:
        publisher.disconnect()
        publisher.loop_stop()


@pytest.mark.integration
def test_duplicates_and_gaps_over_the_broker(ingest: Ingest, broker_url: str) -> None:
    publisher = bare_publisher(broker_url)
    try:
        for seq in (0, 1, 1, 4, 5):
            publisher.publish(TELEMETRY, telemetry(seq, 20.0 + seq), qos=1).wait_for_publish(5)
        assert wait_until(lambda: ingest.health()["received"] == 5)
        health = ingest.health()
        assert health["duplicates"] == 1
        assert health["gaps"] == 2
        assert temperature(ingest) == 25.0
    finally:
        publisher.disconnect()
        publisher.loop_stop()


def test_foreign_topic_is_counted_not_applied() -> None:
    twin = TwinState("s", "a", "l")
    subject = Ingest(twin, TOPICS, new_client("unused"))
    assert not subject.handle("factory/v1/s/a/other/press/telemetry", telemetry(0, 1.0))
    assert subject.health()["unknown_topic"] == 1
    assert twin.view().stations == []


def test_sequence_tracker_accepts_late_messages_into_gaps() -> None:
    tracker = SequenceTracker()
    assert tracker.accept("p", "t", 10)
    assert tracker.accept("p", "t", 13)
    assert tracker.gaps == 2
    assert tracker.accept("p", "t", 11)  # late, fills a gap
    assert tracker.gaps == 1
    assert tracker.late == 1
    assert not tracker.accept("p", "t", 11)  # now a duplicate
    assert not tracker.accept("p", "t", 13)
    assert tracker.duplicates == 2
    # A restarted publisher has a new source id and starts a new stream.
    assert tracker.accept("p2", "t", 0)
    # Streams are per topic.
    assert tracker.accept("p", "other", 0)
