"""``factory-twin whatif``: forecast the next hours from a snapshot of the twin.

    curl -s http://127.0.0.1:8000/scenarios/snapshot > snapshot.json
    factory-twin whatif --snapshot snapshot.json --horizon-h 8 --replications 10 \\
        --changes changes.json

Runs the SimPy model forked from the snapshot (``twin.experiments.whatif``), baseline and
scenario with common random numbers, and prints each KPI's mean with its 95%
confidence interval and the paired difference. ``POST /scenarios`` runs this
command as a background job. Exit codes: 0 success, 2 bad input (the message
names the field).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from api.cli.arguments import HOURS, REPLICATIONS, SEED
from api.cli.common import EXIT_OK, EXIT_USAGE, fail, load_line, progress_bar, write_result
from api.cli.sweep import add_backend_options, backend_from_args
from twin.errors import first_problem


def _read_json(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        fail(f"--{what} {path}: {exc}", EXIT_USAGE)


def _estimate(value: Any) -> str:
    if value is None:
        return "n/a"
    if value.half_width is None:
        return f"{value.mean:,.4g}"
    if value.clipped:
        # Clipped to the KPI's range (a ratio's [0, 1]): the bounds, not a half-width.
        return f"{value.mean:,.4g} [{value.low:,.3g}, {value.high:,.3g}]"
    return f"{value.mean:,.4g} ± {value.half_width:,.2g}"


def cmd_whatif(args: argparse.Namespace) -> int:
    from twin.experiments.whatif import ScenarioChanges, run_scenario
    from twin.state.snapshot import LineSnapshot

    config = load_line(args.config)
    # Both files are read before either is checked: a file that is no JSON at all is
    # named before what the other one lacks.
    raw_snapshot = _read_json(args.snapshot, "snapshot")
    raw_changes = _read_json(args.changes, "changes") if args.changes else {}
    try:
        snapshot = LineSnapshot.model_validate(raw_snapshot)
        changes = ScenarioChanges.model_validate(raw_changes)
    except ValidationError as exc:
        fail(first_problem(exc), EXIT_USAGE)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    backend = None
    if args.backend or args.scheduler:
        backend, where = backend_from_args(args)
        print(f"replications on {where}", file=sys.stderr)
    total = args.replications * (1 if changes == ScenarioChanges() else 2)
    with progress_bar(total, "simulating", "runs") as bar:

        def progress(done: int, _total: int) -> None:
            bar.update(done - bar.n)

        try:
            result = run_scenario(
                config,
                snapshot,
                changes,
                horizon_s=args.horizon_h * 3600.0,
                replications=args.replications,
                seed=seed,
                progress=progress,
                backend=backend,
            )
        except ValueError as exc:
            fail(str(exc), EXIT_USAGE)
    when = f"sim time {result.fork_sim_time_s:,.0f} s"
    if result.fork_time_of_day is not None:
        when = f"{result.fork_time_of_day} ({when}) to {result.end_time_of_day}"
    print(
        f"what-if from {when} over {args.horizon_h:g} h, "
        f"{result.replications} replications (seed {seed}), {result.confidence:.0%} intervals"
    )
    print(f"  {'KPI':<26} {'baseline':>20} {'scenario':>20} {'difference':>20}")
    reasons: list[str] = []
    for name, forecast in result.kpis.items():
        print(
            f"  {name:<26} {_estimate(forecast.baseline):>20} "
            f"{_estimate(forecast.scenario):>20} {_estimate(forecast.difference):>20}"
        )
        if forecast.not_applicable and forecast.not_applicable not in reasons:
            reasons.append(forecast.not_applicable)
    for reason in reasons:
        print(f"  n/a: {reason}")
    print("  throughput_per_h: per calendar hour; throughput_per_planned_h: per planned hour")
    write_result(args, result.model_dump(mode="json"))
    return EXIT_OK


def add_parser(commands: Any) -> None:
    whatif = commands.add_parser(
        "whatif", help="forecast KPIs from a snapshot of the twin, with and without changes"
    )
    whatif.add_argument("--snapshot", required=True, help="GET /scenarios/snapshot's JSON")
    whatif.add_argument("--changes", help="JSON: setpoints, stations_down, shift_plan, release")
    whatif.add_argument("--config", help="line config YAML (default: the packaged demo line)")
    whatif.add_argument("--horizon-h", type=HOURS, default=8.0, help="hours to forecast (8)")
    whatif.add_argument("--replications", type=REPLICATIONS, default=10, help="replications (10)")
    whatif.add_argument("--seed", type=SEED, help="seed (default: a random one, printed)")
    whatif.add_argument("--result-json", help="also write the result as JSON to this file")
    add_backend_options(whatif, "run the replications on a process pool or Dask (default: here)")
    whatif.set_defaults(handler=cmd_whatif)


__all__ = ["add_parser", "cmd_whatif"]
