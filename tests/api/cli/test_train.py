"""``factory-twin train`` and ``tune`` as a user runs them.

The commands run in this process (``api.cli.main``), on small data so that a
run takes seconds: a CSV the test writes, a day of simulation. What they must
leave behind is checked on disk: the report's files (real PNGs), the
registry's versions and cards; a running twin then scores with what they
registered.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_png, get_free_port, wait_until
from helpers import cli_main as run

from api.cli.main import build_parser, main
from api.runtime.line import Stack
from api.runtime.options import StackOptions
from models.live import ScoredBatch
from models.registry.store import ModelRegistry
from twin.config.line import load_config
from twin.sim.events import PartFinishedEvent, PartStartedEvent, PlantEvent


def write_parts_csv(
    path: Path, rows: int, seed: int, *, informative: bool = True
) -> dict[str, str]:
    """Machining and welding: defects rise with the force and outside the welding window
    (not ``informative``: 15% defects whatever the force and the temperature)."""
    rng = np.random.default_rng(seed)
    force = rng.uniform(10, 20, rows)
    temperature = rng.normal(185, 8, rows)
    log_odds = -3.0 + 0.4 * (force - 15) + ((temperature - 185) / 7) ** 2
    probability = 1 / (1 + np.exp(-log_odds)) if informative else np.full(rows, 0.15)
    defect = rng.random(rows) < probability
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["left_at_ms", "machining__force_kn", "welding__temperature_c", "defect"])
        for row in range(rows):
            writer.writerow(
                [
                    1_700_000_000_000 + row * 30_000,
                    f"{force[row]:.3f}",
                    f"{temperature[row]:.2f}",
                    int(defect[row]),
                ]
            )
    return {
        "left_at_ms": "int",
        "machining__force_kn": "float",
        "welding__temperature_c": "float",
        "defect": "int",
    }


@pytest.fixture
def parts_csv(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "parts.csv"
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(write_parts_csv(data, rows=3000, seed=5)))
    return data, schema


def test_train_on_a_csv_reports_and_registers_versions(
    tmp_path: Path, parts_csv: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data, schema = parts_csv
    models, report = tmp_path / "models", tmp_path / "report"
    # A table's model goes live only when asked (its features name the line's stations).
    base = ["train", "--source", "csv", "--csv", str(data), "--schema", str(schema), "--activate"]
    assert run(*base, "--models-path", str(models), "--report-dir", str(report)) == 0
    out = capsys.readouterr().out
    assert "ROC-AUC" in out
    assert "registered defect v1 (active)" in out
    for name in ("roc_pr.png", "feature_importance.png"):
        assert_png(report / name)
    metrics = json.loads((report / "metrics.json").read_text())
    registry = ModelRegistry(models)
    first = registry.active("defect")
    assert first is not None
    assert first.version == 1
    assert first.card["seed"] == 1
    assert first.card["data"]["source"] == "csv"
    assert first.card["metrics"]["roc_auc"] == pytest.approx(metrics["evaluation"]["roc_auc"])
    assert registry.names() == ["defect"]  # the CSV does not say where parts failed

    # A second run with another seed is version 2 and active; a third, not activated, is not.
    assert run(*base, "--seed", "2", "--models-path", str(models), "--report-dir", str(report)) == 0
    assert (
        run(*base, "--models-path", str(models), "--report-dir", str(report), "--no-activate") == 0
    )
    versions = registry.versions("defect")
    assert [v.version for v in versions] == [1, 2, 3]
    active = registry.active("defect")
    assert active is not None
    assert active.version == 2
    assert active.card["seed"] == 2
    model, loaded = registry.load("defect")
    assert loaded.version == 2
    assert (
        model.predict_proba(np.array([[15.0, 185.0]]))[0, 1]
        < model.predict_proba(np.array([[19.5, 210.0]]))[0, 1]
    )


def test_a_model_below_the_floor_is_not_activated_and_the_command_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, schema = tmp_path / "coin_flips.csv", tmp_path / "schema.json"
    schema.write_text(json.dumps(write_parts_csv(data, rows=3000, seed=8, informative=False)))
    models, result = tmp_path / "models", tmp_path / "result.json"
    base = ["train", "--source", "csv", "--csv", str(data), "--schema", str(schema), "--activate"]
    base += ["--models-path", str(models), "--report-dir", str(tmp_path / "report")]
    assert run(*base, "--result-json", str(result)) == 0
    out = capsys.readouterr().out
    assert "registered defect v1 (NOT active)" in out
    refusal = next(line for line in out.splitlines() if line.startswith("not activated:"))
    assert "defect v1 is below the floor" in refusal
    assert "ROC-AUC" in refusal
    assert "--force" in refusal
    registry = ModelRegistry(models)
    assert registry.active_version("defect") is None
    registered = json.loads(result.read_text())["registered"]
    assert registered[0]["name"] == "defect"
    assert registered[0]["active"] is False
    assert registered[0]["gate"]["passed"] is False
    assert registered[0]["gate"]["reason"] in refusal

    assert run(*base, "--force") == 0
    assert "registered defect v2 (active, forced below the floor)" in capsys.readouterr().out
    assert registry.active_version("defect") == 2
    assert registry.get("defect").card["gate"]["forced"] is True


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--hours", "0"], "--hours"),
        (["--hours", "-5"], "--hours"),
        (["--hours", "nan"], "--hours"),
        (["--hours", "soon"], "--hours"),
        (["--days", "0"], "--days"),
        (["--explore-hours", "lots"], "--explore-hours"),
        (["--explore-hours", "-1"], "--explore-hours"),
        (["--threshold", "1.5"], "--threshold"),
        (["--test-fraction", "1"], "--test-fraction"),
        (["--threads", "0"], "--threads"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_bad_training_values_are_one_line_and_exit_code_2(
    flags: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("train", *flags) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert named in lines[0]
    assert lines[0].startswith("factory-twin")


@pytest.mark.parametrize("command", ["train", "tune"])
def test_asking_for_the_drift_detector_says_the_sensor_watch_replaced_it(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(command, "--drift-hours", "24") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "--drift-hours" in lines[0]
    assert "'anomaly' model" in lines[0]
    assert "sensor watch replaced it" in lines[0]
    # Skipping it, as scripts of earlier versions did, is what happens anyway.
    assert build_parser().parse_args([command, "--no-drift"]).no_drift is True


def test_tune_records_the_search_in_the_card(
    tmp_path: Path, parts_csv: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data, schema = parts_csv
    models = tmp_path / "models"
    code = run(
        "tune",
        "--source", "csv", "--csv", str(data), "--schema", str(schema), "--activate",
        "--search", "random", "--candidates", "3", "--cv-splits", "3", "--seed", "4",
        "--models-path", str(models), "--report-dir", str(tmp_path / "report"),
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "tuning: random search, 3 candidates" in out
    active = ModelRegistry(models).active("defect")
    assert active is not None
    tuning = active.card["tuning"]
    assert tuning["seed"] == 4
    assert tuning["best_params"] == active.card["parameters"]
    assert len(tuning["folds"]) == 3
    for fold in tuning["folds"]:
        assert fold["train_last_ms"] < fold["validation_first_ms"]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Tuning" in report
    for name, value in tuning["best_params"].items():
        assert f"{name} = " in report, (name, value)


@pytest.fixture(scope="module")
def simulated_training(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``factory-twin train`` on 36 simulated hours: the registry and what it printed."""
    root = tmp_path_factory.mktemp("train")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(
            [
                "train", "--hours", "36", "--seed", "3",
                "--models-path", str(root / "models"), "--report-dir", str(root / "report"),
            ]
        )  # fmt: skip
    assert code == 0
    return root / "models", printed.getvalue()


