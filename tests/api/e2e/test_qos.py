"""QoS is configurable per channel: what the broker delivers shows it."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest
from helpers import wait_until
from paho.mqtt.enums import CallbackAPIVersion

from api.runtime.line import Stack
from api.runtime.options import StackOptions
from api.settings import Settings
from sensors.mqtt import parse_mqtt_url
from twin.config.line import load_config

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("telemetry_qos", "events_qos"), [(0, 1), (1, 2)])
def test_channels_arrive_at_the_configured_qos(
    mosquitto: object, telemetry_qos: int, events_qos: int
) -> None:
    url: str = mosquitto.url  # type: ignore[attr-defined]
    seen: dict[str, set[int]] = {"telemetry": set(), "event": set()}
    lock = threading.Lock()
    subscribed = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        channel = message.topic.rsplit("/", 1)[-1]
        if channel in seen:
            with lock:
                seen[channel].add(message.qos)

    observer = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"qos-{telemetry_qos}")
    observer.on_message = on_message
    observer.on_subscribe = lambda *args: subscribed.set()
    address = parse_mqtt_url(url)
    observer.connect(address.host, address.port)
    observer.loop_start()
    observer.subscribe("factory/v1/#", qos=2)  # the broker delivers min(publish, subscribe)
    assert subscribed.wait(5)
    stack = Stack(
        load_config(),
        StackOptions(speed=600, mqtt_url=url, qos_telemetry=telemetry_qos, qos_events=events_qos),
    )
    stack.start()
    try:
        assert wait_until(lambda: seen["telemetry"] and seen["event"], timeout=20)
        with lock:
            assert seen == {"telemetry": {telemetry_qos}, "event": {events_qos}}
    finally:
        stack.stop()
        observer.disconnect()
        observer.loop_stop()


def test_qos_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="qos_telemetry"):
        Settings(qos_telemetry=3)  # type: ignore[arg-type]
