"""Every use of paho-mqtt's private internals, in one place and behind one check.

paho is our MQTT client and, for the plant, its outbox. Two things we need are not
in its public API:

- **Speed-ups** (``Client``): a read-ahead socket, one read wake-up for every
  packet already received, and coalesced wake-ups of the network thread. They
  replace paho's ``_create_socket``, ``_sockpairR`` and ``_sockpairW`` and read
  its ``_sock``; together they take about a third off the cost of a message
  (``bench/mqtt_throughput.py``).
- **The outbox's size** (``PahoTables``): how many QoS 1 messages paho holds
  (``_out_messages``) and how many packets it has not written (``_out_packet``),
  read on every publish for back-pressure and at shutdown for ``flush``.

Both rest on code paho may change in any release, so they are used only on the
paho versions they were read and tested against (``VERIFIED_FROM`` to
``VERIFIED_THROUGH``: the lower bound of pyproject's pin, and the release
installed when they were last checked) and only if the attributes are where we
expect them. Otherwise (``internals()`` says why, logged once as a warning):

- ``new_client`` makes a plain paho client: the speed-ups are off, the protocol
  is untouched.
- The outbox is counted from paho's public ``on_publish`` callback
  (``Acknowledgements``): a QoS 1 message is held from its hand-over to its
  PUBACK, a QoS 0 packet from its hand-over until paho wrote it (paho calls
  ``on_publish`` for both) or the connection was lost (paho then drops it). We
  chose this over reporting 0: a 0 would let the live line run past a broker
  that acknowledges nothing, and would let ``flush`` claim at shutdown that
  every message was acknowledged while paho still held some. The count is the
  publisher's messages only (it tracks what it handed over), and the callback
  is taken over from whoever set it (it is chained, not replaced).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import threading
from typing import Any, NamedTuple, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

# The paho-mqtt releases whose internals this module was read against and tested
# on (major, minor; any patch release): pyproject pins >=2.1,<3.
VERIFIED_FROM = (2, 1)
VERIFIED_THROUGH = (2, 2)
# What a paho client must hold for the speed-ups and the outbox tables.
INSTANCE_ATTRIBUTES = ("_sock", "_sockpairR", "_sockpairW", "_out_messages", "_out_packet")
CLASS_METHODS = ("_create_socket", "loop_read")

# Bytes read from the kernel at once, and packets handled per wake-up at most
# (so that writes, acknowledgements and keep-alives still get their turn).
READ_AHEAD_BYTES = 64 * 1024
MAX_PACKETS_PER_READ = 128


class Internals(NamedTuple):
    usable: bool
    reason: str


def paho_version() -> str:
    return importlib.metadata.version("paho-mqtt")


def _release(version: str) -> tuple[int, int] | None:
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


@functools.cache
def internals() -> Internals:
    """Whether paho's internals may be used here, and why not if not (warned once)."""
    version = paho_version()
    release = _release(version)
    first, last = (".".join(map(str, bound)) for bound in (VERIFIED_FROM, VERIFIED_THROUGH))
    if release is None or not VERIFIED_FROM <= release <= VERIFIED_THROUGH:
        verdict = Internals(False, f"paho-mqtt {version} is not one of {first} to {last}")
    else:
        probe = mqtt.Client(CallbackAPIVersion.VERSION2)
        missing = [name for name in INSTANCE_ATTRIBUTES if name not in vars(probe)]
        missing += [
            name for name in CLASS_METHODS if not callable(getattr(mqtt.Client, name, None))
        ]
        if missing:
            verdict = Internals(False, f"paho-mqtt {version} has no {', '.join(missing)}")
        else:
            verdict = Internals(True, f"paho-mqtt {version}, verified on {first} to {last}")
    if not verdict.usable:
        log.warning(
            "%s, whose internals were verified: the client's speed-ups are off, and its "
            "outbox is counted from its on_publish callback",
            verdict.reason,
        )
    return verdict


# -- the speed-ups ---------------------------------------------------------------------------
class _SocketProxy:
    """Stands in for a socket, passing on what it does not change."""

    __slots__ = ("_sock",)

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        fileno: int = self._sock.fileno()
        return fileno


