"""The model registry: real skops files in a temporary directory, real fitted models."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy
import sklearn
import skops
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

import twin
from models.dataset.rows import PartDataset
from models.defect import DefectEvaluation, evaluate, make_defect_model
from models.registry import store as registry_module
from models.registry.store import (
    ModelRegistry,
    RegistryError,
    default_registry_path,
    defect_card,
    read_model,
)

pytestmark = pytest.mark.usefixtures("one_thread")


class Thresholder(BaseEstimator):
    """A project-like estimator of our own: a type skops does not trust by default."""

    def __init__(self, cut: float = 0.5) -> None:
        self.cut = cut


THRESHOLDER = f"{Thresholder.__module__}.{Thresholder.__qualname__}"


def _parts(rows: int, seed: int, start_ms: int = 1_700_000_000_000) -> PartDataset:
    """Parts whose defects depend on the first two features."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 3))
    probability = 1 / (1 + np.exp(-(2 * features[:, 0] - features[:, 1] - 1)))
    defect = (rng.random(rows) < probability).astype(np.int64)
    return PartDataset(
        feature_names=("press__speed", "press__temperature_c", "oven__wear"),
        features=features,
        defect=defect,
        defect_station=np.where(defect == 1, "press", ""),
        part_id=np.arange(rows, dtype=np.int64),
        left_at_ms=start_ms + np.arange(rows, dtype=np.int64) * 60_000,
        oracle_probability=probability,
    )


def _fit(parts: PartDataset, random_state: int) -> Pipeline:
    model = make_defect_model(random_state=random_state, max_iter=20, min_samples_leaf=10)
    return model.fit(parts.features, parts.defect)


@pytest.fixture(scope="module")
def parts() -> tuple[PartDataset, PartDataset]:
    return _parts(600, seed=1).time_split(0.3)


@pytest.fixture(scope="module")
def fitted(parts: tuple[PartDataset, PartDataset]) -> tuple[Pipeline, DefectEvaluation]:
    train, test = parts
    model = _fit(train, random_state=0)
    return model, evaluate(model, test)


@pytest.fixture
def card(
    parts: tuple[PartDataset, PartDataset], fitted: tuple[Pipeline, DefectEvaluation]
) -> dict[str, Any]:
    train, test = parts
    model, evaluation = fitted
    return defect_card(
        model,
        train,
        test,
        evaluation,
        seed=7,
        training_s=0.25,
        source="simulation",
        parameters={"max_iter": 20, "min_samples_leaf": 10},
    )


def test_a_loaded_model_predicts_exactly_as_the_registered_one(
    tmp_path: Path,
    parts: tuple[PartDataset, PartDataset],
    fitted: tuple[Pipeline, DefectEvaluation],
    card: dict[str, Any],
) -> None:
    model, _ = fitted
    registered = ModelRegistry(tmp_path).register("defect", model, card)
    loaded, version = ModelRegistry(tmp_path).load("defect")
    assert loaded is not model
    assert version == registered
    test = parts[1]
    np.testing.assert_array_equal(
        loaded.predict_proba(test.features), model.predict_proba(test.features)
    )


def test_versions_count_up_and_the_newest_becomes_active(
    tmp_path: Path, fitted: tuple[Pipeline, DefectEvaluation], card: dict[str, Any]
) -> None:
    registry = ModelRegistry(tmp_path)
    registered = [registry.register("defect", fitted[0], card) for _ in range(3)]
    registry.register("threshold", {"cut": 0.5}, {"kind": "threshold"}, activate=False)
    assert [v.version for v in registered] == [1, 2, 3]
    assert [v.version for v in registry.versions("defect")] == [1, 2, 3]
    assert [v.active for v in registry.versions("defect")] == [False, False, True]
    assert len({v.path for v in registered}) == 3
    assert all(v.path.is_file() for v in registered)
    assert registry.names() == ["defect", "threshold"]
    assert registry.active("threshold") is None  # registered without activating


def test_activate_switches_the_active_version_and_load_follows(
    tmp_path: Path, parts: tuple[PartDataset, PartDataset], card: dict[str, Any]
) -> None:
    train, test = parts
    first, second = _fit(train, random_state=0), _fit(train.take(slice(0, 200)), random_state=1)
    assert not np.array_equal(
        first.predict_proba(test.features), second.predict_proba(test.features)
    )
    registry = ModelRegistry(tmp_path)
    registry.register("defect", first, card)
    registry.register("defect", second, card)
    switched = registry.activate("defect", 1)
    assert switched.active
    assert switched.version == 1
    assert [v.active for v in registry.versions("defect")] == [True, False]
    loaded, version = registry.load("defect", None)
    assert version.version == 1
    np.testing.assert_array_equal(
        loaded.predict_proba(test.features), first.predict_proba(test.features)
    )
    later, _ = registry.load("defect", 2)  # a version by number, active or not
    np.testing.assert_array_equal(
        later.predict_proba(test.features), second.predict_proba(test.features)
    )


