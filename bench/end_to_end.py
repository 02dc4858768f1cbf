"""End to end: the product as the user runs it, on every shipped line.

Each trial runs ``factory-twin up --config LINE --speed FACTOR --demo`` as a
process of its own (no backfill, a fresh history and model registry in a
temporary directory), on the embedded broker (``--mqtt-port``: rumqttd by
default, or ``FACTORY_TWIN_EMBEDDED_BROKER`` as set for this script) or on a
private Debian mosquitto (``--mqtt-url``), and reads it as a user would, through
the API: ``/healthz`` (what the ingest accepted, and the plant's own counters of
what it published) and ``/kpis`` (the twin's good parts and WIP).

A trial warms up, then watches a window (5 minutes; ``--quick``: 45 s). The
twin keeps up when, over the window,

- the lag does not grow: the messages the plant published and the twin has not
  yet taken, averaged over the window's last third, exceed those of its first
  third by no more than one second of traffic (and no more than 500 messages
  where traffic is light);
- the twin's good parts, at the end, equal the plant's (the parts it published
  as shipped) within the parts in flight (the WIP the twin reports);
- the plant dropped nothing, and the line ran at the factor asked: it paces
  itself on the pipeline (``twin.sim.live``), and a median speed in force below 95%
  of the factor means the twin kept up only because the line slowed for it.

Each line also runs once at the top speed the API's ``set_speed`` accepts
(1000x) on the embedded broker: the speed the line paced itself to, and whether
the twin stayed consistent there (nothing dropped, lag not growing, good parts
equal within the WIP), with the memory at the end.

For each line and broker the factors are tried upwards from the default 60x
(``FACTORS``; ``--quick``: 60x on every line, and 75x on bottling); the
highest factor kept up is reported, with the messages a second the twin took
end to end at it and the memory (RSS) of ``up`` at the end of its window (and
of the broker's child process, for rumqttd). A line that cannot keep up even
at 60x is tried at 30x.

Baseline, in the same run: bare paho through mosquitto, a publisher and a
subscriber with the payload of a median telemetry sample, as
``bench/mqtt_throughput.py`` measures it (the best of three runs: the ceiling
a Python client pair reaches on this machine).

Headline ``ratio``: the embedded path's end-to-end rate at its highest
sustained factor on bottling, over 3,000 msg/s (about what bottling publishes
at 60x); target 1.0. Beside it ``mosquitto_vs_paho``: the mosquitto path's
end-to-end rate at bottling's highest sustained factor over the bare paho
rate; target 0.5.

Run: ``.venv/bin/python bench/end_to_end.py [--quick] [--lines bottling,...]``.
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _results import emit
from _tables import update
from mqtt_throughput import Broker, baseline, bench_config, free_port, sample_telemetry

from api.children import stop_process

REPO = Path(__file__).resolve().parents[1]
LINES = {
    "default": REPO / "twin" / "lines" / "default.yaml",
    "bottling": REPO / "examples" / "lines" / "bottling.yaml",
    "cnc_cell": REPO / "examples" / "lines" / "cnc_cell.yaml",
    "smt": REPO / "examples" / "lines" / "smt.yaml",
}
HEADLINE_LINE = "bottling"
NEEDED_RATE = 3000.0
TARGET = 1.0
TARGET_VS_PAHO = 0.5
FACTORS = (60.0, 75.0, 90.0, 120.0, 180.0, 240.0, 360.0, 480.0)
QUICK_FACTORS = {HEADLINE_LINE: (60.0, 75.0)}
FALLBACK_FACTOR = 30.0
# A factor is kept up only if the line ran at it: its median speed in force over
# the window is at least this share of the speed asked.
SPEED_KEPT = 0.95
# The highest speed the API's set_speed command accepts (twin.contract): each line
# is also run at it, to show what the line does when asked more than it carries.
TOP_SPEED = 1000.0
WINDOW_S = 300.0
QUICK_WINDOW_S = 45.0
WARMUP_S = 10.0
SAMPLE_S = 3.0
START_TIMEOUT_S = 90.0
MOSQUITTO = "/usr/sbin/mosquitto"


@dataclass
class Sample:
    at_s: float
    published: int
    accepted: int
    plant_good: int
    twin_good: int
    twin_wip: int
    speed_in_force: float | None = None
    dropped: int = 0

    @property
    def lag(self) -> int:
        return self.published - self.accepted


@dataclass
class Trial:
    line: str
    broker: str
    factor: float
    kept_up: bool = False
    why: str = ""
    rate: float = 0.0
    lag_start: float = 0.0
    lag_end: float = 0.0
    good_gap: int = 0
    wip: int = 0
    # The median speed the line ran at over the window (it paces itself on the
    # pipeline, so it may run slower than asked), and messages it dropped.
    speed_in_force: float | None = None
    dropped: int = 0
    # Nothing dropped, the lag did not grow and the good parts agree (at any pace).
    consistent: bool = False
    rss_mb: float = 0.0
    broker_rss_mb: float | None = None
    samples: list[Sample] = field(default_factory=list)


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def sample(client: httpx.Client, started: float) -> Sample:
    health = client.get("/healthz").json()
    kpis = client.get("/kpis").json()
    plant = health.get("plant") or {}
    published = plant.get("published") or {}
    return Sample(
        at_s=time.monotonic() - started,
        # Every message the plant handed over (the birth and later statuses included).
        published=sum(published.values()),
        accepted=int(health["ingest"]["accepted"]),
        plant_good=int(published.get("part_shipped", 0)),
        twin_good=int(kpis["good"]),
        twin_wip=int(kpis.get("work_in_process") or 0),
        speed_in_force=plant.get("speed_in_force"),
        dropped=sum((plant.get("dropped") or {}).values()),
    )


def judge(trial: Trial) -> None:
    window = trial.samples
    third = max(1, len(window) // 3)
    first = sum(s.lag for s in window[:third]) / third
    last = sum(s.lag for s in window[-third:]) / third
    seconds = window[-1].at_s - window[0].at_s
    rate = (window[-1].accepted - window[0].accepted) / seconds if seconds > 0 else 0.0
    end = window[-1]
    trial.rate = rate
    trial.lag_start, trial.lag_end = first, last
    trial.good_gap = end.plant_good - end.twin_good
    trial.wip = end.twin_wip
    trial.dropped = end.dropped
    speeds = sorted(s.speed_in_force for s in window if s.speed_in_force is not None)
    trial.speed_in_force = speeds[len(speeds) // 2] if speeds else None
    allowed = max(rate * 1.0, 500.0)
    # What went wrong for the twin, whatever the line's pace.
    problems = []
    if end.dropped:
        problems.append(f"the plant dropped {end.dropped} messages")
    if last - first > allowed:
        problems.append(f"lag grew from {first:.0f} to {last:.0f} messages")
    if abs(trial.good_gap) > end.twin_wip:
        problems.append(
            f"good parts: plant {end.plant_good}, twin {end.twin_good} "
            f"(more apart than the {end.twin_wip} in flight)"
        )
    trial.consistent = not problems
    if trial.speed_in_force is not None and trial.speed_in_force < SPEED_KEPT * trial.factor:
        # The twin kept up only because the line slowed down for it.
        problems.insert(0, f"the line paced itself down to {trial.speed_in_force:.0f}x")
    trial.why = "; ".join(problems)
    trial.kept_up = not problems


def up_command(
    line: str, factor: float, api_port: int, folder: Path, broker: list[str]
) -> tuple[list[str], dict[str, str]]:
    """``factory-twin up`` as the benchmarks run it: the line at ``factor``, the
    API on ``api_port``, no backfill, a fresh store and registry in ``folder``,
    and ``broker``'s flags (``--mqtt-port`` for the embedded one, or ``--mqtt-url``)."""
    env = {
        **os.environ,
        "FACTORY_TWIN_MODELS_PATH": str(folder / "models"),
        "FACTORY_TWIN_JOBS_PATH": str(folder / "jobs"),
        "FACTORY_TWIN_LOG_LEVEL": "warning",
    }
    command = [
        sys.executable,
        "-m",
        "api.cli",
        "up",
        "--config",
        str(LINES[line]),
        "--speed",
        f"{factor:g}",
        "--demo",
        "--api-port",
        str(api_port),
        "--history-path",
        str(folder / "history.sqlite3"),
        "--no-backfill",
        *broker,
    ]
    return command, env


