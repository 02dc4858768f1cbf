"""``factory-twin learn --from-history``: the line learnt from the history store.

A plant runs the hidden line of bench/calibration.py twice (two runs of the
line, each restarting its clock at 0, as two ``factory-twin up`` do), its
messages going through an ingest both to the history store, as the live stack
writes it, and to a learner fed live. Learnt from history, the line's
breakdowns, repairs, changeovers and processing times are exactly what the live
learner learnt (history keeps the line's clock), the hidden changes show as
drift, and what history cannot tell (the products) is said, not guessed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from helpers import run_cli as run

from sensors.loopback import LoopbackLine
from twin.config.line import LineConfig, load_config
from twin.history.points import HistoryWriter
from twin.history.recorder import HistoryRecorder
from twin.history.store import SqliteStore
from twin.learning.line import learn_line
from twin.learning.observer import LineLearner

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "bench"))
from calibration import HIDDEN_CHANGES, hidden_line  # noqa: E402 - the benchmark's hidden line

HOURS = (30.0, 18.0)
# What hidden_line changes, as the learnt parameters name them.
CHANGED = HIDDEN_CHANGES


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LineLearner]:
    path = tmp_path_factory.mktemp("learn") / "history.sqlite3"
    store = SqliteStore(path, retention_ms=None)
    writer = HistoryWriter(store)
    line = load_config().line
    recorder = HistoryRecorder(writer, line.site, line.area, line.id)
    live = LineLearner()

    def accepted(station: str | None, message: object) -> None:
        live.observe(station, message)
        recorder.record(station, message)  # type: ignore[arg-type]

    for seed, hours in enumerate(HOURS, start=1):
        live.restart()
        LoopbackLine(hidden_line(), seed, accepted).run_until(hours * 3600.0)
    writer.flush()
    store.close()
    return path, live


def test_the_line_learnt_from_history_is_the_line_learnt_live(
    history: tuple[Path, LineLearner], tmp_path: Path
) -> None:
    path, live = history
    out, result_file = tmp_path / "learnt.yaml", tmp_path / "result.json"
    done = run(
        "learn",
        "--from-history",
        "--history-path",
        str(path),
        "--out",
        str(out),
        "--result-json",
        str(result_file),
    )
    code, output = done.returncode, done.stdout + done.stderr
    assert code == 0, output
    learnt = LineConfig.model_validate(yaml.safe_load(out.read_text()))
    result = json.loads(result_file.read_text())
    assert result["runs"] == len(HOURS)
    # From each run's first message to its last: the second run's last comes at
    # 22:00 (16 h after its start at 06:00), when the line stops for the night.
    assert result["line_hours"] == pytest.approx(HOURS[0] + 16.0, abs=0.5)
    assert result["skipped_without_clock"] == 0
    found = {(p["station"], p["parameter"]): p for p in result["parameters"]}
    expected = {(p.station, p.parameter): p for p in learn_line(load_config(), live).parameters}
    for key in (
        ("welding", "failures.mtbf_s"),
        ("welding", "failures.mttr_s"),
        ("machining", "setup.time.mean_s"),
        ("machining", "processing_time.mean_s"),
        ("inspection", "defect_probability"),
    ):
        assert found[key]["value"] == pytest.approx(expected[key].value, rel=1e-9), key
        assert found[key]["n"] == expected[key].n, key
    # Drift: only where the hidden line changed, and surely where thousands of parts
    # or dozens of changeovers show it (welding's few breakdowns may not yet).
    drifted = {key for key, item in found.items() if item["drifted"]}
    assert drifted <= CHANGED, drifted - CHANGED
    assert {
        ("machining", "processing_time.mean_s"),
        ("machining", "setup.time.mean_s"),
        ("inspection", "defect_probability"),
    } <= drifted
    welding = {s.id: s for s in learnt.stations}["welding"].failures

    assert welding is not None
    assert welding.mttr_s == pytest.approx(found[("welding", "failures.mttr_s")]["value"])
    # History keeps no product: cutting's per-product times are not guessed at.
    assert ("cutting", "processing_time.mean_s") not in found
    assert any(item.startswith("cutting processing_time") for item in result["not_learnt"])
    assert "drifted" in output


def test_the_latest_hours_only(history: tuple[Path, LineLearner], tmp_path: Path) -> None:
    path, _ = history
    result_file = tmp_path / "result.json"
    done = run(
        "learn",
        "--from-history",
        "--history-path",
        str(path),
        "--hours",
        "10",
        "--result-json",
        str(result_file),
        "--out",
        str(tmp_path / "l.yaml"),
    )
    code, output = done.returncode, done.stdout + done.stderr
    assert code == 0, output
    result = json.loads(result_file.read_text())
    assert result["runs"] == 1
    assert result["line_hours"] == pytest.approx(10.0, rel=0.01)


def test_without_a_store_or_the_flag_it_says_what_is_missing(tmp_path: Path) -> None:
    done = run("learn", "--from-history", "--history-path", str(tmp_path / "none.db"))
    assert done.returncode == 2
    assert "--history-path" in done.stderr
    done = run("learn", "--history-path", str(tmp_path / "none.db"))
    assert done.returncode == 2
    assert "--from-history" in done.stderr
