"""Commands over a real broker: a setpoint change reaches the running plant,
shows in its telemetry, and is acknowledged; bad commands are rejected with
reasons. Once on Debian's mosquitto, once on the embedded broker."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import Recorder, bare_publisher, get_free_port, plant_clock, wait_until

from api.runtime.line import Stack
from api.runtime.options import StackOptions
from twin.config.line import load_config
from twin.contract import SCHEMA_VERSION

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(params=["mosquitto", "embedded"])
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    if request.param == "mosquitto":
        options = StackOptions(speed=600, seed=3, mqtt_url=request.getfixturevalue("mosquitto").url)
    else:
        options = StackOptions(speed=600, seed=3, mqtt_port=get_free_port())
    subject = Stack(load_config(), options)
    subject.start()
    try:
        # A command sent the moment start() returns must reach the plant.
        assert subject.commands is not None
        assert subject.commands.subscribed.is_set()
        yield subject
    finally:
        subject.stop()


def url_of(stack: Stack) -> str:
    assert stack.address is not None
    return f"mqtt://{stack.address.host}:{stack.address.port}"


def send(url: str, topic: str, **fields: Any) -> str:
    command_id = f"test-{time.monotonic_ns()}"
    payload = {
        "schema_version": SCHEMA_VERSION,
        "ts_ms": 1,
        "source": "test",
        "command_id": command_id,
    }
    payload.update(fields)
    client = bare_publisher(url)
    client.publish(topic, json.dumps(payload), qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
    return command_id


def welding_temperatures(recorder: Recorder, since: int) -> list[float]:
    return [
        json.loads(payload)["temperature_c"]
        for topic, payload, _ in recorder.snapshot()[since:]
        if topic.endswith("/welding/telemetry")
    ]


def test_setpoint_change_shows_in_telemetry_and_is_acknowledged(stack: Stack) -> None:
    url, topics = url_of(stack), stack.topics
    telemetry = Recorder(url, topics.station("welding", "telemetry"))
    acks = Recorder(url, topics.station("welding", "cmd/ack"))
    try:
        assert wait_until(lambda: len(welding_temperatures(telemetry, 0)) >= 30, timeout=60)
        before = welding_temperatures(telemetry, 0)
        mark = len(telemetry.snapshot())
        command_id = send(
            url,
            topics.station("welding", "cmd"),
            action="set_setpoint",
            setpoint="temperature_c",
            value=108,
        )
        assert wait_until(lambda: len(acks.snapshot()) >= 1, timeout=60)
        ack = json.loads(acks.snapshot()[0][1])
        assert ack["command_id"] == command_id
        assert ack["accepted"] is True
        # The welding cell ran near its 85 C default; now it heats towards 108 C. It
        # heats only while it welds: the wait ends when it has, however long the
        # line happened to starve it after the command (the next part may be late).
        assert max(before) < 90
        assert wait_until(lambda: max(welding_temperatures(telemetry, mark) or [0.0]) > 95, 60)
    finally:
        telemetry.close()
        acks.close()


def test_bad_commands_are_rejected_with_reasons(stack: Stack) -> None:
    url, topics = url_of(stack), stack.topics
    acks = Recorder(url, f"{topics.prefix}/+/cmd/ack")
    try:
        out_of_range = send(
            url,
            topics.station("machining", "cmd"),
            action="set_setpoint",
            setpoint="speed",
            value=7,
        )
        unknown = send(url, topics.station("lathe", "cmd"), action="stop")
        assert wait_until(
            lambda: sum(t.endswith("/cmd/ack") for t, _, _ in acks.snapshot()) >= 2, timeout=60
        )
        # amqtt also hands this wildcard subscriber the line's retained status:
        # keep the acks only.
        answers = {
            json.loads(p)["command_id"]: json.loads(p)
            for topic, p, _ in acks.snapshot()
            if topic.endswith("/cmd/ack")
        }
        assert answers[out_of_range]["accepted"] is False
        assert "out of range" in answers[out_of_range]["reason"]
        assert answers[unknown]["accepted"] is False
        assert "unknown station 'lathe'" in answers[unknown]["reason"]
    finally:
        acks.close()


def test_cli_sends_a_command_and_prints_the_ack(stack: Stack) -> None:
    base = [sys.executable, "-m", "api.cli", "cmd", "--mqtt-url", url_of(stack)]
    accepted = subprocess.run(
        [*base, "line", "set_speed", "300"], capture_output=True, text=True, timeout=30, check=False
    )
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout)["accepted"] is True
    assert stack.runner is not None
    assert wait_until(lambda: stack.runner is not None and stack.runner.speed == 300, timeout=60)
    rejected = subprocess.run(
        [*base, "machining", "set_setpoint", "speed", "9"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert rejected.returncode == 3
    assert "out of range" in json.loads(rejected.stdout)["reason"]


def test_pause_freezes_and_resume_continues_the_simulation(stack: Stack) -> None:
    url, topics = url_of(stack), stack.topics
    assert stack.plant is not None
    send(url, topics.line_command, action="pause")
    assert wait_until(lambda: stack.runner is not None and stack.runner.paused, timeout=60)
    # Three rounds of the plant's runner: running, each moves the clock on.
    frozen = plant_clock(stack)
    assert [plant_clock(stack) for _ in range(3)] == [frozen] * 3
    send(url, topics.line_command, action="resume")
    assert wait_until(lambda: plant_clock(stack) > frozen, timeout=60)
