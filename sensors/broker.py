"""The embedded MQTT broker, so that ``factory-twin up`` needs nothing running.

Two brokers install from PyPI with the rest of the project, and neither needs
a system package or binary; both listen on loopback only:

- ``rumqttd`` (the default, ``sensors.broker_rumqttd``): a compiled broker in
  a child process of its own. It carries every shipped line at its default
  speed with the twin keeping up (docs/scaling.md).
- ``amqtt``: a pure-Python MQTT 3.1.1 broker on its own asyncio loop in a
  thread of this process. It shares the interpreter with the plant, the twin
  and the API, and carries about a third of what the bottling line publishes
  at 60x; it stays as the fallback where no ``iotcore`` wheel installs, and on
  request (``FACTORY_TWIN_EMBEDDED_BROKER=amqtt``).

For anything beyond one machine, point ``mqtt_url`` at mosquitto, EMQX or
HiveMQ; the tests run the same pipeline on Debian's mosquitto too.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from sensors.broker_rumqttd import RumqttdBroker, rumqttd_available
from sensors.mqtt import MqttError

BrokerKind = Literal["rumqttd", "amqtt"]
BROKER_KINDS: tuple[BrokerKind, ...] = ("rumqttd", "amqtt")
DEFAULT_BROKER: BrokerKind = "rumqttd"

log = logging.getLogger(__name__)
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 3.0


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class _Backend(Protocol):
    kind: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


class EmbeddedBroker:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        logins: Mapping[str, str] | None = None,
        kind: BrokerKind = DEFAULT_BROKER,
    ) -> None:
        """``logins``: user name to password; only these may connect (none: anyone
        on the machine may, which only a local demo should allow). ``kind``: the
        broker (rumqttd falls back to amqtt, with a warning, where the ``iotcore``
        wheel is not installed)."""
        if kind not in BROKER_KINDS:
            raise ValueError(f"embedded broker {kind!r}: choose one of {', '.join(BROKER_KINDS)}")
        self.host = host
        self.port = port
        self.logins = dict(logins or {})
        self.requested = kind
        self._backend: _Backend | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def kind(self) -> str:
        """The broker that runs (or would run): rumqttd, or amqtt."""
        if self._backend is not None:
            return self._backend.kind
        return "rumqttd" if self.requested == "rumqttd" and rumqttd_available() else "amqtt"

    @property
    def pid(self) -> int | None:
        """The broker's child process (rumqttd); None when it runs in this process."""
        backend = self._backend
        return backend.pid if isinstance(backend, RumqttdBroker) else None

    def start(self) -> None:
        if not port_is_free(self.host, self.port):
            raise MqttError(
                f"cannot start the embedded MQTT broker: port {self.port} on {self.host} is in "
                "use. Pick another with --mqtt-port, or use the broker already there with "
                f"--mqtt-url mqtt://{self.host}:{self.port}"
            )
        backend: _Backend
        if self.kind == "rumqttd":
            backend = RumqttdBroker(self.host, self.port, self.logins)
        else:
            if self.requested == "rumqttd":
                log.warning(
                    "the iotcore package (rumqttd) is not installed: the embedded broker is "
                    "amqtt, which carries about a third of the bottling line at 60x "
                    "(docs/scaling.md)"
                )
            backend = AmqttBroker(self.host, self.port, self.logins)
        backend.start()
        self._backend = backend

    def stop(self) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.stop()

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AmqttBroker:
    """amqtt on its own asyncio loop, in a thread of this process."""

    kind = "amqtt"

    def __init__(self, host: str, port: int, logins: Mapping[str, str]) -> None:
        self.host = host
        self.port = port
        self.logins = dict(logins)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": (
                {"sensors.broker_auth.LoginAuthPlugin": {"users": self.logins}}
                if self.logins
                else {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
            ),
        }

    def start(self) -> None:
        # amqtt logs every connection, and its state machine (transitions) every
        # step, at INFO; its WARNINGs are about its own bookkeeping of in-flight
        # messages when a client leaves. Our ingest counts loss itself.
        logging.getLogger("amqtt").setLevel(logging.ERROR)
        logging.getLogger("transitions").setLevel(logging.WARNING)
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        async def boot() -> None:
            from amqtt.broker import Broker

            self._broker = Broker(self._config(), loop=loop)
            await self._broker.start()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(boot())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name="embedded-mqtt-broker", daemon=True)
        self._thread.start()
        if not started.wait(START_TIMEOUT_S):
            raise MqttError(f"the embedded MQTT broker did not start within {START_TIMEOUT_S} s")
        if failure:
            raise MqttError(f"the embedded MQTT broker failed to start: {failure[0]}")
        log.info("embedded MQTT broker (amqtt) listening on %s", self.url)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._broker is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), loop)
            try:
                future.result(STOP_TIMEOUT_S)
            except Exception:  # shutting down anyway
                log.warning("embedded broker did not shut down cleanly", exc_info=True)
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_TIMEOUT_S)
        self._loop = None
        self._thread = None
        self._broker = None
