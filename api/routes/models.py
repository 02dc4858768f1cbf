"""Models: what the registry holds, each version's card, and predictions on demand.

Reads the model registry (``models.registry.store``) at ``app.state.models_path``, or
the default registry (``$FACTORY_TWIN_MODELS_PATH``, resolved per request) when
the app was given none. An empty or missing registry lists no models. Loading
goes through the registry's checks (the file's sha256, trusted types only): a
file that fails them answers 409 with the registry's message. Loaded models are
cached per (name, version, sha256) in the app (``api.deps.get_loaded_models``).
Predicting reads only, so it needs no token. The lines of a site share the
registry, so these paths are the site's, not a line's; each line's live scoring
(its defect risk) is in its twin, ``/lines/{line_id}``. A registry of an earlier
version may still list an ``anomaly`` model (the drift detector the sensor watch
replaced): it is listed as it is, live scoring leaves it alone, and predicting
with it answers 409.
"""

from __future__ import annotations

import math
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, HTTPException
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.deps import LoadedModelsDep, ModelsPathDep
from api.errors import without_paths
from api.settings import registry_path
from models.registry.store import ModelRegistry, ModelVersion, RegistryError

router = APIRouter(tags=["models"])

MAX_PARTS = 1000
ModelName = Annotated[str, PathParam(min_length=1, max_length=64, examples=["defect"])]
VersionNumber = Annotated[int, PathParam(ge=1, le=1_000_000, examples=[1])]

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such model, version, or no active version"}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "The model's files fail the registry's checks (changed after it was "
        "registered, untrusted types, unreadable), or the model does not predict defects"
    }
}


class VersionSummary(BaseModel):
    version: int
    created_at: datetime
    active: bool
    sha256: str
    kind: str | None = Field(description="The card's kind, e.g. defect or defect-station.")
    gate_passed: bool | None = Field(
        default=None,
        description="Whether it passed the quality gate; null for a version "
        "registered without one.",
    )


class ModelSummary(BaseModel):
    name: str
    versions: list[VersionSummary]
    error: str | None = Field(
        default=None, description="Why the versions could not be read (an unreadable index)."
    )


class GateCheck(BaseModel):
    name: str
    value: float | None
    floor: float
    rule: str = Field(description="The value passes when `value rule floor` holds.")
    passed: bool


class GateView(BaseModel):
    """Whether a model beat its floors; only a model that did (or was forced) is activated."""

    passed: bool
    forced: bool = Field(default=False, description="Activated below the floor (force).")
    judged_on: str | None = None
    reason: str | None = Field(default=None, description="What failed, or that all passed.")
    checks: list[GateCheck] = Field(default_factory=list)


def _gate(card: dict[str, Any]) -> GateView | None:
    gate = card.get("gate")
    if not isinstance(gate, dict):
        return None
    try:
        return GateView.model_validate(gate)
    except ValueError:  # a card edited by hand: show none rather than fail the listing
        return None


class ModelCardView(BaseModel):
    """One version's model card: what it learned from, how well it did, how it was made."""

    name: str
    version: int
    active: bool
    created_at: datetime
    sha256: str
    kind: str | None
    estimator: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(
        default_factory=dict, description="The training data's description."
    )
    metrics: dict[str, Any] = Field(default_factory=dict)
    oracle: dict[str, Any] | None = Field(
        default=None, description="The comparison with the simulator's known defect rates."
    )
    seed: int | None = None
    training_s: float | None = Field(default=None, description="Training time, seconds.")
    parameters: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(
        default_factory=dict, description="Library versions it was trained with."
    )
    gate: GateView | None = Field(
        default=None,
        description="The quality gate on its held-out data (docs/models.md); null for a "
        "version registered without one.",
    )


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    # Non-finite values are refused in the route, not here: pydantic's error would
    # echo the NaN back, which JSON cannot carry.
    parts: list[dict[str, float | None]] = Field(
        min_length=1,
        max_length=MAX_PARTS,
        description="One object per part: feature name to value. A feature left out "
        "(or null) is missing (NaN), which the model handles; values must be finite.",
        examples=[[{"welding__speed": 1.0}]],
    )


