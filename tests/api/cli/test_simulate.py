"""``factory-twin simulate``, run as a user runs it: its reports, its progress,
and a bad line file refused at the start (by ``up`` too) naming the field."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import yaml
from helpers import run_cli as run

from twin.config.line import load_config


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
