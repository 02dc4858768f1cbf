"""A training run as the API's jobs run it: in a child process, its progress and
log sent over a pipe, then its result, or why it failed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from api.children import start_child
from api.training import TrainingInputError, TrainingRequest, load_data, train_in_child
from models.training import SilentProgress
from twin.config.line import load_config


def received(connection: Any) -> list[tuple[Any, ...]]:
    messages = []
    while True:
        try:
            messages.append(connection.recv())
        except EOFError:
            return messages


def test_a_bad_source_is_refused_naming_what_it_lacks(tmp_path: Path) -> None:
    request = TrainingRequest(load_config(), tmp_path / "report", tmp_path / "models", "csv")
    with pytest.raises(TrainingInputError, match="--source csv needs --csv FILE"):
        load_data(request, SilentProgress())
    missing = TrainingRequest(
        load_config(),
        tmp_path / "report",
        tmp_path / "models",
        "history",
        history_path=str(tmp_path / "nowhere.sqlite3"),
    )
    with pytest.raises(TrainingInputError, match="no history store there"):
        load_data(missing, SilentProgress())


@pytest.mark.slow
def test_the_child_sends_its_stages_its_log_and_its_result(tmp_path: Path) -> None:
    request = TrainingRequest(
        load_config(),
        tmp_path / "report",
        tmp_path / "models",
        hours=48,
        stations=False,
        seed=3,
        force=True,
    )
    process, connection = start_child(train_in_child, (request,), "training-test")
    messages = received(connection)
    process.join(60)
    assert process.exitcode == 0
    stages = [message[1] for message in messages if message[0] == "stage"]
    assert "simulating the data" in stages
    assert "fitting and calibrating the defect model" in stages
    log = [message[1] for message in messages if message[0] == "say"]
    assert any(line.startswith("registered defect v1 (active") for line in log), log
    assert messages[-1][0] == "result"
    result = messages[-1][1]
    assert result["command"] == "train"
    assert [entry["name"] for entry in result["registered"]] == ["defect"]
    assert (tmp_path / "report" / "report.md").is_file()


def test_the_child_says_why_it_failed(tmp_path: Path) -> None:
    request = TrainingRequest(load_config(), tmp_path / "report", tmp_path / "models", "csv")
    process, connection = start_child(train_in_child, (request,), "training-test")
    messages = received(connection)
    process.join(60)
    assert messages[-1] == ("error", "--source csv needs --csv FILE and --schema FILE")
    assert not (tmp_path / "models").exists()


def test_the_api_starts_training_children_without_loading_the_libraries_they_use() -> None:
    """scikit-learn and SciPy (about 130 MB) load in the training child, not in the
    API that starts it: the modules that start a job or the first training, and the
    app, import neither."""
    code = (
        "import sys\n"
        "import api.app, api.first_training, api.routes.training, api.training\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'})\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "", done.stdout
