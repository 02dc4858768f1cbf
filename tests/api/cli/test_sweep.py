"""``factory-twin sweep``: a bad spec named in one line, the summary and the
report files, and Ctrl-C stopping every worker before it exits 130."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from helpers import REPO, wait_until

from api.cli.sweep import EXIT_CANCELLED, add_parser
from twin.experiments.sweep import SweepResult

# Ctrl-C as a terminal delivers it: a suite started in the background (bash's `&`
# without job control, nohup) hands its children SIGINT ignored, and a Python
# started so never raises KeyboardInterrupt.
HARNESS = """
import argparse, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from api.cli.sweep import add_parser
parser = argparse.ArgumentParser(prog="factory-twin")
add_parser(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(["sweep", *sys.argv[1:]])
sys.exit(args.handler(args))
"""


def sweep_cli(*argv: str) -> int:
    """``factory-twin sweep`` through its own parser (as api/cli/main.py registers it)."""
    parser = argparse.ArgumentParser(prog="factory-twin")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sweep", *argv])
    code: int = args.handler(args)
    return code


def write_spec(path: Path, **fields: Any) -> Path:
    path.write_text(yaml.safe_dump(fields), "utf-8")
    return path


def test_a_bad_spec_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write_spec(tmp_path / "bad.yaml", factors=[{"name": "buffers.welding", "levels": [2]}])
    bad.write_text(bad.read_text() + "replicatons: 3\n")
    with pytest.raises(SystemExit) as exited:
        sweep_cli(str(bad))
    assert exited.value.code == 2
    assert "replicatons: unknown field" in capsys.readouterr().err
    unknown = write_spec(tmp_path / "unknown.yaml", factors=[{"name": "crew", "levels": [1]}])
    with pytest.raises(SystemExit) as exited:
        sweep_cli(str(unknown))
    assert exited.value.code == 2
    assert "factors[0] (crew)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        sweep_cli(str(unknown), "--scheduler", "tcp://127.0.0.1:1", "--backend", "process")
    assert exited.value.code == 2


@pytest.mark.slow
def test_the_cli_prints_the_summary_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_file = write_spec(
        tmp_path / "spec.yaml",
        factors=[
            {"name": "buffers.welding", "levels": [2, 6]},
            {"name": "stations.machining.setpoints.speed", "low": 0.8, "high": 1.2},
        ],
        replications=3,
        hours=2,
        seed=3,
    )
    out = tmp_path / "report"
    assert sweep_cli(str(spec_file), "--workers", "1", "--out", str(out), "--seed", "4") == 0
    printed = capsys.readouterr().out
    assert "Pareto front" in printed
    assert str(out) in printed
    document = json.loads((out / "sweep.json").read_text("utf-8"))
    result = SweepResult.model_validate(document["result"])
    assert result.spec.seed == 4  # --seed overrides the spec
    assert len(result.points) == 4
    assert len(result.runs) == 4 * 3
    assert document["run"]["backend"].startswith("process pool")
    assert result.pareto == [point.index for point in result.points if point.pareto]
    rows = list(csv.DictReader((out / "sweep.csv").open(encoding="utf-8")))
    assert [int(row["point"]) for row in rows] == [0, 1, 2, 3]
    assert float(rows[0]["throughput_per_h_mean"]) == result.points[0].kpis["throughput_per_h"].mean
    assert "| point |" in (out / "sweep.md").read_text("utf-8")
    for name in ("throughput_vs_wip.png", "main_effects.png"):
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), name
        assert len(data) > 5000, name


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


# CPU seconds a pool worker has surely spent simulating past (importing costs ~0.4 s).
SIMULATING_CPU_S = 2.0


def _cpu_s(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


def alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
@pytest.mark.integration
def test_ctrl_c_stops_every_worker_and_exits_130(tmp_path: Path) -> None:
    # Runs of 100,000 simulated hours (minutes each): the sweep is surely mid-run when
    # SIGINT comes, and a sweep that let its running tasks finish would not exit in
    # the minute communicate() gives it.
    spec_file = write_spec(
        tmp_path / "long.yaml",
        factors=[{"name": "buffers.welding", "levels": [2, 4, 6, 8]}],
        replications=4,
        hours=100_000,
    )
    command = [sys.executable, "-c", HARNESS, str(spec_file), "--workers", "2"]
    command += ["--out", str(tmp_path / "out")]
    env = dict(os.environ, FACTORY_TWIN_PROGRESS="json")
    sweep = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO, start_new_session=True
    )
    workers: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and sweep.poll() is None:
            workers = [
                child
                for child in descendants(sweep.pid)
                if "spawn_main" in " ".join(child.cmdline())
            ]
            if len(workers) == 2:
                break
            time.sleep(0.2)
        assert len(workers) == 2, "the pool's two workers did not start"
        # Mid-run: each worker has spent more CPU than its imports cost (about 0.4 s),
        # counted in CPU seconds, so a busy machine only makes the wait longer.
        assert wait_until(
            lambda: all(_cpu_s(worker) >= SIMULATING_CPU_S for worker in workers),
            timeout=120,
            interval=0.2,
        ), [_cpu_s(worker) for worker in workers]
        children = descendants(sweep.pid)
        os.kill(sweep.pid, signal.SIGINT)
        _, errors = sweep.communicate(timeout=60)
    finally:
        if sweep.poll() is None:  # it hangs: its workers go down with it
            for worker in workers:
                with contextlib.suppress(psutil.NoSuchProcess):
                    worker.kill()
            sweep.kill()
            sweep.wait()
    assert sweep.returncode == EXIT_CANCELLED, errors
    assert "cancelled" in errors
    assert not (tmp_path / "out").exists()
    # A hang bound: a worker left running its task would outlive it by minutes.
    wait_until(lambda: not any(alive(child) for child in children), timeout=60, interval=0.1)
    assert not [child.pid for child in children if alive(child)], "orphan workers"