class ReadAheadSocket(_SocketProxy):
    """A paho socket that reads ahead: one ``recv`` serves many small packets.

    paho reads each packet's header a byte at a time, so a 200-byte telemetry
    sample costs four system calls and as many hand-overs of the interpreter
    lock. This wrapper fetches what the kernel has (up to ``READ_AHEAD_BYTES``)
    and hands it out from memory. ``pending()`` reports what it holds; paho
    checks it (as it does for TLS sockets) and reads on instead of waiting in
    ``select()`` for bytes that have already arrived.
    """

    __slots__ = ("_buffer", "_pos")

    def __init__(self, sock: Any) -> None:
        super().__init__(sock)
        self._buffer = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        if self._pos >= len(self._buffer):
            # Nothing held: read what the kernel has. BlockingIOError (nothing
            # there) and b"" (closed) reach paho as from a plain socket.
            data: bytes = self._sock.recv(max(size, READ_AHEAD_BYTES))
            if len(data) <= size:
                return data
            self._buffer, self._pos = data, 0
        start = self._pos
        self._pos = min(start + size, len(self._buffer))
        return self._buffer[start : self._pos]

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._buffer) - self._pos + inner

    def send(self, buffer: bytes | bytearray) -> int:
        sent: int = self._sock.send(buffer)
        return sent

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)


class _Wake:
    """Whether a wake-up byte sits unread in paho's socket pair."""

    __slots__ = ("armed",)

    def __init__(self) -> None:
        self.armed = False


class _WakeWriter(_SocketProxy):
    """paho's wake-up socket, writing only when no wake-up is pending."""

    __slots__ = ("_wake",)

    def __init__(self, sock: Any, wake: _Wake) -> None:
        super().__init__(sock)
        self._wake = wake

    def send(self, data: bytes) -> int:
        if self._wake.armed:
            return len(data)
        self._wake.armed = True
        sent: int = self._sock.send(data)
        return sent


class _WakeReader(_WakeWriter):
    __slots__ = ()

    def recv(self, size: int) -> bytes:
        data: bytes = self._sock.recv(size)
        # Cleared after reading: a packet queued from here on gets its own
        # wake-up, and one queued before is written by the pass that follows.
        self._wake.armed = False
        return data


