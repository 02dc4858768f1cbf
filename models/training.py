"""Training the line's models: the one workflow behind ``factory-twin train``,
``POST /training`` and the first start of ``factory-twin up``.

``train_models`` fits the defect model, the station model (where parts fail)
and the drift detector, calibrates the defect models, writes the report, holds
each model to its quality gate (``models.gate``) and registers it: active when
it passed (or was forced), registered but not active when it did not, the gate
result in its card either way.

**Splits in time.** Each source of parts is split on its own, by the time the
parts left: the earliest train, the next ``calibration_fraction`` of the rest
calibrates (and picks the threshold), the latest ``test_fraction`` is held out
for the evaluation and the gate. Sources are then put together. Two sources
meet at the first start: the line's history, and a designed experiment on the
line's nominal model (``from_simulation`` with explored setpoints). History of
a line run at constant setpoints cannot teach a defect model: there, defects
are noise (the oracle's ROC-AUC on the shipped lines' backfilled history is
0.49 to 0.64), so no model could pass the gate. The experiment shows the model
what happens away from today's setpoints; the history anchors it to the line
as measured, where the live parts come from (``anchor``: after calibration on
both, one shift of the log-odds puts its mean risk on the history's
calibration parts at their defect rate).

**Drift windows.** The drift detector learns from clean telemetry windows
(``clean_windows``: history without the windows of a worn tool). The earliest
``DRIFT_HOLDOUT`` fit, the rest is held out for its gate. Windows from a
simulated history (no history to read) come from the caller: simulating
telemetry needs ``sensors``, which this room never imports.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from models.anomaly import (
    ALARM_SCORE,
    LineAnomalyDetector,
    StationWindows,
    telemetry_windows,
    wear_episodes,
)
from models.cards import ModelCard, defect_card, describe_data, describe_estimator
from models.dataset import PartDataset
from models.defect import RateAnchor, calibrate, choose_threshold, evaluate, make_defect_model
from models.gate import GateResult, defect_gate, drift_gate
from models.registry import ModelRegistry, ModelVersion
from models.report import write_training_report
from twin.history import HistoryStore

DEFAULT_TEST_FRACTION = 0.3
DEFAULT_CALIBRATION_FRACTION = 0.25
HEALTHY_WEAR = 0.25  # windows of a tool worn past this are left out of the drift detector
DRIFT_HOLDOUT = 0.3
# A station needs this many first failures among the training parts, and two among
# the calibration parts, to be a class of the station model.
MIN_STATION_FAILURES = 5
MIN_STATION_CALIBRATION = 2
# Anchoring a model on the history's defect rate needs this many defects there.
MIN_ANCHOR_DEFECTS = 10
# The designed experiment's size: about this many parts, within these hours.
EXPLORE_TARGET_PARTS = 15_000
EXPLORE_HOURS = (12.0, 480.0)

Stage = Callable[[str], AbstractContextManager[Any]]


def _no_stage(name: str) -> AbstractContextManager[Any]:
    return nullcontext()


@dataclass(frozen=True)
class TrainingOptions:
    """How to train; ``threshold`` None picks the best-F1 threshold on the calibration parts."""

    seed: int = 1
    test_fraction: float = DEFAULT_TEST_FRACTION
    calibration_fraction: float = DEFAULT_CALIBRATION_FRACTION
    threshold: float | None = None
    stations: bool = True
    activate: bool = True
    force: bool = False
    threads: int = 1

    def check(self) -> None:
        """A ValueError naming the first option out of its range."""
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test fraction must be between 0 and 1 (got {self.test_fraction})")
        if not 0 < self.calibration_fraction < 1:
            raise ValueError(
                f"calibration fraction must be between 0 and 1 (got {self.calibration_fraction})"
            )
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be between 0 and 1 (got {self.threshold})")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1 (got {self.threads})")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0 (got {self.seed})")


def explore_hours(parts_per_hour: float) -> float:
    """Hours of designed experiment for about ``EXPLORE_TARGET_PARTS`` parts at the
    line's rate (from its history), within ``EXPLORE_HOURS``."""
    low, high = EXPLORE_HOURS
    if not parts_per_hour > 0:
        return high
    return float(min(high, max(low, EXPLORE_TARGET_PARTS / parts_per_hour)))


