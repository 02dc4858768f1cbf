"""``factory-twin up``, run as a user runs it: what it refuses before it starts,
and a live line served until a signal stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess

import httpx
import pytest
from helpers import CLI, get_free_port, port_open, wait_until
from helpers import run_cli as run


def test_unreachable_broker_is_a_clear_error() -> None:
    port = get_free_port()
    result = run("up", "--mqtt-url", f"mqtt://127.0.0.1:{port}", "--api-port", str(get_free_port()))
    assert result.returncode == 1
    assert f"cannot reach the MQTT broker at mqtt://127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_up_refuses_an_anonymous_embedded_broker_outside_the_demo() -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("FACTORY_TWIN_MQTT_USERNAME", "FACTORY_TWIN_MQTT_PASSWORD")
    }
    env["FACTORY_TWIN_API_TOKEN"] = "a-real-token-0123456789abcdef"
    result = run("up", "--api-port", str(get_free_port()), env=env)
    assert result.returncode == 2, result.stderr
    assert "anonymous" in result.stderr
    assert "--allow-anonymous-mqtt" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_setting_from_environment_names_it() -> None:
    env = {**os.environ, "FACTORY_TWIN_SPEED": "-4"}
    result = run("up", env=env)
    assert result.returncode == 2
    assert "speed" in result.stderr


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_up_serves_growing_counters_and_stops_cleanly(stop_signal: signal.Signals) -> None:
    api_port, mqtt_port = get_free_port(), get_free_port()
    # Flags and their environment variables are equivalent: set the API port by env.
    env = {
        **os.environ,
        "FACTORY_TWIN_API_PORT": str(api_port),
        # Outside --demo the embedded broker takes logins only: the twin's here.
        "FACTORY_TWIN_MQTT_USERNAME": "twin",
        "FACTORY_TWIN_MQTT_PASSWORD": "cli-test-password",
    }
    process = subprocess.Popen(
        [*CLI, "up", "--speed", "300", "--mqtt-port", str(mqtt_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{api_port}"
        assert wait_until(lambda: port_open(api_port), timeout=30), "API never came up"

        def produced() -> int:
            return int(httpx.get(f"{base}/kpis", timeout=5).json()["produced"])

        assert wait_until(lambda: produced() > 0, timeout=20)
        before = produced()
        assert wait_until(lambda: produced() > before, timeout=20)
        health = httpx.get(f"{base}/healthz", timeout=5).json()
        assert health["status"] == "ok"
        assert health["line_status"] == "online"

        process.send_signal(stop_signal)
        # It stops: the bound only catches a hang, whatever else keeps the cores busy.
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate()[0]
    assert code == 0, output
    assert not port_open(mqtt_port), "embedded broker still listening"
    assert not port_open(api_port)
    assert "Traceback" not in output