def test_without_an_active_version_load_of_none_says_so(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register("defect", {"cut": 0.5}, {"kind": "defect"}, activate=False)
    with pytest.raises(RegistryError, match="'defect' has no active version"):
        registry.load("defect")


def test_a_changed_byte_is_refused_naming_the_file(
    tmp_path: Path, fitted: tuple[Pipeline, DefectEvaluation], card: dict[str, Any]
) -> None:
    registry = ModelRegistry(tmp_path)
    version = registry.register("defect", fitted[0], card)
    data = bytearray(version.path.read_bytes())
    data[len(data) // 2] ^= 0x01
    version.path.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="changed after it was registered") as raised:
        registry.load("defect")
    assert str(version.path) in str(raised.value)
    assert version.sha256 in str(raised.value)


def test_untrusted_types_are_refused_naming_them(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=THRESHOLDER):
        ModelRegistry(tmp_path).register("threshold", Thresholder(0.3), {"kind": "threshold"})
    assert ModelRegistry(tmp_path).names() == []  # nothing was written

    ModelRegistry(tmp_path, trusted=[THRESHOLDER]).register(
        "threshold", Thresholder(0.3), {"kind": "threshold"}
    )
    with pytest.raises(RegistryError, match=f"not trusted: {THRESHOLDER}") as raised:
        ModelRegistry(tmp_path).load("threshold")
    assert "v1" in str(raised.value)
    loaded, _ = ModelRegistry(tmp_path).load("threshold", trusted=[THRESHOLDER])
    assert isinstance(loaded, Thresholder)
    assert loaded.cut == 0.3


def _zip_of_something_else(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a model")


@pytest.mark.parametrize("kind", ["garbage", "truncated", "other zip"])
def test_a_file_that_is_not_a_skops_model_is_a_registry_error(
    tmp_path: Path, fitted: tuple[Pipeline, DefectEvaluation], card: dict[str, Any], kind: str
) -> None:
    version = ModelRegistry(tmp_path / "registry").register("defect", fitted[0], card)
    path = tmp_path / "model.skops"
    if kind == "garbage":
        path.write_bytes(os.urandom(4096))
    elif kind == "truncated":
        path.write_bytes(version.path.read_bytes()[: version.path.stat().st_size // 2])
    else:
        _zip_of_something_else(path)
    with pytest.raises(RegistryError, match="not a readable skops model file") as raised:
        read_model(path)
    assert str(path) in str(raised.value)
    assert read_model(version.path, sha256=version.sha256) is not None  # the real one loads


def test_the_card_records_data_metrics_oracle_versions_and_seed(
    tmp_path: Path,
    parts: tuple[PartDataset, PartDataset],
    fitted: tuple[Pipeline, DefectEvaluation],
    card: dict[str, Any],
) -> None:
    train, test = parts
    version = ModelRegistry(tmp_path).register("defect", fitted[0], card)
    stored = version.card
    on_disk = json.loads((version.path.parent / "card.json").read_text())
    assert on_disk == stored
    assert stored["name"] == "defect"
    assert stored["version"] == 1
    assert stored["sha256"] == version.sha256
    assert stored["seed"] == 7
    assert stored["training_s"] == 0.25
    assert stored["parameters"] == {"max_iter": 20, "min_samples_leaf": 10}
    assert stored["versions"] == {
        "python": ".".join(map(str, sys.version_info[:3])),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "skops": skops.__version__,
        "factory-twin": twin.__version__,
    }
    evaluation = fitted[1]
    assert stored["metrics"] == json.loads(json.dumps(evaluation.as_dict()))
    assert stored["oracle"]["roc_auc"] == evaluation.oracle_roc_auc
    assert stored["oracle"]["model_share_of_roc_auc"] == evaluation.oracle_ratio
    data = stored["data"]
    assert data["source"] == "simulation"
    assert data["feature_names"] == list(train.feature_names)
    assert data["train"]["rows"] == len(train)
    assert data["test"]["rows"] == len(test)
    assert data["train"]["defect_rate"] == pytest.approx(train.defect.mean())
    assert data["test"]["span"]["start_ms"] == int(test.left_at_ms.min())
    assert data["test"]["span"]["end_ms"] == int(test.left_at_ms.max())
    assert [name for name, _ in stored["estimator"]["steps"]] == [
        name for name, _ in fitted[0].steps
    ]
    assert stored["estimator"]["steps"][-1][1].endswith("HistGradientBoostingClassifier")
    assert stored["created_at"].startswith(version.created_at.date().isoformat())
    markdown = (version.path.parent / "card.md").read_text()
    assert "# Model card: defect v1" in markdown
    assert sklearn.__version__ in markdown


def test_a_card_from_a_plain_mapping_gets_versions_and_a_timestamp(tmp_path: Path) -> None:
    version = ModelRegistry(tmp_path).register("defect", {"cut": 0.5}, {"kind": "defect"})
    assert version.card["versions"]["skops"] == skops.__version__
    assert version.card["created_at"] == version.created_at.isoformat()


def test_a_card_refuses_an_unknown_source_or_a_model_of_other_features(
    parts: tuple[PartDataset, PartDataset], fitted: tuple[Pipeline, DefectEvaluation]
) -> None:
    train, test = parts
    model, evaluation = fitted
    options: dict[str, Any] = {"seed": 0, "training_s": 1.0, "parameters": {}}
    with pytest.raises(ValueError, match="'mqtt'"):
        defect_card(model, train, test, evaluation, source="mqtt", **options)
    narrow = PartDataset(
        train.feature_names[:2],
        train.features[:, :2],
        train.defect,
        train.defect_station,
        train.part_id,
        train.left_at_ms,
    )
    with pytest.raises(ValueError, match="fitted on 3 features"):
        defect_card(model, narrow, narrow, evaluation, source="csv", **options)


def test_unknown_names_and_versions_are_named_in_the_error(
    tmp_path: Path, fitted: tuple[Pipeline, DefectEvaluation], card: dict[str, Any]
) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register("defect", fitted[0], card)
    with pytest.raises(RegistryError, match=r"no model named 'threshold'.*models: defect"):
        registry.load("threshold")
    with pytest.raises(RegistryError, match=r"'defect' has no version 9 \(versions: 1\)"):
        registry.load("defect", 9)
    with pytest.raises(RegistryError, match="'defect' has no version 9"):
        registry.activate("defect", 9)
    with pytest.raises(RegistryError, match="no model named 'threshold'"):
        registry.activate("threshold", 1)
    active = registry.active("defect")
    assert active is not None
    assert active.version == 1


def test_names_that_could_leave_the_registry_are_refused(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    for name in ("../escape", "a/b", "", "Defect"):
        with pytest.raises(RegistryError, match="model name"):
            registry.register(name, {"cut": 0.5}, {"kind": "defect"})
    assert list(tmp_path.iterdir()) == []


def test_an_empty_or_missing_registry_lists_nothing(tmp_path: Path) -> None:
    assert ModelRegistry(tmp_path).names() == []
    missing = tmp_path / "not-yet"
    assert ModelRegistry(missing).names() == []
    assert not missing.exists()  # reading creates nothing
    with pytest.raises(RegistryError, match="no model named 'defect'"):
        ModelRegistry(missing).versions("defect")


def test_a_crash_while_writing_the_index_leaves_the_old_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register("defect", {"cut": 0.1}, {"kind": "defect"})
    replace = os.replace

    def crash_on_the_index(source: str, target: str | Path) -> None:
        if Path(target).name == "index.json":
            raise OSError("disk gone")
        replace(source, target)

    monkeypatch.setattr(registry_module.os, "replace", crash_on_the_index)
    with pytest.raises(OSError, match="disk gone"):
        registry.register("defect", {"cut": 0.2}, {"kind": "defect"})
    monkeypatch.undo()
    assert [v.version for v in registry.versions("defect")] == [1]
    assert registry.load("defect")[0] == {"cut": 0.1}
    assert list(tmp_path.glob("defect/.*.tmp")) == []
    # The version directory the crash left behind is not reused.
    assert registry.register("defect", {"cut": 0.3}, {"kind": "defect"}).version == 3


def _register_many(root: str, worker: int, count: int) -> None:
    registry = ModelRegistry(root)
    for round_ in range(count):
        registry.register("defect", {"worker": worker, "round": round_}, {"kind": "defect"})


def test_concurrent_processes_never_share_a_version_number(tmp_path: Path) -> None:
    # fork: the children have the modules imported already (a fresh interpreter
    # would spend seconds importing scikit-learn).
    context = multiprocessing.get_context("fork")
    workers, count = 3, 5
    processes = [
        context.Process(target=_register_many, args=(str(tmp_path), worker, count))
        for worker in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0] * workers
    registry = ModelRegistry(tmp_path)
    versions = registry.versions("defect")
    assert [v.version for v in versions] == list(range(1, workers * count + 1))
    stored = {tuple(sorted(registry.load("defect", v.version)[0].items())) for v in versions}
    assert len(stored) == workers * count  # every registration kept its own file


def test_the_default_path_follows_the_xdg_data_home_and_no_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API's setting is the API's to pass in (api.settings.registry_path): the
    # models room keeps a plain default and never reads it.
    monkeypatch.setenv("FACTORY_TWIN_MODELS_PATH", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_registry_path() == tmp_path / "data" / "factory-twin" / "models"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".local" / "share" / "factory-twin" / "models"
    assert default_registry_path() == expected
