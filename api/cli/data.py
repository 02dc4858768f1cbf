"""The flags of ``train`` and ``tune``, and the training run they ask for
(``api.training.TrainingRequest``): the parts from a simulation of the line
with explored setpoints, the history ``up`` recorded (optionally with a
designed experiment beside it), or a CSV file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from api.cli.arguments import HOURS, PROBABILITY, SEED, WORKERS, integer, number
from api.cli.common import current_settings, load_line, output_options, report_dir
from api.training import TrainingRequest, Tuning

DEFAULT_SIMULATION_HOURS = 20 * 24.0
MAX_SIMULATION_HOURS = 100_000.0
DEFAULT_HISTORY_DAYS = 7.0
EXPLORE_EVERY_S = 900.0


def training_request(args: argparse.Namespace, tuning: Tuning | None = None) -> TrainingRequest:
    """The training run the flags ask for (``api.training``)."""
    from api.settings import registry_path

    settings = current_settings()
    history_path = args.history_path
    if args.source == "history" and history_path is None:
        history_path = str(settings.history_path)
    return TrainingRequest(
        config=load_line(args.config),
        report_dir=report_dir(args, "train" if tuning is None else "tune"),
        models_path=Path(args.models_path) if args.models_path else registry_path(settings),
        source=args.source,
        hours=args.hours,
        explore_every_s=args.explore_every,
        history_path=history_path,
        days=args.days,
        end_ms=args.end_ms,
        explore_hours=args.explore_hours,
        csv=args.csv,
        schema=args.schema,
        seed=args.seed,
        test_fraction=args.test_fraction,
        threshold=args.threshold,
        threads=args.threads,
        stations=args.stations,
        activate=args.activate if args.activate is not None else args.source != "csv",
        force=args.force,
        tuning=tuning,
        topic_root=settings.topic_root,
    )


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
        help="risk threshold of a defect flag (default: chosen for F1 on the out-of-fold risk)",
    )
    parser.add_argument("--threads", type=WORKERS, default=1, help="OpenMP/BLAS threads (1)")
    parser.add_argument(
        "--no-stations",
        dest="stations",
        action="store_false",
        help="skip the station model (where parts fail; the twin's per-station risk)",
    )
    # The drift detector is no longer trained (api.training.DRIFT_DETECTOR_GONE). Its
    # flags stay known but unlisted: a script that asks for it is told why, and one
    # that skipped it runs on.
    parser.add_argument("--drift-hours", help=argparse.SUPPRESS)
    parser.add_argument("--no-drift", action="store_true", help=argparse.SUPPRESS)
    output_options(parser)
    parser.add_argument(
        "--activate",
        dest="activate",
        action="store_const",
        const=True,
        help="make the new versions active if they pass the gate (the default, but for csv: "
        "a table's model goes live only when asked, and only with the line's features)",
    )
    parser.add_argument(
        "--no-activate",
        dest="activate",
        action="store_const",
        const=False,
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
