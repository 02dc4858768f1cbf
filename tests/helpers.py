"""Helpers shared by the tests: free ports, waiting, real brokers, a bare MQTT client.

Importable from any test because pytest puts ``tests/`` on ``sys.path``
(``pythonpath`` in pyproject.toml).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from api.children import stop_process
from sensors.mqtt import parse_mqtt_url

IN_CI = os.environ.get("CI", "").lower() == "true"
REPO = Path(__file__).resolve().parents[1]


# ``factory-twin`` as a user runs it, from this checkout.
CLI = [sys.executable, "-m", "api.cli"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``factory-twin`` with these arguments, to its end; its output captured."""
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def cli_main(*argv: str) -> int:
    """``factory-twin`` with these arguments in this process: its exit code."""
    from api.cli.main import main

    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main(list(argv)))
    return int(exited.value.code or 0)


class _RetiredDetector:
    """Stands in for the drift detector of earlier versions in a registry: its file
    names the class they saved, which no longer exists."""

    def __init__(self) -> None:
        self.persistence = 2


_RetiredDetector.__module__ = "models.anomaly.detector"
_RetiredDetector.__name__ = _RetiredDetector.__qualname__ = "LineAnomalyDetector"


def register_retired_detector(root: Path) -> None:
    """An active "anomaly" model in the registry at ``root``, as an earlier version
    registered its drift detector (the sensor watch replaced it)."""
    from models.registry.store import ModelRegistry

    retired = "models.anomaly.detector.LineAnomalyDetector"
    card = {"kind": "anomaly", "data": {"windows": {"welding": 900}}}
    ModelRegistry(root, trusted=[retired]).register("anomaly", _RetiredDetector(), card)


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    """A real plot: a PNG, and too big to be an empty canvas."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 5_000, f"{path} is too small to hold a plot"


def missing(binary: str, package: str) -> None:
    """Skip (or, in CI, fail) because ``binary`` from Debian's ``package`` is missing."""
    message = (
        f"{binary} not found: install Debian's '{package}' package (apt-get install {package})"
    )
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/local/sbin"):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def get_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def wait_until(
    condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def plant_clock(stack: Any, timeout: float = 60.0) -> float:
    """A live stack's plant clock, read on the plant's thread between two of its
    runner's rounds: running, each round moves it on; paused, the runner goes round
    and the clock stays. Three equal readings in a row show a frozen plant, with no
    wall-clock wait."""
    runner, plant = stack.runner, stack.plant
    assert runner is not None, "the stack runs no plant"
    assert plant is not None, "the stack runs no plant"
    seen: queue.Queue[float] = queue.Queue()
    runner.call_soon(lambda: seen.put(plant.now))
    return seen.get(timeout=timeout)


class Mosquitto:
    """A private mosquitto on a free loopback port, stopped by PID."""

    def __init__(
        self, binary: str, workdir: Path, *, persistence: bool = False, extra: str = ""
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.persistence = persistence
        self.extra = extra
        self.port = get_free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = self.workdir / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            + (self.extra or "allow_anonymous true\n")
            +
            # mosquitto's default of 1000 queued messages drops silently.
            "max_queued_messages 0\n"
            + (
                f"persistence true\npersistence_location {self.workdir}/\n"
                if self.persistence
                else "persistence false\n"
            )
            # Run as root, mosquitto drops to the 'mosquitto' user and then
            # cannot write its database into our temporary directory.
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        with open(self.workdir / "mosquitto.log", "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=log
            )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace_s=5, kill_grace_s=5)
        self.process = None


