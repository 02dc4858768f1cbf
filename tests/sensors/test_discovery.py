"""Finding the lines a broker carries from their retained status (``sensors.discovery``),
and ``up --twin-only`` without a line file choosing its line from them. Real
brokers: Debian's mosquitto and the embedded one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import Mosquitto, get_free_port

from sensors.discovery import find_lines
from sensors.mqtt import connect, disconnect, new_client, parse_mqtt_url

REPO = Path(__file__).resolve().parents[2]
TOKEN = "discovery-test-token-0123456789abcdef"


def _status(status: str, *, name: str | None = None, stations: int = 0) -> bytes:
    payload: dict[str, object] = {
        "schema_version": "1.2",
        "ts_ms": int(time.time() * 1000),
        "seq": 0,
        "source": "test-line",
        "status": status,
        "sim_time_s": 0.0 if status == "online" else None,
    }
    if name is not None:
        payload["description"] = {
            "name": name,
            "stations": [
                {
                    "id": f"s{index}",
                    "name": f"Station {index}",
                    "position": index,
                    "ideal_cycle_time_s": 30.0,
                    "input_buffer_capacity": None,
                }
                for index in range(stations)
            ],
        }
    return json.dumps(payload).encode()


def _retain(url: str, messages: dict[str, bytes]) -> None:
    client = new_client("discovery-test-publisher")
    connect(client, parse_mqtt_url(url))
    try:
        for topic, payload in messages.items():
            client.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
    finally:
        disconnect(client)


TWO_LINES = {
    "factory/v1/plant-a/body/line-1/status": _status("online", name="Line one", stations=3),
    "factory/v1/plant-b/paint/line-2/status": _status("offline"),
}


def test_every_line_with_a_retained_status_is_found_and_nothing_else(broker_url: str) -> None:
    _retain(
        broker_url,
        {
            **TWO_LINES,
            "factory/v1/plant-c/pack/line-3/status": b"not json",
            # Not a status, another root, another version: none of them is a line.
            "factory/v1/plant-a/body/line-1/s0/state": _status("online"),
            "other/v1/plant-d/x/line-4/status": _status("online"),
            "factory/v2/plant-e/x/line-5/status": _status("online"),
        },
    )
    found = find_lines(parse_mqtt_url(broker_url), wait_s=10)
    assert [(line.ref, line.status) for line in found] == [
        ("plant-a/body/line-1", "online"),
        ("plant-b/paint/line-2", "offline"),
        ("plant-c/pack/line-3", None),
    ]
    assert (found[0].name, found[0].stations) == ("Line one", 3)
    assert (found[1].name, found[1].stations) == (None, None)
    other = find_lines(parse_mqtt_url(broker_url), root="other", wait_s=10)
    assert [line.ref for line in other] == ["plant-d/x/line-4"]


def test_a_broker_without_lines_is_searched_for_the_time_given(broker_url: str) -> None:
    started = time.monotonic()
    assert find_lines(parse_mqtt_url(broker_url), wait_s=0.5) == []
    assert time.monotonic() - started >= 0.5


def _up(*args: str, wait_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTORY_TWIN_")}
    env.update(
        {
            "FACTORY_TWIN_API_TOKEN": TOKEN,
            "FACTORY_TWIN_LINE_WAIT_S": str(wait_s),
            "FACTORY_TWIN_API_PORT": str(get_free_port()),
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "up", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_twin_without_a_line_file_asks_which_line_when_the_broker_has_several(
    broker_url: str,
) -> None:
    _retain(broker_url, TWO_LINES)
    done = _up("--twin-only", "--mqtt-url", broker_url)
    assert done.returncode == 2, done.stderr
    assert "2 lines on" in done.stderr
    assert "plant-a/body/line-1 (online)" in done.stderr
    assert "plant-b/paint/line-2 (offline)" in done.stderr
    assert "--line site/area/line" in done.stderr


def test_a_twin_without_a_line_file_gives_up_when_no_line_announces_itself(
    mosquitto: Mosquitto,
) -> None:
    done = _up("--twin-only", "--mqtt-url", mosquitto.url, wait_s=1.0)
    assert done.returncode == 1, done.stderr
    assert "no line announced itself" in done.stderr
    assert "FACTORY_TWIN_LINE_WAIT_S" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--line", "a/b/c"], "use it with --twin-only and without --config"),
        (
            ["--twin-only", "--line", "a/b"],
            "invalid setting (flag or FACTORY_TWIN_ variable): line",
        ),
        (["--twin-only", "--demo"], "give --mqtt-url, or name the line with --line"),
    ],
)
def test_a_line_named_wrongly_is_refused_before_anything_starts(
    args: list[str], message: str
) -> None:
    done = _up(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
