"""Live scoring on the twin's views: off without models, on with a registered one."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from feeding import feed_twin
from helpers import register_retired_detector

from api.app import create_app
from api.runtime.line import Stack
from api.runtime.options import StackOptions
from models.defect import make_defect_model
from models.registry.store import ModelRegistry
from twin.config.line import load_config
from twin.state.line import TwinState
from twin.state.views import LiveScoringView, ModelInUse


@pytest.fixture
def twin() -> TwinState:
    return feed_twin(600 / 3600, seed=3).twin


def test_without_models_scoring_is_off_and_the_fields_are_null(twin: TwinState) -> None:
    client = TestClient(create_app(twin_state=twin))
    body = client.get("/twin").json()
    assert body["models"]["status"] == "off"
    assert body["models"]["precision"] is None
    assert body["stations"]
    for station in body["stations"]:
        assert station["defect_risk"] is None
    assert client.get("/healthz").json()["models"]["status"] == "off"


def test_the_twin_shows_what_scoring_found(twin: TwinState) -> None:
    summary = LiveScoringView(
        status="on",
        defect_model=ModelInUse(name="defect", version=3, kind="station"),
        threshold=0.4,
        window_size=200,
        parts_in_window=120,
        parts_scored=120,
        precision=0.5,
        recall=0.25,
        f1=1 / 3,
        errors=2,
        last_error="defect scoring: RuntimeError: boom",
    )
    twin.set_live_scoring(summary, {"machining": 0.125, "elsewhere": 0.5})
    client = TestClient(create_app(twin_state=twin))
    body = client.get("/twin").json()
    assert body["models"] == summary.model_dump(mode="json")
    stations = {station["id"]: station for station in body["stations"]}
    assert stations["machining"]["defect_risk"] == 0.125
    assert stations["cutting"]["defect_risk"] is None
    assert "elsewhere" not in stations  # risks do not invent stations
    health = client.get("/healthz").json()
    assert health["models"]["errors"] == 2


def _register_defect_model(root: Path, stations: list[str]) -> list[str]:
    names = [f"{station}__speed" for station in stations]
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, len(names)))
    labels = (features[:, 0] > 0).astype(int)
    model = make_defect_model(max_iter=5, min_samples_leaf=5).fit(features, labels)
    card = {"kind": "defect", "data": {"feature_names": names}, "metrics": {"threshold": 0.3}}
    ModelRegistry(root).register("defect", model, card)
    return names


@pytest.mark.parametrize("registered", [False, True])
def test_the_stack_scores_with_the_registered_model(tmp_path: Path, registered: bool) -> None:
    config = load_config()
    root = tmp_path / "registry"
    if registered:
        _register_defect_model(root, [station.id for station in config.stations])
    stack = Stack(config, StackOptions(models_path=str(root), scoring_period_s=0.05))
    stack._open_history()
    try:
        stack._start_scoring()
        # The loop runs either way: without a model it watches the registry.
        assert stack.scoring is not None
        assert stack.scoring.loaded.wait(60)  # the models load on the loop's thread
        models = stack.twin.view().models
        if registered:
            assert models.status == "on"
            assert models.defect_model == ModelInUse(name="defect", version=1, kind="binary")
            assert models.threshold == 0.3
            assert models.errors == 0
        else:
            assert stack.scoring.scorer is None
            assert models.status == "off"
            assert models.reason is not None
            assert str(root) in models.reason
            assert "factory-twin train" in models.reason  # what to do about it
    finally:
        stack.stop()
    assert stack.scoring is None


def test_an_anomaly_model_of_an_earlier_version_is_left_alone(tmp_path: Path) -> None:
    """A registry kept by an earlier version may hold its drift detector, which the
    sensor watch replaced: scoring goes on with the defect model, and names no other."""
    config = load_config()
    root = tmp_path / "registry"
    _register_defect_model(root, [station.id for station in config.stations])
    register_retired_detector(root)
    stack = Stack(config, StackOptions(models_path=str(root), scoring_period_s=0.05))
    stack._open_history()
    try:
        stack._start_scoring()
        assert stack.scoring is not None
        assert stack.scoring.loaded.wait(60)
        models = stack.twin.view().models
        assert models.status == "on"
        assert models.defect_model == ModelInUse(name="defect", version=1, kind="binary")
        assert (models.errors, models.last_error) == (0, None)
        assert b"anomaly" not in stack.twin.view_json()
    finally:
        stack.stop()


def test_the_stack_starts_scoring_without_waiting_for_the_models_to_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading a model imports scikit-learn and reads its file: the loop's thread does
    it, so the stack's start (and the API's first answer) never waits for it."""
    import models.scoring_loop

    config = load_config()
    root = tmp_path / "registry"
    _register_defect_model(root, [station.id for station in config.stations])
    gate = threading.Event()
    real_load = models.scoring_loop.load_scorer

    def slow_load(*args: Any, **kwargs: Any) -> Any:
        gate.wait(60)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(models.scoring_loop, "load_scorer", slow_load)
    stack = Stack(config, StackOptions(models_path=str(root), scoring_period_s=3600))
    stack._open_history()
    try:
        stack._start_scoring()
        loop = stack.scoring
        assert loop is not None
        # Returned while the load still waits: the twin says what is going on.
        assert not loop.loaded.is_set()
        models_view = stack.twin.view().models
        assert models_view.status == "off"
        assert models_view.reason is not None
        assert "loading" in models_view.reason
        gate.set()
        assert loop.loaded.wait(60)
        models_view = stack.twin.view().models
        assert models_view.status == "on"
        assert models_view.defect_model == ModelInUse(name="defect", version=1, kind="binary")
    finally:
        gate.set()
        stack.stop()


def test_a_newly_activated_model_scores_without_a_restart(tmp_path: Path) -> None:
    """The running stack's loop follows the registry: v1 appears, then v2 is made
    active, then v1 again (a rollback); each is in use after the next step."""
    config = load_config()
    root = tmp_path / "registry"
    stations = [station.id for station in config.stations]
    # A long period: the test steps the loop itself, the thread never fires.
    stack = Stack(config, StackOptions(models_path=str(root), scoring_period_s=3600))
    stack._open_history()
    try:
        stack._start_scoring()
        loop = stack.scoring
        assert loop is not None
        assert loop.loaded.wait(60)
        assert stack.twin.view().models.status == "off"
        _register_defect_model(root, stations)
        loop.run_once()
        models = stack.twin.view().models
        assert models.status == "on"
        assert models.defect_model == ModelInUse(name="defect", version=1, kind="binary")
        first = loop.scorer
        assert first is not None
        _register_defect_model(root, stations)
        loop.run_once()
        assert stack.twin.view().models.defect_model == ModelInUse(
            name="defect", version=2, kind="binary"
        )
        # The new scorer takes over where the old one stopped: no part scored twice.
        assert loop.scorer is not None
        assert loop.scorer.start_ms == first.scored_until_ms
        ModelRegistry(root).activate("defect", 1)
        loop.run_once()
        assert stack.twin.view().models.defect_model == ModelInUse(
            name="defect", version=1, kind="binary"
        )
        assert loop.reloads == 3
        loop.run_once()  # nothing changed: nothing reloaded
        assert loop.reloads == 3
    finally:
        stack.stop()
