"""Soak: ``factory-twin up`` for half an hour at the highest sustained factor.

Runs ``factory-twin up --config LINE --speed FACTOR --demo --no-backfill`` as a
process of its own (a fresh history and model registry in a temporary
directory, the embedded broker, as ``bench/end_to_end.py`` runs it) for
``--minutes`` (30), at the highest factor ``bench/results/end_to_end.json``
found the line keeps up at on the embedded broker (bottling: the default line;
``--speed`` to choose), and reads it as a user would. Every ``--every``
seconds (10; fewer in short runs, so that a run has about 40 samples) it
samples:

- the memory of ``up``: the RSS of the process and of all its children (the
  broker's among them), summed;
- the store: its files' size on disk (the database and its write-ahead log)
  and the samples it has committed (``/healthz``);
- the twin's lag behind the line (``/twin``: in messages, and in line seconds
  turned into wall seconds by the speed in force);
- the latency of ``GET /twin``, ``GET /kpis`` and a ``GET /history`` query (the
  line's first telemetry field, every station, downsampled over a fixed span
  that ends now: 5 minutes, a quarter of the run in shorter ones, so that the
  query reads as much at the end of the run as after warm-up): the median of
  ``--requests`` (5) requests each, on one keep-alive connection.

The verdicts, after a first quarter of warm-up (``bench/_soak_checks.py`` says
exactly how): memory flat (the RSS slope over the second half, and the last
quarter's median against the second quarter's), the store growing linearly (R²
of its size against time, and the bytes each new sample costs), latencies not
growing (last quarter against second quarter, with an absolute floor), and the
lag bounded.

Headline ``ratio``: the RSS's median in the last quarter over that in the
second quarter (lower is better; target at most 1.05); ``met`` says whether
every check passed. A run shorter than 30 minutes (``--quick``: 2 minutes) is
marked quick.

Run: ``.venv/bin/python bench/soak.py [--quick | --minutes M] [--line NAME]
[--speed F]``, or ``make soak``. The last line of output is one JSON object
with the figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from _results import RESULTS, emit
from _soak_checks import (
    MAX_RSS_RATIO,
    Check,
    Series,
    lag_bounded,
    latency_steady,
    memory_flat,
    store_linear,
)
from end_to_end import LINES, REPO, START_TIMEOUT_S, up_command
from mqtt_throughput import free_port

from api.children import stop_process

FULL_MINUTES = 30.0
QUICK_MINUTES = 2.0
EVERY_S = 10.0
# Short runs sample more often, to have about this many samples (10 a quarter).
SAMPLES_WANTED = 40
REQUESTS = 5
HISTORY_SPAN_S = 300.0
HISTORY_WINDOWS = 30
# Progress lines about this often.
PROGRESS_S = 30.0


@dataclass
class Run:
    """What the soak sampled, one series per figure."""

    rss_mb: Series = field(default_factory=list)
    up_rss_mb: Series = field(default_factory=list)
    store_bytes: Series = field(default_factory=list)
    store_samples: Series = field(default_factory=list)
    accepted: Series = field(default_factory=list)
    lag_messages: Series = field(default_factory=list)
    lag_s: Series = field(default_factory=list)
    speed: Series = field(default_factory=list)
    load: Series = field(default_factory=list)
    latency_ms: dict[str, Series] = field(
        default_factory=lambda: {"twin": [], "kpis": [], "history": []}
    )


def default_factor(line: str, broker: str) -> float | None:
    """The highest factor ``bench/end_to_end.py`` found ``line`` keeps up at on ``broker``."""
    path = RESULTS / "end_to_end.json"
    try:
        results = json.loads(path.read_text("utf-8"))["results"]
    except (OSError, ValueError, KeyError):
        return None
    factor = (results.get(f"{line}/{broker}") or {}).get("highest_factor")
    return float(factor) if factor else None


def tree_rss_mb(process: psutil.Process) -> tuple[float, float]:
    """(RSS of ``process`` and all its descendants, of ``process`` alone) in MB."""
    own = process.memory_info().rss
    total = own
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:  # ended between the listing and the reading
            continue
    return total / 1e6, own / 1e6


def store_size(path: Path) -> int:
    """Bytes on disk of the SQLite store: the database, its write-ahead log and index."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        try:
            total += (path.parent / (path.name + suffix)).stat().st_size
        except FileNotFoundError:
            continue
    return total


