"""The project's paho client: read-ahead socket and coalesced wake-ups.

The unit tests drive the wrappers over a real socket pair; the round trips
run through real brokers (mosquitto and the embedded one).
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import Recorder, wait_until

from sensors.mqtt import connect, disconnect, new_client, parse_mqtt_url
from sensors.paho_internals import (
    READ_AHEAD_BYTES,
    Client,
    ReadAheadSocket,
    _Wake,
    _WakeReader,
    _WakeWriter,
)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    left.setblocking(False)
    try:
        yield left, right
    finally:
        left.close()
        right.close()


def test_read_ahead_serves_small_reads_from_one_receive(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    sock = ReadAheadSocket(left)
    right.sendall(b"\x30\x05hello\x30\x03abc")
    assert sock.recv(1) == b"\x30"
    # Everything the kernel had is now held here, and paho is told so.
    assert sock.pending() == 11
    assert sock.recv(1) == b"\x05"
    assert sock.recv(5) == b"hello"
    assert sock.recv(1) == b"\x30"
    assert sock.recv(100) == b"\x03abc"  # a short read, as from a socket
    assert sock.pending() == 0
    with pytest.raises(BlockingIOError):
        sock.recv(1)  # nothing held, nothing in the kernel
    right.sendall(b"xyz")
    assert sock.recv(8) == b"xyz"
    right.close()
    assert sock.recv(1) == b""  # the peer closed: paho sees it as from a socket


def test_read_ahead_passes_large_reads_and_writes_through(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    sock = ReadAheadSocket(left)
    right.sendall(b"a" * 1000)
    assert sock.recv(READ_AHEAD_BYTES) == b"a" * 1000
    assert sock.pending() == 0
    assert sock.send(b"ping") == 4
    assert right.recv(4) == b"ping"
    assert sock.fileno() == left.fileno()


def test_a_wake_up_is_written_once_until_it_is_read(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    right.setblocking(False)
    wake = _Wake()
    writer, reader = _WakeWriter(left, wake), _WakeReader(right, wake)
    for _ in range(100):
        assert writer.send(b"0") == 1
    assert reader.recv(10_000) == b"0"  # one byte for the hundred
    writer.send(b"0")
    assert reader.recv(10_000) == b"0"  # read, so the next wake-up is written again
    with pytest.raises(BlockingIOError):
        reader.recv(10_000)


def test_new_clients_use_the_project_client() -> None:
    assert isinstance(new_client(f"t-{uuid.uuid4().hex[:8]}"), Client)
    assert isinstance(new_client(f"t-{uuid.uuid4().hex[:8]}", mqtt5=True), Client)


def test_a_flood_from_another_thread_arrives_whole(broker_url: str) -> None:
    """Bursts and pauses from a thread that is not paho's: nothing stays queued."""
    topic = f"test/{uuid.uuid4().hex[:8]}/flood"
    recorder = Recorder(broker_url, topic, qos=0)
    client = new_client(f"flood-{uuid.uuid4().hex[:8]}")
    connect(client, parse_mqtt_url(broker_url))
    try:
        sent = 0

        def burst() -> None:
            nonlocal sent
            for _ in range(5):
                for _ in range(400):
                    client.publish(topic, f"{sent}".encode(), qos=1)
                    sent += 1
                time.sleep(0.05)  # a pause between bursts: the load's shape, not a wait

        thread = threading.Thread(target=burst)
        thread.start()
        thread.join(30)
        assert wait_until(lambda: len(recorder.snapshot()) >= sent, timeout=30)
        payloads = [int(payload) for _, payload, _ in recorder.snapshot()]
        assert payloads == list(range(sent))
    finally:
        disconnect(client)
        recorder.close()


def test_a_lone_message_after_a_pause_is_sent_at_once(broker_url: str) -> None:
    """A wake-up is never lost: a message published while the network thread idles
    in ``select()`` goes out straight away, not at the select's timeout.

    The network loop runs here with a select timeout of an hour, so a lost
    wake-up keeps a message back far longer than the wait, which is bounded
    only to catch that (below the 30 s keepalive, whose ping would wake it)."""
    topic = f"test/{uuid.uuid4().hex[:8]}/lone"
    recorder = Recorder(broker_url, topic, qos=0)
    client = new_client(f"lone-{uuid.uuid4().hex[:8]}")
    # loop_start's thread runs loop_forever() with paho's 1 s select timeout.
    forever = type(client).loop_forever

    def idle_for_an_hour(timeout: float = 1.0, retry_first_connection: bool = False) -> Any:
        return forever(client, timeout=3600.0, retry_first_connection=retry_first_connection)

    client.loop_forever = idle_for_an_hour  # type: ignore[method-assign]
    connect(client, parse_mqtt_url(broker_url))
    try:
        for index in range(15):
            # The previous message arrived: the network thread is back in select().
            client.publish(topic, str(index).encode(), qos=0)
            assert wait_until(
                lambda index=index: len(recorder.snapshot()) == index + 1,  # type: ignore[misc]
                timeout=20,
            ), f"message {index} waited for the select timeout: a lost wake-up"
    finally:
        disconnect(client)
        recorder.close()