class PartPrediction(BaseModel):
    defect_probability: float = Field(
        description="P(defective): P(class 1) for a binary model, 1 - P(good) for a station model."
    )
    stations: dict[str, float] | None = Field(
        default=None,
        description="Station models only: P(the part first fails at each station), "
        'for every class but "".',
    )


class Prediction(BaseModel):
    name: str
    version: int
    kind: str = Field(description="binary (defect or not) or station (where it first fails).")
    feature_names: list[str]
    parts: list[PartPrediction]


def _registry(configured: str | Path | None) -> ModelRegistry:
    return ModelRegistry(configured if configured is not None else registry_path())


def _public(error: RegistryError, registry: ModelRegistry) -> str:
    return without_paths(str(error), {"registry": registry.root})


def _not_found(error: RegistryError, registry: ModelRegistry) -> HTTPException:
    return HTTPException(status_code=404, detail=_public(error, registry))


def _card(found: ModelVersion) -> ModelCardView:
    card = found.card
    kind = card.get("kind")
    seed = card.get("seed")
    training_s = card.get("training_s")

    def mapping(key: str) -> dict[str, Any]:
        value = card.get(key)
        return value if isinstance(value, dict) else {}

    oracle = card.get("oracle")
    return ModelCardView(
        name=found.name,
        version=found.version,
        active=found.active,
        created_at=found.created_at,
        sha256=found.sha256,
        kind=kind if isinstance(kind, str) else None,
        estimator=mapping("estimator"),
        data=mapping("data"),
        metrics=mapping("metrics"),
        oracle=oracle if isinstance(oracle, dict) else None,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        training_s=float(training_s) if isinstance(training_s, int | float) else None,
        parameters=mapping("parameters"),
        versions={str(key): str(value) for key, value in mapping("versions").items()},
        gate=_gate(card),
    )


@router.get("/models", response_model=list[ModelSummary], summary="The registered models")
def list_models(models_path: ModelsPathDep) -> list[ModelSummary]:
    registry = _registry(models_path)
    answer = []
    for name in registry.names():
        try:
            versions = registry.versions(name)
        except RegistryError as error:
            answer.append(ModelSummary(name=name, versions=[], error=_public(error, registry)))
            continue
        answer.append(
            ModelSummary(
                name=name,
                versions=[
                    VersionSummary(
                        version=found.version,
                        created_at=found.created_at,
                        active=found.active,
                        sha256=found.sha256,
                        kind=found.card.get("kind")
                        if isinstance(found.card.get("kind"), str)
                        else None,
                        gate_passed=gate.passed if (gate := _gate(found.card)) else None,
                    )
                    for found in versions
                ],
            )
        )
    return answer


@router.get(
    "/models/{name}",
    response_model=ModelCardView,
    summary="The card of a model's active version",
    responses=NOT_FOUND,
)
def active_card(models_path: ModelsPathDep, name: ModelName) -> ModelCardView:
    registry = _registry(models_path)
    try:
        return _card(registry.get(name))
    except RegistryError as error:
        raise _not_found(error, registry) from error


@router.get(
    "/models/{name}/versions/{version}",
    response_model=ModelCardView,
    summary="The card of one version of a model",
    responses=NOT_FOUND,
)
def version_card(
    models_path: ModelsPathDep, name: ModelName, version: VersionNumber
) -> ModelCardView:
    registry = _registry(models_path)
    try:
        return _card(registry.get(name, version))
    except RegistryError as error:
        raise _not_found(error, registry) from error


_cache_lock = threading.Lock()


def _load(
    registry: ModelRegistry, cache: dict[tuple[str, str, int, str], Any], name: str
) -> tuple[Any, ModelVersion]:
    """The active version of ``name``, loaded once per (name, version, sha256)."""
    try:
        found = registry.get(name)
    except RegistryError as error:
        raise _not_found(error, registry) from error
    with _cache_lock:
        key = (str(registry.root), name, found.version, found.sha256)
        if key in cache:
            return cache[key], found
    try:
        # load checks the file again: a tampered file never reaches the cache.
        model, found = registry.load(name, found.version)
    except RegistryError as error:
        raise HTTPException(status_code=409, detail=_public(error, registry)) from error
    with _cache_lock:
        cache[(str(registry.root), name, found.version, found.sha256)] = model
    return model, found