def timed_get(client: httpx.Client, url: str, params: dict[str, str] | None = None) -> float:
    """Milliseconds from sending ``GET url`` to having its whole body."""
    started = time.perf_counter()
    response = client.get(url, params=params)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}: {response.text[:300]}")
    return elapsed


def history_field(client: httpx.Client) -> str:
    """The line's first telemetry field: the /history query every sample times."""
    series = client.get("/history/series", params={"measurement": "telemetry"}).json()
    if not series:
        raise RuntimeError("the store has no telemetry series yet")
    return str(series[0]["field"])


def wait_ready(client: httpx.Client, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``up`` answers and its store holds telemetry."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"up ended with {process.returncode}:\n{tail}")
        try:
            if client.get("/history/series", params={"measurement": "telemetry"}).json():
                return
        except (httpx.HTTPError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"up did not serve telemetry history within {START_TIMEOUT_S:g} s")
        time.sleep(0.5)


def take_sample(
    run: Run,
    at_s: float,
    client: httpx.Client,
    process: psutil.Process,
    history_path: Path,
    history_query: dict[str, str],
    span_s: float,
    requests: int,
    factor: float,
) -> None:
    twin_ms: list[float] = []
    for _ in range(requests):
        twin_ms.append(timed_get(client, "/twin"))
    kpis_ms = [timed_get(client, "/kpis") for _ in range(requests)]
    history_ms: list[float] = []
    for _ in range(requests):
        start_ms = int((time.time() - span_s) * 1000)
        history_ms.append(timed_get(client, "/history", {**history_query, "start": str(start_ms)}))
    twin = client.get("/twin").json()
    health = client.get("/healthz").json()
    total_mb, own_mb = tree_rss_mb(process)
    # The speed in force (the line paces itself on the pipeline), else the one asked.
    speed = float(
        twin.get("speed_factor") or (health.get("plant") or {}).get("speed_in_force") or factor
    )
    run.rss_mb.append((at_s, total_mb))
    run.up_rss_mb.append((at_s, own_mb))
    run.store_bytes.append((at_s, float(store_size(history_path))))
    run.store_samples.append((at_s, float(health["history"]["store"]["acknowledged"])))
    run.accepted.append((at_s, float(health["ingest"]["accepted"])))
    run.lag_messages.append((at_s, float(twin.get("lag_messages") or 0)))
    run.lag_s.append((at_s, float(twin.get("lag_s") or 0.0) / speed))
    run.speed.append((at_s, speed))
    run.load.append((at_s, os.getloadavg()[0]))
    run.latency_ms["twin"].append((at_s, statistics.median(twin_ms)))
    run.latency_ms["kpis"].append((at_s, statistics.median(kpis_ms)))
    run.latency_ms["history"].append((at_s, statistics.median(history_ms)))


def progress(run: Run) -> None:
    at_s = run.rss_mb[-1][0]
    latency = " ".join(f"{name} {series[-1][1]:.1f}" for name, series in run.latency_ms.items())
    print(
        f"  {at_s / 60:5.1f} min  rss {run.rss_mb[-1][1]:6.1f} MB (up {run.up_rss_mb[-1][1]:.1f})"
        f"  store {run.store_bytes[-1][1] / 1e6:7.1f} MB {run.store_samples[-1][1]:>11,.0f} "
        f"samples  lag {run.lag_messages[-1][1]:5.0f} msgs {run.lag_s[-1][1]:5.2f} s  "
        f"speed {run.speed[-1][1]:.1f}x  ms: {latency}",
        flush=True,
    )


def soak(
    line: str, factor: float, duration_s: float, every_s: float, requests: int, folder: Path
) -> Run:
    api_port = free_port()
    history_path = folder / "history.sqlite3"
    command, env = up_command(line, factor, api_port, folder, ["--mqtt-port", str(free_port())])
    log = folder / "up.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=output)
    run = Run()
    try:
        watched = psutil.Process(process.pid)
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=60) as client:
            wait_ready(client, process, log)
            span_s = min(HISTORY_SPAN_S, duration_s / 4)
            query = {
                "measurement": "telemetry",
                "field": history_field(client),
                "every": f"{max(1, round(span_s * 1000 / HISTORY_WINDOWS))}",
            }
            print(
                f"up answers; sampling every {every_s:g} s for {duration_s / 60:g} min; "
                f"/history: telemetry {query['field']} over the last {span_s:g} s "
                f"in {HISTORY_WINDOWS} windows",
                flush=True,
            )
            started = time.monotonic()
            shown = -PROGRESS_S
            number = 0
            while True:
                at_s = time.monotonic() - started
                if process.poll() is not None:
                    raise RuntimeError(f"up ended with {process.returncode} during the soak")
                take_sample(
                    run, at_s, client, watched, history_path, query, span_s, requests, factor
                )
                if at_s - shown >= PROGRESS_S - every_s / 2 or duration_s < 10 * PROGRESS_S:
                    progress(run)
                    shown = at_s
                number += 1
                if at_s >= duration_s:
                    break
                # On a fixed grid, so that a slow sample does not shift the rest.
                time.sleep(max(0.0, started + number * every_s - time.monotonic()))
    finally:
        stop_process(process, signal.SIGINT)
    return run


