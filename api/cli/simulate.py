"""``factory-twin simulate``: run a line as fast as possible and print its KPIs.

    factory-twin simulate --hours 8 --replications 5     KPIs with confidence intervals
    factory-twin simulate --dry-run --config line.yaml   validate a line file, print it resolved

With replications each KPI is the mean and the half-width of its confidence
interval (``twin.experiments.experiment``); ``--json`` prints the whole result
and ``--csv`` one row per replication.
"""

from __future__ import annotations

import argparse
import csv
import sys
from typing import Any

import yaml

from api.cli.arguments import HOURS, REPLICATIONS, SEED, WARMUP_HOURS, WORKERS
from api.cli.common import EXIT_OK, load_line, progress_bar
from twin.config.line import LineConfig
from twin.experiments.experiment import (
    ABOVE_ONE_MARK,
    ABOVE_ONE_NOTE,
    ExperimentResult,
    experiment_field,
    interval_text,
    run_experiment,
)


def _percent(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.1f}%" + (ABOVE_ONE_MARK if value > 1 else "")


def _number(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _with_ci(result: ExperimentResult, name: str, percent: bool = False, digits: int = 1) -> str:
    found = result.summary.get(name)
    if found is None:
        return "n/a"
    scale, unit = (100.0, "%") if percent else (1.0, "")
    text = f"{found.mean * scale:,.{digits}f}{unit}"
    if percent and found.mean > 1:
        text += ABOVE_ONE_MARK
    return text + interval_text(found, scale, unit, digits)


def _print_experiment(result: ExperimentResult) -> None:
    first = result.runs[0]
    currency = first.economics.currency
    replications = result.replications
    print(
        f"Line {first.line}: {result.hours:g} h simulated"
        + (f" after {result.warmup_hours:g} h warm-up" if result.warmup_hours else "")
        + f", seed {result.seed}, {replications} replication{'s' if replications > 1 else ''}"
        + f" (config {result.config_hash}, factory-twin {result.version})"
    )
    if replications > 1:
        print(f"  mean ± half-width of the {result.confidence:.0%} confidence interval")
    rows = [
        ("OEE", _with_ci(result, "oee", percent=True)),
        ("  availability", _with_ci(result, "availability", percent=True)),
        ("  effectiveness", _with_ci(result, "effectiveness", percent=True)),
        ("  quality ratio", _with_ci(result, "quality_ratio", percent=True)),
        ("NEE", _with_ci(result, "nee", percent=True)),
        ("throughput (good/h)", _with_ci(result, "throughput_per_h")),
        ("first-pass yield", _with_ci(result, "first_pass_yield", percent=True)),
        ("scrap ratio", _with_ci(result, "scrap_ratio", percent=True)),
        ("WIP (time-average)", _with_ci(result, "mean_wip")),
        ("cycle time (s)", _with_ci(result, "cycle_time_s", digits=0)),
        (f"cost per good part ({currency})", _with_ci(result, "cost_per_good_part", digits=2)),
        ("energy per good part (kWh)", _with_ci(result, "energy_per_good_part_kwh", digits=3)),
        (f"margin per hour ({currency})", _with_ci(result, "margin_per_hour", digits=0)),
    ]
    marked = False
    for label, value in rows:
        marked = marked or ABOVE_ONE_MARK in value
        print(f"  {label:<30}{value}")
    kpis = first.line_kpis
    print(
        f"  bottleneck (active periods): {kpis.bottleneck}; capacity constraint: {kpis.constraint}"
    )
    print()
    header = f"  {'station':<14}{'good':>7}{'scrap':>7}{'rework':>7}{'avail':>8}{'effect':>8}"
    header += f"{'OEE':>8}{'down':>8}{'setup':>8}{'starved':>9}{'blocked':>9}"
    print(header + ("   (replication 0)" if replications > 1 else ""))
    for station in first.stations:
        s = station.kpis
        pbt = s.planned_busy_time_s or 1.0
        ratios = [_percent(value) for value in (s.availability, s.effectiveness, s.oee)]
        marked = marked or any(ABOVE_ONE_MARK in text for text in ratios)
        print(
            f"  {station.id:<14}{station.good:>7}{station.scrap:>7}{station.rework:>7}"
            + "".join(f"{text:>8}" for text in ratios)
            + f"{_percent(s.down_time_s / pbt):>8}{_percent(s.setup_time_s / pbt):>8}"
            f"{_percent(s.starved_time_s / pbt):>9}{_percent(s.blocked_time_s / pbt):>9}"
        )
    if marked:
        print(f"  {ABOVE_ONE_NOTE}")
    print()
    print("  largest losses (replication 0):")
    for loss in [entry for entry in first.losses if entry.time_s > 0][:5]:
        print(
            f"    {loss.station:<12} {loss.category:<10} {loss.reason:<12}"
            f"{loss.time_s / 3600:>8.1f} h {loss.cost:>10,.0f} {currency}"
        )


def _print_csv(result: ExperimentResult) -> None:
    names = list(result.summary)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["row", "seed", *names])
    for index, run in enumerate(result.runs):
        values = []
        for name in names:
            value = experiment_field(run, name)
            values.append("" if value is None else repr(value))
        writer.writerow([f"replication {index}", result.replication_seeds[index], *values])
    for row, pick in (("mean", "mean"), ("ci_low", "low"), ("ci_high", "high")):
        cells = []
        for name in names:
            value = getattr(result.summary[name], pick)
            cells.append("" if value is None else repr(value))
        writer.writerow([row, "", *cells])


