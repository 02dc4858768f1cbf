"""The factory-twin command line, run as a user runs it."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from helpers import get_free_port, port_open, wait_until

from twin.config.line import load_config

COMMAND = [sys.executable, "-m", "api.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_simulate_json_report() -> None:
    result = run("simulate", "--hours", "8", "--seed", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["seed"] == 3
    assert report["hours"] == 8
    assert report["replications"] == 1
    assert report["config_hash"] == load_config().config_hash()
    assert report["config"]["line"]["id"] == "line1"
    kpis = report["runs"][0]["line_kpis"]
    assert kpis["observed_s"] == 8 * 3600
    assert kpis["produced"] == kpis["good"] + kpis["scrap"] > 0
    assert 0 < kpis["oee"] < 1
    assert report["summary"]["oee"]["mean"] == kpis["oee"]
    assert report["summary"]["oee"]["half_width"] is None  # one replication: no interval
    stations = report["runs"][0]["stations"]
    assert [s["id"] for s in stations] == [s.id for s in load_config().stations]
    # Deterministic: the same seed gives the same report.
    assert run("simulate", "--hours", "8", "--seed", "3", "--json").stdout == result.stdout


def test_simulate_replications_give_confidence_intervals() -> None:
    result = run("simulate", "--hours", "4", "--replications", "4", "--warmup", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert len(report["runs"]) == 4
    assert len(set(report["replication_seeds"])) == 4
    oee = report["summary"]["oee"]
    values = [run["line_kpis"]["oee"] for run in report["runs"]]
    assert oee["mean"] == pytest.approx(sum(values) / 4)
    assert oee["low"] < oee["mean"] < oee["high"]
    assert report["runs"][0]["observed_s"] == 4 * 3600
    assert report["warmup_hours"] == 1


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_simulate_reports_progress_in_simulated_hours_and_the_same_result(jobs: str) -> None:
    hours, replications = 1.5, 3
    arguments = ["simulate", "--hours", str(hours), "--replications", str(replications)]
    arguments += ["--warmup", "0.5", "--seed", "11", "--jobs", jobs, "--json"]
    quiet = run(*arguments)
    watched = run(*arguments, env=dict(os.environ, FACTORY_TWIN_PROGRESS="json"))
    assert watched.returncode == 0, watched.stderr
    lines = [json.loads(line) for line in watched.stderr.splitlines() if '"progress"' in line]
    reports = [line["progress"] for line in lines]
    assert {report["stage"] for report in reports} == {"simulating"}
    assert {report["total"] for report in reports} == {hours * replications}
    done = [report["done"] for report in reports]
    assert done == sorted(done)
    assert done[0] == 0
    assert done[-1] == pytest.approx(hours * replications)
    # Watching a run in steps does not change it: the same seed, the same bytes.
    assert watched.stdout == quiet.stdout


def test_simulate_csv_has_a_row_per_replication() -> None:
    result = run("simulate", "--hours", "2", "--replications", "3", "--csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(result.stdout.splitlines()))
    assert rows[0][:3] == ["row", "seed", "oee"]
    assert [row[0] for row in rows[1:]] == [
        "replication 0",
        "replication 1",
        "replication 2",
        "mean",
        "ci_low",
        "ci_high",
    ]


def test_dry_run_validates_and_prints_the_resolved_line() -> None:
    result = run("simulate", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    assert "machining" in result.stdout
    assert "resolved config:" in result.stdout


def test_simulate_text_summary() -> None:
    result = run("simulate", "--hours", "2")
    assert result.returncode == 0, result.stderr
    assert "OEE" in result.stdout
    assert "machining" in result.stdout


def test_simulate_rejects_non_positive_hours() -> None:
    result = run("simulate", "--hours", "-1")
    assert result.returncode == 2
    assert "argument --hours: must be > 0" in result.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["stations"][0].pop("processing_time"), "stations[0].processing_time"),
        (
            lambda d: d["stations"][1].update(machines="two"),
            "stations[1].machines: Input should be a valid integer",
        ),
        (
            lambda d: d["stations"][2].update(
                processing_time={"distribution": "exponential", "mean_s": -5}
            ),
            "stations[2].processing_time.mean_s: Input should be greater than 0",
        ),
    ],
    ids=["missing-field", "wrong-type", "negative-time"],
)
def test_invalid_config_fails_at_start_naming_the_field(
    tmp_path: Path, change: object, expected: str
) -> None:
    data = load_config().model_dump(mode="json", exclude_none=True)
    change(data)  # type: ignore[operator]
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(data))
    for command in (["simulate"], ["up", "--api-port", "0", "--mqtt-port", "0"]):
        result = run(*command, "--config", str(path))
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr
        assert "Traceback" not in result.stderr


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
        [*COMMAND, "up", "--speed", "300", "--mqtt-port", str(mqtt_port)],
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


def test_schemas_check_passes_on_the_committed_files() -> None:
    result = run("schemas", "--check", "--out", str(Path(__file__).parents[3] / "docs/schemas"))
    assert result.returncode == 0, result.stderr


def test_schemas_check_detects_stale_files(tmp_path: Path) -> None:
    assert run("schemas", "--out", str(tmp_path)).returncode == 0
    (tmp_path / "event.schema.json").write_text("{}\n")
    result = run("schemas", "--check", "--out", str(tmp_path))
    assert result.returncode == 1
    assert "event.schema.json" in result.stderr


# Line configs only: examples/sweeps holds sweep specs and examples/sites site files.
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
EXAMPLE_CONFIGS = sorted(
    path for folder in ("lines", "validation") for path in (EXAMPLES / folder).glob("*.yaml")
)


@pytest.mark.parametrize(
    "path", EXAMPLE_CONFIGS, ids=lambda path: f"{path.parent.name}/{path.stem}"
)
def test_simulate_prints_kpis_with_confidence_intervals_for_every_example(path: Path) -> None:
    result = run("simulate", "--config", str(path), "--hours", "0.5", "--replications", "2")
    assert result.returncode == 0, result.stderr
    assert "OEE" in result.stdout
    assert "±" in result.stdout
    assert "95% confidence interval" in result.stdout
