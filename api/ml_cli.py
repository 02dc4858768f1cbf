"""``factory-twin train``, ``tune`` and ``optimize``: the models from the command line.

    factory-twin train     fit the defect, station and drift models, report, register
    factory-twin tune      search the defect model's parameters with time-aware CV, then train
    factory-twin optimize  recommend setpoints with the simulator; --apply sends them

Every run writes a report directory (metrics as JSON and Markdown, plots as
PNG) and prints where it is. ``train`` and ``tune`` register the model in the
registry (``--models-path``, ``FACTORY_TWIN_MODELS_PATH``) as its new active
version, unless ``--no-activate``. Progress bars go to stderr when it is a
terminal. Exit codes as for the rest of the CLI: 0 success, 1 a runtime
failure, 2 bad usage or bad data (with a message naming the field or column);
optimize --apply only: 3 the line rejected a setpoint, 4 no answer in time.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from api.cli_common import (
    EXIT_NO_ANSWER,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_RUNTIME,
    EXIT_USAGE,
    broker_address,
    fail,
    line_topics,
    load_line,
    progress_bar,
    reach_hint,
    say,
    write_result,
)
from api.cli_types import (
    HOURS,
    PORT,
    PROBABILITY,
    REPLICATIONS,
    SEED,
    TIMEOUT_S,
    WORKERS,
    integer,
    number,
)
from twin.config.line import LineConfig

if TYPE_CHECKING:
    from tqdm import tqdm

    from models.dataset.parts import PartDataset
    from models.optimizer.confirmation import Interval
    from models.registry.store import ModelRegistry

DEFAULT_SIMULATION_HOURS = 20 * 24.0
MAX_SIMULATION_HOURS = 100_000.0
DEFAULT_HISTORY_DAYS = 7.0
DEFAULT_DRIFT_HOURS = 48.0
EXPLORE_EVERY_S = 900.0


def _report_dir(args: argparse.Namespace, command: str) -> Path:
    if args.report_dir:
        return Path(args.report_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path("reports") / f"{command}-{stamp}"


def _registry(args: argparse.Namespace) -> ModelRegistry:
    from models.registry.store import ModelRegistry, default_registry_path

    return ModelRegistry(args.models_path or default_registry_path())


# -- data ---------------------------------------------------------------------------------------
@dataclass
class Data:
    """The parts to train on, by source (history, simulation, csv), and how to get the
    drift detector's windows."""

    sources: dict[str, PartDataset]
    description: dict[str, Any]
    config: LineConfig
    history: Any = None  # the store, for history; None otherwise
    span: tuple[int, int] | None = None  # the history read, [start_ms, end_ms)

    @property
    def source(self) -> str:
        return "+".join(sorted(self.sources))


def _history_store(path: str) -> Any:
    from twin.history.store import SqliteStore, StoreError

    if not Path(path).is_file():
        fail(f"--history-path {path}: no history store there (run factory-twin up)", EXIT_USAGE)
    try:
        return SqliteStore(path, retention_ms=None)
    except StoreError as exc:
        fail(str(exc), EXIT_RUNTIME)


def _history_span(store: Any, days: float, end_ms: int | None = None) -> tuple[int, int]:
    from models.dataset.parts import DatasetError

    extent = store.time_range()
    if extent is None or not store.series("part"):
        raise DatasetError("the history store holds no parts yet: run factory-twin up first")
    end_ms = int(extent[1]) + 1 if end_ms is None else min(end_ms, int(extent[1]) + 1)
    start_ms = max(int(extent[0]), end_ms - int(days * 86_400_000))
    if end_ms <= start_ms:
        raise DatasetError(f"the history store holds nothing before --end-ms {end_ms}")
    return start_ms, end_ms


def _simulated(config: LineConfig, hours: float, args: argparse.Namespace) -> PartDataset:
    from models.dataset.parts import from_simulation

    what = f"{hours:g} h of {config.line.id} with setpoints explored every {args.explore_every:g} s"
    say(f"simulating {what} (seed {args.seed}) for the data")
    with progress_bar(1, "simulating the data") as bar:
        parts = from_simulation(config, hours, args.seed, explore_every_s=args.explore_every)
        bar.update(1)
    return parts


