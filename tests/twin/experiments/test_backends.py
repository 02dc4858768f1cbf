"""The what-if's and the optimizer's replications on a process pool and on a real
Dask LocalCluster: the same results as in this process, to the last bit."""

from __future__ import annotations

import json
import operator
import os
import subprocess
import sys
from pathlib import Path

import pytest
from feeding import feed_twin

from models.optimizer.evaluation import PlantSimulator
from twin.config.line import load_config
from twin.experiments.sweep_backends import DaskBackend, ProcessPoolBackend
from twin.experiments.whatif import ScenarioChanges, run_scenario
from twin.state.snapshot import snapshot_from_view

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["process", "dask"])
def backend(request: pytest.FixtureRequest) -> ProcessPoolBackend | DaskBackend:
    return ProcessPoolBackend(2) if request.param == "process" else DaskBackend(workers=2)


def test_a_scenario_on_a_backend_equals_the_scenario_here(
    backend: ProcessPoolBackend | DaskBackend,
) -> None:
    config = load_config()
    snapshot = snapshot_from_view(feed_twin(2, seed=4).twin.view(), config)
    changes = ScenarioChanges(stations_down={"welding": 0.5})
    seen: list[tuple[int, int]] = []

    def scenario(**extra: object) -> object:
        return run_scenario(
            config, snapshot, changes, horizon_s=1800, replications=3, seed=9, **extra
        )

    here = scenario()
    there = scenario(backend=backend, progress=lambda done, total: seen.append((done, total)))
    assert there == here
    assert seen == [(done, 6) for done in range(1, 7)]


def test_the_optimizers_evaluation_on_a_backend_equals_it_here(
    backend: ProcessPoolBackend | DaskBackend,
) -> None:
    config = load_config()
    setpoints = {"machining.speed": 1.1}
    here = PlantSimulator(config, hours=1, replications=3)(setpoints)
    there = PlantSimulator(config, hours=1, replications=3, backend=backend)(setpoints)
    assert there == here


def test_a_session_keeps_its_workers_between_calls(
    backend: ProcessPoolBackend | DaskBackend,
) -> None:
    def worker_pids() -> set[int]:
        return set(backend.map(operator.call, [os.getpid] * 6))

    with backend.session():
        kept = worker_pids() | worker_pids()
    assert 1 <= len(kept) <= 2  # the same two workers served both calls
    assert os.getpid() not in kept
    # Without a session each call starts its own workers.
    assert worker_pids().isdisjoint(worker_pids())


def test_the_optimizer_command_gives_the_same_recommendation_on_a_pool(tmp_path: Path) -> None:
    def optimize(*extra: str) -> dict[str, object]:
        out = tmp_path / f"result{len(extra)}.json"
        command = [
            sys.executable, "-m", "api.cli", "optimize", "--budget", "3", "--hours", "1",
            "--replications", "2", "--report-dir", str(tmp_path / f"report{len(extra)}"),
            "--result-json", str(out), *extra,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        result: dict[str, object] = json.loads(out.read_text())
        return result

    here = optimize()
    pooled = optimize("--backend", "process", "--workers", "2")
    for key in ("setpoints", "best_value", "expected", "feasible"):
        assert pooled[key] == here[key], key
