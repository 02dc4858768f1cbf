"""The embedded broker starts, serves retained messages and stops cleanly."""

from __future__ import annotations

import pytest
from helpers import Recorder, bare_publisher, get_free_port, port_open, wait_until

from sensors.broker import EmbeddedBroker
from sensors.mqtt import MqttError


@pytest.mark.integration
def test_retained_message_and_clean_stop() -> None:
    port = get_free_port()
    broker = EmbeddedBroker("127.0.0.1", port)
    broker.start()
    try:
        publisher = bare_publisher(broker.url)
        publisher.publish("t/status", b"online", qos=1, retain=True).wait_for_publish(5)
        publisher.disconnect()
        publisher.loop_stop()
        late = Recorder(broker.url, "t/#")
        assert wait_until(lambda: len(late.snapshot()) >= 1)
        topic, payload, retained = late.snapshot()[0]
        assert (topic, payload, retained) == ("t/status", b"online", True)
        late.close()
    finally:
        broker.stop()
    assert not port_open(port)


def test_port_in_use_is_a_clear_error(embedded_broker: EmbeddedBroker) -> None:
    clash = EmbeddedBroker("127.0.0.1", embedded_broker.port)
    with pytest.raises(MqttError, match=rf"port {embedded_broker.port} .* is in use.*--mqtt-port"):
        clash.start()
