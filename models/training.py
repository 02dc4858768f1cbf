"""Training the line's models: the one workflow behind ``factory-twin train``,
``POST /training`` and the first start of ``factory-twin up``.

``train_models`` fits the defect model and the station model (where parts fail),
calibrates them, writes the report, holds each model to its quality gate
(``models.registry.gate``) and registers it: active when it passed (or was
forced), registered but not active when it did not, the gate result in its card
either way.

**Splits in time** (``models.dataset.splits``). Each source of parts is split on its
own, by the time the parts left: the earliest train, the next
``calibration_fraction`` of the rest calibrates (and picks the threshold), the
latest ``test_fraction`` is held out for the evaluation and the gate. The
models are fitted in ``models.fitting``. Two sources meet at the first start:
the line's history, and a designed experiment on the line's nominal model
(``from_simulation`` with explored setpoints). History of a line run at
constant setpoints cannot teach a defect model: there, defects are noise (the
oracle's ROC-AUC on the shipped lines' backfilled history is 0.49 to 0.64), so
no model could pass the gate. The experiment shows the model what happens away
from today's setpoints; the history anchors it to the line as measured, where
the live parts come from (``models.fitting.anchor``: after calibration on both,
one shift of the log-odds puts its mean risk on the history's calibration
parts at their defect rate).

The drift detector that earlier versions trained here (the "anomaly" model) is
gone: the sensor watch (``models.anomaly.live_watch``) replaced it, and learns
in the running twin, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from models.dataset.rows import PartDataset
from models.dataset.splits import source_name, split_parts
from models.fitting import (
    FittedModel,
    Stage,
    fit_defect_model,
    fit_station_model,
    no_stage,
)
from models.registry.gate import GateResult
from models.registry.store import ModelRegistry, ModelVersion
from models.report import write_training_report

DEFAULT_TEST_FRACTION = 0.3
DEFAULT_CALIBRATION_FRACTION = 0.25
# The designed experiment's size: about this many parts, within these hours.
EXPLORE_TARGET_PARTS = 15_000
EXPLORE_HOURS = (12.0, 480.0)


class TrainingProgress(Protocol):
    """How a training run tells how far it got: the one protocol behind the
    command line's bars (or JSON lines) and the API's job status."""

    def stage(self, name: str, done: float, total: float) -> None:
        """``done`` of ``total`` of stage ``name``; ``total`` 0 when it cannot tell."""

    def say(self, message: str) -> None:
        """A line for the person (or the job's log) watching."""


class SilentProgress:
    """Progress nobody watches."""

    def stage(self, name: str, done: float, total: float) -> None:
        return None

    def say(self, message: str) -> None:
        return None


def stages(progress: TrainingProgress) -> Stage:
    """A ``models.fitting.Stage`` that reports each stage as one step of ``progress``."""

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        progress.stage(name, 0, 1)
        yield
        progress.stage(name, 1, 1)

    return stage


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
    # (parts, defective parts) the model learnt from: fitted and calibrated on
    learned_from: tuple[int, int] = (0, 0)

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
                "roc_auc_interval": [evaluation.roc_auc_low, evaluation.roc_auc_high],
                "learned_from_parts": self.learned_from[0],
                "learned_from_defects": self.learned_from[1],
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
    tune: Callable[[PartDataset], Any] | None = None,
    stage: Stage = no_stage,
) -> TrainingOutcome:
    """Fit, calibrate, report, gate and register the line's models from ``sources``
    (name to parts: ``history``, ``simulation``, ``csv``). ``tune`` searches the
    defect model's parameters on the training parts. Raises ValueError
    (``models.dataset.parts.DatasetError`` included) for data that cannot be trained on."""
    options.check()
    if not sources or not any(len(parts) for parts in sources.values()):
        raise ValueError("no parts to train on")
    source = source_name(sources)
    # One thread: on the small machines this runs on, OpenMP threads fight (docs/models.md).
    with threadpool_limits(limits=options.threads):
        splits = split_parts(sources, options.test_fraction, options.calibration_fraction)
        tuning = tune(splits.train) if tune is not None else None
        parameters: dict[str, Any] = dict(tuning.best_params) if tuning is not None else {}
        defect = fit_defect_model(
            splits,
            seed=options.seed,
            threshold=options.threshold,
            parameters=parameters,
            source=source,
            stage=stage,
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
                station = fit_station_model(splits, seed=options.seed, parameters=parameters)
    registered = [register_gated(registry, defect, options)]
    if station is not None:
        registered.append(register_gated(registry, station, options))
    return TrainingOutcome(
        evaluation=defect.evaluation,
        registered=registered,
        report_dir=report.directory,
        tuning=tuning,
        station_metrics=station.card["metrics"] if station is not None else {},
        learned_from=(
            len(splits.train) + len(splits.calibration),
            int(splits.train.defect.sum() + splits.calibration.defect.sum()),
        ),
    )


__all__ = [
    "DEFAULT_CALIBRATION_FRACTION",
    "DEFAULT_TEST_FRACTION",
    "RegisteredModel",
    "SilentProgress",
    "TrainingOptions",
    "TrainingOutcome",
    "TrainingProgress",
    "explore_hours",
    "register_gated",
    "stages",
    "train_models",
]
