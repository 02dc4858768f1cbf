"""The embedded MQTT broker, so that ``factory-twin up`` needs nothing running.

We embed amqtt, a maintained pure-Python MQTT 3.1.1 broker: it installs from
PyPI with the rest of the project on every platform, and needs no system
package or binary. It runs on its own asyncio loop in a background thread and
listens on loopback only. For anything beyond a demo, point ``mqtt_url`` at
mosquitto, EMQX or HiveMQ; the tests run the same pipeline on Debian's
mosquitto too.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Mapping
from typing import Any

from sensors.mqtt import MqttError

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


class EmbeddedBroker:
    def __init__(
        self, host: str = "127.0.0.1", port: int = 1883, logins: Mapping[str, str] | None = None
    ) -> None:
        """``logins``: user name to password; only these may connect (none: anyone
        on the machine may, which only a local demo should allow)."""
        self.host = host
        self.port = port
        self.logins = dict(logins or {})
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
        if not port_is_free(self.host, self.port):
            raise MqttError(
                f"cannot start the embedded MQTT broker: port {self.port} on {self.host} is in "
                "use. Pick another with --mqtt-port, or use the broker already there with "
                f"--mqtt-url mqtt://{self.host}:{self.port}"
            )
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

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
