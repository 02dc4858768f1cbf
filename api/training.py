"""A training run as ``factory-twin train``, ``POST /training`` and the first start
of ``factory-twin up`` all make it: the parts from the source a request names,
then the workflow of ``models.training.train_models``, reporting through one
``models.training.TrainingProgress``.

The sources: a simulation of the line with explored setpoints, the history
``up`` recorded (optionally with a designed experiment beside it), or a CSV
file. The drift detector of earlier versions (the "anomaly" model) is no longer
trained: the sensor watch replaced it (``DRIFT_DETECTOR_GONE``).

The command line runs ``run_training`` in its own process. The API runs
``train_in_child`` in a child process (``api.jobs``, ``api.first_training``):
scikit-learn's fits hold the interpreter lock for seconds at a time, and in the
API's process they would starve the live line; the child sends its progress,
its log and its result back over a pipe.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from twin.config.line import LineConfig

# The training workflow (scikit-learn, SciPy) is imported where it runs, in the
# child process: the API that starts a job or the first training never loads it.
if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from models.dataset.rows import PartDataset
    from models.registry.store import ModelRegistry
    from models.training import TrainingOutcome, TrainingProgress

Source = Literal["simulation", "history", "csv"]

# Why a request for the drift detector is refused (the command's --drift-hours, the
# API's drift and drift_hours).
DRIFT_DETECTOR_GONE = (
    "the drift detector (the 'anomaly' model) is no longer trained: the sensor watch "
    "replaced it, which learns each sensor's expected reading in the running twin "
    "(docs/alarms.md)"
)


class TrainingInputError(ValueError):
    """A request that cannot be trained on as given (a missing file, a bad schema)."""


@dataclass(frozen=True)
class Tuning:
    """``tune``: search the defect model's parameters before training."""

    search: Literal["halving", "random"] = "halving"
    candidates: int = 24
    cv_splits: int = 4


@dataclass(frozen=True)
class TrainingRequest:
    """What to train on and how: the flags of ``factory-twin train`` (docs/models.md)."""

    config: LineConfig
    report_dir: Path
    models_path: Path
    source: Source = "simulation"
    hours: float = 480.0
    explore_every_s: float = 900.0
    history_path: str | None = None
    days: float = 7.0
    end_ms: int | None = None
    explore_hours: float | None = 0.0  # None: auto, about 15,000 parts
    csv: str | None = None
    schema: str | None = None
    seed: int = 1
    test_fraction: float = 0.3
    threshold: float | None = None
    threads: int = 1
    stations: bool = True
    activate: bool = True
    force: bool = False
    tuning: Tuning | None = None
    topic_root: str = "factory"

    @property
    def command(self) -> str:
        return "train" if self.tuning is None else "tune"


@dataclass
class Data:
    """The parts to train on, by source, and the history store they came from."""

    sources: dict[str, PartDataset]
    description: dict[str, Any]
    history: Any = None  # the store, for history; None otherwise
    span: tuple[int, int] | None = None  # the history read, [start_ms, end_ms)

    @property
    def source(self) -> str:
        return "+".join(sorted(self.sources))


def _history_store(path: str) -> Any:
    from twin.history.store import SqliteStore

    if not Path(path).is_file():
        raise TrainingInputError(
            f"--history-path {path}: no history store there (run factory-twin up)"
        )
    return SqliteStore(path, retention_ms=None)


def _history_span(store: Any, days: float, end_ms: int | None = None) -> tuple[int, int]:
    from models.dataset.rows import DatasetError

    extent = store.time_range()
    if extent is None or not store.series("part"):
        raise DatasetError("the history store holds no parts yet: run factory-twin up first")
    end_ms = int(extent[1]) + 1 if end_ms is None else min(end_ms, int(extent[1]) + 1)
    start_ms = max(int(extent[0]), end_ms - int(days * 86_400_000))
    if end_ms <= start_ms:
        raise DatasetError(f"the history store holds nothing before --end-ms {end_ms}")
    return start_ms, end_ms


def _simulated(request: TrainingRequest, hours: float, progress: TrainingProgress) -> PartDataset:
    from models.dataset.parts import from_simulation
    from models.training import stages

    config = request.config
    what = f"{hours:g} h of {config.line.id} with setpoints explored every "
    what += f"{request.explore_every_s:g} s"
    progress.say(f"simulating {what} (seed {request.seed}) for the data")
    with stages(progress)("simulating the data"):
        return from_simulation(config, hours, request.seed, explore_every_s=request.explore_every_s)