def run_trial(line: str, broker: str, factor: float, window_s: float, url: str | None) -> Trial:
    trial = Trial(line=line, broker=broker, factor=factor)
    api_port, mqtt_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as folder:
        broker = ["--mqtt-url", url] if url else ["--mqtt-port", str(mqtt_port)]
        command, env = up_command(line, factor, api_port, Path(folder), broker)
        with open(Path(folder) / "up.log", "wb") as log:
            process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as client:
                deadline = time.monotonic() + START_TIMEOUT_S
                while True:
                    if process.poll() is not None:
                        tail = (Path(folder) / "up.log").read_text(errors="replace")[-2000:]
                        raise RuntimeError(f"up ended with {process.returncode}:\n{tail}")
                    try:
                        if client.get("/healthz").status_code in (200, 503):
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        raise TimeoutError("up did not answer on /healthz")
                    time.sleep(0.2)
                started = time.monotonic()
                time.sleep(WARMUP_S)
                window_start = time.monotonic()
                while True:
                    trial.samples.append(sample(client, started))
                    if time.monotonic() - window_start >= window_s:
                        break
                    time.sleep(SAMPLE_S)
                trial.rss_mb = rss_mb(process.pid) or 0.0
                for child in children_of(process.pid):
                    child_rss = rss_mb(child)
                    if child_rss is not None and url is None:
                        trial.broker_rss_mb = (trial.broker_rss_mb or 0.0) + child_rss
        finally:
            stop_process(process, signal.SIGINT)
    judge(trial)
    return trial