@pytest.mark.slow
def test_train_on_a_simulation_compares_with_the_oracle_and_fits_the_station_model(
    simulated_training: tuple[Path, str],
) -> None:
    models, out = simulated_training
    assert "oracle ROC-AUC" in out
    registry = ModelRegistry(models)
    assert registry.names() == ["defect", "defect-station"]
    where, _ = registry.load("defect-station", 1)
    assert "" in list(where.classes_)
    assert "machining" in list(where.classes_)
    station_card = registry.versions("defect-station")[0].card
    assert (
        station_card["data"]["feature_names"]
        == registry.versions("defect")[0].card["data"]["feature_names"]
    )
    assert 0.5 < station_card["metrics"]["part_roc_auc"] <= 1.0
    card = registry.versions("defect")[0].card
    assert card["oracle"]["roc_auc"] > 0.5
    assert card["data"]["source"] == "simulation"
    # Each goes live exactly when it passed its gate; the part model has the margin
    # to pass on 36 hours, the station model is near its floors there.
    for name in registry.names():
        version = registry.get(name, 1)
        assert version.active is (version.card["gate"]["passed"] is True), name
        assert ("not activated: " + name) in out or version.active, name
    assert registry.get("defect", 1).active
    assert set(card["data"]["feature_names"]) >= {"machining__speed"}