def _csv_data(request: TrainingRequest, progress: TrainingProgress) -> Data:
    from models.dataset.parts import from_csv
    from models.dataset.table import is_table_schema, parse_table_schema, read_table

    if not request.csv or not request.schema:
        raise TrainingInputError("--source csv needs --csv FILE and --schema FILE")
    try:
        schema = yaml.safe_load(Path(request.schema).read_text("utf-8-sig"))
    except (OSError, yaml.YAMLError) as exc:
        raise TrainingInputError(f"--schema {request.schema}: {exc}") from exc
    if not isinstance(schema, dict):
        raise TrainingInputError(
            f"--schema {request.schema}: needs a mapping: a table schema naming the label "
            "(docs/models.md, 'Your own parts table'), or column -> type"
        )
    description: dict[str, Any] = {"csv": str(request.csv)}
    if not is_table_schema(schema):
        return Data({"csv": from_csv(request.csv, schema)}, description)
    table = read_table(request.csv, parse_table_schema(schema, f"--schema {request.schema}"))
    for warning in table.warnings:
        progress.say(f"warning: {warning}")
    description |= {
        "label": schema["label"],
        "columns": table.origins,
        "warnings": table.warnings,
    }
    return Data({"csv": table.parts}, description)


def _history_data(request: TrainingRequest, progress: TrainingProgress) -> Data:
    from models.dataset.parts import from_history
    from models.training import explore_hours

    if request.history_path is None:
        raise TrainingInputError("--source history needs the history store (--history-path)")
    path = request.history_path
    store = _history_store(path)
    try:
        start_ms, end_ms = _history_span(store, request.days, request.end_ms)
        progress.say(f"reading up to {request.days:g} days of history from {path}")
        stations = [station.id for station in request.config.stations]
        history = from_history(store, start_ms, end_ms, stations=stations)
        sources = {"history": history}
        description: dict[str, Any] = {"history": path, "start_ms": start_ms, "end_ms": end_ms}
        hours = request.explore_hours
        if hours is None:  # auto: about as many parts as a designed experiment needs
            span_h = (end_ms - start_ms) / 3_600_000
            hours = explore_hours(len(history) / span_h if span_h > 0 else 0.0)
        if hours > 0:
            sources["simulation"] = _simulated(request, hours, progress)
            description["simulation"] = {"hours": hours, "seed": request.seed}
    except BaseException:
        store.close()
        raise
    return Data(sources, description, store, (start_ms, end_ms))


def load_data(request: TrainingRequest, progress: TrainingProgress) -> Data:
    """The parts to train on, from the source the request names. Raises ValueError
    (TrainingInputError, DatasetError) for data that cannot be read as given."""
    try:
        if request.source == "csv":
            return _csv_data(request, progress)
        if request.source == "history":
            return _history_data(request, progress)
        parts = _simulated(request, request.hours, progress)
        return Data({"simulation": parts}, {"hours": request.hours, "seed": request.seed})
    except OSError as exc:
        raise TrainingInputError(str(exc)) from exc


def _tuner(request: TrainingRequest, progress: TrainingProgress) -> Callable[[Any], Any] | None:
    tuning = request.tuning
    if tuning is None:
        return None
    from models.tuning import tune_defect_model

    name = f"tuning ({tuning.search} search)"

    def tune(train: PartDataset) -> Any:
        progress.stage(name, 0, 0)
        return tune_defect_model(
            train,
            random_state=request.seed,
            n_candidates=tuning.candidates,
            cv_splits=tuning.cv_splits,
            search=tuning.search,
            progress=lambda done, total: progress.stage(name, done, total),
        )

    return tune


def _check_line_features(config: Any, parts: PartDataset) -> None:
    """A CSV's model may go live only if its features are the line's: named
    ``<station>__<field>`` after the line's stations, as the twin's history names them."""
    stations = {station.id for station in config.stations}
    foreign = sorted({name.split("__", 1)[0] for name in parts.feature_names} - stations)
    if foreign:
        raise TrainingInputError(
            f"--activate: the CSV's features name stations the line does not have "
            f"({', '.join(foreign)}; the line's are {', '.join(sorted(stations))}): a live "
            "model could not score the line's parts. Train without --activate"
        )


def run_training(
    request: TrainingRequest, progress: TrainingProgress
) -> tuple[TrainingOutcome, ModelRegistry]:
    """Load the parts, then fit, report, gate and register the line's models.
    Raises ValueError for a request or data that cannot be trained on, and the
    registry's or the store's errors for a failure to read or write them."""
    from models.registry.store import ModelRegistry
    from models.training import TrainingOptions, stages, train_models

    options = TrainingOptions(
        seed=request.seed,
        test_fraction=request.test_fraction,
        threshold=request.threshold,
        stations=request.stations,
        activate=request.activate,
        force=request.force,
        threads=request.threads,
    )
    options.check()
    registry = ModelRegistry(request.models_path)
    data = load_data(request, progress)
    if request.source == "csv" and request.activate:
        _check_line_features(request.config, data.sources["csv"])
    try:
        for name, parts in data.sources.items():
            train_share = 1 - request.test_fraction
            progress.say(
                f"{name}: {len(parts)} parts, the earliest {train_share:.0%} to train and "
                f"calibrate on, the latest {request.test_fraction:.0%} to test on"
            )
        outcome = train_models(
            data.sources,
            registry,
            options,
            report_dir=request.report_dir,
            description=data.description,
            tune=_tuner(request, progress),
            stage=stages(progress),
        )
    finally:
        if data.history is not None:
            data.history.close()
    return outcome, registry