def highest(
    line: str, broker: str, factors: tuple[float, ...], window_s: float, url: str | None
) -> tuple[Trial | None, list[Trial]]:
    """Trials upward until one does not keep up; (the best trial kept up, all trials)."""
    trials: list[Trial] = []
    best: Trial | None = None
    for factor in factors:
        trial = run_trial(line, broker, factor, window_s, url)
        trials.append(trial)
        report(trial)
        if not trial.kept_up:
            break
        best = trial
    if best is None:
        trial = run_trial(line, broker, FALLBACK_FACTOR, window_s, url)
        trials.append(trial)
        report(trial)
        best = trial if trial.kept_up else None
    return best, trials


def report(trial: Trial) -> None:
    verdict = "kept up" if trial.kept_up else f"fell behind: {trial.why}"
    broker_rss = f", broker {trial.broker_rss_mb:.0f} MB" if trial.broker_rss_mb is not None else ""
    in_force = "" if trial.speed_in_force is None else f" (ran {trial.speed_in_force:.0f}x)"
    print(
        f"  {trial.line:9} {trial.broker:10} {trial.factor:5g}x{in_force}  "
        f"{trial.rate:7,.0f} msg/s  lag {trial.lag_start:6.0f} -> {trial.lag_end:6.0f} msgs  "
        f"good gap {trial.good_gap} (wip {trial.wip})  rss {trial.rss_mb:.0f} MB{broker_rss}  "
        f"{verdict}",
        flush=True,
    )