class Recorder:
    """A bare paho subscriber, independent of the project's ingest."""

    def __init__(self, url: str, topic: str, qos: int = 1) -> None:
        address = parse_mqtt_url(url)
        self.topic = topic
        self.messages: list[tuple[str, bytes, bool]] = []
        self.stray: list[str] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"recorder-{uuid.uuid4().hex[:12]}"
        )
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=qos)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError(f"no SUBACK from {url}")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            if not mqtt.topic_matches_sub(self.topic, msg.topic):
                # amqtt 0.12 hands a new subscriber retained messages of other
                # topics too; count them, keep only what was asked for.
                self.stray.append(msg.topic)
                return
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def snapshot(self) -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def bare_publisher(url: str) -> mqtt.Client:
    address = parse_mqtt_url(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bare-pub-{time.monotonic_ns()}")
    client.connect(address.host, address.port)
    client.loop_start()
    return client


class MemoryClient:
    """Stands in for paho where no transport is under test: records each publish
    and hands it to ``forward`` (for example an ingest's ``handle``) if given."""

    class Info:
        rc = 0  # MQTT_ERR_SUCCESS

        def is_published(self) -> bool:
            return True

        def wait_for_publish(self, timeout: float | None = None) -> None:
            return None

    def __init__(self, forward: Callable[[str, bytes], object] | None = None) -> None:
        self.forward = forward
        self.messages: list[tuple[str, bytes, int, bool]] = []

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> Info:
        self.messages.append((topic, payload, qos, retain))
        if self.forward is not None:
            self.forward(topic, payload)
        return self.Info()

    def will_set(self, *args: object, **kwargs: object) -> None:
        return None


class VictoriaMetrics:
    """A private VictoriaMetrics on a free loopback port, stopped (or killed) by PID.

    It takes InfluxDB line protocol on ``/api/v2/write`` (any org and token) and
    names a series ``<measurement>_<field>``, with the tags as labels and ms
    timestamps. It runs without deduplication: a sample written twice is exported
    twice (InfluxDB would replace it silently), so a test sees a sink that sends
    a point again.
    """

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.data_path = workdir / "victoria-metrics-data"
        self.port = get_free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        """Start (again: same port, same data) and wait until ``/health`` answers."""
        with open(self.workdir / "victoria-metrics.log", "ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"-storageDataPath={self.data_path}",
                    f"-httpListenAddr=127.0.0.1:{self.port}",
                    "-search.latencyOffset=0s",
                    "-search.disableCache",
                ],
                stdout=log,
                stderr=log,
            )
        if not wait_until(self.healthy, timeout, interval=0.1):
            self.stop()
            raise TimeoutError(
                f"victoria-metrics on port {self.port} not healthy after {timeout} s"
            )

    def healthy(self) -> bool:
        try:
            return self._get("/health").strip() == b"OK"
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush; what it had not written to disk is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace_s=10)
        self.process = None

    def _get(self, path: str, query: dict[str, str] | None = None) -> bytes:
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
            body: bytes = response.read()
        return body

    def force_flush(self) -> None:
        """Write buffered samples to disk (before a kill) and make them visible to reads."""
        self._get("/internal/force_flush")

    def export(self) -> list[dict[str, Any]]:
        """Every stored series: newline-delimited JSON of ``/api/v1/export``."""
        body = self._get("/api/v1/export", {"match[]": '{__name__=~".+"}'})
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]], int], list[float]]:
        """Exported values by (series name, labels, ms): more than one is a duplicate."""
        found: dict[tuple[str, frozenset[tuple[str, str]], int], list[float]] = {}
        for series in self.export():
            labels = dict(series["metric"])
            name = labels.pop("__name__")
            key_labels = frozenset(labels.items())
            for value, timestamp in zip(series["values"], series["timestamps"], strict=True):
                found.setdefault((name, key_labels, int(timestamp)), []).append(float(value))
        return found


# -- a real browser against an app served on loopback -----------------------------------------
# Debian's chromium, as the machine's probe starts it: without the background
# networking flags it keeps trying (and failing) to reach Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; the base URL.
    Leaving stops the server (and so the app's lifespan) and waits for it."""
    import uvicorn

    port = get_free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    assert wait_until(lambda: server.started, timeout=30), "API did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        assert not thread.is_alive()


@contextmanager
def chromium() -> Iterator[Any]:
    """Headless Debian chromium driven by Playwright; never a downloaded browser.
    Skips (fails under CI=true) without the chromium package."""
    executable = find_binary("chromium")
    if executable is None:
        missing("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


# The optimizer answers 404 until it has a recommendation: the browser logs that
# fetch as "Failed to load resource", which is an answer, not a page error.
EXPECTED_FAILED_LOADS = ("/optimize/recommendation", "/model")


def watched_page(browser: Any) -> tuple[Any, list[str]]:
    """A new page and the list its JS errors and unexpected console errors go to:
    a test asserts the list is empty at its end."""
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    problems: list[str] = []

    def console(message: Any) -> None:
        if message.type != "error":
            return
        url = str(message.location.get("url", ""))
        failed_load = message.text.startswith("Failed to load resource")
        if not (failed_load and any(path in url for path in EXPECTED_FAILED_LOADS)):
            problems.append(f"console: {message.text} {message.location}")

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    return page, problems
