"""The plant as an OPC UA server, checked by an OPC UA stack that is not ours.

open62541 (the ``o6`` package) browses the server from Objects, reads every node
docs/opcua.md documents, subscribes to a sensor, and calls the methods: a good
setpoint reaches the plant and the twin then shows it; a bad one gets the very
answer the MQTT ``cmd`` topic gives. With security on, anonymous and a wrong
password are refused and the login is taken over Basic256Sha256 sign-and-encrypt.
The client runs in a child process (``opcua_o6_client.py``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Recorder, bare_publisher, cli_main, get_free_port, wait_until

from api.runtime.line import Stack
from api.runtime.options import StackOptions
from sensors.opcua.nodes import NAMESPACE_URI
from twin.config.line import LineConfig, load_config
from twin.contract import SCHEMA_VERSION, STATION_STATES
from twin.state.snapshot import snapshot_from_view

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
CLIENT = Path(__file__).with_name("opcua_o6_client.py")
TEMPLATES = ["twin/lines/default.yaml", "examples/lines/cnc_cell.yaml"]


def o6_client(job: dict[str, Any], timeout_s: float = 180) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(CLIENT), json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"the o6 client printed no report:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def documented_nodes() -> tuple[list[str], list[str]]:
    """The line's and each station's node paths, as the table in docs/opcua.md lists them."""
    text = (ROOT / "docs" / "opcua.md").read_text()
    line_nodes, station_nodes = [], []
    for path in re.findall(r"^\| `([^`]+)` \|", text, flags=re.MULTILINE):
        if path.startswith("{line}/{station}/"):
            station_nodes.append(path.removeprefix("{line}/{station}/"))
        elif path.startswith("{line}/"):
            line_nodes.append(path.removeprefix("{line}/"))
    return line_nodes, station_nodes


def start_stack(config: LineConfig, **options: Any) -> Stack:
    stack = Stack(
        config,
        StackOptions(
            speed=600,
            seed=5,
            mqtt_port=get_free_port(),
            opcua=True,
            opcua_port=get_free_port(),
            **options,
        ),
    )
    stack.start()
    return stack


@pytest.fixture(params=TEMPLATES)
def demo_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    stack = start_stack(load_config(ROOT / request.param), opcua_anonymous=True)
    try:
        yield stack
    finally:
        stack.stop()


def line_path(config: LineConfig) -> str:
    return f"{config.line.site}/{config.line.area}/{config.line.id}"


def test_an_independent_client_browses_reads_every_documented_node_and_subscribes(
    demo_stack: Stack,
) -> None:
    config = demo_stack.config
    assert config is not None
    base = line_path(config)
    line_nodes, station_nodes = documented_nodes()
    assert "Status" in line_nodes, "docs/opcua.md lists no line nodes"
    assert "State" in station_nodes, "docs/opcua.md lists no station nodes"
    # Only the sensors and setpoints a station has: the docs list every kind.
    reads = [f"{base}/{name}" for name in line_nodes if "(" not in name]
    for spec in config.stations:
        for name in station_nodes:
            if name.startswith(("Sensors/", "Setpoints/")) or "(" in name:
                continue
            reads.append(f"{base}/{spec.id}/{name}")
    first = config.stations[0].id
    report = o6_client(
        {
            "url": demo_stack.opcua.endpoint if demo_stack.opcua else "",
            "namespace_uri": NAMESPACE_URI,
            "line_path": base,
            "read": reads,
            "units": [f"{base}/{first}/Sensors/Temperature"],
            "subscribe": f"{base}/{first}/Sensors/Temperature",
            "changes": 3,
        }
    )
    assert report["connected"], report
    assert "browse_error" not in report, report
    # Every station of the line file is there, with the documented children.
    assert set(report["stations"]) == {spec.id for spec in config.stations}
    top_level = {name.split("/")[0].split("(")[0] for name in station_nodes}
    for station, children in report["stations"].items():
        assert top_level <= set(children), (station, top_level - set(children))
    values = report["values"]
    failed = {node: value for node, value in values.items() if str(value).startswith("ERROR")}
    assert not failed, failed
    assert values[f"{base}/Status"] == "online"
    for spec in config.stations:
        state = values[f"{base}/{spec.id}/State"]
        assert state == "" or state in STATION_STATES, (spec.id, state)
        assert values[f"{base}/{spec.id}/Identification/Machines"] == spec.machines
    # The counters are the plant's: never more than the twin has seen, once it caught up.
    twin = snapshot_from_view(demo_stack.twin.view(), config)
    assert sum(values[f"{base}/{s.id}/Counters/PartsStarted"] for s in config.stations) > 0
    units = report["units"][f"{base}/{first}/Sensors/Temperature"]
    assert units["symbol"] == "°C"
    assert units["unit_id"] == 4408652  # UNECE "CEL"
    assert len(report["changes"]) >= 3, report.get("changes")
    assert len(set(report["changes"])) > 1, "the subscription brought the same value over and over"
    assert twin.stations, "the twin saw nothing"


def send_mqtt_command(stack: Stack, station: str, **fields: Any) -> None:
    assert stack.address is not None
    client = bare_publisher(f"mqtt://{stack.address.host}:{stack.address.port}")
    payload = {"schema_version": SCHEMA_VERSION, "ts_ms": 1, "source": "test", **fields}
    client.publish(
        stack.topics.station(station, "cmd"), json.dumps(payload), qos=1
    ).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_a_method_call_changes_a_setpoint_the_twin_then_shows_and_a_bad_one_gets_the_mqtt_answer(
    tmp_path: Path,
) -> None:
    config = load_config(ROOT / "twin/lines/default.yaml")
    stack = start_stack(config, opcua_anonymous=True)
    try:
        station = next(s for s in config.stations if s.process.temperature_c is not None)
        setpoint = station.process.temperature_c
        assert setpoint is not None
        # A value the line does not start with, inside the range.
        wanted = round(setpoint.min + 0.25 * (setpoint.max - setpoint.min), 1)
        assert wanted != setpoint.default
        base = line_path(config)
        node = f"{base}/{station.id}"
        url = stack.opcua.endpoint if stack.opcua else ""
        good = o6_client(
            {
                "url": url,
                "namespace_uri": NAMESPACE_URI,
                "line_path": base,
                "call": [node, f"{node}/SetSetpoint", ["temperature_c", wanted]],
                "read": [f"{node}/Setpoints/Temperature"],
            }
        )
        assert good["call"]["good"], good
        assert good["call"]["outputs"][0] is True, good["call"]

        def twin_setpoint() -> float:
            snapshot = snapshot_from_view(stack.twin.view(), config)
            return next(s for s in snapshot.stations if s.id == station.id).setpoints[
                "temperature_c"
            ]

        assert wait_until(lambda: twin_setpoint() == pytest.approx(wanted), timeout=120)
        # Out of range: the method's answer is the plant's, word for word as over MQTT.
        too_hot = setpoint.max + 50
        bad = o6_client(
            {
                "url": url,
                "namespace_uri": NAMESPACE_URI,
                "line_path": base,
                "call": [node, f"{node}/SetSetpoint", ["temperature_c", too_hot]],
            }
        )
        accepted, reason = bad["call"]["outputs"]
        assert accepted is False
        assert stack.address is not None
        acks = Recorder(
            f"mqtt://{stack.address.host}:{stack.address.port}",
            stack.topics.station(station.id, "cmd/ack"),
        )
        try:
            send_mqtt_command(
                stack,
                station.id,
                command_id="mqtt-too-hot",
                action="set_setpoint",
                setpoint="temperature_c",
                value=too_hot,
            )
            assert wait_until(
                lambda: any(b"mqtt-too-hot" in payload for _, payload, _ in acks.snapshot()),
                timeout=60,
            )
            mqtt_ack = next(
                json.loads(payload)
                for _, payload, _ in acks.snapshot()
                if b"mqtt-too-hot" in payload
            )
        finally:
            acks.close()
        assert mqtt_ack["accepted"] is False
        assert reason == mqtt_ack["reason"]
        assert twin_setpoint() == pytest.approx(wanted)
    finally:
        stack.stop()


def test_with_security_on_anonymous_and_a_wrong_password_are_refused_and_the_login_is_taken(
    tmp_path: Path,
) -> None:
    config = load_config(ROOT / "examples/lines/cnc_cell.yaml")
    cert_dir = tmp_path / "opcua"
    stack = start_stack(
        config,
        opcua_anonymous=False,
        opcua_username="operator",
        opcua_password="s3cret-enough",
        opcua_cert_dir=str(cert_dir),
    )
    try:
        assert (cert_dir / "server-cert.der").is_file()
        assert (cert_dir / "server-key.pem").is_file()
        base = line_path(config)
        job = {
            "url": stack.opcua.endpoint if stack.opcua else "",
            "namespace_uri": NAMESPACE_URI,
            "line_path": base,
            "read": [f"{base}/Status"],
            "server_cert": str(cert_dir / "server-cert.der"),
        }
        anonymous = o6_client(job)
        assert anonymous["connected"] is False, anonymous
        wrong = o6_client({**job, "username": "operator", "password": "guess"})
        assert wrong["connected"] is False, wrong
        good = o6_client({**job, "username": "operator", "password": "s3cret-enough"})
        assert good["connected"] is True, good
        assert good["values"][f"{base}/Status"] == "online"
    finally:
        stack.stop()


def test_up_refuses_opcua_without_a_login_outside_a_demo(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FACTORY_TWIN_API_TOKEN", "test-token-0123456789abcdef")
    monkeypatch.setenv("FACTORY_TWIN_HISTORY_PATH", str(tmp_path / "history.sqlite3"))
    monkeypatch.delenv("FACTORY_TWIN_OPCUA_USERNAME", raising=False)
    monkeypatch.delenv("FACTORY_TWIN_OPCUA_PASSWORD", raising=False)
    code = cli_main("up", "--opcua", "--allow-anonymous-mqtt", "--api-port", str(get_free_port()))
    assert code == 2
    error = capsys.readouterr().err
    assert "FACTORY_TWIN_OPCUA_USERNAME" in error
    assert "--demo" in error


def test_up_refuses_opcua_on_a_twin_only_twin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The server speaks for a plant this process runs: a twin-only twin has none, and
    # would otherwise start without the server it was asked for.
    monkeypatch.setenv("FACTORY_TWIN_HISTORY_PATH", str(tmp_path / "history.sqlite3"))
    code = cli_main(
        "up",
        "--demo",
        "--opcua",
        "--twin-only",
        "--line",
        "a/b/c",
        "--api-port",
        str(get_free_port()),
    )
    assert code == 2
    assert "drop --twin-only" in capsys.readouterr().err
