"""``factory-twin optimize``: recommend setpoints with the simulator; ``--apply`` sends them.

    factory-twin optimize --objective margin_per_hour --budget 60 --compare-random
    factory-twin optimize --apply            send the recommendation to the running line

A Bayesian search over the line's setpoints (``models.optimizer.search``),
each evaluation a few replications of the simulated line, then a confirmation
of the recommendation against today's setpoints on fresh seeds. It writes a
report directory and prints where it is. Exit codes: 0 success, 1 a runtime
failure, 2 bad usage; --apply only: 3 the line rejected a setpoint, 4 no
answer in time.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from api.cli.arguments import (
    HOURS,
    PORT,
    PROBABILITY,
    REPLICATIONS,
    SEED,
    TIMEOUT_S,
    integer,
    number,
)
from api.cli.common import (
    EXIT_NO_ANSWER,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_RUNTIME,
    EXIT_USAGE,
    broker_address,
    fail,
    line_topics,
    load_line,
    output_options,
    progress_bar,
    reach_hint,
    report_dir,
    say,
    write_result,
)
from api.cli.sweep import add_backend_options, backend_from_args
from twin.config.line import LineConfig

if TYPE_CHECKING:
    from tqdm import tqdm

    from models.optimizer.confirmation import Interval


def _constraints(args: argparse.Namespace) -> Any:
    from models.optimizer.evaluation import Constraints

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
    from models.optimizer.evaluation import PlantSimulator
    from models.optimizer.recommendation import recommend
    from models.optimizer.search import flatness, optimize, random_search
    from models.optimizer.space import decision_space, parse_vars
    from models.report import write_optimizer_report

    if args.budget < 2:
        fail(f"--budget must be >= 2 (got {args.budget})", EXIT_USAGE)
    if not args.hours > 0:
        fail(f"--hours must be > 0 (got {args.hours})", EXIT_USAGE)
    if args.replications < 1:
        fail(f"--replications must be >= 1 (got {args.replications})", EXIT_USAGE)
    config = load_line(args.config)
    if args.vars is not None:
        try:
            space = decision_space(config, parse_vars(args.vars.split(","), config))
        except ValueError as exc:
            fail(f"--vars: {exc}", EXIT_USAGE)
    else:
        try:
            space = decision_space(config)
        except ValueError as exc:
            fail(
                f"--config {args.config or 'default line'}: cannot optimize this line: {exc}",
                EXIT_USAGE,
            )
    backend = None
    if args.backend or args.scheduler:
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

    def searched(method: Callable[..., Any], title: str) -> Callable[..., Any]:
        """``method`` with a progress bar over its evaluations."""

        def run(*positional: Any, **named: Any) -> Any:
            with progress_bar(budget, title, "runs") as bar:
                return method(*positional, **{**named, "evaluate": counted(bar)})

        return run

    def confirming(candidates: int) -> None:
        say(
            f"confirming on fresh seeds: {candidates} candidate(s) and today's setpoints, "
            f"{args.confirm_replications} x {args.hours:g} h each, doubled up to "
            f"{args.confirm_replications * 2**args.confirm_doublings} while the gain is not clear"
        )

    # One pool (or cluster) for all the evaluations, not one each.
    with backend.session() if backend is not None else nullcontext():
        recommendation = recommend(
            config,
            args.objective,
            evaluate=simulator,
            space=space,
            hours=args.hours,
            budget=budget,
            seed=args.seed,
            search=searched(optimize, "bayesian search"),
            candidates=args.candidates,
            replications=args.confirm_replications,
            max_replications=args.confirm_replications * 2**args.confirm_doublings,
            today=_current_setpoints(args, config, list(space.keys)),
            backend=backend,
            confirming=confirming,
            constraints=constraints,
        )
        baseline = (
            searched(random_search, "random search (baseline)")(
                config,
                args.objective,
                budget=budget,
                seed=args.seed,
                evaluate=simulator,
                space=space,
                constraints=constraints,
            )
            if args.compare_random
            else None
        )
    result, confirmation = recommendation.result, recommendation.confirmation
    current = recommendation.today
    flat = flatness(result, space) if len(result.trace) >= 3 else None
    out = report_dir(args, "optimize")
    report = write_optimizer_report(
        out, result, space=space, objective=args.objective, random=baseline
    )
    best = result.best
    unit = confirmation.unit
    chosen = confirmation.setpoints
    keep = confirmation.verdict == "keep"
    print(
        f"search's best ({args.objective}: {result.best_value:,.2f} {unit} on its own seeds"
        f"{'' if result.feasible else ', NO feasible point found: least violating'}): "
        + ", ".join(f"{key} = {value:g}" for key, value in result.best_setpoints.items())
    )
    print(
        "  search's figures: " + ", ".join(f"{k} {v:,.4g}" for k, v in sorted(best.metrics.items()))
    )
    print(
        f"on {confirmation.replications} fresh runs of {confirmation.hours:g} h each, "
        f"{confirmation.candidates} candidate(s) against today ({unit}; 95% interval for one run):"
    )
    print(f"  best candidate {_interval(confirmation.recommended)}")
    print(f"  today          {_interval(confirmation.current)}")
    print(
        f"  difference     {_interval(confirmation.difference)} "
        f"({confirmation.confidence:.1%} CI of the mean)"
    )
    if flat is not None:
        print(
            f"  the optimum's plateau: {flat:.0%} of the {space.size} lattice points within 2% "
            "of the best (the search's smoothed surface)"
        )
    if keep:
        print("no significant gain: keep today's setpoints")
        for key, value in chosen.items():
            print(f"  {key} = {current[key]:g}  (best candidate {value:g})")
    else:
        print("recommended setpoints (a significant gain over today's):")
        for key, value in chosen.items():
            print(f"  {key} = {value:g}  (today {current[key]:g})")
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
            "setpoints": chosen,
            "verdict": confirmation.verdict,
            "flatness": flat,
            "search_setpoints": result.best_setpoints,
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
    if keep:
        print("not applying: no significant gain over today's setpoints")
        return EXIT_OK
    print("applying to the running line:")
    return apply_setpoints(config, chosen, args.mqtt_url, args.timeout, args.mqtt_port)


def add_parser(commands: Any) -> None:
    opt = commands.add_parser(
        "optimize", help="recommend setpoints with the simulator; --apply sends them to the line"
    )
    opt.add_argument("--config", help="line config YAML (default: the packaged demo line)")
    opt.add_argument(
        "--vars",
        metavar="STATION.SETPOINT[:STEP],...",
        help="the setpoints to choose, e.g. printer.speed,reflow.temperature_c:2.5 (default: "
        "the default line's machining.speed and welding.temperature_c; on another line "
        "every setpoint with a range)",
    )
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
    opt.add_argument(
        "--confirm-replications",
        type=integer(2, 10_000),
        default=16,
        help="fresh runs of each candidate and of today's setpoints before recommending (16)",
    )
    opt.add_argument(
        "--confirm-doublings",
        type=integer(0, 10),
        default=2,
        help="while the gain is not yet clear, double the fresh runs and look again, at "
        "most this many times (2: up to 4 x --confirm-replications)",
    )
    opt.add_argument(
        "--candidates",
        type=integer(1, 10),
        default=3,
        help="the search's best points run on the fresh seeds (3)",
    )
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
    add_backend_options(opt, "run each evaluation's replications on a process pool or Dask")
    opt.add_argument("--mqtt-url", help="apply: external broker [FACTORY_TWIN_MQTT_URL]")
    opt.add_argument(
        "--mqtt-port",
        type=PORT,
        help="apply: the embedded broker's port on 127.0.0.1 [FACTORY_TWIN_MQTT_PORT, 1883]",
    )
    opt.add_argument("--timeout", type=TIMEOUT_S, default=10.0, help="apply: seconds per ack wait")
    output_options(opt)
    opt.set_defaults(handler=cmd_optimize)
