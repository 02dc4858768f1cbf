"""Ready in seconds: the first view of ``factory-twin up --demo``, and the backfill,
against the bare plant simulating the same week in the same run.

Baseline: the default line's plant (``twin.sim.plant.Plant``) run as a batch for the
span (7 simulated days) on a plain SimPy environment, with no sensors, messages
or history: the cost of the simulation alone, on this machine, now.

Subjects, each round:

- **time to API**: ``factory-twin up --demo`` launched with an empty history
  directory and an empty model registry (a fresh clone's first ``make run``,
  install aside), until ``GET /healthz`` answers; then until ``/healthz`` says
  the backfill is ``done`` (**time to history**, the whole week on disk while
  the line runs live). The process is then stopped with SIGTERM.
- **backfill**: ``sensors.backfill.backfill`` of the same span into a fresh
  store, until every point is committed; with the CPU seconds of its two child
  processes.

Ratios are subject / baseline (lower is better: "the first view costs as much
as simulating N bare weeks"), the median of the rounds. The headline ``ratio``
is time to API / bare week; ``backfill_ratio`` is backfill / bare week. Before
issue 14, ``up`` answered only after the backfill, which measured 49x a bare
week on the 2-core development machine (the median of three runs of the former
``bench/backfill_speed.py``: 10.8 s against 0.22 s); the issue's target for the
backfill is a third of that.

Run: ``.venv/bin/python bench/startup.py [--quick] [--rounds N]``. The last line
of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import simpy
from _results import emit
from _tables import update

from api.children import stop_process
from sensors.backfill import backfill
from sensors.topics import LineTopics
from twin.config.line import load_config
from twin.history.points import HistoryWriter
from twin.history.store import SqliteStore
from twin.sim.plant import Plant

# Time to API: at most this many bare weeks.
TARGET_RATIO = 10.0
# The backfill before issue 14: 49x a bare week (see the docstring); 3x faster.
BEFORE_BACKFILL_RATIO = 49.0
BACKFILL_TARGET_RATIO = BEFORE_BACKFILL_RATIO / 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bare_plant_s(span_s: float) -> float:
    config = load_config()
    started = time.perf_counter()
    Plant(config, env=simpy.Environment(), seed=43).run(until=span_s)
    return time.perf_counter() - started


def backfill_s(span_s: float) -> tuple[float, int, tuple[float, float]]:
    config = load_config()
    topics = LineTopics(config.line.site, config.line.area, config.line.id)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as workdir:
        store = SqliteStore(Path(workdir) / "history.sqlite3", retention_ms=None)
        writer = HistoryWriter(store)
        started = time.perf_counter()
        result = backfill(
            config, writer, topics, end_ms=int(time.time() * 1000), span_s=span_s, seed=43
        )
        if not writer.flush(600):
            raise TimeoutError("the store did not commit the backfill within 10 minutes")
        elapsed = time.perf_counter() - started
        samples = store.count()
        writer.close()
    return elapsed, samples, result.children_cpu_s


def health(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body
    except (OSError, urllib.error.URLError, ValueError):
        return None


def up_times(days: float) -> tuple[float, float]:
    """Seconds from launching ``up --demo`` to /healthz answering, and to history done."""
    command = Path(sys.executable).with_name("factory-twin")
    launch = [str(command)] if command.exists() else [sys.executable, "-m", "api.cli"]
    api_port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-up-") as workdir:
        env = {
            **os.environ,
            "XDG_STATE_HOME": str(Path(workdir) / "state"),
            "FACTORY_TWIN_MODELS_PATH": str(Path(workdir) / "models"),
            "FACTORY_TWIN_BACKFILL_DAYS": f"{days:g}",
        }
        started = time.perf_counter()
        process = subprocess.Popen(
            [*launch, "up", "--demo", "--api-port", str(api_port), "--mqtt-port", str(free_port())],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while (answer := health(api_port)) is None:
                if process.poll() is not None:
                    raise RuntimeError(f"factory-twin up exited with {process.returncode}")
                time.sleep(0.02)
            to_api = time.perf_counter() - started
            while answer is None or answer["backfill"]["state"] != "done":
                if answer is not None and answer["backfill"]["state"] == "failed":
                    raise RuntimeError(f"the backfill failed: {answer['backfill']['error']}")
                time.sleep(0.1)
                answer = health(api_port)
            to_history = time.perf_counter() - started
        finally:
            stop_process(process, signal.SIGTERM)
    return to_api, to_history


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 simulated day, 1 round")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds (3)")
    args = parser.parse_args()
    days = 1.0 if args.quick else 7.0
    rounds = 1 if args.quick else max(1, args.rounds)
    span_s = days * 86_400

    rows: list[dict[str, Any]] = []
    for number in range(rounds):
        bare = bare_plant_s(span_s)
        filled, samples, children_cpu = backfill_s(span_s)
        to_api, to_history = up_times(days)
        rows.append(
            {
                "bare_s": bare,
                "backfill_s": filled,
                "to_api_s": to_api,
                "to_history_s": to_history,
                "samples": samples,
                "children_cpu_s": children_cpu,
            }
        )
        print(
            f"round {number + 1}: bare week {bare:.2f} s | backfill {filled:.2f} s "
            f"({samples:,} samples; child CPU {children_cpu[0]:.1f} + {children_cpu[1]:.1f} s) "
            f"| up: API {to_api:.2f} s, history {to_history:.2f} s",
            flush=True,
        )

    def median(key: str, over: str | None = None) -> float:
        if over is None:
            return statistics.median(row[key] for row in rows)
        return statistics.median(row[key] / row[over] for row in rows)

    ratio = median("to_api_s", "bare_s")
    backfill_ratio = median("backfill_s", "bare_s")
    history_ratio = median("to_history_s", "bare_s")
    print(f"default line, {days:g} simulated days, median of {rounds} rounds")
    print(f"  bare plant        {median('bare_s'):>7.2f} s")
    print(f"  time to API       {median('to_api_s'):>7.2f} s  {ratio:>6.1f}x the bare plant")
    print(f"  time to history   {median('to_history_s'):>7.2f} s  {history_ratio:>6.1f}x")
    print(f"  backfill alone    {median('backfill_s'):>7.2f} s  {backfill_ratio:>6.1f}x")
    print(
        f"  targets: API <= {TARGET_RATIO:g}x; backfill <= {BACKFILL_TARGET_RATIO:.1f}x "
        f"(a third of the {BEFORE_BACKFILL_RATIO:g}x before)"
    )
    emit(
        "startup",
        {
            "benchmark": "startup",
            "ratio": round(ratio, 2),
            "target": TARGET_RATIO,
            "met": ratio <= TARGET_RATIO,
            "backfill_ratio": round(backfill_ratio, 2),
            "backfill_target": round(BACKFILL_TARGET_RATIO, 2),
            "backfill_met": backfill_ratio <= BACKFILL_TARGET_RATIO,
            "history_ratio": round(history_ratio, 2),
            "bare_plant_s": round(median("bare_s"), 3),
            "time_to_api_s": round(median("to_api_s"), 2),
            "time_to_history_s": round(median("to_history_s"), 2),
            "backfill_s": round(median("backfill_s"), 2),
            "days": days,
            "rounds": rounds,
            "samples": rows[-1]["samples"],
            "python": platform.python_version(),
        },
        quick=args.quick,
    )
    update("startup")
    return 0


if __name__ == "__main__":
    sys.exit(main())
