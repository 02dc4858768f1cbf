"""``factory-twin up`` stopped while the backfill runs: quietly, with nothing left behind.

The backfill's work happens in child processes. Stopping ``up`` (SIGTERM to it,
or Ctrl-C, which a terminal sends to the whole process group) while they write
must end every process of the group with exit code 0 and no traceback: no
KeyboardInterrupt in a child, no BrokenPipeError from a pipe whose reader left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from helpers import get_free_port, wait_until

COMMAND = [sys.executable, "-m", "api.cli"]


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigterm-to-up", "ctrl-c-to-the-group"])
def test_stopping_up_during_the_backfill_is_quiet(tmp_path: Path, how: str) -> None:
    api_port, mqtt_port = get_free_port(), get_free_port()
    env = {
        **os.environ,
        "FACTORY_TWIN_API_PORT": str(api_port),
        # Far longer than the test waits: the backfill is mid-way when the signal comes.
        "FACTORY_TWIN_BACKFILL_DAYS": "60",
        "FACTORY_TWIN_HISTORY_RETENTION_DAYS": "60",
        # Outside --demo the embedded broker takes logins only.
        "FACTORY_TWIN_MQTT_USERNAME": "twin",
        "FACTORY_TWIN_MQTT_PASSWORD": "startup-test-password",
    }
    process = subprocess.Popen(
        [
            *COMMAND,
            "up",
            "--mqtt-port",
            str(mqtt_port),
            "--history-path",
            str(tmp_path / "history.sqlite3"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives it
    )
    group = process.pid
    try:

        def writing() -> bool:
            try:
                backfill = httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=5).json()[
                    "backfill"
                ]
            except httpx.HTTPError:
                return False
            return bool(backfill["state"] == "backfilling" and backfill["fraction"] > 0)

        assert wait_until(writing, timeout=120, interval=0.2), "no backfill progress seen"
        if how == "sigterm-to-up":
            process.send_signal(signal.SIGTERM)
        else:
            os.killpg(group, signal.SIGINT)
        # Returns once every process that holds the output (the children too) is gone.
        output = process.communicate(timeout=60)[0]
    finally:
        if group_alive(group):
            os.killpg(group, signal.SIGKILL)
        if process.poll() is None:
            process.communicate(timeout=10)
    for noise in ("Traceback", "KeyboardInterrupt", "BrokenPipeError", "Error"):
        assert noise not in output, output
    assert process.returncode == 0, output
    assert "backfill stopped" in output
    assert wait_until(lambda: not group_alive(group), timeout=10), "a process of up is left"


@pytest.mark.integration
@pytest.mark.slow
def test_stopping_up_with_open_streams_is_quiet(tmp_path: Path) -> None:
    """SIGTERM while clients follow /stream: their streams end as a stream ends
    (the server does not have to cancel them), and the log holds no error."""
    import threading

    api_port = get_free_port()
    env = {
        **os.environ,
        "FACTORY_TWIN_API_PORT": str(api_port),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "FACTORY_TWIN_MODELS_PATH": str(tmp_path / "models"),
    }
    process = subprocess.Popen(
        [*COMMAND, "up", "--demo", "--no-backfill", "--mqtt-port", str(get_free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ended: list[bool] = []
    received: list[int] = []

    def follow() -> None:
        with httpx.stream("GET", f"http://127.0.0.1:{api_port}/stream", timeout=120) as answer:
            for chunk in answer.iter_bytes():
                received.append(len(chunk))
        ended.append(True)

    try:
        base = f"http://127.0.0.1:{api_port}"
        assert wait_until(lambda: _answers(base), timeout=120), "API never came up"
        readers = [threading.Thread(target=follow, daemon=True) for _ in range(3)]
        for reader in readers:
            reader.start()
        assert wait_until(lambda: len(received) >= 3, timeout=60)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=120)
        for reader in readers:
            reader.join(30)
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate()[0]
    assert code == 0, output
    assert ended == [True, True, True], "every stream ended, none was cut"
    assert "Traceback" not in output, output[-3000:]
    assert "ERROR" not in output, output[-3000:]


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code in (200, 503)
    except httpx.HTTPError:
        return False
