"""MQTT security against mosquitto with a password file and an ACL.

Wrong credentials give a clear error at start; a topic the ACL denies is not
delivered; the plant and the twin work with their own users. The ACL is the one
docker/ ships.
"""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from helpers import REPO, Mosquitto, find_binary, missing, wait_until
from paho.mqtt.enums import CallbackAPIVersion

from api.runtime.line import Stack
from api.runtime.options import StackOptions
from sensors.mqtt import MqttError
from twin.config.line import load_config

pytestmark = pytest.mark.integration
USERS = {"plant": "plant-secret", "twin": "twin-secret"}


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Mosquitto]:
    binary, passwd = find_binary("mosquitto"), find_binary("mosquitto_passwd")
    if binary is None or passwd is None:
        missing("mosquitto_passwd", "mosquitto")
    assert binary is not None
    assert passwd is not None
    password_file = tmp_path / "passwd"
    for index, (user, password) in enumerate(USERS.items()):
        create = ["-c"] if index == 0 else []
        subprocess.run([passwd, *create, "-b", str(password_file), user, password], check=True)
    password_file.chmod(0o600)
    broker = Mosquitto(
        binary,
        tmp_path,
        extra=(
            "allow_anonymous false\n"
            f"password_file {password_file}\n"
            f"acl_file {REPO / 'docker' / 'mosquitto' / 'acl'}\n"
        ),
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def options(broker: Mosquitto, twin_password: str = USERS["twin"]) -> StackOptions:
    return StackOptions(
        speed=600,
        mqtt_url=broker.url,
        mqtt_username="twin",
        mqtt_password=twin_password,
        plant_mqtt_username="plant",
        plant_mqtt_password=USERS["plant"],
    )


def client(broker: Mosquitto, user: str) -> mqtt.Client:
    subject = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"test-{user}-{uuid.uuid4().hex[:8]}"
    )
    subject.username_pw_set(user, USERS[user])
    connected = threading.Event()
    subject.on_connect = lambda *args: connected.set()
    subject.connect("127.0.0.1", broker.port)
    subject.loop_start()
    assert connected.wait(5)
    return subject


def test_wrong_password_is_a_clear_error(secured: Mosquitto) -> None:
    stack = Stack(load_config(), options(secured, twin_password="guess"))
    with pytest.raises(MqttError, match=r"refused the connection: Not authorized \(user 'twin'\)"):
        stack.start()
    assert not stack.started


def test_the_password_never_shows_in_messages(secured: Mosquitto) -> None:
    stack = Stack(load_config(), options(secured, twin_password="guess"))
    with pytest.raises(MqttError) as caught:
        stack.start()
    assert "guess" not in str(caught.value)
    assert "guess" not in repr(stack.options)


def test_plant_and_twin_work_with_their_own_users(secured: Mosquitto) -> None:
    stack = Stack(load_config(), options(secured))
    stack.start()
    try:
        assert wait_until(lambda: stack.twin.counters()[2] > 3, timeout=20)
        assert stack.twin.status == "online"
    finally:
        stack.stop()


def test_only_the_twin_may_send_commands(secured: Mosquitto) -> None:
    topic = "factory/v1/plant-a/fabrication/line1/machining/cmd"
    received: list[bytes] = []
    listener = client(secured, "plant")  # the plant may read its commands
    subscribed = threading.Event()
    listener.on_subscribe = lambda *args: subscribed.set()
    listener.on_message = lambda c, u, message: received.append(message.payload)
    listener.subscribe(topic, qos=1)
    assert subscribed.wait(5)
    try:
        intruder = client(secured, "plant")
        intruder.publish(topic, b"from the plant user", qos=1).wait_for_publish(5)
        operator = client(secured, "twin")
        operator.publish(topic, b"from the twin user", qos=1).wait_for_publish(5)
        assert wait_until(lambda: b"from the twin user" in received, timeout=5)
        assert b"from the plant user" not in received
        for other in (intruder, operator):
            other.disconnect()
            other.loop_stop()
    finally:
        listener.disconnect()
        listener.loop_stop()