def _print_dry_run(config: LineConfig, source: str) -> None:
    print(f"{source}: valid (config {config.config_hash()})")
    release = config.release
    print(
        f"  line {config.line.id} ({config.line.name or 'unnamed'}), release {release.policy}"
        + (f", w = {release.wip_cap}" if release.wip_cap else "")
    )
    print(f"  products: {', '.join(product.id for product in config.products)}")
    for index, station in enumerate(config.stations):
        capacity = config.buffer_capacity(index)
        buffer = "unlimited" if capacity == float("inf") else f"{capacity:g}"
        print(
            f"  {index}. {station.id:<14} machines {station.machines}, "
            f"PRU {station.planned_runtime_per_unit_s():.1f} s, input buffer {buffer}"
        )
    print("resolved config:")
    print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), end="")


def cmd_simulate(args: argparse.Namespace) -> int:
    config = load_line(args.config)
    if args.dry_run:
        _print_dry_run(config, args.config or "default line")
        return EXIT_OK
    # Counted in simulated hours after the warm-up, over all replications.
    total = args.hours * args.replications
    with progress_bar(total, "simulating", "h") as bar:

        def progress(fraction: float) -> None:
            bar.update(fraction * total - bar.n)

        result = run_experiment(
            config,
            hours=args.hours,
            seed=args.seed,
            replications=args.replications,
            warmup_hours=args.warmup,
            jobs=args.jobs,
            # A run nobody watches goes in one stretch, as before there was a bar.
            progress=None if bar.disable else progress,
        )
    if args.json:
        print(result.model_dump_json(indent=2))
    elif args.csv:
        _print_csv(result)
    else:
        _print_experiment(result)
    return EXIT_OK


def add_parser(commands: Any) -> None:
    sim = commands.add_parser(
        "simulate", help="run a line as fast as possible, print KPIs with confidence intervals"
    )
    sim.add_argument("--config", help="line config YAML (default: the packaged demo line)")
    sim.add_argument("--hours", type=HOURS, default=8.0, help="simulated hours after warm-up (8)")
    sim.add_argument("--seed", type=SEED, default=42, help="random seed (42)")
    sim.add_argument(
        "--replications", type=REPLICATIONS, default=1, help="independent replications for CIs (1)"
    )
    sim.add_argument(
        "--warmup", type=WARMUP_HOURS, default=0.0, help="warm-up hours to discard (0)"
    )
    sim.add_argument("--jobs", type=WORKERS, default=1, help="replications run in parallel (1)")
    output = sim.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the full result as JSON")
    output.add_argument("--csv", action="store_true", help="print one CSV row per replication")
    sim.add_argument(
        "--dry-run", action="store_true", help="validate the config, print it resolved, exit"
    )
    sim.set_defaults(handler=cmd_simulate)