class Client(mqtt.Client):
    """paho's client, cheaper per message; the protocol and its handling are paho's.

    Three of paho's internals are extended, each small and exercised by every
    MQTT test (made only where ``internals()`` allows, see ``client_class``):

    - the socket it creates is wrapped in ``ReadAheadSocket``;
    - one read wake-up handles every packet already received (up to
      ``MAX_PACKETS_PER_READ``) rather than one packet per ``select()``;
    - ``publish()`` from another thread wakes the network thread only when no
      wake-up is already pending (paho writes a byte to its socket pair for
      every message, so a flood costs a system call and a thread switch each).
    """

    @property
    def _sockpairR(self) -> Any:
        return self.__dict__.get("_wake_reader")

    @_sockpairR.setter
    def _sockpairR(self, sock: Any) -> None:
        wake = self.__dict__.setdefault("_wake", _Wake())
        wake.armed = False
        self.__dict__["_wake_reader"] = None if sock is None else _WakeReader(sock, wake)

    @property
    def _sockpairW(self) -> Any:
        return self.__dict__.get("_wake_writer")

    @_sockpairW.setter
    def _sockpairW(self, sock: Any) -> None:
        wake = self.__dict__.setdefault("_wake", _Wake())
        self.__dict__["_wake_writer"] = None if sock is None else _WakeWriter(sock, wake)

    def _create_socket(self) -> Any:
        return ReadAheadSocket(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        for _ in range(MAX_PACKETS_PER_READ):
            sock = self._sock
            if rc != mqtt.MQTT_ERR_SUCCESS or not isinstance(sock, ReadAheadSocket):
                break
            if sock.pending() == 0:
                break
            rc = super().loop_read(max_packets)
        return rc


def client_class() -> type[mqtt.Client]:
    """The class to make clients of: ``Client`` where paho's internals are as verified,
    else paho's own (the speed-ups off)."""
    return Client if internals().usable else mqtt.Client


# -- the outbox ------------------------------------------------------------------------------
class Outbox(Protocol):
    """What a client holds of the messages handed to it."""

    # Whether ``track`` must see every message handed over (False: it does nothing,
    # and the publisher spares the call).
    tracks: bool

    def held(self) -> int:
        """QoS 1 messages not yet acknowledged by the broker (sent or not)."""
        ...

    def unwritten(self) -> int:
        """Packets not yet written to the socket: where QoS 0 waits."""
        ...

    def track(self, mid: int, qos: int) -> None:
        """A message handed over (``publish`` queued it, or kept a QoS 1 one for a
        reconnect)."""
        ...


class NothingWaits:
    """The outbox of a client that hands every message over at once (a loopback, or
    a stand-in with no network): always empty."""

    tracks = False

    def held(self) -> int:
        return 0

    def unwritten(self) -> int:
        return 0

    def track(self, mid: int, qos: int) -> None:
        return None


class PahoTables(NothingWaits):
    """paho's own tables, read without its locks (``len`` of a dict or a deque is
    atomic): every QoS 1 message it holds, and every packet it has not written."""

    def __init__(self, client: mqtt.Client) -> None:
        self._client = client

    def held(self) -> int:
        return len(self._client._out_messages)

    def unwritten(self) -> int:
        return len(self._client._out_packet)


class Acknowledgements:
    """The outbox counted from paho's public ``on_publish`` callback (see the module doc).

    paho calls ``on_publish`` when a QoS 0 packet is written and when a QoS 1
    message is acknowledged, possibly before ``publish`` has returned to the
    tracking thread: a message settled before it was tracked is remembered by its
    message id (paho's ids are 16 bits, so this memory is bounded). When the
    connection is lost, paho drops the QoS 0 packets it had not written without a
    callback, so they stop counting at ``on_disconnect``; it keeps QoS 1 messages
    and sends them again after the reconnect, so they count until acknowledged.
    """

    tracks = True

    def __init__(self, client: mqtt.Client) -> None:
        self._lock = threading.Lock()
        self._held: set[int] = set()
        self._unwritten: set[int] = set()
        self._settled_early: set[int] = set()
        chained_publish: Any = client.on_publish
        chained_disconnect: Any = client.on_disconnect

        def on_publish(
            client: mqtt.Client,
            userdata: object,
            mid: int,
            reason_code: ReasonCode,
            properties: Properties,
        ) -> None:
            self.settled(mid)
            if chained_publish is not None:
                chained_publish(client, userdata, mid, reason_code, properties)

        def on_disconnect(
            client: mqtt.Client,
            userdata: object,
            flags: mqtt.DisconnectFlags,
            reason_code: ReasonCode,
            properties: Properties | None,
        ) -> None:
            self.disconnected()
            if chained_disconnect is not None:
                chained_disconnect(client, userdata, flags, reason_code, properties)

        client.on_publish = on_publish
        client.on_disconnect = on_disconnect

    def track(self, mid: int, qos: int) -> None:
        with self._lock:
            if mid in self._settled_early:
                self._settled_early.discard(mid)
            elif qos > 0:
                self._held.add(mid)
            else:
                self._unwritten.add(mid)

    def settled(self, mid: int) -> None:
        with self._lock:
            if mid in self._held:
                self._held.discard(mid)
            elif mid in self._unwritten:
                self._unwritten.discard(mid)
            else:
                self._settled_early.add(mid)

    def disconnected(self) -> None:
        with self._lock:
            self._unwritten.clear()

    def held(self) -> int:
        return len(self._held)

    def unwritten(self) -> int:
        return len(self._unwritten)


def outbox_of(client: object) -> Outbox:
    """How to count what ``client`` holds: paho's tables where its internals are as
    verified, else its acknowledgements; a client that is not paho's hands every
    message over at once."""
    if not isinstance(client, mqtt.Client):
        return NothingWaits()
    if internals().usable:
        return PahoTables(client)
    return Acknowledgements(client)
