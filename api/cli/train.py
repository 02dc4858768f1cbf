"""``factory-twin train`` and ``tune``: fit, report and register the line's models.

    factory-twin train     fit the defect, station and drift models, report, register
    factory-twin tune      search the defect model's parameters with time-aware CV, then train

Every run writes a report directory (metrics as JSON and Markdown, plots as
PNG) and prints where it is. Both register the models in the registry
(``--models-path``, ``FACTORY_TWIN_MODELS_PATH``) as their new active
versions, unless ``--no-activate`` or a model fails its quality gate. The
workflow itself is ``models.training.train_models``; the parts come from
``data``. Progress bars go to stderr when it is a terminal. Exit codes as for
the rest of the CLI: 0 success, 1 a runtime failure, 2 bad usage or bad data
(with a message naming the field or column).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from api.cli.arguments import integer
from api.cli.common import (
    EXIT_OK,
    EXIT_RUNTIME,
    EXIT_USAGE,
    current_settings,
    fail,
    progress_bar,
    report_dir,
    say,
    write_result,
)
from api.cli.data import MAX_SIMULATION_HOURS, Data, data_options, drift_windows, load_data

if TYPE_CHECKING:
    from models.dataset.parts import PartDataset
    from models.registry.store import ModelRegistry


def _registry(args: argparse.Namespace) -> ModelRegistry:
    from api.settings import registry_path
    from models.registry.store import ModelRegistry

    return ModelRegistry(args.models_path or registry_path(current_settings()))


@contextmanager
def _stage(name: str) -> Iterator[None]:
    """A training stage as a one-step bar (JSON progress for the API's jobs)."""
    with progress_bar(1, name) as bar:
        yield
        bar.update(1)


def _check_train_args(args: argparse.Namespace) -> None:
    """Every number out of its range is a usage error naming the flag: one line, exit 2."""
    checks = [
        (args.hours > 0, f"--hours must be > 0 (got {args.hours:g})"),
        (args.days > 0, f"--days must be > 0 (got {args.days:g})"),
        (args.drift_hours > 0, f"--drift-hours must be > 0 (got {args.drift_hours:g})"),
        (args.explore_every > 0, f"--explore-every must be > 0 (got {args.explore_every:g})"),
        (0 < args.test_fraction < 1, f"--test-fraction must be between 0 and 1 "
         f"(got {args.test_fraction:g})"),
        (args.threshold is None or 0 < args.threshold < 1,
         f"--threshold must be between 0 and 1 (got {args.threshold})"),
        (args.threads >= 1, f"--threads must be >= 1 (got {args.threads})"),
        (args.seed >= 0, f"--seed must be >= 0 (got {args.seed})"),
        (args.explore_hours is None or args.explore_hours >= 0,
         f"--explore-hours must be >= 0 or auto (got {args.explore_hours})"),
        (args.end_ms is None or args.end_ms > 0, f"--end-ms must be > 0 (got {args.end_ms})"),
    ]  # fmt: skip
    for ok, message in checks:
        if not ok:
            fail(message, EXIT_USAGE)
    for flag, hours in (
        ("--hours", args.hours),
        ("--drift-hours", args.drift_hours),
        ("--explore-hours", args.explore_hours or 0.0),
        ("--days", args.days * 24),
    ):
        if hours > MAX_SIMULATION_HOURS:
            limit = f"{MAX_SIMULATION_HOURS:g} hours"
            fail(f"{flag} must be at most {limit} (got {hours:g})", EXIT_USAGE)


def _train(
    args: argparse.Namespace, command: str, tune: Callable[[PartDataset], Any] | None
) -> int:
    _check_train_args(args)
    registry = _registry(args)
    data = load_data(args)
    try:
        return _train_on(data, registry, args, tune, command)
    finally:
        if data.history is not None:
            data.history.close()


def _train_on(
    data: Data,
    registry: ModelRegistry,
    args: argparse.Namespace,
    tune: Callable[[PartDataset], Any] | None,
    command: str,
) -> int:
    from models.registry.store import RegistryError
    from models.training import TrainingOptions, train_models

    options = TrainingOptions(
        seed=args.seed,
        test_fraction=args.test_fraction,
        threshold=args.threshold,
        stations=args.stations,
        activate=args.activate,
        force=args.force,
        threads=args.threads,
    )
    for name, parts in data.sources.items():
        train_share = 1 - args.test_fraction
        say(
            f"{name}: {len(parts)} parts, the earliest {train_share:.0%} to train and calibrate "
            f"on, the latest {args.test_fraction:.0%} to test on"
        )
    drift = args.drift and data.source != "csv"
    try:
        outcome = train_models(
            data.sources,
            registry,
            options,
            report_dir=report_dir(args, command),
            description=data.description,
            drift_windows=(lambda: drift_windows(data, args)) if drift else None,
            drift_source="history" if data.history is not None else "simulation",
            tune=tune,
            stage=_stage,
        )
    except RegistryError as exc:
        fail(str(exc), EXIT_RUNTIME)
    except ValueError as exc:  # DatasetError included: data that cannot be trained on
        fail(str(exc), EXIT_USAGE)
    _print_training(outcome, registry)
    write_result(args, outcome.result(command))
    return EXIT_OK


def _print_training(outcome: Any, registry: ModelRegistry) -> None:
    tuning, evaluation = outcome.tuning, outcome.evaluation
    if tuning is not None:
        print(
            f"tuning: {tuning.search} search, {tuning.candidates} candidates, best "
            f"{tuning.scoring} {tuning.best_score:.4f} over {len(tuning.folds)} time-ordered "
            f"folds in {tuning.elapsed_s:.0f} s"
        )
        print(f"  best parameters: {json.dumps(tuning.best_params, sort_keys=True)}")
    print(
        f"defect model on {evaluation.parts} later parts ({evaluation.defects} defective): "
        f"ROC-AUC {evaluation.roc_auc:.3f}, PR-AUC {evaluation.pr_auc:.3f}, "
        f"F1 {evaluation.f1:.3f} at {evaluation.threshold:.3g}, Brier {evaluation.brier:.4f}"
    )
    print(
        f"  calibrated: mean risk {evaluation.mean_risk:.2%} against "
        f"{evaluation.defect_rate:.2%} defective"
    )
    if evaluation.oracle_roc_auc is not None:
        print(
            f"  oracle ROC-AUC {evaluation.oracle_roc_auc:.3f}: the model reaches "
            f"{evaluation.oracle_ratio:.3f} of the best possible"
        )
    by_station = outcome.station_metrics.get("station_roc_auc")
    if by_station:
        print(
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
        print(f"registered {item.name} v{version.version} ({state}) in {registry.root}")
    print(f"report: {outcome.report_dir / 'report.md'}")
    for item in refused:
        print(
            f"not activated: {item.name} v{item.version.version} is {item.gate.reason()} "
            "(--force activates it anyway)"
        )


def cmd_train(args: argparse.Namespace) -> int:
    return _train(args, "train", None)


def cmd_tune(args: argparse.Namespace) -> int:
    from models.tuning import tune_defect_model

    if args.candidates < 1:
        fail(f"--candidates must be >= 1 (got {args.candidates})", EXIT_USAGE)
    if args.cv_splits < 2:
        fail(f"--cv-splits must be >= 2 (got {args.cv_splits})", EXIT_USAGE)

    def tune(train: PartDataset) -> Any:
        with progress_bar(0, f"tuning ({args.search} search)", "fits") as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

            return tune_defect_model(
                train,
                random_state=args.seed,
                n_candidates=args.candidates,
                cv_splits=args.cv_splits,
                search=args.search,
                progress=progress,
            )

    return _train(args, "tune", tune)


def add_parser(commands: Any) -> None:
    """Add train and tune to the CLI's subcommands."""
    train = commands.add_parser(
        "train", help="train the defect model and drift detector, report, register"
    )
    data_options(train)
    train.set_defaults(handler=cmd_train)

    tune = commands.add_parser(
        "tune", help="tune the defect model with time-aware CV, then train and register"
    )
    data_options(tune)
    tune.add_argument(
        "--search", choices=["halving", "random"], default="halving", help="searcher (halving)"
    )
    tune.add_argument(
        "--candidates", type=integer(1, 10_000), default=24, help="parameter sets to try (24)"
    )
    tune.add_argument("--cv-splits", type=integer(2, 100), default=4, help="time-ordered folds (4)")
    tune.set_defaults(handler=cmd_tune)
