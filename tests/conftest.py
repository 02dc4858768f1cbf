"""Shared fixtures: real MQTT brokers on free loopback ports.

Tests talk to real brokers: Debian's mosquitto and the project's embedded
amqtt broker. A test that needs a missing binary skips with the package to
install, except under CI=true, where it fails instead (see helpers.missing).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Mosquitto, VictoriaMetrics, find_binary, get_free_port, missing

from sensors.broker import EmbeddedBroker


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    binary = find_binary("mosquitto")
    if binary is None:
        missing("mosquitto", "mosquitto")
    assert binary is not None
    broker = Mosquitto(binary, tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def embedded_broker() -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker("127.0.0.1", get_free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(params=["mosquitto", "embedded"])
def broker_url(request: pytest.FixtureRequest) -> str:
    """A running broker's URL: once Debian's mosquitto, once the embedded amqtt."""
    name = "mosquitto" if request.param == "mosquitto" else "embedded_broker"
    url: str = request.getfixturevalue(name).url
    return url


@pytest.fixture
def victoria_metrics(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """Debian's VictoriaMetrics standing in for InfluxDB 2 (it takes ``/api/v2/write``)."""
    binary = find_binary("victoria-metrics")
    if binary is None:
        missing("victoria-metrics", "victoria-metrics")
    assert binary is not None
    server = VictoriaMetrics(binary, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
