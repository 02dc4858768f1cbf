"""The parts ``train`` and ``tune`` learn from, and their flags: a simulation
of the line with explored setpoints, the history ``up`` recorded (optionally
with a designed experiment beside it), or a CSV file; and the clean telemetry
windows the drift detector learns from.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from api.cli.arguments import HOURS, PROBABILITY, SEED, WORKERS, integer, number
from api.cli.common import (
    EXIT_RUNTIME,
    EXIT_USAGE,
    current_settings,
    fail,
    line_topics,
    load_line,
    output_options,
    progress_bar,
    say,
)
from twin.config.line import LineConfig

if TYPE_CHECKING:
    from models.dataset.parts import PartDataset

DEFAULT_SIMULATION_HOURS = 20 * 24.0
MAX_SIMULATION_HOURS = 100_000.0
DEFAULT_HISTORY_DAYS = 7.0
DEFAULT_DRIFT_HOURS = 48.0
EXPLORE_EVERY_S = 900.0


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
            path = args.history_path or str(current_settings().history_path)
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


def drift_windows(data: Data, args: argparse.Namespace) -> dict[str, Any]:
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


def data_options(parser: argparse.ArgumentParser) -> None:
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
    output_options(parser)
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