def summary(outcome: TrainingOutcome, registry: ModelRegistry) -> list[str]:
    """What came of a run, a line each: the command prints them, a job logs them
    (its last line says why a model did not go live)."""
    tuning, evaluation = outcome.tuning, outcome.evaluation
    lines = []
    if tuning is not None:
        lines.append(
            f"tuning: {tuning.search} search, {tuning.candidates} candidates, best "
            f"{tuning.scoring} {tuning.best_score:.4f} over {len(tuning.folds)} time-ordered "
            f"folds in {tuning.elapsed_s:.0f} s"
        )
        lines.append(f"  best parameters: {json.dumps(tuning.best_params, sort_keys=True)}")
    learned, defective = outcome.learned_from
    interval = (
        f" [{evaluation.roc_auc_low:.3f}, {evaluation.roc_auc_high:.3f}]"
        if evaluation.roc_auc_low is not None
        else ""
    )
    lines.append(f"defect model learned from {learned:,} parts ({defective:,} defective)")
    lines.append(
        f"  on {evaluation.parts:,} later parts ({evaluation.defects:,} defective): "
        f"ROC-AUC {evaluation.roc_auc:.3f}{interval} (95% bootstrap), "
        f"PR-AUC {evaluation.pr_auc:.3f}, "
        f"F1 {evaluation.f1:.3f} at {evaluation.threshold:.3g}, Brier {evaluation.brier:.4f}"
    )
    lines.append(
        f"  calibrated: mean risk {evaluation.mean_risk:.2%} against "
        f"{evaluation.defect_rate:.2%} defective"
    )
    if evaluation.oracle_roc_auc is not None:
        lines.append(
            f"  oracle ROC-AUC {evaluation.oracle_roc_auc:.3f}: the model reaches "
            f"{evaluation.oracle_ratio:.3f} of the best possible"
        )
    by_station = outcome.station_metrics.get("station_roc_auc")
    if by_station:
        lines.append(
            "station model (where parts fail), ROC-AUC per station: "
            + ", ".join(f"{station} {auc:.3f}" for station, auc in by_station.items())
        )
    refused = []
    for item in outcome.registered:
        version = item.version
        if version.active:
            state = "active, forced below the floor" if item.gate.forced else "active"
        else:
            state = "NOT active"
            if not item.gate.passed:
                refused.append(item)
        lines.append(f"registered {item.name} v{version.version} ({state}) in {registry.root}")
    lines.append(f"report: {outcome.report_dir / 'report.md'}")
    lines += [
        f"not activated: {item.name} v{item.version.version} is {item.gate.reason()} "
        "(--force activates it anyway)"
        for item in refused
    ]
    return lines


# -- in a child process ----------------------------------------------------------------
@dataclass
class PipeProgress:
    """``TrainingProgress`` over a pipe: ``("stage", name, done, total)`` and
    ``("say", message)``, for the parent (``api.jobs``) to follow."""

    connection: Connection
    min_interval_s: float = 0.25
    _last: dict[str, float] = field(default_factory=dict)

    def stage(self, name: str, done: float, total: float) -> None:
        import time

        now = time.monotonic()
        # Every stage's first and last word, and between them a few a second.
        if name in self._last and done < total and now - self._last[name] < self.min_interval_s:
            return
        self._last[name] = now
        self.connection.send(("stage", name, float(done), float(total)))

    def say(self, message: str) -> None:
        self.connection.send(("say", message))


def train_in_child(request: TrainingRequest, connection: Connection) -> None:
    """The body of a training child process: ``run_training``, its progress and
    log sent as it goes, then ``("result", outcome as JSON values)`` or
    ``("error", why)``."""
    progress = PipeProgress(connection)
    try:
        outcome, registry = run_training(request, progress)
        for line in summary(outcome, registry):
            progress.say(line)
        connection.send(("result", outcome.result(request.command)))
    except Exception as exc:  # the parent says why the job failed
        connection.send(("error", str(exc) or type(exc).__name__))
    finally:
        connection.close()


__all__ = [
    "DRIFT_DETECTOR_GONE",
    "Data",
    "PipeProgress",
    "TrainingInputError",
    "TrainingRequest",
    "Tuning",
    "load_data",
    "run_training",
    "summary",
    "train_in_child",
]
