"""The embedded broker starts, serves retained messages and stops cleanly: both
kinds, rumqttd (the default, in a child process) and amqtt (in this process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from helpers import REPO, Recorder, bare_publisher, get_free_port, port_open, wait_until

from sensors.broker import BROKER_KINDS, BrokerKind, EmbeddedBroker
from sensors.mqtt import BrokerAddress, MqttError, connect, disconnect, new_client

kinds = pytest.mark.parametrize("kind", BROKER_KINDS)


@pytest.mark.integration
@kinds
def test_retained_message_and_clean_stop(kind: BrokerKind) -> None:
    port = get_free_port()
    broker = EmbeddedBroker("127.0.0.1", port, kind=kind)
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


@kinds
def test_port_in_use_is_a_clear_error(embedded_broker: EmbeddedBroker, kind: BrokerKind) -> None:
    clash = EmbeddedBroker("127.0.0.1", embedded_broker.port, kind=kind)
    with pytest.raises(MqttError, match=rf"port {embedded_broker.port} .* is in use.*--mqtt-port"):
        clash.start()


@kinds
def test_an_embedded_broker_with_logins_takes_only_them(kind: BrokerKind) -> None:
    """Outside a demo, up gives the embedded broker the twin's and the plant's
    logins: anyone else, anonymous or with a wrong password, is refused."""
    port = get_free_port()
    # A password with quotes, a backslash and an equals sign: the config escapes it.
    logins = {"twin": "pass-twin", "plant": 'pa"ss\\w = rd'}
    with EmbeddedBroker("127.0.0.1", port, logins=logins, kind=kind) as broker:
        assert broker.kind == kind
        address = BrokerAddress("127.0.0.1", port)
        for user, password in logins.items():
            client = new_client(f"ok-{user}")
            connect(client, address.with_login(user, password), timeout=5)
            disconnect(client)
        for user, password in ((None, None), ("twin", "pass-plant"), ("mallory", "pass-twin")):
            client = new_client(f"no-{user}")
            # amqtt answers "Not authorized"; rumqttd closes the connection unanswered.
            with pytest.raises(MqttError, match="refused the connection"):
                connect(client, address.with_login(user, password), timeout=5)


@pytest.mark.integration
@kinds
def test_the_last_will_is_published_retained_when_a_client_dies(kind: BrokerKind) -> None:
    """The line status goes offline by the plant's last will: a client whose
    connection breaks without a DISCONNECT leaves its will, retained, for whoever
    subscribes later."""
    port = get_free_port()
    with EmbeddedBroker("127.0.0.1", port, kind=kind) as broker:
        doomed = new_client("doomed")
        doomed.will_set("t/status", b"offline", qos=1, retain=True)
        connect(doomed, BrokerAddress("127.0.0.1", port), timeout=5)
        doomed.publish("t/status", b"online", qos=1, retain=True).wait_for_publish(5)
        doomed.loop_stop()
        doomed.socket().close()  # the connection breaks: no DISCONNECT is sent
        late = Recorder(broker.url, "t/status")
        try:
            assert wait_until(lambda: b"offline" in [m[1] for m in late.snapshot()], timeout=20)
        finally:
            late.close()


PARENT = textwrap.dedent(
    """
    import sys, time
    from sensors.broker import EmbeddedBroker
    broker = EmbeddedBroker("127.0.0.1", int(sys.argv[1]))
    broker.start()
    print(broker.pid, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.integration
def test_the_broker_child_ends_when_its_parent_is_killed() -> None:
    """rumqttd runs in a child process: kill -9 of its parent (up) must not leave
    it holding the port."""
    port = get_free_port()
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(port)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        assert _alive(child)
        assert port_open(port)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert wait_until(lambda: not _alive(child), timeout=60), "the broker outlived its parent"
        assert wait_until(lambda: not port_open(port), timeout=10)
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/status") as lines:
            return not any(line.startswith("State:\tZ") for line in lines)
    except FileNotFoundError:
        return False
