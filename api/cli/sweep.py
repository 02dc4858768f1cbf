"""``factory-twin sweep``: a design of experiments over a line's parameters.

    factory-twin sweep examples/sweeps/buffers_and_crew.yaml --workers 2
    factory-twin sweep spec.yaml --config line.yaml --backend dask          # a LocalCluster
    factory-twin sweep spec.yaml --scheduler tcp://10.0.0.5:8786            # an existing one

Runs every design point of the spec (``twin.experiments.doe``) with its replications on a
local process pool (the default) or on Dask, prints each point's KPIs with
confidence intervals and the Pareto front, and writes the report (JSON, CSV,
Markdown, PNG plots; ``twin.experiments.sweep_report``) to ``--out``. The numbers depend
on the spec and the line only, never on the backend or the number of
workers. A progress bar goes to stderr on terminals (JSON lines with
``FACTORY_TWIN_PROGRESS=json``). Ctrl-C stops every worker, then exits.

Exit codes: 0 success; 1 a runtime failure (Dask missing, scheduler
unreachable); 2 a bad spec, config or flag, with a message naming the field or
factor; 130 cancelled with Ctrl-C, after the workers are stopped.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.cli.arguments import REPLICATIONS, SEED, WORKERS
from api.cli.common import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, fail, load_line, progress_bar, say
from twin.experiments.doe import (
    SweepSpec,
    SweepSpecError,
    load_spec,
    spec_config_path,
    with_overrides,
)
from twin.experiments.experiment import ABOVE_ONE_MARK, ABOVE_ONE_NOTE, Estimate, interval_text
from twin.experiments.sweep import Backend, SweepResult, plan_sweep, summarise
from twin.experiments.sweep_backends import DaskBackend, ProcessPoolBackend, default_workers

EXIT_CANCELLED = 130  # 128 + SIGINT, as shells report a Ctrl-C
MAX_ROWS_PRINTED = 40


def _out(text: str = "") -> None:
    print(text)


def _spec(args: argparse.Namespace) -> SweepSpec:
    try:
        spec = load_spec(args.spec)
        return with_overrides(spec, replications=args.replications, seed=args.seed)
    except SweepSpecError as exc:
        fail(str(exc), EXIT_USAGE)


def backend_from_args(args: argparse.Namespace) -> tuple[Backend, str]:
    """The backend ``--backend``, ``--workers`` and ``--scheduler`` name, and how to say it."""
    backend = args.backend or ("dask" if args.scheduler else "process")
    if backend == "process":
        if args.scheduler:
            fail("--scheduler needs --backend dask", EXIT_USAGE)
        pool = ProcessPoolBackend(args.workers)
        return pool, f"process pool ({pool.workers} workers)"
    if args.scheduler:
        if args.workers is not None:
            fail("--workers applies to a local cluster; --scheduler has its own", EXIT_USAGE)
        return DaskBackend(scheduler=args.scheduler), f"Dask at {args.scheduler}"
    workers = args.workers or default_workers()
    return DaskBackend(workers=workers), f"Dask LocalCluster ({workers} workers)"


def _out_dir(args: argparse.Namespace) -> Path:
    if args.out:
        return Path(args.out)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path("reports") / f"sweep-{stamp}"


def _cell(found: Estimate | None, scale: float = 1.0, digits: int = 1) -> str:
    """Mean and interval; a ratio (``scale`` 100) above 1 is marked, never capped."""
    if found is None:
        return "n/a"
    text = f"{found.mean * scale:,.{digits}f}"
    if scale == 100.0 and found.mean > 1:
        text += ABOVE_ONE_MARK
    return text + interval_text(found, scale, "", digits)


def _level(value: int | float | str) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_summary(result: SweepResult) -> None:
    spec = result.spec
    factors = [factor.name for factor in spec.factors]
    _out(
        f"Sweep of line {result.line}: {spec.design} design, {len(result.points)} points × "
        f"{spec.replications} replications of {spec.hours:g} h"
        + (f" after {spec.warmup_hours:g} h warm-up" if spec.warmup_hours else "")
        + f", seed {spec.seed} (config {result.config_hash}, factory-twin {result.version})"
    )
    _out(
        f"  mean ± half-width of the {spec.confidence:.0%} confidence interval (low-high where "
        "clipped to a ratio's 0-100%); * Pareto front"
    )
    widths = [max(len(name), 8) for name in factors]
    columns = ("throughput/h", "WIP", "cycle time s", "yield %", "OEE %")
    header = "  point  " + "".join(
        f"{name:>{width + 2}}" for name, width in zip(factors, widths, strict=True)
    )
    _out(header + "".join(f"{column:>18}" for column in columns))
    marked = False
    for point in result.points[:MAX_ROWS_PRINTED]:
        kpis = point.kpis
        cells = [
            _cell(kpis.get("throughput_per_h")),
            _cell(kpis.get("mean_wip")),
            _cell(kpis.get("cycle_time_s"), digits=0),
            _cell(kpis.get("yield_ratio"), scale=100.0),
            _cell(kpis.get("oee"), scale=100.0),
        ]
        row = f"  {point.index:>4}{'*' if point.pareto else ' '}  "
        row += "".join(
            f"{_level(point.values[name]):>{width + 2}}"
            for name, width in zip(factors, widths, strict=True)
        )
        _out(row + "".join(f"{cell:>18}" for cell in cells))
        marked = marked or any(ABOVE_ONE_MARK in cell for cell in cells)
    hidden = len(result.points) - MAX_ROWS_PRINTED
    if hidden > 0:
        _out(f"  ... {hidden} more points in sweep.md and sweep.csv")
    if marked:
        _out(f"  {ABOVE_ONE_NOTE}")
    _out(f"  Pareto front (throughput up, WIP down, yield up): points {result.pareto}")


def cmd_sweep(args: argparse.Namespace) -> int:
    try:
        return _sweep(args)
    except KeyboardInterrupt:
        # The backend has stopped its workers before the interrupt got here.
        say("factory-twin: sweep cancelled; all workers stopped")
        return EXIT_CANCELLED


def _sweep(args: argparse.Namespace) -> int:
    spec = _spec(args)
    backend, backend_name = backend_from_args(args)
    config = load_line(args.config or spec_config_path(spec, args.spec))
    try:
        plan = plan_sweep(spec, config)
    except SweepSpecError as exc:
        fail(f"{args.spec}: {exc}", EXIT_USAGE)
    tasks = plan.tasks
    points = len(plan.points)
    say(f"sweep: {points} points × {spec.replications} = {len(tasks)} runs on {backend_name}")
    started = time.monotonic()
    with progress_bar(len(tasks), "sweep", "runs") as bar:
        try:
            runs = backend.run(tasks, progress=lambda _result: bar.update(1))
        except ImportError as exc:
            if not isinstance(backend, DaskBackend):
                raise
            fail(f"the dask backend needs dask[distributed] ({exc})", EXIT_RUNTIME)
        except (OSError, TimeoutError) as exc:
            if not (isinstance(backend, DaskBackend) and args.scheduler):
                raise
            fail(f"cannot reach the Dask scheduler {args.scheduler}: {exc}", EXIT_RUNTIME)
    elapsed = time.monotonic() - started
    result = summarise(plan, runs)
    run_info: dict[str, Any] = {"backend": backend_name, "elapsed_s": round(elapsed, 3)}
    files = _write(result, _out_dir(args), run_info)
    _print_summary(result)
    _out(f"report: {files[0].parent} ({', '.join(file.name for file in files)})")
    return EXIT_OK


def _write(result: SweepResult, out: Path, run_info: dict[str, Any]) -> list[Path]:
    from twin.experiments.sweep_report import write_sweep_report

    try:
        return write_sweep_report(result, out, run_info)
    except OSError as exc:
        fail(f"--out {out}: cannot write the report: {exc}", EXIT_RUNTIME)


def add_backend_options(parser: argparse.ArgumentParser, backend_help: str) -> None:
    parser.add_argument("--backend", choices=["process", "dask"], help=backend_help)
    parser.add_argument("--workers", type=WORKERS, help="processes (default: the CPUs available)")
    parser.add_argument("--scheduler", help="an existing Dask scheduler, tcp://host:port")


def add_parser(commands: Any) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="run a design of experiments with replications; KPIs with CIs, Pareto front",
        description="Run a sweep spec (grid, Latin hypercube or random design over line "
        "parameters) on a process pool or Dask. See docs/sweeps.md. Exit codes: 0 success, "
        "1 runtime failure, 2 bad spec/config, 130 cancelled.",
    )
    sweep.add_argument("spec", help="sweep spec YAML (factors, design, replications, hours)")
    sweep.add_argument(
        "--config", help="line config YAML (default: the spec's, else the demo line)"
    )
    add_backend_options(sweep, "where runs execute (process; dask with --scheduler)")
    sweep.add_argument("--out", help="report directory (default reports/sweep-<UTC time>)")
    sweep.add_argument("--replications", type=REPLICATIONS, help="override the spec's replications")
    sweep.add_argument("--seed", type=SEED, help="override the spec's seed")
    sweep.set_defaults(handler=cmd_sweep)


__all__ = ["EXIT_CANCELLED", "add_backend_options", "add_parser", "backend_from_args", "cmd_sweep"]
