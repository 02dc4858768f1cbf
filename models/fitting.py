"""Fitting each of the line's models for the training workflow (``models.training``).

``fit_defect_model`` scores the candidates out of fold on the training and
calibration parts together, refits the best on all of them and calibrates it
out of fold (``models.candidates``); ``fit_station_model`` fits the defect
pipeline on the training parts and calibrates it on the calibration parts
(``models.defect``). Both ``anchor`` it on the line's own defect rate when
history is one of several sources: a designed experiment makes far more
defects than the line at its own setpoints, and the live parts come from the
line (one shift of the log-odds puts the mean risk on the history's
calibration parts at their defect rate). Each returns the model, its card and
its gate (``models.registry.gate``), not yet registered.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from models.candidates import choose_out_of_fold, fit_on_calibration_parts
from models.dataset.rows import PartDataset
from models.dataset.splits import SPLIT_GAP, Splits
from models.defect import (
    THRESHOLD_TOLERANCE,
    RateAnchor,
    baseline_evaluation,
    calibrate,
    choose_threshold,
    evaluate,
    make_defect_model,
    shifted,
)
from models.registry.cards import ModelCard, defect_card, describe_data, describe_estimator
from models.registry.gate import GateResult, defect_gate

# A station needs this many first failures among the training parts, and two among
# the calibration parts, to be a class of the station model.
MIN_STATION_FAILURES = 5
MIN_STATION_CALIBRATION = 2
# Anchoring a model on the history's defect rate needs this many defects there.
MIN_ANCHOR_DEFECTS = 10

Stage = Callable[[str], AbstractContextManager[Any]]


def no_stage(name: str) -> AbstractContextManager[Any]:
    return nullcontext()


def _by_source(model: Any, tests: Mapping[str, PartDataset], risk_of: Any) -> dict[str, Any]:
    """Per source, how the model does on that source's held-out parts."""
    found: dict[str, Any] = {}
    for name, test in tests.items():
        if not len(test):
            continue
        risk = risk_of(model, test)
        entry: dict[str, Any] = {
            "parts": len(test),
            "defects": int(test.defect.sum()),
            "defect_rate": float(test.defect.mean()),
            "mean_risk": float(np.mean(risk)),
            "roc_auc": None,
        }
        if len(np.unique(test.defect)) == 2:
            entry["roc_auc"] = float(roc_auc_score(test.defect, risk))
            if test.oracle_probability is not None:
                entry["oracle_roc_auc"] = float(roc_auc_score(test.defect, test.oracle_probability))
        found[name] = entry
    return found


def _defect_risk(model: Any, parts: PartDataset) -> Any:
    classes = list(model.classes_)
    return model.predict_proba(parts.features)[:, classes.index(1)]


def _part_risk(model: Any, parts: PartDataset) -> Any:
    """A station model's risk that a part fails anywhere: 1 - P(good)."""
    classes = list(model.classes_)
    return 1.0 - model.predict_proba(parts.features)[:, classes.index("")]


def anchor(model: Any, splits: Splits, *, good_class: Any) -> tuple[Any, dict[str, Any]]:
    """``model`` anchored on the history's calibration parts (``RateAnchor``) when
    the history is one of several sources and has enough defects there to say its
    rate; else ``model`` as it is. The second value says which, for the card."""
    history = splits.calibrations.get("history")
    if history is None or len(splits.calibrations) < 2:
        return model, {"anchored": False, "why": "one source: calibrated on its own parts"}
    defects = int(history.defect.sum())
    if defects < MIN_ANCHOR_DEFECTS or defects == len(history):
        why = f"{defects} defective history calibration parts, fewer than {MIN_ANCHOR_DEFECTS}"
        return model, {"anchored": False, "why": why}
    labels = history.defect_station if good_class == "" else history.defect
    anchored = RateAnchor(model, good_class=good_class).fit(history.features, labels)
    return anchored, {
        "anchored": True,
        "on": "history calibration parts",
        "parts": len(history),
        "defect_rate": anchored.anchor_rate_,
        "log_odds_shift": anchored.log_odds_shift_,
    }


@dataclass
class FittedModel:
    """A fitted model, its card and its gate, not yet registered."""

    name: str
    model: Any
    card: dict[str, Any]
    gate: GateResult
    evaluation: Any = None