# -- splits ---------------------------------------------------------------------------------------
def concat_parts(datasets: Sequence[PartDataset]) -> PartDataset:
    """The parts of all datasets, in the feature columns of the first; the oracle
    only when every dataset has it."""
    if not datasets:
        raise ValueError("no parts to put together")
    names = datasets[0].feature_names
    aligned = [data.align(names) for data in datasets]
    oracles = [data.oracle_probability for data in aligned]
    return PartDataset(
        names,
        np.concatenate([data.features for data in aligned]),
        np.concatenate([data.defect for data in aligned]),
        np.concatenate([data.defect_station for data in aligned]),
        np.concatenate([data.part_id for data in aligned]),
        np.concatenate([data.left_at_ms for data in aligned]),
        None if any(o is None for o in oracles) else np.concatenate(oracles),  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Splits:
    """Training, calibration and test parts, and each source's test parts."""

    train: PartDataset
    calibration: PartDataset
    test: PartDataset
    tests: dict[str, PartDataset]
    calibrations: dict[str, PartDataset] = field(default_factory=dict)

    @property
    def learnt_rate(self) -> float:
        """The defect rate of the parts the model learnt from (fit and calibration):
        what a constant predictor would say."""
        learnt = np.concatenate([self.train.defect, self.calibration.defect])
        return float(learnt.mean()) if len(learnt) else 0.0


def split_parts(
    sources: Mapping[str, PartDataset], test_fraction: float, calibration_fraction: float
) -> Splits:
    """Each source split in time (train, calibration, test), then put together."""
    trains, calibrations, tests = [], {}, {}
    for name, parts in sources.items():
        fit, test = parts.time_split(test_fraction)
        train, calibration = fit.time_split(calibration_fraction)
        trains.append(train)
        calibrations[name] = calibration
        tests[name] = test
    return Splits(
        concat_parts(trains),
        concat_parts(list(calibrations.values())),
        concat_parts(list(tests.values())),
        tests,
        calibrations,
    )


def _source_name(sources: Mapping[str, PartDataset]) -> str:
    return "+".join(sorted(sources))


# -- the defect models ----------------------------------------------------------------------------
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
    options: TrainingOptions,
    *,
    parameters: Mapping[str, Any],
    source: str,
    stage: Stage = _no_stage,
) -> FittedModel:
    """The binary defect model: fitted on the training parts, calibrated on the
    calibration parts, evaluated and gated on the test parts."""
    for name, part in (("training", splits.train), ("calibration", splits.calibration)):
        if len(np.unique(part.defect)) < 2:
            raise ValueError(
                f"the {name} parts need both good and defective parts ({len(part)} parts, "
                f"{int(part.defect.sum())} defective): train on a longer span"
            )
    started = time.perf_counter()
    with stage("fitting the defect model"):
        raw = make_defect_model(random_state=options.seed, **parameters)
        raw.fit(splits.train.features, splits.train.defect)
    with stage("calibrating the defect model"):
        calibrated = calibrate(raw, splits.calibration.features, splits.calibration.defect)
        model, anchoring = anchor(calibrated, splits, good_class=0)
    training_s = time.perf_counter() - started
    threshold = options.threshold
    if threshold is None:
        threshold = choose_threshold(
            splits.calibration.defect, _defect_risk(model, splits.calibration)
        )
    evaluation = evaluate(model, splits.test, threshold=threshold)
    card = defect_card(
        model,
        splits.train,
        splits.test,
        evaluation,
        seed=options.seed,
        training_s=training_s,
        source=source,  # type: ignore[arg-type]
        parameters=dict(parameters),
    )
    card["data"]["calibration"] = describe_data(splits.calibration)
    card["data"]["anchor"] = anchoring
    card["metrics"]["by_source"] = _by_source(model, splits.tests, _defect_risk)
    card["metrics"]["threshold_chosen_on"] = (
        "given" if options.threshold is not None else "best F1 on the calibration parts"
    )
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
    splits: Splits, options: TrainingOptions, *, parameters: Mapping[str, Any]
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
    raw = make_defect_model(random_state=options.seed, **parameters)
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
        seed=options.seed,
        training_s=training_s,
        parameters=dict(parameters),
    ).model_dump(mode="json")
    learnt = np.concatenate([train.defect, calibration.defect])
    gate = defect_gate(test.defect, _part_risk(model, test), trained_rate=float(learnt.mean()))
    return FittedModel("defect-station", model, card, gate)