def bare_paho(workdir: Path) -> float:
    broker = Broker(MOSQUITTO, workdir)
    broker.start()
    try:
        topic, payload = sample_telemetry(bench_config())
        runs = [baseline(broker.address, topic, payload, 30_000, True) for _ in range(3)]
    finally:
        broker.stop()
    rate = max(run.rate for run in runs)
    print(f"bare paho through mosquitto: {rate:,.0f} msg/s ({len(payload)}-byte payload)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="45-s windows, fewer factors")
    parser.add_argument("--lines", default=",".join(LINES), help="comma-separated line names")
    args = parser.parse_args()
    lines = [name for name in args.lines.split(",") if name]
    unknown = [name for name in lines if name not in LINES]
    if unknown:
        parser.error(f"--lines: unknown {', '.join(unknown)} (choose from {', '.join(LINES)})")
    window_s = QUICK_WINDOW_S if args.quick else WINDOW_S
    embedded = os.environ.get("FACTORY_TWIN_EMBEDDED_BROKER", "rumqttd")
    print(f"end to end, windows of {window_s:g} s, embedded broker {embedded}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    at_top: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-e2e-mosquitto-") as folder:
        paho_rate = bare_paho(Path(folder))
        mosquitto = Broker(MOSQUITTO, Path(folder))
        mosquitto.start()
        try:
            url = f"mqtt://127.0.0.1:{mosquitto.port}"
            for line in lines:
                factors = QUICK_FACTORS.get(line, (60.0,)) if args.quick else FACTORS
                for broker, broker_url in ((embedded, None), ("mosquitto", url)):
                    best, trials = highest(line, broker, factors, window_s, broker_url)
                    results[f"{line}/{broker}"] = {
                        "highest_factor": best.factor if best else None,
                        "msg_per_s": round(best.rate) if best else None,
                        "rss_mb": round(best.rss_mb) if best else None,
                        "broker_rss_mb": round(best.broker_rss_mb)
                        if best and best.broker_rss_mb is not None
                        else None,
                        "trials": [
                            {k: v for k, v in asdict(t).items() if k != "samples"} for t in trials
                        ],
                    }
                # Asked for more than it carries, the line slows down rather than
                # lose anything or let the twin drift: memory, pace and counts at
                # the top speed the API accepts.
                top = run_trial(line, embedded, TOP_SPEED, window_s, None)
                report(top)
                at_top[line] = {
                    "speed_in_force": None
                    if top.speed_in_force is None
                    else round(top.speed_in_force, 1),
                    "msg_per_s": round(top.rate),
                    "rss_mb": round(top.rss_mb),
                    "dropped": top.dropped,
                    "good_gap": top.good_gap,
                    "wip": top.wip,
                    "consistent": top.consistent,
                }
        finally:
            mosquitto.stop()
    headline = results.get(f"{HEADLINE_LINE}/{embedded}", {})
    via_mosquitto = results.get(f"{HEADLINE_LINE}/mosquitto", {})
    # Without the headline line there is no headline: null, not a ratio of 0.
    ratio = (headline.get("msg_per_s") or 0) / NEEDED_RATE if headline else None
    vs_paho = (
        (via_mosquitto.get("msg_per_s") or 0) / paho_rate if via_mosquitto and paho_rate else None
    )
    for key, result in results.items():
        print(
            f"{key:22} highest {result['highest_factor']}x  {result['msg_per_s']} msg/s  "
            f"rss {result['rss_mb']} MB  broker {result['broker_rss_mb']} MB"
        )
    emit(
        "end_to_end",
        {
            "benchmark": "end_to_end",
            "ratio": None if ratio is None else round(ratio, 3),
            "target": TARGET,
            "mosquitto_vs_paho": None if vs_paho is None else round(vs_paho, 3),
            "mosquitto_vs_paho_target": TARGET_VS_PAHO,
            "bare_paho_msg_per_s": round(paho_rate),
            "embedded_broker": embedded,
            "window_s": window_s,
            "results": {
                key: {k: v for k, v in result.items() if k != "trials"}
                for key, result in results.items()
            },
            "top_speed": TOP_SPEED,
            "at_top_speed": at_top,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        quick=args.quick,
        keep=set(lines) == set(LINES),
    )
    if set(lines) == set(LINES):
        update("end-to-end")


if __name__ == "__main__":
    main()
