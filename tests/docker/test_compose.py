"""The Docker deployment: compose file, Dockerfile and mosquitto config agree.

Debian's docker-compose 1.29 ``config`` parses and checks the compose file
without a Docker engine and prints it resolved (absolute paths, defaults
filled in). The tests check that resolved form against the repository, and
boot Debian's mosquitto on the shipped config, since mosquitto 2 refuses
unknown options.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import find_binary, get_free_port, missing, port_open, wait_until

from sensors.mqtt import parse_mqtt_url

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker" / "compose.yaml"
MOSQUITTO_CONF_TARGET = "/mosquitto/config/mosquitto.conf"
MOSQUITTO_DEFAULT_QUEUE = 1000


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    binary = shutil.which("docker-compose")
    if binary is None:
        missing("docker-compose", "docker-compose")
    assert binary is not None
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    resolved: dict[str, Any] = yaml.safe_load(result.stdout)
    return resolved


def bind_source(service: dict[str, Any], target: str) -> Path:
    """The host path a service mounts at ``target``, in short or long volume syntax."""
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            mounted_at = rest.split(":")[0]
        else:
            source, mounted_at = volume.get("source", ""), volume.get("target", "")
        if mounted_at == target:
            return Path(source)
    raise AssertionError(f"nothing is mounted at {target}: {service.get('volumes')}")


def conf_values(path: Path, option: str) -> list[str]:
    """The values of ``option`` in a mosquitto config, ignoring comments."""
    pattern = re.compile(rf"^\s*{re.escape(option)}\s+(\S+)")
    return [
        match.group(1)
        for line in path.read_text("utf-8").splitlines()
        if (match := pattern.match(line))
    ]


def test_compose_defines_mosquitto_and_twin(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"mosquitto", "twin"} <= services.keys()
    for name in ("mosquitto", "twin"):
        assert "test" in services[name].get("healthcheck", {}), f"{name} has no healthcheck"
    assert services["twin"]["depends_on"]["mosquitto"]["condition"] == "service_healthy"


def test_twin_talks_to_the_mosquitto_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    address = parse_mqtt_url(services["twin"]["environment"]["FACTORY_TWIN_MQTT_URL"])
    assert address.host == "mosquitto"
    conf = bind_source(services["mosquitto"], MOSQUITTO_CONF_TARGET)
    listeners = [int(port) for port in conf_values(conf, "listener")]
    assert address.port in listeners, f"broker listens on {listeners}, twin uses {address.port}"


def test_mounted_mosquitto_config_is_in_the_repo_and_raises_the_queue(
    compose: dict[str, Any],
) -> None:
    conf = bind_source(compose["services"]["mosquitto"], MOSQUITTO_CONF_TARGET)
    assert conf.is_file(), f"{conf} does not exist"
    assert conf.resolve().is_relative_to(REPO)
    values = conf_values(conf, "max_queued_messages")
    assert values, f"{conf} sets no max_queued_messages; mosquitto's default drops messages"
    # 0 would mean no limit at all; the shipped config keeps a (large) bound.
    assert int(values[-1]) > MOSQUITTO_DEFAULT_QUEUE


def test_dockerfile_runs_factory_twin_up(compose: dict[str, Any]) -> None:
    build = compose["services"]["twin"]["build"]
    assert Path(build["context"]).resolve() == REPO
    dockerfile = Path(build["context"]) / build["dockerfile"]
    assert dockerfile.is_file(), f"{dockerfile} does not exist"
    commands = [
        line.removeprefix("CMD").strip()
        for line in dockerfile.read_text("utf-8").splitlines()
        if line.startswith("CMD")
    ]
    assert commands, f"{dockerfile} has no CMD"
    assert json.loads(commands[-1]) == ["factory-twin", "up"]


def test_mosquitto_accepts_the_shipped_config(tmp_path: Path) -> None:
    binary = find_binary("mosquitto")
    if binary is None:
        missing("mosquitto", "mosquitto")
    assert binary is not None
    port = get_free_port()
    shipped = (REPO / "docker" / "mosquitto" / "mosquitto.conf").read_text("utf-8")
    # Same options, but on a free loopback port and with data in tmp_path.
    local = re.sub(r"(?m)^listener .*$", f"listener {port} 127.0.0.1", shipped)
    local = re.sub(r"(?m)^persistence_location .*$", f"persistence_location {tmp_path}", local)
    # The password file is written by the compose service at start; make one here.
    passwd_binary = find_binary("mosquitto_passwd")
    if passwd_binary is None:
        missing("mosquitto_passwd", "mosquitto")
    assert passwd_binary is not None
    passwd = tmp_path / "passwd"
    subprocess.run([passwd_binary, "-c", "-b", str(passwd), "twin", "x"], check=True)
    passwd.chmod(0o600)
    local = re.sub(r"(?m)^password_file .*$", f"password_file {passwd}", local)
    local = re.sub(r"(?m)^acl_file .*$", f"acl_file {REPO / 'docker' / 'mosquitto' / 'acl'}", local)
    if os.geteuid() == 0:
        local += "\nuser root\n"  # else it drops to 'mosquitto' and cannot read tmp_path
    config = tmp_path / "mosquitto.conf"
    config.write_text(local, "utf-8")
    process = subprocess.Popen(
        [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        up = wait_until(lambda: port_open(port) or process.poll() is not None)
        assert process.poll() is None, f"mosquitto rejected the config:\n{process.stderr.read()}"
        assert up, "mosquitto did not open its port"
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(5)