def _unknown_features(parts: list[dict[str, float | None]], known: set[str]) -> HTTPException:
    errors = []
    for index, part in enumerate(parts):
        unknown = sorted(set(part) - known)
        if unknown:
            errors.append(
                {
                    "loc": ["body", "parts", index],
                    "msg": f"unknown features: {', '.join(map(repr, unknown[:20]))}"
                    + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""),
                    "type": "value_error",
                }
            )
        if len(errors) >= 20:
            break
    return HTTPException(status_code=422, detail=errors)


def _not_finite(parts: list[dict[str, float | None]]) -> HTTPException | None:
    errors = [
        {
            "loc": ["body", "parts", index, feature],
            "msg": "must be a finite number (or null for missing)",
            "type": "finite_number",
        }
        for index, part in enumerate(parts)
        for feature, value in part.items()
        if value is not None and not math.isfinite(value)
    ]
    return HTTPException(status_code=422, detail=errors[:20]) if errors else None


def _predict(
    registry: ModelRegistry,
    cache: dict[tuple[str, str, int, str], Any],
    name: str,
    parts: list[dict[str, float | None]],
) -> Prediction:
    model, found = _load(registry, cache, name)
    feature_names = (found.card.get("data") or {}).get("feature_names")
    classes = list(getattr(model, "classes_", []))
    binary = 1 in classes and "" not in classes
    station = "" in classes
    if (
        not hasattr(model, "predict_proba")
        or not (binary or station)
        or not isinstance(feature_names, list)
        or not feature_names
    ):
        raise HTTPException(
            status_code=409,
            detail=f"model {name!r} v{found.version} does not predict defects "
            "(it needs predict_proba, classes 0/1 or ''/stations, and feature names on its card)",
        )
    names = [str(feature) for feature in feature_names]
    column = {feature: index for index, feature in enumerate(names)}
    if any(set(part) - column.keys() for part in parts):
        raise _unknown_features(parts, set(column))
    rows = np.full((len(parts), len(names)), np.nan)
    for row, part in enumerate(parts):
        for feature, value in part.items():
            if value is not None:
                rows[row, column[feature]] = value
    try:
        probabilities = np.asarray(model.predict_proba(rows), dtype=float)
    except Exception as error:  # a card whose features do not match its model
        raise HTTPException(
            status_code=409,
            detail=f"model {name!r} v{found.version} cannot predict: "
            f"{type(error).__name__}: {error}",
        ) from error
    predictions = []
    for row in probabilities:
        if station:
            good = float(row[classes.index("")])
            by_station = {
                str(label): float(row[index]) for index, label in enumerate(classes) if label != ""
            }
            predictions.append(PartPrediction(defect_probability=1.0 - good, stations=by_station))
        else:
            predictions.append(PartPrediction(defect_probability=float(row[classes.index(1)])))
    if not all(math.isfinite(part.defect_probability) for part in predictions):
        raise HTTPException(
            status_code=409, detail=f"model {name!r} v{found.version} gave a non-finite probability"
        )
    return Prediction(
        name=name,
        version=found.version,
        kind="station" if station else "binary",
        feature_names=names,
        parts=predictions,
    )


@router.post(
    "/models/{name}/predict",
    response_model=Prediction,
    summary="Defect probabilities of parts, from a model's active version",
    description="Binary model (e.g. defect): P(class 1) per part. Station model (e.g. "
    'defect-station): per part P(first failure at each station) and 1 - P(""). Unknown '
    "feature names and non-finite values answer 422; missing features are NaN.",
    responses={
        **NOT_FOUND,
        **CONFLICT,
        400: {"description": "The body is not JSON"},
        413: {"description": "The body is over the request size limit"},
    },
)
async def predict(
    models_path: ModelsPathDep,
    cache: LoadedModelsDep,
    name: ModelName,
    body: Annotated[PredictRequest, Body()],
) -> Prediction:
    not_finite = _not_finite(body.parts)
    if not_finite is not None:
        raise not_finite
    return await run_in_threadpool(_predict, _registry(models_path), cache, name, body.parts)
