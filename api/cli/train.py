"""``factory-twin train`` and ``tune``: fit, report and register the line's models.

    factory-twin train     fit the defect and station models, report, register
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
from typing import Any

from api.cli.arguments import integer
from api.cli.common import (
    EXIT_OK,
    EXIT_RUNTIME,
    EXIT_USAGE,
    BarProgress,
    fail,
    write_result,
)
from api.cli.data import MAX_SIMULATION_HOURS, data_options, training_request
from api.training import DRIFT_DETECTOR_GONE, Tuning, run_training, summary


def _check_train_args(args: argparse.Namespace) -> None:
    """Every number out of its range is a usage error naming the flag: one line, exit 2."""
    if args.drift_hours is not None:
        fail(f"--drift-hours: {DRIFT_DETECTOR_GONE}", EXIT_USAGE)
    checks = [
        (args.hours > 0, f"--hours must be > 0 (got {args.hours:g})"),
        (args.days > 0, f"--days must be > 0 (got {args.days:g})"),
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
        ("--explore-hours", args.explore_hours or 0.0),
        ("--days", args.days * 24),
    ):
        if hours > MAX_SIMULATION_HOURS:
            limit = f"{MAX_SIMULATION_HOURS:g} hours"
            fail(f"{flag} must be at most {limit} (got {hours:g})", EXIT_USAGE)


def _train(args: argparse.Namespace, tuning: Tuning | None) -> int:
    from models.registry.store import RegistryError
    from twin.history.store import StoreError

    _check_train_args(args)
    request = training_request(args, tuning)
    progress = BarProgress()
    try:
        outcome, registry = run_training(request, progress)
    except (RegistryError, StoreError) as exc:
        fail(str(exc), EXIT_RUNTIME)
    except ValueError as exc:  # DatasetError included: data that cannot be trained on
        fail(str(exc), EXIT_USAGE)
    finally:
        progress.close()
    for line in summary(outcome, registry):
        print(line)
    write_result(args, outcome.result(request.command))
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    return _train(args, None)


def cmd_tune(args: argparse.Namespace) -> int:
    if args.candidates < 1:
        fail(f"--candidates must be >= 1 (got {args.candidates})", EXIT_USAGE)
    if args.cv_splits < 2:
        fail(f"--cv-splits must be >= 2 (got {args.cv_splits})", EXIT_USAGE)
    return _train(args, Tuning(args.search, args.candidates, args.cv_splits))


def add_parser(commands: Any) -> None:
    """Add train and tune to the CLI's subcommands."""
    train = commands.add_parser(
        "train", help="train the defect and station models, report, register"
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
