"""The models API: listing, cards, 404s, predictions equal to the model's own, 409 on tampering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import register_retired_detector

from api.app import create_app
from models.defect import make_defect_model
from models.registry.store import ModelRegistry
from twin.config.line import load_config
from twin.state.line import TwinState

FEATURES = ["welding__speed", "cutting__speed", "welding__temperature_c"]


def _fit(labels_of: Any) -> Any:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, len(FEATURES)))
    return make_defect_model(max_iter=5, min_samples_leaf=5).fit(features, labels_of(features))


def _card(kind: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "data": {"feature_names": FEATURES, "rows": 300},
        "metrics": {"threshold": 0.3, "f1": 0.5},
        "oracle": {"defect_rate": 0.1},
        "seed": 7,
        "training_s": 0.25,
    }


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "registry")
    binary = _fit(lambda x: (x[:, 0] > 0).astype(int))
    registry.register("defect", binary, _card("defect"))
    registry.register("defect", binary, _card("defect"), activate=False)
    stations = _fit(
        lambda x: np.where(x[:, 0] > 0.5, "welding", np.where(x[:, 1] > 0.5, "cutting", ""))
    )
    registry.register("defect-station", stations, _card("defect-station"))
    return registry


def _client(root: Path) -> TestClient:
    config = load_config()
    twin = TwinState(config.line.site, config.line.area, config.line.id)
    return TestClient(create_app(twin_state=twin, models_path=str(root)))


def test_the_listing_names_every_model_and_version(registry: ModelRegistry) -> None:
    body = _client(registry.root).get("/models").json()
    assert [model["name"] for model in body] == ["defect", "defect-station"]
    defect = body[0]["versions"]
    assert [(v["version"], v["active"], v["kind"]) for v in defect] == [
        (1, True, "defect"),
        (2, False, "defect"),
    ]
    assert defect[0]["sha256"] == registry.get("defect", 1).sha256


@pytest.mark.parametrize("exists", [False, True])
def test_an_empty_or_missing_registry_lists_nothing(tmp_path: Path, exists: bool) -> None:
    root = tmp_path / "none"
    if exists:
        root.mkdir()
    response = _client(root).get("/models")
    assert response.status_code == 200
    assert response.json() == []


def test_cards_of_the_active_and_of_one_version(registry: ModelRegistry) -> None:
    client = _client(registry.root)
    card = client.get("/models/defect").json()
    assert card["version"] == 1
    assert card["active"] is True
    assert card["metrics"] == {"threshold": 0.3, "f1": 0.5}
    assert card["data"]["feature_names"] == FEATURES
    assert card["oracle"] == {"defect_rate": 0.1}
    assert card["seed"] == 7
    assert card["training_s"] == 0.25
    assert "sklearn" in card["versions"] or "scikit-learn" in card["versions"]
    second = client.get("/models/defect/versions/2").json()
    assert second["version"] == 2
    assert second["active"] is False


def test_unknown_models_and_versions_are_404s_naming_them(registry: ModelRegistry) -> None:
    client = _client(registry.root)
    response = client.get("/models/nothing")
    assert response.status_code == 404
    assert "nothing" in response.json()["detail"]
    response = client.get("/models/defect/versions/9")
    assert response.status_code == 404
    assert "no version 9" in response.json()["detail"]
    assert client.post("/models/nothing/predict", json={"parts": [{}]}).status_code == 404
    # The answers say what is missing, never where the server keeps its files.
    for path in ("/models/nothing", "/models/defect/versions/9"):
        assert str(registry.root) not in client.get(path).text
    assert "<registry>" in client.get("/models/nothing").json()["detail"]


def test_a_model_without_an_active_version_is_a_404(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    registry.register(
        "defect", _fit(lambda x: (x[:, 0] > 0).astype(int)), _card("defect"), activate=False
    )
    response = _client(registry.root).get("/models/defect")
    assert response.status_code == 404
    assert "'defect' has no active version" in response.json()["detail"]


def test_binary_predictions_are_the_models_own(registry: ModelRegistry) -> None:
    parts = [{"welding__speed": 1.5, "cutting__speed": -0.2}, {"welding__speed": -1.0}, {}]
    response = _client(registry.root).post("/models/defect/predict", json={"parts": parts})
    assert response.status_code == 200, response.text
    body = response.json()
    model, _ = registry.load("defect")
    rows = np.array([[1.5, -0.2, np.nan], [-1.0, np.nan, np.nan], [np.nan] * 3])
    expected = model.predict_proba(rows)[:, list(model.classes_).index(1)]
    assert body["kind"] == "binary"
    assert body["version"] == 1
    assert [part["defect_probability"] for part in body["parts"]] == pytest.approx(expected)
    assert all(part["stations"] is None for part in body["parts"])


def test_station_predictions_give_where_and_whether(registry: ModelRegistry) -> None:
    parts = [{"welding__speed": 1.0}, {"cutting__speed": 1.0, "welding__speed": 0.0}]
    body = (
        _client(registry.root).post("/models/defect-station/predict", json={"parts": parts}).json()
    )
    model, _ = registry.load("defect-station")
    rows = np.array([[1.0, np.nan, np.nan], [0.0, 1.0, np.nan]])
    probabilities = model.predict_proba(rows)
    classes = list(model.classes_)
    assert body["kind"] == "station"
    for part, row in zip(body["parts"], probabilities, strict=True):
        assert part["defect_probability"] == pytest.approx(1 - row[classes.index("")])
        assert part["stations"] == pytest.approx(
            {label: row[index] for index, label in enumerate(classes) if label != ""}
        )


def test_unknown_features_are_422s_naming_them(registry: ModelRegistry) -> None:
    response = _client(registry.root).post(
        "/models/defect/predict", json={"parts": [{"welding__speed": 1}, {"bogus": 1, "other": 2}]}
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "parts", 1]
    assert "'bogus'" in error["msg"]
    assert "'other'" in error["msg"]


@pytest.mark.parametrize(
    "body",
    [
        '{"parts": [{"welding__speed": NaN}]}',
        '{"parts": [{"welding__speed": Infinity}]}',
        '{"parts": []}',
        '{"parts": [{"welding__speed": "fast"}]}',
    ],
)
def test_non_finite_values_and_bad_bodies_are_422s(registry: ModelRegistry, body: str) -> None:
    response = _client(registry.root).post(
        "/models/defect/predict", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text


def test_too_many_parts_is_a_422(registry: ModelRegistry) -> None:
    response = _client(registry.root).post("/models/defect/predict", json={"parts": [{}] * 1001})
    assert response.status_code == 422


def test_a_tampered_model_file_is_a_409_with_the_registry_message(registry: ModelRegistry) -> None:
    path = registry.get("defect").path
    path.write_bytes(path.read_bytes() + b"tampered")
    response = _client(registry.root).post("/models/defect/predict", json={"parts": [{}]})
    assert response.status_code == 409
    assert "was changed after it was registered" in response.json()["detail"]


def test_loaded_models_are_cached_per_version(registry: ModelRegistry) -> None:
    client = _client(registry.root)
    assert client.post("/models/defect/predict", json={"parts": [{}]}).status_code == 200
    cache = client.app.state.loaded_models  # type: ignore[attr-defined]
    assert [key[1:3] for key in cache] == [("defect", 1)]
    registry.activate("defect", 2)
    body = client.post("/models/defect/predict", json={"parts": [{}]}).json()
    assert body["version"] == 2
    assert sorted(key[1:3] for key in cache) == [("defect", 1), ("defect", 2)]


def test_a_model_that_does_not_predict_defects_is_a_409(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    registry.register("other", _fit(lambda x: (x[:, 0] > 0).astype(int)), {"kind": "other"})
    response = _client(registry.root).post("/models/other/predict", json={"parts": [{}]})
    assert response.status_code == 409
    assert "does not predict defects" in response.json()["detail"]


def test_an_anomaly_model_of_an_earlier_version_is_listed_but_never_loaded(
    registry: ModelRegistry,
) -> None:
    """Its drift detector's class is gone (the sensor watch replaced it): the listing
    and the card still show it; loading it is refused, naming the class."""
    register_retired_detector(registry.root)
    client = _client(registry.root)
    listed = {model["name"]: model for model in client.get("/models").json()}
    assert set(listed) == {"anomaly", "defect", "defect-station"}
    assert listed["anomaly"]["versions"][0]["kind"] == "anomaly"
    assert client.get("/models/anomaly").json()["kind"] == "anomaly"
    response = client.post("/models/anomaly/predict", json={"parts": [{}]})
    assert response.status_code == 409
    assert "models.anomaly.detector.LineAnomalyDetector" in response.json()["detail"]
    assert client.post("/models/defect/predict", json={"parts": [{}]}).status_code == 200


def test_a_non_finite_value_is_a_422_naming_its_part_and_feature(registry: ModelRegistry) -> None:
    response = _client(registry.root).post(
        "/models/defect/predict",
        content='{"parts": [{}, {"cutting__speed": -Infinity}]}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "parts", 1, "cutting__speed"]
