"""Fault injection: the broker goes away mid-run and comes back.

mosquitto (persistence on) is stopped while the line runs, and started again on
the same port. The plant keeps producing meanwhile; its QoS 1 events wait in
the publisher's outbox and are re-sent after the reconnect, and the ingest's
persistent session lets the broker queue for the twin. Afterwards every event
the plant emitted must be reflected in the twin exactly once.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import Mosquitto, find_binary, missing, wait_until

from api.runtime.line import Stack
from api.runtime.options import StackOptions
from twin.config.line import load_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_every_event_survives_a_broker_restart_exactly_once(tmp_path: Path) -> None:
    binary = find_binary("mosquitto")
    if binary is None:
        missing("mosquitto", "mosquitto")
    assert binary is not None
    broker = Mosquitto(binary, tmp_path, persistence=True)
    broker.start()
    stack = Stack(load_config(), StackOptions(speed=600, seed=8, mqtt_url=broker.url))
    stack.start()
    try:
        assert stack.ingest is not None
        assert stack.plant is not None
        ingest, plant = stack.ingest, stack.plant
        assert wait_until(lambda: stack.twin.counters()[0] >= 10, timeout=30)

        broker.stop()  # SIGTERM: mosquitto saves its sessions and queues
        assert wait_until(lambda: not ingest.connected, timeout=60)
        # The line keeps running: parts shipped while the broker is down are queued.
        shipped_at_outage = plant.parts_shipped
        assert wait_until(lambda: plant.parts_shipped >= shipped_at_outage + 5, timeout=120)
        broker.start()  # same port, same persistence directory

        assert wait_until(lambda: ingest.connected, timeout=60), "ingest did not reconnect"
        # ...and goes on after the reconnect: new events behind the queued ones.
        shipped_at_reconnect = plant.parts_shipped
        assert wait_until(lambda: plant.parts_shipped >= shipped_at_reconnect + 5, timeout=120)
        stack.stop_plant(flush_timeout=30)
        assert stack.publisher is not None
        assert stack.publisher.pending() == 0

        def mirror() -> list[tuple[object, ...]]:
            return [
                (s.id, s.started, s.good, s.scrap, s.rework) for s in stack.twin.view().stations
            ]

        truth = [
            (s.id, s.parts_started, s.parts_good, s.parts_scrap, s.parts_reworked)
            for s in plant.stations
        ]
        assert wait_until(lambda: mirror() == truth, timeout=30), (mirror(), truth)
        shipped, scrapped, _ = stack.twin.counters()
        assert (shipped, scrapped) == (plant.parts_shipped, plant.parts_scrapped)
        health = ingest.health()
        assert health["gaps_by_channel"]["event"] == 0
    finally:
        stack.stop()
        broker.stop()
