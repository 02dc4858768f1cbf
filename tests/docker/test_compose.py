"""The Docker deployment: compose file, Dockerfile, mosquitto and Grafana agree.

Debian's docker-compose 1.29 ``config`` parses and checks the compose file
without a Docker engine and prints it resolved (absolute paths, defaults
filled in). The tests check that resolved form against the repository, and
boot Debian's mosquitto on the shipped config, since mosquitto 2 refuses
unknown options. The Grafana dashboard is checked against the fields the
history writer produces (``twin.history.points.SCHEMA``) by ``docker/check.py``,
which ``make docker-check`` runs too; broken copies of the dashboard prove
that the check catches what it should.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import pytest
import yaml
from helpers import find_binary, get_free_port, missing, port_open, wait_until

from sensors.mqtt import parse_mqtt_url
from twin.contract import STATION_STATES
from twin.history.points import SCHEMA

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker" / "compose.yaml"
MOSQUITTO_CONF_TARGET = "/mosquitto/config/mosquitto.conf"
MOSQUITTO_DEFAULT_QUEUE = 1000
INFLUX_PORT = 8086
SECRETS = ("INFLUXDB_PASSWORD", "INFLUXDB_ADMIN_TOKEN", "GRAFANA_ADMIN_PASSWORD", "API_TOKEN")
# Where each stateful service keeps its data: a named volume must be mounted there.
DATA_DIRS = {
    "mosquitto": "/mosquitto/data",
    "influxdb": "/var/lib/influxdb2",
    "grafana": "/var/lib/grafana",
    "twin": "/data",
}


def load_check() -> ModuleType:
    """docker/check.py as a module (docker/ is not a package)."""
    spec = importlib.util.spec_from_file_location("docker_check", REPO / "docker" / "check.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


check = load_check()


def compose_binary() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        missing("docker-compose", "docker-compose")
    assert binary is not None
    return binary


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    command, env = check.compose_command(compose_binary(), "config")
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    resolved: dict[str, Any] = yaml.safe_load(result.stdout)
    return resolved


@pytest.fixture
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (check.DASHBOARDS / "line-overview.json").read_text("utf-8")
    )
    return loaded


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


def mounted(service: dict[str, Any], target: str) -> str | None:
    """The source mounted at ``target`` (a volume name or a host path), or None."""
    try:
        return str(bind_source(service, target))
    except AssertionError:
        return None


def test_compose_defines_every_service(compose: dict[str, Any]) -> None:
    assert compose["services"].keys() == {"mosquitto", "influxdb", "grafana", "twin"}


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    tests = {
        name: " ".join(service["healthcheck"]["test"])
        for name, service in compose["services"].items()
    }
    assert "influx ping" in tests["influxdb"]
    assert "wget -qO- http://localhost:3000/api/health" in tests["grafana"]
    assert "/healthz" in tests["twin"]


def test_services_wait_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    expected = {"twin": {"mosquitto", "influxdb"}, "grafana": {"influxdb"}}
    for name, needs in expected.items():
        depends_on = services[name]["depends_on"]
        assert set(depends_on) == needs
        for dependency in needs:
            assert depends_on[dependency]["condition"] == "service_healthy", (name, dependency)


def test_stateful_services_keep_their_data_in_named_volumes(compose: dict[str, Any]) -> None:
    for name, target in DATA_DIRS.items():
        source = mounted(compose["services"][name], target)
        assert source in compose["volumes"], f"{name}: {target} is not on a named volume"
    # One volume each, so that `down -v` on one concern does not touch another.
    sources = [mounted(compose["services"][name], target) for name, target in DATA_DIRS.items()]
    assert len(set(sources)) == len(sources)


def test_twin_writes_history_to_its_volume_and_to_influxdb(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = services["twin"]["environment"]
    history = PurePosixPath(env["FACTORY_TWIN_HISTORY_PATH"])
    assert history == PurePosixPath("/data/history.sqlite3")
    assert mounted(services["twin"], str(history.parent)) in compose["volumes"]
    # The registry and the jobs' reports live on the same volume.
    for setting in ("FACTORY_TWIN_MODELS_PATH", "FACTORY_TWIN_JOBS_PATH"):
        assert PurePosixPath(env[setting]).parent == history.parent, setting
    assert env["FACTORY_TWIN_INFLUX_URL"] == f"http://influxdb:{INFLUX_PORT}"
    assert any(port.endswith(f":{INFLUX_PORT}/tcp") for port in services["influxdb"]["ports"])
    init = services["influxdb"]["environment"]
    assert init["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert env["FACTORY_TWIN_INFLUX_ORG"] == init["DOCKER_INFLUXDB_INIT_ORG"]
    assert env["FACTORY_TWIN_INFLUX_BUCKET"] == init["DOCKER_INFLUXDB_INIT_BUCKET"]
    assert env["FACTORY_TWIN_INFLUX_TOKEN"] == init["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
    for option in ("USERNAME", "PASSWORD", "RETENTION"):
        assert init[f"DOCKER_INFLUXDB_INIT_{option}"], option


def test_grafana_provisions_the_influxdb_datasource(compose: dict[str, Any]) -> None:
    services = compose["services"]
    grafana, init = services["grafana"], services["influxdb"]["environment"]
    datasource = check.load_yaml(check.DATASOURCES_FILE)["datasources"][0]
    assert datasource["url"] == services["twin"]["environment"]["FACTORY_TWIN_INFLUX_URL"]
    # Grafana fills ${VAR} in provisioning files from its own environment.
    provisioned = {
        "organization": datasource["jsonData"]["organization"],
        "defaultBucket": datasource["jsonData"]["defaultBucket"],
        "token": datasource["secureJsonData"]["token"],
    }
    resolved = {
        key: re.sub(r"\$\{(\w+)\}", lambda m: grafana["environment"][m.group(1)], value)
        for key, value in provisioned.items()
    }
    assert resolved == {
        "organization": init["DOCKER_INFLUXDB_INIT_ORG"],
        "defaultBucket": init["DOCKER_INFLUXDB_INIT_BUCKET"],
        "token": init["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"],
    }


def test_grafana_mounts_the_repository_provisioning(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    provisioning = check.GRAFANA / "provisioning"
    for kind in ("datasources", "dashboards"):
        source = bind_source(grafana, f"/etc/grafana/provisioning/{kind}")
        assert source.resolve() == (provisioning / kind).resolve()
    for path in check.provider_paths():
        assert bind_source(grafana, path).resolve() == check.DASHBOARDS.resolve()


@pytest.mark.parametrize("secret", SECRETS)
def test_compose_refuses_to_start_without_a_secret(tmp_path: Path, secret: str) -> None:
    """No known default token or password: an unset secret stops the stack at once."""
    values = check.read_env_file(check.ENV_EXAMPLE)
    del values[secret]
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    env = {key: value for key, value in os.environ.items() if key not in SECRETS}
    result = subprocess.run(
        [compose_binary(), "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert f"set {secret}" in result.stderr


def test_env_example_holds_only_demo_secrets() -> None:
    values = check.read_env_file(check.ENV_EXAMPLE)
    secrets = {key: value for key, value in values.items() if re.search("PASSWORD|TOKEN", key)}
    assert set(SECRETS) <= secrets.keys()
    for key, value in secrets.items():
        assert "demo" in value, f"{key} in .env.example must be an obvious demo placeholder"


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


def test_dashboard_references_only_fields_the_writer_produces(dashboard: dict[str, Any]) -> None:
    uid = check.provisioned_datasource_uid()
    assert check.dashboard_errors(dashboard, SCHEMA, uid, STATION_STATES) == []
    # Not vacuous: every query names what it reads, and the panels cover the schema.
    measurements: set[str] = set()
    fields: set[tuple[str, str]] = set()
    for where, query in check.dashboard_queries(dashboard):
        refs = check.flux_references(query)
        assert refs.measurements, f"{where} names no measurement"
        measurements |= refs.measurements
        fields |= {(m, f) for m in refs.measurements for f in refs.fields}
    assert measurements == {"kpi", "state", "telemetry", "loss"}
    assert {("kpi", "oee"), ("kpi", "throughput_per_h"), ("state", "code"), ("loss", "cost")} <= (
        fields
    )
    assert {f for m, f in fields if m == "telemetry"} == set(SCHEMA["telemetry"])


def test_the_whole_grafana_check_passes() -> None:
    assert check.check_grafana() == []


def retarget(dashboard: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """A copy of the dashboard with ``old`` replaced by ``new`` in its first query using it."""
    broken = copy.deepcopy(dashboard)
    for panel in check.walk_panels(broken["panels"]):
        for target in panel.get("targets", []):
            if old in target["query"]:
                target["query"] = target["query"].replace(old, new)
                return broken
    raise AssertionError(f"no query contains {old!r}")


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        # A field the writer does not produce (a typo, or a rename in twin.history.points).
        ('r._field == "oee"', 'r._field == "oee_pct"', "field 'oee_pct' is not a field of 'kpi'"),
        # A real field, but of another measurement.
        ('r._field == "cost"', 'r._field == "oee"', "field 'oee' is not a field of 'loss'"),
        # A measurement the writer does not produce.
        ('r._measurement == "state"', 'r._measurement == "states"', "measurement 'states'"),
        # Bracket syntax (as Grafana's query builder writes it) is checked too.
        (
            'r._field == "temperature_c"',
            'r["_field"] == "temp_c"',
            "field 'temp_c' is not a field of 'telemetry'",
        ),
        # A comparison the check cannot verify is refused, not waved through.
        ('r._field == "power_kw"', "r._field =~ /power/", "cannot check"),
    ],
)
def test_a_broken_dashboard_copy_fails_the_check(
    dashboard: dict[str, Any], old: str, new: str, error: str
) -> None:
    uid = check.provisioned_datasource_uid()
    errors = check.dashboard_errors(retarget(dashboard, old, new), SCHEMA, uid, STATION_STATES)
    assert any(error in message for message in errors), errors


def test_a_dashboard_on_another_datasource_fails_the_check(dashboard: dict[str, Any]) -> None:
    broken = copy.deepcopy(dashboard)
    panel = next(p for p in broken["panels"] if p.get("targets"))
    panel["datasource"] = {"type": "influxdb", "uid": "some-other-influxdb"}
    uid = check.provisioned_datasource_uid()
    errors = check.dashboard_errors(broken, SCHEMA, uid, STATION_STATES)
    assert any("does not use datasource" in message for message in errors), errors


def test_station_states_panel_names_every_state(dashboard: dict[str, Any]) -> None:
    panel = next(p for p in dashboard["panels"] if p["type"] == "state-timeline")
    assert check.state_mapping_errors(panel, STATION_STATES) == []
    broken = copy.deepcopy(panel)
    del broken["fieldConfig"]["defaults"]["mappings"][0]["options"]["7"]
    assert check.state_mapping_errors(broken, STATION_STATES)


def test_queries_read_line_points_or_follow_the_station_variable(
    dashboard: dict[str, Any],
) -> None:
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["station"]["includeAll"]
    assert variables["station"]["multi"]
    line_panels = set()
    for panel in check.walk_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            # Line KPIs are the kpi points without a station tag; the rest are per station.
            if "not exists r.station" in target["query"]:
                line_panels.add(panel["title"])
            else:
                assert "${station:regex}" in target["query"], panel["title"]
    assert {"Line OEE", "Line OEE and throughput"} <= line_panels


@pytest.mark.parametrize("in_ci", [False, True])
def test_check_script_without_docker_compose(in_ci: bool) -> None:
    """Skips the compose part with the package to install; under CI=true, fails."""
    env = {**os.environ, "PATH": "/nonexistent", "CI": "true" if in_ci else "false"}
    result = subprocess.run(
        [sys.executable, str(REPO / "docker" / "check.py")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "apt-get install docker-compose" in result.stdout
    assert "ok: grafana" in result.stdout
    assert result.returncode == (1 if in_ci else 0), result.stdout + result.stderr