# -- the drift detector ---------------------------------------------------------------------------
def clean_windows(
    store: HistoryStore, start_ms: int, end_ms: int, line: str
) -> dict[str, StationWindows]:
    """The telemetry windows of [start_ms, end_ms) without those of a worn tool
    (docs/anomaly.md): the detector learns the healthy line."""
    windows = telemetry_windows(store, start_ms, end_ms, line=line)
    worn = wear_episodes(store, start_ms, end_ms, level=HEALTHY_WEAR, line=line)
    return {
        station: found.outside(
            [episode.span for episode in worn if episode.station == station], margin_ms=300_000
        )
        for station, found in windows.items()
    }


def fit_drift_detector(
    windows: Mapping[str, StationWindows], *, seed: int, source: str
) -> FittedModel:
    """The drift detector, fitted on the earlier clean windows and gated on the
    latest ``DRIFT_HOLDOUT`` of them."""
    ends = [found.end_ms for found in windows.values() if len(found)]
    if not ends:
        raise ValueError("no telemetry windows to fit the drift detector on")
    first = int(min(end.min() for end in ends))
    last = int(max(end.max() for end in ends))
    cut = first + int((last - first) * (1 - DRIFT_HOLDOUT))
    fit = {station: found.select(found.end_ms <= cut) for station, found in windows.items()}
    held_out = {station: found.select(found.end_ms > cut) for station, found in windows.items()}
    started = time.perf_counter()
    detector = LineAnomalyDetector(random_state=seed).fit(fit)
    training_s = time.perf_counter() - started
    scores = detector.score(held_out)
    scores = {station: scores.get(station, np.empty(0)) for station in fit}
    alarms = detector.alarms(held_out)
    days = (last - cut) / 86_400_000
    gate = drift_gate(scores, len(alarms), days, alarm_score=ALARM_SCORE)
    card = {
        "kind": "anomaly",
        "estimator": describe_estimator(detector),
        "data": {
            "source": source,
            "windows": {station: len(found.end_ms) for station, found in fit.items()},
            "held_out_windows": {station: len(found) for station, found in scores.items()},
            "left_out": f"windows of a tool worn past {HEALTHY_WEAR}",
        },
        "metrics": {
            "held_out_days": days,
            "false_alarms": len(alarms),
            "clean_alert_share": {
                station: float(np.mean(found >= ALARM_SCORE)) if len(found) else None
                for station, found in scores.items()
            },
        },
        "seed": seed,
        "training_s": training_s,
    }
    return FittedModel("anomaly", detector, card, gate)


# -- the whole workflow ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: ModelVersion
    gate: GateResult

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version.version,
            "active": self.version.active,
            "gate": self.gate.as_dict(),
        }


@dataclass
class TrainingOutcome:
    """What ``train_models`` fitted, registered and reported."""

    evaluation: Any
    registered: list[RegisteredModel]
    report_dir: Path
    tuning: Any = None
    station_metrics: dict[str, Any] = field(default_factory=dict)

    def model(self, name: str) -> RegisteredModel | None:
        return next((item for item in self.registered if item.name == name), None)

    def result(self, command: str) -> dict[str, Any]:
        """The outcome as plain JSON values (``--result-json``, the API's jobs)."""
        evaluation = self.evaluation
        return {
            "command": command,
            "report": str(self.report_dir),
            "registered": [item.as_dict() for item in self.registered],
            "metrics": {
                "parts": evaluation.parts,
                "defects": evaluation.defects,
                "roc_auc": evaluation.roc_auc,
                "pr_auc": evaluation.pr_auc,
                "f1": evaluation.f1,
                "threshold": evaluation.threshold,
                "brier": evaluation.brier,
                "mean_risk": evaluation.mean_risk,
                "defect_rate": evaluation.defect_rate,
                "oracle_roc_auc": evaluation.oracle_roc_auc,
                "oracle_ratio": evaluation.oracle_ratio,
            },
            "tuning": self.tuning.as_dict() if self.tuning is not None else None,
        }


