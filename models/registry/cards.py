"""Model cards: what a fitted model is, what it learned from and how well it did.

A card records the estimator (its class, and a pipeline's steps), the data it
was trained and tested on (rows, defects, time span), its metrics against the
oracle, the seed, the parameters, the training time and the library versions.
Cards are plain JSON values (numpy unwrapped, NaN and infinities as null), so
``card.json`` is strict JSON; ``render_card`` turns one into Markdown for
people. ``models.registry.store`` stores a card beside each model it saves.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import twin
from twin.lazy import HEAVY_IMPORTS

if TYPE_CHECKING:
    from models.dataset.rows import PartDataset
    from models.defect import DefectEvaluation

# history+simulation: the line's history and a simulated designed experiment together.
DataSource = Literal["history", "simulation", "csv", "history+simulation"]
DATA_SOURCES: tuple[str, ...] = ("history", "simulation", "csv", "history+simulation")


def library_versions() -> dict[str, str]:
    # Imported here: reading cards (the registry, the API's start) needs none of them,
    # and importing scikit-learn and SciPy takes about a second.
    with HEAVY_IMPORTS:
        import scipy
        import sklearn
        import skops

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "skops": skops.__version__,
        "factory-twin": twin.__version__,
    }


class ModelCard(BaseModel):
    """What a model is, what it learned from and how well it did. Extra keys are kept."""

    model_config = ConfigDict(extra="allow")

    kind: str
    estimator: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    oracle: dict[str, Any] | None = None
    seed: int | None = None
    training_s: float | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=library_versions)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def _type_name(value: object) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def describe_estimator(model: Any) -> dict[str, Any]:
    """The model's class, for a pipeline its steps' names and classes, for a
    calibrated model the calibration and the model it calibrates, for a blend the
    models it blends."""
    described: dict[str, Any] = {"class": _type_name(model)}
    inner = getattr(model, "estimator", None)
    shift = getattr(model, "log_odds_shift_", None)
    if inner is not None and shift is not None:  # RateAnchor
        described["anchored_log_odds_shift"] = float(shift)
        described["anchored"] = describe_estimator(inner)
        return described
    slope = getattr(model, "slope", None)
    if inner is not None and isinstance(slope, float):  # models.candidates.PlattScaled
        described["platt"] = {"slope": slope, "intercept": float(model.intercept)}
        described["calibrated"] = describe_estimator(inner)
        return described
    blended = getattr(model, "estimators", None)
    if isinstance(blended, tuple):  # models.candidates.LogitBlend
        described["blend"] = [describe_estimator(item) for item in blended]
        return described
    method = getattr(model, "method", None)
    if inner is not None and isinstance(method, str):  # CalibratedClassifierCV
        frozen = getattr(inner, "estimator", inner)  # FrozenEstimator wraps the model
        described["calibration"] = method
        described["calibrated"] = describe_estimator(frozen)
        return described
    steps = getattr(model, "steps", None)
    if isinstance(steps, list):
        described["steps"] = [[str(name), _type_name(step)] for name, step in steps]
    return described


def describe_data(parts: PartDataset) -> dict[str, Any]:
    """Rows, defects, defect rate and the time span of a dataset."""
    rows = len(parts)
    defects = int(parts.defect.sum())
    span: dict[str, Any] | None = None
    if rows:
        start_ms, end_ms = int(parts.left_at_ms.min()), int(parts.left_at_ms.max())
        span = {
            "start": datetime.fromtimestamp(start_ms / 1000, UTC).isoformat(),
            "end": datetime.fromtimestamp(end_ms / 1000, UTC).isoformat(),
            "start_ms": start_ms,
            "end_ms": end_ms,
            "hours": (end_ms - start_ms) / 3_600_000,
        }
    rate = defects / rows if rows else None
    return {"rows": rows, "defects": defects, "defect_rate": rate, "span": span}


def defect_card(
    model: Any,
    train: PartDataset,
    test: PartDataset,
    evaluation: DefectEvaluation,
    *,
    seed: int,
    training_s: float,
    source: DataSource,
    parameters: Mapping[str, Any],
) -> dict[str, Any]:
    """The card of a fitted defect model (``models.defect``), trained on ``train`` and
    evaluated on ``test``; ``source`` says where the parts came from."""
    if source not in DATA_SOURCES:
        raise ValueError(f"source must be one of {', '.join(DATA_SOURCES)} (got {source!r})")
    if train.feature_names != test.feature_names:
        raise ValueError("train and test have different features")
    fitted_features = getattr(model, "n_features_in_", None)
    if fitted_features is not None and fitted_features != len(train.feature_names):
        raise ValueError(
            f"the model was fitted on {fitted_features} features, "
            f"the dataset has {len(train.feature_names)}"
        )
    oracle = None
    if evaluation.oracle_roc_auc is not None:
        oracle = {
            "roc_auc": evaluation.oracle_roc_auc,
            "pr_auc": evaluation.oracle_pr_auc,
            "model_share_of_roc_auc": evaluation.oracle_ratio,
        }
    card = ModelCard(
        kind="defect",
        estimator=describe_estimator(model),
        data={
            "source": source,
            "feature_names": list(train.feature_names),
            "train": describe_data(train),
            "test": describe_data(test),
        },
        metrics=evaluation.as_dict(),
        oracle=oracle,
        seed=seed,
        training_s=training_s,
        parameters=dict(parameters),
    )
    return _jsonable(card.model_dump(mode="json"))  # type: ignore[no-any-return]


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays unwrapped, NaN and infinities as None."""
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(
            f"({_shown(item)})" if isinstance(item, list) else _shown(item) for item in value
        )
    return "none" if value is None else str(value).replace("|", "/")


def _rows(key: str, value: Any) -> Iterator[tuple[str, Any]]:
    """Nested mappings as dotted keys: ``train.span.hours``."""
    if isinstance(value, Mapping) and value:
        for inner, item in value.items():
            yield from _rows(f"{key}.{inner}" if key else str(inner), item)
    else:
        yield key, value


def render_card(card: Mapping[str, Any]) -> str:
    """A card as Markdown for people: a section per entry, a table for a mapping."""
    lines = [f"# Model card: {card.get('name', 'model')} v{card.get('version', '?')}", ""]
    for section, value in card.items():
        if section in ("name", "version"):
            continue
        lines += [f"## {section}", ""]
        if isinstance(value, Mapping) and value:
            lines += ["| | |", "|---|---|"]
            lines += [f"| {key} | {_shown(item)} |" for key, item in _rows("", value)]
        else:
            lines.append(_shown(value))
        lines.append("")
    return "\n".join(lines)


__all__ = [
    "DATA_SOURCES",
    "DataSource",
    "ModelCard",
    "defect_card",
    "describe_data",
    "describe_estimator",
    "library_versions",
    "render_card",
]