def write_series(run: Run, path: Path) -> None:
    """Every sample, one row each, for a closer look than the verdicts give."""
    columns: dict[str, Series] = {
        "rss_mb": run.rss_mb,
        "up_rss_mb": run.up_rss_mb,
        "store_bytes": run.store_bytes,
        "store_samples": run.store_samples,
        "accepted": run.accepted,
        "lag_messages": run.lag_messages,
        "lag_s": run.lag_s,
        "speed_in_force": run.speed,
        "load_1min": run.load,
        **{f"{name}_ms": series for name, series in run.latency_ms.items()},
    }
    with open(path, "w", newline="", encoding="utf-8") as output:
        writer = csv.writer(output)
        writer.writerow(["t_s", *columns])
        for row, (at_s, _) in enumerate(run.rss_mb):
            writer.writerow(
                [f"{at_s:.2f}", *(f"{series[row][1]:.6g}" for series in columns.values())]
            )
    print(f"every sample: {path}")


def longest_pause_s(samples: Series) -> float:
    """The longest stretch in which the store took under a tenth of its median rate:
    a pipeline that stops for a while and catches up passes the verdicts, so it is
    reported beside them."""
    rates = [
        ((b[1] - a[1]) / (b[0] - a[0]), b[0] - a[0])
        for a, b in zip(samples, samples[1:], strict=False)
    ]
    if not rates:
        return 0.0
    slow = 0.1 * statistics.median(rate for rate, _ in rates)
    longest = current = 0.0
    for rate, width in rates:
        current = current + width if rate < slow else 0.0
        longest = max(longest, current)
    return longest