def register_gated(
    registry: ModelRegistry, fitted: FittedModel, options: TrainingOptions
) -> RegisteredModel:
    """Register ``fitted`` with its gate in the card; active only when it passed (or
    ``options.force``) and ``options.activate``."""
    gate = fitted.gate.with_force(options.force)
    card = {**fitted.card, "gate": gate.as_dict()}
    activate = options.activate and (gate.passed or options.force)
    version = registry.register(fitted.name, fitted.model, card, activate=activate)
    return RegisteredModel(fitted.name, version, gate)


def train_models(
    sources: Mapping[str, PartDataset],
    registry: ModelRegistry,
    options: TrainingOptions,
    *,
    report_dir: str | Path,
    description: Mapping[str, Any] | None = None,
    drift_windows: Callable[[], Mapping[str, StationWindows]] | None = None,
    drift_source: str = "history",
    tune: Callable[[PartDataset], Any] | None = None,
    stage: Stage = _no_stage,
) -> TrainingOutcome:
    """Fit, calibrate, report, gate and register the line's models from ``sources``
    (name to parts: ``history``, ``simulation``, ``csv``). ``drift_windows`` gives
    the clean telemetry windows of the drift detector (None: no detector); ``tune``
    searches the defect model's parameters on the training parts. Raises ValueError
    (``models.dataset.DatasetError`` included) for data that cannot be trained on."""
    options.check()
    if not sources or not any(len(parts) for parts in sources.values()):
        raise ValueError("no parts to train on")
    source = _source_name(sources)
    # One thread: on the small machines this runs on, OpenMP threads fight (docs/models.md).
    with threadpool_limits(limits=options.threads):
        splits = split_parts(sources, options.test_fraction, options.calibration_fraction)
        tuning = tune(splits.train) if tune is not None else None
        parameters: dict[str, Any] = dict(tuning.best_params) if tuning is not None else {}
        defect = fit_defect_model(
            splits, options, parameters=parameters, source=source, stage=stage
        )
        defect.card["data"]["description"] = dict(description or {})
        if tuning is not None:
            defect.card["tuning"] = tuning.as_dict()
        with stage("writing the report"):
            report = write_training_report(
                report_dir,
                model=defect.model,
                test=splits.test,
                evaluation=defect.evaluation,
                tuning=tuning,
                card={**defect.card, "gate": defect.gate.as_dict()},
            )
        station = None
        if options.stations:
            with stage("fitting the station model"):
                station = fit_station_model(splits, options, parameters=parameters)
        drift = None
        if drift_windows is not None:
            with stage("fitting the drift detector"):
                drift = fit_drift_detector(drift_windows(), seed=options.seed, source=drift_source)
    registered = [register_gated(registry, defect, options)]
    registered += [register_gated(registry, item, options) for item in (station, drift) if item]
    return TrainingOutcome(
        evaluation=defect.evaluation,
        registered=registered,
        report_dir=report.directory,
        tuning=tuning,
        station_metrics=station.card["metrics"] if station is not None else {},
    )


__all__ = [
    "DEFAULT_CALIBRATION_FRACTION",
    "DEFAULT_TEST_FRACTION",
    "DRIFT_HOLDOUT",
    "HEALTHY_WEAR",
    "MIN_ANCHOR_DEFECTS",
    "FittedModel",
    "RegisteredModel",
    "Splits",
    "TrainingOptions",
    "TrainingOutcome",
    "anchor",
    "clean_windows",
    "concat_parts",
    "explore_hours",
    "fit_defect_model",
    "fit_drift_detector",
    "fit_station_model",
    "register_gated",
    "split_parts",
    "train_models",
]