def fit_defect_model(
    splits: Splits,
    *,
    seed: int,
    threshold: float | None,
    parameters: Mapping[str, Any],
    source: str,
    stage: Stage = no_stage,
) -> FittedModel:
    """The binary defect model: the candidate chosen out of fold, refitted
    on the training and calibration parts and calibrated out of fold, evaluated and
    gated on the test parts. ``threshold`` None: chosen for F1 on the out-of-fold
    risk (``choose_threshold``)."""
    for name, part in (("training", splits.train), ("calibration", splits.calibration)):
        if len(np.unique(part.defect)) < 2:
            raise ValueError(
                f"the {name} parts need both good and defective parts ({len(part)} parts, "
                f"{int(part.defect.sum())} defective): train on a longer span"
            )
    started = time.perf_counter()
    with stage("fitting and calibrating the defect model"):
        try:
            calibrated, risk, weighting = choose_out_of_fold(splits, seed, parameters)
        except ValueError as error:
            calibrated, risk, weighting = fit_on_calibration_parts(
                splits, seed, parameters, str(error)
            )
        refit = weighting["refit"] is not None
        chosen_on = splits.learnt if refit else splits.calibration
        model, anchoring = anchor(calibrated, splits, good_class=0)
    training_s = time.perf_counter() - started
    chosen = threshold
    if chosen is None:
        shift = float(getattr(model, "log_odds_shift_", 0.0))
        chosen = choose_threshold(chosen_on.defect, shifted(risk, shift))
    evaluation = evaluate(model, splits.test, threshold=chosen)
    card = defect_card(
        model,
        splits.train,
        splits.test,
        evaluation,
        seed=seed,
        training_s=training_s,
        source=source,  # type: ignore[arg-type]
        parameters=dict(parameters),
    )
    card["data"]["calibration"] = describe_data(splits.calibration)
    card["data"]["anchor"] = anchoring
    card["metrics"]["by_source"] = _by_source(model, splits.tests, _defect_risk)
    card["metrics"]["threshold_chosen_on"] = (
        "given"
        if threshold is not None
        else f"F1 within {THRESHOLD_TOLERANCE} of the best (the median such threshold), on the "
        + (
            "out-of-fold risk of the training and calibration parts"
            if refit
            else "calibration parts"
        )
    )
    card["data"]["learnt"] = describe_data(splits.learnt if refit else splits.train)
    with stage("fitting the plain baseline"):
        card["metrics"]["baseline"] = baseline_evaluation(
            splits.learnt if refit else splits.train, splits.test, seed
        )
    card["data"]["split_gap"] = SPLIT_GAP
    card["metrics"]["variant"] = weighting
    gate = defect_gate(
        splits.test.defect, _defect_risk(model, splits.test), trained_rate=splits.learnt_rate
    )
    return FittedModel("defect", model, card, gate, evaluation)


def _station_classes(splits: Splits) -> list[str]:
    """The stations with enough first failures to learn and calibrate."""
    trained = Counter(str(name) for name in splits.train.defect_station.tolist())
    calibrated = Counter(str(name) for name in splits.calibration.defect_station.tolist())
    return sorted(
        station
        for station, count in trained.items()
        if station
        and count >= MIN_STATION_FAILURES
        and calibrated.get(station, 0) >= MIN_STATION_CALIBRATION
    )


def fit_station_model(
    splits: Splits, *, seed: int, parameters: Mapping[str, Any]
) -> FittedModel | None:
    """Where parts fail: the defect pipeline fitted on ``defect_station`` (class "" for
    good parts, else the station of the first failure), calibrated like the defect
    model. The live twin shows its per-station probabilities as each station's defect
    risk (docs/models.md). Stations with too few failures to learn and calibrate are
    left out (the twin shows 0 for them). None when the data does not say where
    parts failed (a CSV without the column) or no station has enough failures."""
    stations = _station_classes(splits)
    if not stations:
        return None
    kept = {"", *stations}

    def known(parts: PartDataset) -> PartDataset:
        rows = np.flatnonzero([str(name) in kept for name in parts.defect_station.tolist()])
        return parts.take(rows)

    train, calibration = known(splits.train), known(splits.calibration)
    started = time.perf_counter()
    raw = make_defect_model(random_state=seed, **parameters)
    raw.fit(train.features, train.defect_station)
    calibrated = calibrate(raw, calibration.features, calibration.defect_station)
    model, anchoring = anchor(calibrated, splits, good_class="")
    training_s = time.perf_counter() - started
    test = splits.test
    probabilities = model.predict_proba(test.features)
    fitted = [str(name) for name in model.classes_]
    metrics: dict[str, Any] = {}
    if len(set(test.defect.tolist())) == 2:
        metrics["part_roc_auc"] = float(roc_auc_score(test.defect, _part_risk(model, test)))
    by_station = {}
    for index, station in enumerate(fitted):
        truth = test.defect_station == station
        if station and 0 < int(truth.sum()) < len(test):
            by_station[station] = float(roc_auc_score(truth, probabilities[:, index]))
    metrics["station_roc_auc"] = by_station
    metrics["by_source"] = _by_source(model, splits.tests, _part_risk)
    left_out = sorted(
        {str(name) for name in splits.train.defect_station.tolist()} - kept,
    )
    card = ModelCard(
        kind="defect-station",
        estimator=describe_estimator(model),
        data={
            "feature_names": list(train.feature_names),
            "classes": fitted,
            "train": describe_data(train),
            "calibration": describe_data(calibration),
            "test": describe_data(test),
            "first_failures": dict(Counter(str(name) for name in train.defect_station.tolist())),
            "stations_left_out": left_out,
            "anchor": anchoring,
        },
        metrics=metrics,
        seed=seed,
        training_s=training_s,
        parameters=dict(parameters),
    ).model_dump(mode="json")
    learnt = np.concatenate([train.defect, calibration.defect])
    gate = defect_gate(test.defect, _part_risk(model, test), trained_rate=float(learnt.mean()))
    return FittedModel("defect-station", model, card, gate)


__all__ = [
    "MIN_ANCHOR_DEFECTS",
    "FittedModel",
    "Stage",
    "anchor",
    "fit_defect_model",
    "fit_station_model",
    "no_stage",
]