def judge(run: Run) -> list[Check]:
    first, last = run.accepted[0], run.accepted[-1]
    rate = (last[1] - first[1]) / (last[0] - first[0]) if last[0] > first[0] else 0.0
    return [
        memory_flat(run.rss_mb),
        store_linear(run.store_bytes, run.store_samples),
        latency_steady("twin_latency", run.latency_ms["twin"]),
        latency_steady("kpis_latency", run.latency_ms["kpis"]),
        latency_steady("history_latency", run.latency_ms["history"]),
        lag_bounded(run.lag_messages, run.lag_s, rate),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--line", default="bottling", help=f"one of {', '.join(LINES)}")
    parser.add_argument(
        "--speed", type=float, help="the factor (default: the highest end_to_end.json found)"
    )
    parser.add_argument("--minutes", type=float, help=f"how long ({FULL_MINUTES:g})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_MINUTES:g} minutes")
    parser.add_argument("--every", type=float, help="seconds between samples")
    parser.add_argument("--requests", type=int, default=REQUESTS, help="requests per endpoint")
    parser.add_argument("--series", type=Path, help="also write every sample to this CSV file")
    args = parser.parse_args()
    if args.line not in LINES:
        parser.error(f"--line: unknown line {args.line!r} (choose from {', '.join(LINES)})")
    if args.quick and args.minutes is not None:
        parser.error("--quick and --minutes: give one of them")
    if args.quick:
        minutes = QUICK_MINUTES
    else:
        minutes = FULL_MINUTES if args.minutes is None else args.minutes
    if not 0 < minutes < math.inf:
        parser.error(f"--minutes: must be above 0, got {minutes:g}")
    if args.speed is not None and not 0 < args.speed <= 100_000:
        parser.error(f"--speed: must be above 0 and at most 100000, got {args.speed:g}")
    if args.requests < 1:
        parser.error(f"--requests: at least 1, got {args.requests}")
    duration_s = minutes * 60
    every_s = min(EVERY_S, duration_s / SAMPLES_WANTED) if args.every is None else args.every
    if not every_s > 0:
        parser.error(f"--every: must be above 0, got {every_s:g}")
    broker = os.environ.get("FACTORY_TWIN_EMBEDDED_BROKER", "rumqttd")
    factor, factor_from = args.speed, "--speed"
    if factor is None:
        factor, factor_from = default_factor(args.line, broker), "bench/results/end_to_end.json"
        if factor is None:
            parser.error(
                f"--speed: end_to_end.json has no highest factor for {args.line} on {broker}; "
                "give one"
            )
    quick = minutes < FULL_MINUTES
    print(
        f"soak: {args.line} at {factor:g}x ({factor_from}), embedded broker {broker}, "
        f"{minutes:g} min{' (quick)' if quick else ''}; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs",
        flush=True,
    )
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as folder:
        run = soak(args.line, factor, duration_s, every_s, args.requests, Path(folder))
    load_after = os.getloadavg()[0]
    if args.series is not None:
        write_series(run, args.series)
    checks = judge(run)
    for check in checks:
        print(f"{'PASS' if check.passed else 'FAIL'} {check.name}: {check.detail}")
    memory = checks[0].figures
    accepted = run.accepted
    rate = (accepted[-1][1] - accepted[0][1]) / (accepted[-1][0] - accepted[0][0])
    speeds = [v for _, v in run.speed]
    figures: dict[str, Any] = {
        "benchmark": "soak",
        "ratio": memory.get("ratio"),
        "target": MAX_RSS_RATIO,
        "met": all(check.passed for check in checks),
        "line": args.line,
        "factor": factor,
        "factor_from": factor_from,
        "embedded_broker": broker,
        "minutes": minutes,
        "every_s": round(every_s, 2),
        "samples": len(run.rss_mb),
        "msg_per_s": round(rate),
        "speed_in_force_min": round(min(speeds), 1),
        "speed_in_force_median": round(statistics.median(speeds), 1),
        "rss_mb_first": round(run.rss_mb[0][1], 1),
        "rss_mb_last": round(run.rss_mb[-1][1], 1),
        "rss_mb_max": round(max(v for _, v in run.rss_mb), 1),
        "store_mb_last": round(run.store_bytes[-1][1] / 1e6, 1),
        "store_samples_last": int(run.store_samples[-1][1]),
        "store_longest_pause_s": round(longest_pause_s(run.store_samples), 1),
        "load_1min_before": round(load_before, 2),
        "load_1min_median": round(statistics.median(v for _, v in run.load), 2),
        "load_1min_max": round(max(v for _, v in run.load), 2),
        "load_1min_after": round(load_after, 2),
        "checks": {check.name: check.as_json() for check in checks},
        "python": platform.python_version(),
    }
    emit("soak", figures, quick=quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
