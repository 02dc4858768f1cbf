"""The embedded broker starts, serves retained messages and stops cleanly."""

from __future__ import annotations

import pytest
from helpers import Recorder, bare_publisher, get_free_port, port_open, wait_until

from sensors.broker import EmbeddedBroker
from sensors.mqtt import BrokerAddress, MqttError, connect, disconnect, new_client


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


def test_an_embedded_broker_with_logins_takes_only_them() -> None:
    """Outside a demo, up gives the embedded broker the twin's and the plant's
    logins: anyone else, anonymous or with a wrong password, is refused."""
    port = get_free_port()
    with EmbeddedBroker("127.0.0.1", port, logins={"twin": "pass-twin", "plant": "pass-plant"}):
        address = BrokerAddress("127.0.0.1", port)
        for user, password in (("twin", "pass-twin"), ("plant", "pass-plant")):
            client = new_client(f"ok-{user}")
            connect(client, address.with_login(user, password), timeout=5)
            disconnect(client)
        for user, password in ((None, None), ("twin", "pass-plant"), ("mallory", "pass-twin")):
            client = new_client(f"no-{user}")
            with pytest.raises(MqttError, match="Not authorized"):
                connect(client, address.with_login(user, password), timeout=5)