def load_data(args: argparse.Namespace) -> Data:
    """The parts to train on, from the source the flags name."""
    from api.settings import Settings
    from models.dataset.parts import DatasetError, from_csv, from_history
    from models.training import explore_hours

    config = load_line(args.config)
    try:
        if args.source == "csv":
            if not args.csv or not args.schema:
                fail("--source csv needs --csv FILE and --schema FILE", EXIT_USAGE)
            try:
                schema = yaml.safe_load(Path(args.schema).read_text("utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                fail(f"--schema {args.schema}: {exc}", EXIT_USAGE)
            if not isinstance(schema, dict):
                fail(f"--schema {args.schema}: needs a mapping of column to type", EXIT_USAGE)
            parts = from_csv(args.csv, schema)
            return Data({"csv": parts}, {"csv": str(args.csv)}, config)
        if args.source == "history":
            path = args.history_path or str(Settings().history_path)
            store = _history_store(path)
            try:
                start_ms, end_ms = _history_span(store, args.days, args.end_ms)
                say(f"reading up to {args.days:g} days of history from {path}")
                history = from_history(
                    store, start_ms, end_ms, stations=[station.id for station in config.stations]
                )
            except BaseException:
                store.close()
                raise
            sources = {"history": history}
            description: dict[str, Any] = {"history": path, "start_ms": start_ms, "end_ms": end_ms}
            hours = args.explore_hours
            if hours is None:  # auto: about as many parts as a designed experiment needs
                span_h = (end_ms - start_ms) / 3_600_000
                hours = explore_hours(len(history) / span_h if span_h > 0 else 0.0)
            if hours > 0:
                sources["simulation"] = _simulated(config, hours, args)
                description["simulation"] = {"hours": hours, "seed": args.seed}
            return Data(sources, description, config, store, (start_ms, end_ms))
        parts = _simulated(config, args.hours, args)
        return Data({"simulation": parts}, {"hours": args.hours, "seed": args.seed}, config)
    except (DatasetError, OSError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)


# -- train and tune -----------------------------------------------------------------------------
def _drift_windows(data: Data, args: argparse.Namespace) -> dict[str, Any]:
    """Clean telemetry windows to fit the drift detector on: the history's, or for
    other sources a simulated history's (the live path minus the broker)."""
    from models.fitting import clean_windows

    line = data.config.line.id
    if data.history is not None and data.span is not None:
        return clean_windows(data.history, data.span[0], data.span[1], line)
    import tempfile

    from sensors.backfill import simulate_history
    from twin.history.points import HistoryWriter
    from twin.history.store import SqliteStore

    hours = args.drift_hours
    with tempfile.TemporaryDirectory(prefix="factory-twin-drift-") as directory:
        store = SqliteStore(Path(directory) / "history.sqlite3", retention_ms=None)
        try:
            writer = HistoryWriter(store)
            with progress_bar(hours, "simulating telemetry for the drift detector", "h") as bar:
                done = [0.0]

                def progress(fraction: float) -> None:
                    bar.update(fraction * hours - done[0])
                    done[0] = fraction * hours

                simulate_history(
                    data.config,
                    writer,
                    line_topics(data.config),
                    start_ms=0,
                    span_s=hours * 3600,
                    seed=args.seed,
                    progress=progress,
                )
            writer.flush(120)
            return clean_windows(store, 0, int(hours * 3_600_000), line)
        finally:
            store.close()


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
            report_dir=_report_dir(args, command),
            description=data.description,
            drift_windows=(lambda: _drift_windows(data, args)) if drift else None,
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


# -- optimize -----------------------------------------------------------------------------------
def _constraints(args: argparse.Namespace) -> Any:
    from models.optimizer.search import Constraints

    return Constraints(
        max_defect_rate=args.max_defect_rate,
        min_throughput_per_h=args.min_good_per_hour,
        max_energy_per_good_part_kwh=args.max_energy_per_part,
    )


def apply_setpoints(
    config: LineConfig,
    setpoints: Mapping[str, float],
    url: str | None,
    timeout: float,
    port: int | None = None,
) -> int:
    """Send the setpoints to the running line as commands; print each ack."""
    from models.optimizer.search import setpoint_commands
    from sensors.command_client import Command, send_commands
    from sensors.mqtt import MqttError

    try:
        planned = setpoint_commands(config, setpoints)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    commands = [
        Command(item["station"], "set_setpoint", {"setpoint": item["name"], "value": item["value"]})
        for item in planned
    ]
    address = broker_address(url, port)
    try:
        answers = send_commands(address, line_topics(config), commands, timeout=timeout)
    except MqttError as exc:
        fail(f"{exc}; {reach_hint(address)}", EXIT_RUNTIME)
    code = EXIT_OK
    for command in commands:
        ack = answers[command.command_id]
        what = f"{command.target}.{command.fields['setpoint']} = {command.fields['value']:g}"
        if ack is None:
            print(f"  {what}: no answer within {timeout:g} s")
            code = max(code, EXIT_NO_ANSWER)
        elif ack.get("accepted"):
            print(f"  {what}: accepted ({ack.get('reason') or 'ok'})")
        else:
            print(f"  {what}: REJECTED ({ack.get('reason')})")
            code = max(code, EXIT_REJECTED)
    return code


def _interval(interval: Interval) -> str:
    if interval.low is None or interval.high is None:
        return f"{interval.mean:,.2f}"
    return f"{interval.mean:,.2f} [{interval.low:,.2f}, {interval.high:,.2f}]"


def _current_setpoints(
    args: argparse.Namespace, config: LineConfig, keys: list[str]
) -> dict[str, float]:
    """Today's setpoints: ``--current`` (the live line's, from the API), else the
    line file's defaults."""
    from models.optimizer.confirmation import current_setpoints

    current = current_setpoints(config, keys)
    if args.current is None:
        return current
    try:
        given = json.loads(args.current)
    except ValueError as exc:
        fail(f"--current: not JSON ({exc})", EXIT_USAGE)
    if not isinstance(given, dict):
        fail('--current: give a JSON object such as {"machining.speed": 1.1}', EXIT_USAGE)
    for key, value in given.items():
        if key not in current:
            fail(f"--current: {key!r} is not searched; the setpoints are {keys}", EXIT_USAGE)
        if isinstance(value, bool) or not isinstance(value, int | float):
            fail(f"--current: {key} must be a number (got {value!r})", EXIT_USAGE)
        if not math.isfinite(value):
            fail(f"--current: {key} must be finite (got {value!r})", EXIT_USAGE)
        current[key] = float(value)
    return current


def cmd_optimize(args: argparse.Namespace) -> int:
    from models.optimizer.confirmation import confirm
    from models.optimizer.search import PlantSimulator, decision_space, optimize, random_search
    from models.report import write_optimizer_report

    if args.budget < 2:
        fail(f"--budget must be >= 2 (got {args.budget})", EXIT_USAGE)
    if not args.hours > 0:
        fail(f"--hours must be > 0 (got {args.hours})", EXIT_USAGE)
    if args.replications < 1:
        fail(f"--replications must be >= 1 (got {args.replications})", EXIT_USAGE)
    config = load_line(args.config)
    try:
        space = decision_space(config)
    except ValueError as exc:
        # Today the search knows the default line's setpoints only (issue 17 widens it).
        fail(
            f"--config {args.config or 'default line'}: cannot optimize this line: {exc}",
            EXIT_USAGE,
        )
    backend = None
    if args.backend or args.scheduler:
        from api.sweep_cli import backend_from_args

        backend, where = backend_from_args(args)
        say(f"each evaluation's replications on {where}")
    simulator = PlantSimulator(
        config, hours=args.hours, replications=args.replications, backend=backend
    )
    try:
        constraints = _constraints(args)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    budget = min(args.budget, space.size)
    say(
        f"optimizing {args.objective} over {' x '.join(space.keys)} ({space.size} lattice "
        f"points): {budget} evaluations of {args.replications} x {args.hours:g} h"
    )

    def counted(bar: tqdm) -> Callable[[Mapping[str, float]], Mapping[str, float]]:
        def evaluate(setpoints: Mapping[str, float]) -> Mapping[str, float]:
            metrics = simulator(setpoints)
            bar.update(1)
            return metrics

        return evaluate

    def search(method: Callable[..., Any], title: str) -> Any:
        with progress_bar(budget, title, "runs") as bar:
            return method(
                config,
                args.objective,
                budget=budget,
                seed=args.seed,
                evaluate=counted(bar),
                space=space,
                constraints=constraints,
            )

    # One pool (or cluster) for all the evaluations, not one each.
    with backend.session() if backend is not None else nullcontext():
        result = search(optimize, "bayesian search")
        baseline = (
            search(random_search, "random search (baseline)") if args.compare_random else None
        )
    current = _current_setpoints(args, config, list(space.keys))
    say(
        f"confirming on fresh seeds: the recommendation and today's setpoints, "
        f"{args.replications} x {args.hours:g} h each"
    )
    with backend.session() if backend is not None else nullcontext():
        confirmation = confirm(
            config,
            args.objective,
            result.best_setpoints,
            current,
            hours=args.hours,
            replications=args.replications,
            backend=backend,
        )
    out = _report_dir(args, "optimize")
    report = write_optimizer_report(
        out, result, space=space, objective=args.objective, random=baseline
    )
    best = result.best
    unit = confirmation.unit
    print(
        f"recommended setpoints ({args.objective}: {result.best_value:,.2f} {unit} in the search"
        f"{'' if result.feasible else ', NO feasible point found: least violating'}):"
    )
    for key, value in result.best_setpoints.items():
        print(f"  {key} = {value:g}  (today {current[key]:g})")
    print(
        "  search's figures: " + ", ".join(f"{k} {v:,.4g}" for k, v in sorted(best.metrics.items()))
    )
    print(
        f"on {confirmation.replications} fresh runs of {confirmation.hours:g} h ({unit}; "
        "95% interval for one run):"
    )
    print(f"  recommended {_interval(confirmation.recommended)}")
    print(f"  today       {_interval(confirmation.current)}")
    print(f"  difference  {_interval(confirmation.difference)} (95% CI of the mean)")
    if confirmation.planned_share:
        print(
            f"  per planned production hour: divide by {confirmation.planned_share:.3f} "
            "(the planned share of calendar time)"
        )
    if baseline is not None:
        print(f"random search with the same budget: {baseline.best_value:,.2f}")
    print(f"report: {report.directory / 'optimizer.md'}")
    write_result(
        args,
        {
            "command": "optimize",
            "report": str(report.directory),
            "objective": args.objective,
            "best_value": result.best_value,
            "feasible": result.feasible,
            "setpoints": result.best_setpoints,
            "expected": dict(best.metrics),
            "unit": unit,
            "confirmation": confirmation.model_dump(mode="json"),
            "evaluations": len(result.trace),
            "random_best_value": baseline.best_value if baseline is not None else None,
        },
    )
    if not args.apply:
        return EXIT_OK
    if not result.feasible:
        fail("not applying: no recommended point meets the constraints", EXIT_USAGE)
    print("applying to the running line:")
    return apply_setpoints(
        config, result.best_setpoints, args.mqtt_url, args.timeout, args.mqtt_port
    )


# -- parsers ------------------------------------------------------------------------------------
def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="line config YAML (default: the packaged demo line)")
    parser.add_argument(
        "--source",
        choices=["simulation", "history", "csv"],
        default="simulation",
        help="where the parts come from (simulation)",
    )
    parser.add_argument(
        "--hours",
        type=HOURS,
        default=DEFAULT_SIMULATION_HOURS,
        help=f"simulation: simulated hours ({DEFAULT_SIMULATION_HOURS:g})",
    )
    parser.add_argument(
        "--explore-every",
        type=number(0, 30 * 86400, low_open=True),
        default=EXPLORE_EVERY_S,
        help="simulation: seconds between random setpoint changes (900; docs/models.md)",
    )
    parser.add_argument(
        "--history-path",
        default=None,
        help="history: the store (FACTORY_TWIN_HISTORY_PATH, the one factory-twin up uses)",
    )
    parser.add_argument(
        "--days",
        type=number(0, 3650, low_open=True),
        default=DEFAULT_HISTORY_DAYS,
        help=f"history: the latest days to read ({DEFAULT_HISTORY_DAYS:g})",
    )
    parser.add_argument(
        "--end-ms",
        type=integer(1),
        default=None,
        help="history: read only what came before this time (Unix ms; default: all of it)",
    )
    parser.add_argument(
        "--explore-hours",
        type=_hours_or_auto,
        default=0.0,
        help="history: also learn from this many simulated hours of the line's nominal model "
        "with explored setpoints, or 'auto' (about 15,000 parts); 0: history only (0)",
    )
    parser.add_argument("--csv", help="csv: the parts file (docs/models.md for the format)")
    parser.add_argument("--schema", help="csv: YAML or JSON mapping each column to int/float/str")
    parser.add_argument("--seed", type=SEED, default=1, help="seed of the data and the model (1)")
    parser.add_argument(
        "--test-fraction",
        type=number(0, 0.9, low_open=True),
        default=0.3,
        help="latest share of parts to test on (0.3)",
    )
    parser.add_argument(
        "--threshold",
        type=PROBABILITY,
        default=None,
        help="risk threshold of a defect flag (default: the best F1 on the calibration parts)",
    )
    parser.add_argument("--threads", type=WORKERS, default=1, help="OpenMP/BLAS threads (1)")
    parser.add_argument(
        "--drift-hours",
        type=HOURS,
        default=DEFAULT_DRIFT_HOURS,
        help="simulation: hours of clean telemetry for the drift detector (48)",
    )
    parser.add_argument(
        "--no-stations",
        dest="stations",
        action="store_false",
        help="skip the station model (where parts fail; the twin's per-station risk)",
    )
    parser.add_argument(
        "--no-drift",
        dest="drift",
        action="store_false",
        help="skip the drift detector (always skipped for csv)",
    )
    _output_options(parser)
    parser.add_argument(
        "--no-activate",
        dest="activate",
        action="store_false",
        help="register without making the new versions active",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="activate the new versions even below the quality floor (docs/models.md)",
    )


def _hours_or_auto(text: str) -> float | None:
    if text.strip().lower() == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of hours or 'auto': {text!r}") from None


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report-dir", help="report directory (reports/<command>-<time>)")
    parser.add_argument(
        "--result-json", help="also write the outcome as JSON to this file (for programs)"
    )
    parser.add_argument(
        "--models-path",
        help="model registry (FACTORY_TWIN_MODELS_PATH, ~/.local/share/factory-twin/models)",
    )


def add_parsers(commands: Any) -> None:
    """Add train, tune and optimize to the CLI's subcommands."""
    train = commands.add_parser(
        "train", help="train the defect model and drift detector, report, register"
    )
    _data_options(train)
    train.set_defaults(handler=cmd_train)

    tune = commands.add_parser(
        "tune", help="tune the defect model with time-aware CV, then train and register"
    )
    _data_options(tune)
    tune.add_argument(
        "--search", choices=["halving", "random"], default="halving", help="searcher (halving)"
    )
    tune.add_argument(
        "--candidates", type=integer(1, 10_000), default=24, help="parameter sets to try (24)"
    )
    tune.add_argument("--cv-splits", type=integer(2, 100), default=4, help="time-ordered folds (4)")
    tune.set_defaults(handler=cmd_tune)

    opt = commands.add_parser(
        "optimize", help="recommend setpoints with the simulator; --apply sends them to the line"
    )
    opt.add_argument("--config", help="line config YAML (default: the packaged demo line)")
    opt.add_argument(
        "--objective",
        choices=["good_per_hour", "margin_per_hour"],
        default="good_per_hour",
        help="what to maximise (good_per_hour)",
    )
    opt.add_argument(
        "--budget", type=integer(2, 100_000), default=60, help="simulator evaluations (60)"
    )
    opt.add_argument("--hours", type=HOURS, default=48.0, help="hours per evaluation (48)")
    opt.add_argument(
        "--replications", type=REPLICATIONS, default=4, help="seeds per evaluation (4)"
    )
    opt.add_argument("--seed", type=SEED, default=0, help="search and simulation seed (0)")
    opt.add_argument("--max-defect-rate", type=PROBABILITY, help="constraint: at most this share")
    opt.add_argument("--min-good-per-hour", type=number(0), help="constraint: at least this")
    opt.add_argument(
        "--max-energy-per-part", type=number(0, low_open=True), help="constraint: kWh per good part"
    )
    opt.add_argument(
        "--compare-random", action="store_true", help="also run random search as a baseline"
    )
    opt.add_argument("--apply", action="store_true", help="send the recommendation to the line")
    opt.add_argument(
        "--current",
        help="today's setpoints as JSON, {\"machining.speed\": 1.1} (default: the line file's)",
    )
    from api.sweep_cli import add_backend_options

    add_backend_options(opt, "run each evaluation's replications on a process pool or Dask")
    opt.add_argument("--mqtt-url", help="apply: external broker [FACTORY_TWIN_MQTT_URL]")
    opt.add_argument(
        "--mqtt-port",
        type=PORT,
        help="apply: the embedded broker's port on 127.0.0.1 [FACTORY_TWIN_MQTT_PORT, 1883]",
    )
    opt.add_argument("--timeout", type=TIMEOUT_S, default=10.0, help="apply: seconds per ack wait")
    _output_options(opt)
    opt.set_defaults(handler=cmd_optimize)


__all__ = ["add_parsers", "apply_setpoints", "cmd_optimize", "cmd_train", "cmd_tune", "load_data"]