def test_bad_data_options_fail_with_a_message(
    tmp_path: Path, parts_csv: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = parts_csv
    assert run("train", "--source", "csv", "--csv", str(data)) == 2
    assert "--source csv needs --csv FILE and --schema FILE" in capsys.readouterr().err
    missing = tmp_path / "nowhere.sqlite3"
    assert run("train", "--source", "history", "--history-path", str(missing)) == 2
    assert str(missing) in capsys.readouterr().err
    bad_schema = tmp_path / "bad.json"
    bad_schema.write_text(json.dumps({"left_at_ms": "int", "defect": "int", "oven": "float"}))
    code = run("train", "--source", "csv", "--csv", str(data), "--schema", str(bad_schema))
    assert code == 2
    assert "oven" in capsys.readouterr().err


# Parts in the rolling window: at this line's defect rate (a few percent) it holds
# defects and parts flagged, so that precision and recall are both defined.
WINDOW = 200


@pytest.mark.integration
@pytest.mark.slow
def test_the_running_twin_scores_with_the_trained_models(
    simulated_training: tuple[Path, str],
) -> None:
    """train, then up: the live twin shows rolling precision and recall, and per
    station a defect risk, from what came over MQTT.

    Precision and recall are checked over the very parts of the window: the
    batches the scorer scored are recorded (part ids and the risk it gave), the
    truth comes from the plant itself (a part is defective when it was scrapped
    or sent to rework anywhere), and the figures the twin shows must be those
    of the window's last parts, None exactly when undefined."""
    models, _ = simulated_training
    # Scoring is what this test is about: every trained model live, as an engineer
    # would make it with --force whatever its gate said on 36 hours of data.
    registry = ModelRegistry(models)
    for name in registry.names():
        registry.activate(name, 1)
    options = StackOptions(
        speed=600,
        seed=8,
        mqtt_port=get_free_port(),
        models_path=str(models),
        scoring_period_s=0.5,
        scoring_window_parts=WINDOW,
    )
    stack = Stack(load_config(), options)
    stack.start()
    try:
        assert stack.plant is not None
        assert stack.runner is not None
        first_station = stack.config.stations[0].id
        started: set[int] = set()  # parts the plant was seen to start: their history is whole
        defective: set[int] = set()

        def watch(event: PlantEvent) -> None:
            if isinstance(event, PartStartedEvent) and event.station == first_station:
                started.add(event.part_id)
            if isinstance(event, PartFinishedEvent) and event.outcome != "good":
                defective.add(event.part_id)

        plant = stack.plant
        stack.runner.call_soon(lambda: plant.add_listener(watch))

        loop = stack.scoring
        assert loop is not None
        assert loop.loaded.wait(60), "the models did not load"
        scorer = loop.scorer
        assert scorer is not None
        assert scorer.model is not None
        batches: list[ScoredBatch] = []
        step = scorer.step

        def recording_step(now_ms: int) -> ScoredBatch | None:
            batch = step(now_ms)
            if batch is not None:
                batches.append(batch)
            return batch

        scorer.step = recording_step  # type: ignore[method-assign]

        def scored() -> bool:
            view = stack.twin.view()
            return (
                # past the first parts, which the plant may have released unwatched
                sum(len(batch.part_id) for batch in batches) >= WINDOW + 50
                and all(station.defect_risk is not None for station in view.stations)
            )

        assert wait_until(scored, timeout=90), stack.twin.view().models
        loop.stop()  # the window holds still from here; the last step was published
        assert loop.scorer is scorer, "the scorer was replaced: its window is not the recorded one"
        view = stack.twin.view()
        assert view.models.status == "on"
        assert view.models.errors == 0, view.models.last_error
        assert view.models.defect_model is not None
        assert view.models.defect_model.version == 1
        assert view.models.defect_risk is not None
        station_risk = sum(station.defect_risk or 0.0 for station in view.stations)
        assert 0.0 < station_risk <= 1.0

        # The window: the last window_size parts scored, in the order they were scored.
        assert view.models.window_size == WINDOW
        assert view.models.parts_in_window == WINDOW
        part_ids = np.concatenate([batch.part_id for batch in batches])[-WINDOW:]
        risk = np.concatenate([batch.risk for batch in batches])[-WINDOW:]
        assert set(part_ids.tolist()) <= started, "a window part began before the plant was watched"
        truth = np.array([int(part) in defective for part in part_ids])
        predicted = risk >= scorer.threshold
        hits = int(np.sum(predicted & truth))
        expected_precision = hits / int(predicted.sum()) if predicted.any() else None
        expected_recall = hits / int(truth.sum()) if truth.any() else None
        assert (view.models.precision is None) == (expected_precision is None), (
            view.models.precision,
            expected_precision,
        )
        assert (view.models.recall is None) == (expected_recall is None), (
            view.models.recall,
            expected_recall,
        )
        if expected_precision is not None:
            assert view.models.precision == pytest.approx(expected_precision)
        if expected_recall is not None:
            assert view.models.recall == pytest.approx(expected_recall)
        assert view.models.defect_rate == pytest.approx(truth.mean())
        assert view.models.defect_risk == pytest.approx(risk.mean())
    finally:
        stack.stop()
