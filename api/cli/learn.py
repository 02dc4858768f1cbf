"""``factory-twin learn --from-history``: the line learnt from the history store.

Reads the parts and state changes history holds (``twin.learning.history``),
run by run, feeds them to a ``LineLearner`` and writes the learnt line: the
line file (``--config``, else the packaged line) with every parameter history
has shown enough of put in, as YAML (``--out``, else stdout). A table of the
learnt parameters beside the file's, and what could not be learnt, goes to
stderr; ``--result-json`` writes all of it for a program.

    factory-twin learn --from-history [--hours 72] [--config line.yaml]
                       [--history-path FILE] [--out learnt.yaml]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from api.cli.arguments import HOURS
from api.cli.common import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, fail, load_line, write_result


def _history_path(args: argparse.Namespace) -> Path:
    if args.history_path:
        return Path(args.history_path)
    from api.settings import Settings

    path: Path = Settings().history_path
    return path


def cmd_learn(args: argparse.Namespace) -> int:
    from twin.history.store import SqliteStore
    from twin.learning.history import Replayed, last_hours, replay
    from twin.learning.line import learn_line
    from twin.learning.observer import LineLearner

    if not args.from_history:
        fail("--from-history: the only source there is yet; give it", EXIT_USAGE)
    config = load_line(args.config)
    path = _history_path(args)
    if not path.is_file():
        fail(f"--history-path {path}: no history store there (run factory-twin up)", EXIT_USAGE)
    store = SqliteStore(path, retention_ms=None)
    counted = Replayed()
    try:
        runs = replay(store, 0, 2**62, line=config.line.id, counted=counted)
    finally:
        store.close()
    if args.hours is not None:
        runs = last_hours(runs, args.hours)
    messages = sum(len(run) for run in runs)
    if messages == 0:
        skipped = (
            f" ({counted.without_clock} points from before history kept the line's clock)"
            if counted.without_clock
            else ""
        )
        fail(f"{path}: no part or state change of line {config.line.id!r}{skipped}", EXIT_RUNTIME)
    learner = LineLearner()
    hours = 0.0
    for run in runs:
        learner.restart()
        for station, message in run:
            learner.observe(station, message)
        hours += getattr(run[-1][1], "sim_time_s", 0.0) - getattr(run[0][1], "sim_time_s", 0.0)
    learnt = learn_line(config, learner)
    print(
        f"learnt from {messages:,} messages over {hours / 3600:.1f} h of line time in "
        f"{len(runs)} run(s) of history ({counted.parts:,} parts, {counted.states:,} state "
        f"changes; {counted.without_clock:,} points without the line's clock skipped)",
        file=sys.stderr,
    )
    print(
        f"{'station':<14} {'parameter':<34} {'file':>10} {'learnt':>10}  95% interval     n",
        file=sys.stderr,
    )
    for item in learnt.parameters:
        nominal = f"{item.nominal:.4g}" if item.nominal is not None else "-"
        mark = "  drifted" if item.drifted else ""
        print(
            f"{item.station:<14} {item.parameter:<34} {nominal:>10} {item.value:>10.4g}  "
            f"{item.low:.4g}-{item.high:.4g} {item.n:>6}{mark}",
            file=sys.stderr,
        )
    for missing in learnt.not_learnt:
        print(f"  not learnt: {missing}", file=sys.stderr)
    text = yaml.safe_dump(learnt.line, sort_keys=False)
    if args.out:
        Path(args.out).write_text(text, "utf-8")
        print(f"learnt line written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    result: dict[str, Any] = {
        **learnt.model_dump(mode="json"),
        "history": str(path),
        "runs": len(runs),
        "messages": messages,
        "line_hours": hours / 3600,
        "skipped_without_clock": counted.without_clock,
    }
    write_result(args, result)
    return EXIT_OK


def add_parser(commands: Any) -> None:
    learn = commands.add_parser(
        "learn", help="learn the line's parameters from its history (docs/learning.md)"
    )
    learn.add_argument(
        "--from-history", action="store_true", help="learn from the history store (required)"
    )
    learn.add_argument("--hours", type=HOURS, help="the latest hours of line time (default: all)")
    learn.add_argument("--config", help="line config YAML (default: the packaged demo line)")
    learn.add_argument(
        "--history-path", help="the history store [FACTORY_TWIN_HISTORY_PATH, else its default]"
    )
    learn.add_argument("--out", help="write the learnt line file here (default: stdout)")
    learn.add_argument("--result-json", help="also write the result as JSON to this file")
    learn.set_defaults(handler=cmd_learn)


__all__ = ["add_parser", "cmd_learn"]
