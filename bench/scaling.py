"""Scaling: sweeps over workers, ingest over lines, simulation cost over size, in one run.

Every curve is printed as a ratio against linear scaling, measured in this run.

Sweep throughput. A fixed set of simulation runs (``twin.experiments.sweep.RunTask`` on the
default line, 200 simulated hours each: a fraction of a second to a second of CPU,
by machine) goes through ``twin.experiments.sweep``'s own backends: the ``ProcessPoolBackend``
with 1 and 2 workers, and the ``DaskBackend`` on a Dask ``LocalCluster`` of 1 and of
2 worker processes (one thread each). Each cluster is started once, its workers
import the simulator, and that start-up is reported but kept out of the throughput;
the pool spawns its workers for every sweep, as it does for a user. Throughput is
steady-state runs per second: once each of the W workers has handed back its first
result, the remaining N - W results over the time they took. That removes start-up
(the pool's spawn and imports, a Dask client's connection) the same way for both
backends; the per-sweep rate, start-up included, is printed beside it. Ratio against
linear: speedup / workers. Target: 2 workers reach at least 1.7x the runs per second
of 1 worker, for both backends.

Dask's per-task overhead: what a task costs in a Dask worker beyond what it
costs in a plain worker process (the pool's), in CPU time of the whole worker
process while the task runs, so that the Dask worker's own threads (event loop,
heartbeats, monitors) count against it; plus the wall time per task spent
outside the task: the 1-worker sweep's wall time less the tasks' compute times
(the scheduler's task stream): scheduling, transfer, (de)serialisation. CPU
time, medians over alternating rounds, because on a shared machine the wall
time of the same task swings by more than the 10% target; the wall-clock
difference of the two 1-worker rates is printed beside it. Against the task's
own cost. Target: below 10%.

Ingest throughput over lines. As ``bench/mqtt_throughput.py`` measures it: a
private mosquitto, the publishing side in a process of its own pinned to one
CPU, the ingest side here. The publisher replays real messages of N lines (the
default line with ids line1..lineN and telemetry every 0.05 s, encoded by the
project's ``PlantPublisher`` before the "go"), round robin over the lines, each
on its own branch ``factory/v1/{site}/{area}/{line}/...``, as fast as it can,
at QoS 0 and not retained. The total number of messages and the offered rate
are the same for 1, 2 and 4 lines; only the split differs. The ingest side is
what a site runs: one ``Ingest`` with its own client and ``TwinState`` per line.
Capacity is messages accepted per second, from the "go" to the last acceptance
(an untimed warm-up run goes first).
Target: 4 lines keep at least 0.8x the capacity of 1 line (no more than 20%
degradation); CPU time per message of this process is printed beside it.

Simulation cost. CPU seconds of a ``Plant`` built and run in this process (a
single thread, so CPU time is honest and the machine's other load matters
little): against the number of stations (the default line's five stations
repeated in order, 1 to 8 times, with a repair crew of 2 per 5 stations, 24
simulated hours: whole copies, so that every size has the same mix of stations)
and against simulated hours (the default line, 1, 2, 4 and 8 days: whole days,
so that every added day has the same shifts and breaks). Ratio against linear:
cost per station-hour (or per hour) relative to the smallest size. A longer
line ships fewer parts (more stations to fail and block), so the cost per
part per station is printed too: the cost of one unit of work. No target.

Rounds: each measurement is repeated in interleaved rounds (the order rotated
every round; a backend's 1- and 2-worker runs back to back, so that each pair
sees one state of the machine). A ratio is the median of the rounds' paired
ratios, printed with their range; a rate is the median of the rounds. Never the
best run: on a shared 2-core machine the best 2-worker run and the best 1-worker
run come from different states of the machine, and their ratio can exceed what
the machine gave two busy processes against one. That ceiling is printed too
(from the tasks' durations inside the Dask workers: 2.0 on idle cores), so that
a shortfall caused by the machine is visible as such. Dask's overhead and the
simulation costs are medians. The headline ``ratio`` is the worst of the three
targets, each normalised so that 1.0 is just met (median speedup / 1.7, 0.10 /
overhead, median capacity ratio / 0.8); ``target`` is 1.0 and ``passed`` has
each target's verdict, on the medians.

Run: ``.venv/bin/python bench/scaling.py [--quick] [--plot PATH]``; about four
minutes by default (5 rounds). Writes ``bench/results/scaling.json`` (a
``--quick`` run marked so) and the table in docs/benchmarks.md. The curves go
to ``docs/img/scaling.png`` (not with ``--quick`` unless ``--plot`` is given).
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import paho.mqtt.client as mqtt
import simpy
from _results import emit
from _tables import update
from mqtt_throughput import MOSQUITTO, Broker, bench_config, drive

from sensors.ingest import Ingest
from sensors.mqtt import BrokerAddress, connect, disconnect, new_client
from sensors.publisher import PlantPublisher
from sensors.topics import LineTopics
from twin.config.line import LineConfig, load_config, parse_config
from twin.experiments.sweep import Backend, RunResult, RunTask, run_seed, run_task
from twin.experiments.sweep_backends import DaskBackend, ProcessPoolBackend, start_local_cluster
from twin.sim.plant import Plant
from twin.state.line import TwinState

SPEEDUP_TARGET = 1.7
DASK_OVERHEAD_TARGET = 0.10  # of a 1-second task
INGEST_TARGET = 0.8  # capacity with 4 lines over capacity with 1 line
WORKER_COUNTS = (1, 2)
LINE_COUNTS = (1, 2, 4)
STATION_COUNTS = (5, 10, 20, 40)
DAYS = (1, 2, 4, 8)
STATIONS_SPAN_H = 24.0
SEED = 11
REPO = Path(__file__).resolve().parent.parent
DEFAULT_PLOT = REPO / "docs" / "img" / "scaling.png"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def median_by(values: Sequence[float]) -> float:
    return float(statistics.median(values))


# -- simulation cost -------------------------------------------------------------------------
def replicated_line(stations: int) -> LineConfig:
    """The default line with its stations repeated in order up to ``stations``."""
    data = load_config().model_dump(mode="json")
    originals = data["stations"]
    copies = []
    for index in range(stations):
        station = json.loads(json.dumps(originals[index % len(originals)]))
        suffix = f"-{index // len(originals)}"
        station["id"] = f"{station['id']}{suffix}"
        rework = station.get("rework")
        if rework and rework.get("to"):
            rework["to"] = f"{rework['to']}{suffix}"  # the copy reworks at its own copy
        copies.append(station)
    data["stations"] = copies
    # The crew grows with the line, so that a long line is not a line short of fitters.
    data["repair_crew"] = {"size": max(1, round(2 * stations / len(originals)))}
    data["line"]["id"] = f"scaling{stations}"
    return parse_config(data, f"{stations}-station line")


def simulation_cpu(config: LineConfig, hours: float, seed: int) -> tuple[float, int]:
    """(CPU seconds, parts shipped) of building and running a plant for ``hours``."""
    started = time.process_time()
    plant = Plant(config, seed=seed)
    plant.run(until=hours * 3600.0)
    return time.process_time() - started, plant.parts_shipped


@dataclass
class CostCurve:
    name: str
    unit: str
    sizes: list[int]
    cpu_s: list[float]  # median per size
    parts: list[int]
    stations: list[int]

    def per_unit_ratios(self) -> list[float]:
        """Cost per unit of size relative to the smallest: 1.0 everywhere is linear."""
        base = self.cpu_s[0] / self.sizes[0]
        return [cpu / size / base for cpu, size in zip(self.cpu_s, self.sizes, strict=True)]

    def us_per_operation(self) -> list[float]:
        """CPU microseconds per part per station: the cost of one unit of work."""
        return [
            1e6 * cpu / (parts * stations)
            for cpu, parts, stations in zip(self.cpu_s, self.parts, self.stations, strict=True)
        ]


def simulation_cost(repeats: int, days: Sequence[int]) -> tuple[CostCurve, CostCurve]:
    by_stations: dict[int, list[float]] = {n: [] for n in STATION_COUNTS}
    by_days: dict[int, list[float]] = {d: [] for d in days}
    parts_stations: dict[int, int] = {}
    parts_days: dict[int, int] = {}
    configs = {n: replicated_line(n) for n in STATION_COUNTS}
    default = load_config()
    for repeat in range(repeats):
        # Interleaved and rotated: drift on the machine hits every size alike.
        for n in (
            STATION_COUNTS[repeat % len(STATION_COUNTS) :]
            + STATION_COUNTS[: repeat % len(STATION_COUNTS)]
        ):
            cpu, parts_stations[n] = simulation_cpu(configs[n], STATIONS_SPAN_H, SEED)
            by_stations[n].append(cpu)
        for d in tuple(days[repeat % len(days) :]) + tuple(days[: repeat % len(days)]):
            cpu, parts_days[d] = simulation_cpu(default, 24.0 * d, SEED)
            by_days[d].append(cpu)
    stations_curve = CostCurve(
        "stations",
        "stations",
        list(STATION_COUNTS),
        [median_by(by_stations[n]) for n in STATION_COUNTS],
        [parts_stations[n] for n in STATION_COUNTS],
        list(STATION_COUNTS),
    )
    days_curve = CostCurve(
        "hours",
        "simulated hours",
        [24 * d for d in days],
        [median_by(by_days[d]) for d in days],
        [parts_days[d] for d in days],
        [len(default.stations)] * len(days),
    )
    return stations_curve, days_curve


# -- sweep throughput ------------------------------------------------------------------------
def sweep_tasks(count: int, hours: float) -> list[RunTask]:
    config = load_config()
    return [
        RunTask(
            point=index,
            replication=0,
            seed=run_seed(SEED, index, 0),
            config=config,
            hours=hours,
            warmup_hours=0.0,
        )
        for index in range(count)
    ]


@dataclass
class SweepRun:
    backend: str
    workers: int
    wall_s: float
    result_at: list[float]  # seconds after the call, sorted
    compute_s: list[float] = field(default_factory=list)  # Dask only: inside the worker

    @property
    def steady_rate(self) -> float:
        """Runs per second once every worker has handed back its first result."""
        count = len(self.result_at)
        span = self.result_at[-1] - self.result_at[self.workers - 1]
        return (count - self.workers) / span if span > 0 else float("nan")

    @property
    def sweep_rate(self) -> float:
        """Runs per second of the whole call, start-up included."""
        return len(self.result_at) / self.wall_s

    @property
    def overhead_per_task_s(self) -> float:
        """Wall time not spent computing, per task (meaningful with one worker)."""
        return (self.wall_s - sum(self.compute_s)) / len(self.result_at)


def timed_sweep(
    name: str, backend: Backend, workers: int, tasks: Sequence[RunTask], dask_client: Any = None
) -> SweepRun:
    result_at: list[float] = []
    started = time.perf_counter()

    def progress(result: RunResult) -> None:
        result_at.append(time.perf_counter() - started)

    if dask_client is None:
        backend.run(tasks, progress)
        wall = time.perf_counter() - started
        return SweepRun(name, workers, wall, sorted(result_at))
    distributed: Any = importlib.import_module("distributed")
    with distributed.get_task_stream(dask_client) as stream:
        started = time.perf_counter()
        backend.run(tasks, progress)
        wall = time.perf_counter() - started
    compute = [
        part["stop"] - part["start"]
        for task in stream.data
        for part in task["startstops"]
        if part["action"] == "compute"
    ]
    return SweepRun(name, workers, wall, sorted(result_at), compute)


@dataclass
class DaskCluster:
    workers: int
    cluster: Any
    client: Any  # ours, for the task stream; the backend opens its own
    startup_s: float


def start_cluster(workers: int) -> DaskCluster:
    """A LocalCluster as ``DaskBackend`` starts one (``start_local_cluster``),
    started here so that its start-up stays out of the sweep's time."""
    # The scheduler runs in this process and logs every worker's coming and going.
    logging.getLogger("distributed").setLevel(logging.ERROR)
    started = time.perf_counter()
    # It also imports the simulator in each worker (over a second): start-up too.
    cluster, client = start_local_cluster(workers)
    return DaskCluster(workers, cluster, client, time.perf_counter() - started)


def stop_cluster(cluster: DaskCluster) -> None:
    cluster.client.close()
    cluster.cluster.close()


def task_cpu_s(task: RunTask) -> tuple[float, float]:
    """One run, and the CPU time its worker process spent meanwhile: (all its
    threads, so a Dask worker's event loop and monitors count against the task;
    the task's own thread)."""
    process, thread = time.process_time(), time.thread_time()
    run_task(task)
    return time.process_time() - process, time.thread_time() - thread


def worker_cpu(
    rounds: int, tasks: Sequence[RunTask], client: Any
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """CPU per task in a plain worker process (the pool's) and in a Dask worker,
    alternating: CPU time is what another job on the machine does not inflate."""
    pool: list[tuple[float, float]] = []
    dask: list[tuple[float, float]] = []
    for round_index in range(rounds):
        for where in ("pool", "dask") if round_index % 2 == 0 else ("dask", "pool"):
            if where == "pool":
                pool += ProcessPoolBackend(1).map(task_cpu_s, tasks)
            else:
                dask += client.gather(client.map(task_cpu_s, list(tasks), pure=False))
    return pool, dask


def sweep_scaling(
    rounds: int, tasks: Sequence[RunTask]
) -> tuple[
    list[SweepRun], dict[int, float], tuple[list[tuple[float, float]], list[tuple[float, float]]]
]:
    clusters = {workers: start_cluster(workers) for workers in WORKER_COUNTS}
    startup = {workers: cluster.startup_s for workers, cluster in clusters.items()}
    log(
        "  dask clusters up: "
        + ", ".join(f"{w} worker(s) in {s:.1f} s" for w, s in startup.items())
    )
    runs: list[SweepRun] = []
    try:
        for round_index in range(rounds):
            # Each pair that makes a ratio runs back to back, so that it sees one
            # state of the machine: a backend's 1- and 2-worker runs, and the two
            # backends' 1-worker runs (Dask's overhead). The order flips every round.
            order = [("pool", 2), ("pool", 1), ("dask", 1), ("dask", 2)]
            for backend_name, workers in order if round_index % 2 == 0 else order[::-1]:
                if backend_name == "pool":
                    run = timed_sweep("pool", ProcessPoolBackend(workers), workers, tasks)
                else:
                    cluster = clusters[workers]
                    backend = DaskBackend(cluster.cluster.scheduler_address)
                    run = timed_sweep("dask", backend, workers, tasks, cluster.client)
                runs.append(run)
                log(
                    f"  round {round_index + 1}: {backend_name} x{workers} "
                    f"{run.steady_rate:.2f} runs/s steady, {run.wall_s:.1f} s"
                )
        log("  CPU per task: a plain worker process against a Dask worker")
        cpu = worker_cpu(rounds, tasks[:3], clusters[1].client)
    finally:
        for cluster in clusters.values():
            stop_cluster(cluster)
    return runs, startup, cpu


@dataclass
class SweepFigures:
    backend: str
    rate: dict[int, float]  # median steady runs/s by workers, over the rounds
    sweep_rate: dict[int, float]  # median per-sweep runs/s by workers
    speedup: float  # median of the rounds' 2-worker / 1-worker rates
    speedup_rounds: list[float]  # each round's 2-worker / 1-worker rate (runs back to back)
    sweep_speedup: float
    first_result_s: dict[int, float]


def sweep_figures(runs: list[SweepRun], backend: str) -> SweepFigures:
    mine = {w: [run for run in runs if run.backend == backend and run.workers == w] for w in (1, 2)}
    rounds = [two.steady_rate / one.steady_rate for one, two in zip(mine[1], mine[2], strict=True)]
    sweep_rounds = [
        two.sweep_rate / one.sweep_rate for one, two in zip(mine[1], mine[2], strict=True)
    ]
    return SweepFigures(
        backend=backend,
        rate={w: median_by([run.steady_rate for run in mine[w]]) for w in mine},
        sweep_rate={w: median_by([run.sweep_rate for run in mine[w]]) for w in mine},
        speedup=median_by(rounds),
        speedup_rounds=rounds,
        sweep_speedup=median_by(sweep_rounds),
        first_result_s={w: median_by([run.result_at[0] for run in mine[w]]) for w in mine},
    )


# -- ingest over lines -----------------------------------------------------------------------
def line_config(index: int) -> LineConfig:
    """The benchmark line of ``bench/mqtt_throughput.py`` as line ``line{index}``."""
    data = bench_config().model_dump(mode="json")
    data["line"]["id"] = f"line{index}"
    return parse_config(data, f"benchmark line {index}")


def topics_of(config: LineConfig) -> LineTopics:
    return LineTopics(site=config.line.site, area=config.line.area, line=config.line.id)


class _Capture:
    """Just enough of a paho client to catch what the publisher hands over."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def will_set(self, *args: Any, **kwargs: Any) -> None:
        pass

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> Any:
        self.sent.append((topic, payload))
        return mqtt.MQTTMessageInfo(0)


def line_messages(index: int, count: int, seed: int) -> list[tuple[str, bytes]]:
    """The first ``count`` messages line ``index`` publishes after its birth message."""
    config = line_config(index)
    plant = Plant(config, env=simpy.Environment(), seed=seed)
    capture = _Capture()
    publisher = PlantPublisher(
        plant, cast(mqtt.Client, capture), topics_of(config), rng=random.Random(seed)
    )
    publisher.attach()
    while len(capture.sent) < count:
        plant.run(until=plant.now + 1.0)
    return capture.sent[:count]


def round_robin(streams: list[list[tuple[str, bytes]]]) -> list[tuple[str, bytes]]:
    merged: list[tuple[str, bytes]] = []
    for position in range(max(len(stream) for stream in streams)):
        merged.extend(stream[position] for stream in streams if position < len(stream))
    return merged


def replay_publisher(conn: Connection, host: str, port: int, lines: int, total: int) -> None:
    """The publishing side: ``total`` real messages of ``lines`` lines, round robin, flooded."""
    messages = round_robin(
        [line_messages(index, total // lines, SEED + index) for index in range(1, lines + 1)]
    )
    client = new_client(f"bench-scaling-pub-{uuid.uuid4().hex[:8]}")
    connect(client, BrokerAddress(host, port))
    try:
        conn.send(("ready", None))
        conn.recv()  # go
        started = time.perf_counter()
        for topic, payload in messages:
            client.publish(topic, payload, qos=0)
        conn.send(("done", {"sent": len(messages), "send_seconds": time.perf_counter() - started}))
        conn.recv()  # the ingest has what it will get
    finally:
        disconnect(client)


class CountingIngest(Ingest):
    """The project's ingest, noting when it last accepted a message."""

    last_accepted = 0.0

    def handle(self, topic: str, payload: bytes) -> bool:
        accepted = super().handle(topic, payload)
        if accepted:
            self.last_accepted = time.perf_counter()
        return accepted


@dataclass
class IngestRun:
    lines: int
    sent: int
    accepted: int
    seconds: float
    cpu_s: float
    gaps: int

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_message(self) -> float:
        return 1e6 * self.cpu_s / self.accepted if self.accepted else float("nan")


def ingest_run(address: BrokerAddress, lines: int, total: int) -> IngestRun:
    """One ingest, twin and client per line here; the replaying publisher in its own process."""
    ingests: list[CountingIngest] = []
    clients: list[mqtt.Client] = []
    try:
        for index in range(1, lines + 1):
            config = line_config(index)
            line = config.line
            client = new_client(f"bench-scaling-ingest-{index}-{uuid.uuid4().hex[:8]}")
            clients.append(client)
            ingest = CountingIngest(
                TwinState(line.site, line.area, line.id), topics_of(config), client
            )
            ingests.append(ingest)
            connect(client, address)
            if not ingest.subscribed.wait(10):
                raise TimeoutError(f"the ingest of line{index} got no SUBACK within 10 s")

        def accepted() -> int:
            return sum(ingest.stats.accepted for ingest in ingests)

        before = accepted()
        cpu_before = time.process_time()
        _, result, started = drive(
            replay_publisher, (address.host, address.port, lines, total), accepted, True
        )
        cpu = time.process_time() - cpu_before
        last = max(ingest.last_accepted for ingest in ingests)
        gaps = sum(ingest.health()["gaps"] for ingest in ingests)
        return IngestRun(lines, result["sent"], accepted() - before, last - started, cpu, gaps)
    finally:
        for client in clients:
            disconnect(client)


def ingest_scaling(rounds: int, total: int) -> list[IngestRun]:
    binary = shutil.which("mosquitto") or MOSQUITTO
    if not Path(binary).exists():
        raise SystemExit(f"mosquitto not found at {MOSQUITTO}: apt-get install mosquitto")
    runs: list[IngestRun] = []
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as workdir:
        broker = Broker(binary, Path(workdir))
        broker.start()
        try:
            # Untimed: the first run of a process pays for first-use costs (imports,
            # pydantic's validators, caches) that no later run sees.
            ingest_run(broker.address, 1, min(total, 3_000))
            for round_index in range(rounds):
                shift = round_index % len(LINE_COUNTS)
                for lines in LINE_COUNTS[shift:] + LINE_COUNTS[:shift]:
                    run = ingest_run(broker.address, lines, total)
                    runs.append(run)
                    log(
                        f"  round {round_index + 1}: {lines} line(s) {run.rate:,.0f} msg/s "
                        f"({run.accepted:,} of {run.sent:,})"
                    )
        finally:
            broker.stop()
    return runs


# -- the picture -----------------------------------------------------------------------------
def plot(
    path: Path,
    sweeps: list[SweepFigures],
    ingest_rates: dict[int, float],
    stations: CostCurve,
    hours: CostCurve,
) -> None:
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    pyplot: Any = importlib.import_module("matplotlib.pyplot")
    figure, axes = pyplot.subplots(2, 2, figsize=(10, 7.5))

    ax = axes[0][0]
    workers = list(WORKER_COUNTS)
    for sweep, colour in zip(sweeps, ("tab:blue", "tab:orange"), strict=True):
        rates = [sweep.rate[w] for w in workers]
        label = "process pool" if sweep.backend == "pool" else "Dask LocalCluster"
        ax.plot(workers, rates, "o-", color=colour, label=f"{label} (measured)")
        ax.plot(
            workers, [rates[0] * w for w in workers], ":", color=colour, label=f"{label}, linear"
        )
    ax.set(
        title="Sweep throughput (steady state)",
        xlabel="workers",
        ylabel="runs per second",
        xticks=workers,
        ylim=(0, 2.3 * max(sweep.rate[1] for sweep in sweeps)),
    )
    ax.legend(fontsize=8)

    ax = axes[0][1]
    lines = list(LINE_COUNTS)
    rates = [ingest_rates[n] for n in lines]
    ax.plot(lines, rates, "o-", color="tab:green", label="measured")
    ax.plot(lines, [rates[0]] * len(lines), ":", color="tab:green", label="linear (no loss)")
    ax.plot(
        lines, [rates[0] * INGEST_TARGET] * len(lines), "--", color="tab:red", label="target floor"
    )
    ax.set(
        title="Ingest capacity, same total message rate",
        xlabel="lines publishing at once",
        ylabel="messages per second",
        xticks=lines,
        ylim=(0, max(rates) * 1.15),
    )
    ax.legend(fontsize=8)

    for ax, curve, colour in (
        (axes[1][0], stations, "tab:purple"),
        (axes[1][1], hours, "tab:brown"),
    ):
        base = curve.cpu_s[0] / curve.sizes[0]
        ax.plot(curve.sizes, curve.cpu_s, "o-", color=colour, label="measured")
        ax.plot(
            curve.sizes, [base * size for size in curve.sizes], ":", color=colour, label="linear"
        )
        ax.set(
            title=f"Simulation cost against {curve.unit}",
            xlabel=curve.unit,
            ylabel="CPU seconds",
            xticks=curve.sizes,
        )
        ax.legend(fontsize=8)
    axes[1][0].set_title(f"Simulation cost vs stations ({STATIONS_SPAN_H:.0f} h simulated)")
    axes[1][1].set_title("Simulation cost vs simulated hours (5 stations)")
    figure.suptitle("factory-twin scaling (bench/scaling.py, 2-core VM)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


# -- the run ---------------------------------------------------------------------------------
def rounded(values: dict[int, float], digits: int = 3) -> dict[str, float]:
    return {str(key): round(value, digits) for key, value in values.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller and fewer runs, a smoke test")
    parser.add_argument(
        "--plot", type=Path, default=None, help=f"PNG path (default {DEFAULT_PLOT})"
    )
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (5; quick: 1)")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 5)
    task_count = 4 if args.quick else 8
    task_hours = 60.0 if args.quick else 200.0
    messages = 6_000 if args.quick else 20_000
    days = DAYS[:3] if args.quick else DAYS
    plot_path: Path | None = args.plot or (None if args.quick else DEFAULT_PLOT)
    begun = time.perf_counter()
    load_before = os.getloadavg()[0]

    log("simulation cost ...")
    stations, hours = simulation_cost(1 if args.quick else 3, days)
    log("sweep throughput ...")
    tasks = sweep_tasks(task_count, task_hours)
    sweep_runs, startup, (pool_cpu, dask_cpu) = sweep_scaling(rounds, tasks)
    log("ingest over lines ...")
    ingest_runs = ingest_scaling(rounds, messages)

    # -- figures
    sweeps = [sweep_figures(sweep_runs, backend) for backend in ("pool", "dask")]
    dask_one = [run for run in sweep_runs if run.backend == "dask" and run.workers == 1]
    dask_two = [run for run in sweep_runs if run.backend == "dask" and run.workers == 2]
    in_worker_overhead_s = median_by([run.overhead_per_task_s for run in dask_one])
    pool_one = [run for run in sweep_runs if run.backend == "pool" and run.workers == 1]
    # The wall-clock difference of the two backends' 1-worker rates, per round, is
    # printed for reference; on a shared machine it swings by more than the target.
    overhead_rounds = [
        1.0 / dask.steady_rate - 1.0 / pool.steady_rate
        for dask, pool in zip(dask_one, pool_one, strict=True)
    ]
    # The figure: what a task costs in a Dask worker beyond what it costs in a plain
    # worker process, in CPU time (the worker's other threads count against it),
    # plus the wall time per task outside the task (scheduling, transfer).
    plain_task_cpu_s = median_by([thread for _, thread in pool_cpu])
    dask_task_cpu_s = median_by([thread for _, thread in dask_cpu])
    # The Dask worker's other threads while a task runs (a plain process has none).
    other_threads_cpu_s = median_by([process - thread for process, thread in dask_cpu])
    # A task thread that came out faster in Dask is noise, not a gain: never below 0.
    in_worker_cpu_s = max(0.0, dask_task_cpu_s - plain_task_cpu_s) + other_threads_cpu_s
    overhead_s = in_worker_cpu_s + in_worker_overhead_s
    task_s = median_by([median_by(run.compute_s) for run in dask_one])
    task_s_two = median_by([median_by(run.compute_s) for run in dask_two])
    # What two busy processes got from the machine, next to what one got: two
    # workers' tasks each take longer when the cores are shared with other work.
    machine_rounds = [
        2 * statistics.fmean(one.compute_s) / statistics.fmean(two.compute_s)
        for one, two in zip(dask_one, dask_two, strict=True)
    ]
    machine = median_by(machine_rounds)
    overhead_fraction = overhead_s / plain_task_cpu_s

    ingest_by_lines = {n: [run for run in ingest_runs if run.lines == n] for n in LINE_COUNTS}
    ingest_rates = {n: median_by([run.rate for run in ingest_by_lines[n]]) for n in LINE_COUNTS}
    ingest_cpu = {
        n: median_by([run.cpu_us_per_message for run in ingest_by_lines[n]]) for n in LINE_COUNTS
    }
    ingest_rounds = [
        four.rate / one.rate
        for one, four in zip(ingest_by_lines[1], ingest_by_lines[4], strict=True)
    ]
    ingest_ratio = median_by(ingest_rounds)
    ingest_lost = sum(run.sent - run.accepted for run in ingest_runs)
    ingest_gaps = sum(run.gaps for run in ingest_runs)

    normalised = {
        "pool_speedup": sweeps[0].speedup / SPEEDUP_TARGET,
        "dask_speedup": sweeps[1].speedup / SPEEDUP_TARGET,
        "dask_overhead": DASK_OVERHEAD_TARGET / overhead_fraction
        if overhead_fraction > 0
        else float("inf"),
        "ingest_4_lines": ingest_ratio / INGEST_TARGET,
    }
    passed = {name: value >= 1.0 for name, value in normalised.items()}
    headline = min(normalised.values())

    # -- report
    print(
        f"sweep: {task_count} runs of the default line, {task_hours:.0f} simulated h each "
        f"(~{task_s:.2f} s inside a worker), medians of {rounds} interleaved rounds"
    )
    for sweep in sweeps:
        title = "process pool" if sweep.backend == "pool" else "Dask LocalCluster"
        print(f"  {title}")
        for w in WORKER_COUNTS:
            print(
                f"    {w} worker(s)  {sweep.rate[w]:5.2f} runs/s steady  "
                f"({sweep.sweep_rate[w]:.2f} per sweep, start-up included; "
                f"first result after {sweep.first_result_s[w]:.1f} s)"
            )
        print(
            f"    speedup {sweep.speedup:.2f}x (median), vs linear {sweep.speedup / 2:.2f} "
            f"(target >= {SPEEDUP_TARGET}x); back-to-back rounds "
            + ", ".join(f"{value:.2f}" for value in sweep.speedup_rounds)
            + f"; per sweep, start-up included, {sweep.sweep_speedup:.2f}x (median)"
        )
    print(
        "  dask cluster start-up (kept out of the rates): "
        + ", ".join(f"{w} worker(s) {s:.1f} s" for w, s in startup.items())
    )
    print(
        f"  a task inside a Dask worker: {task_s:.2f} s with 1 worker, {task_s_two:.2f} s "
        f"with 2; so the machine gave 2 busy processes {machine:.2f}x what it gave 1 "
        "(rounds " + ", ".join(f"{value:.2f}" for value in machine_rounds) + "; 2.00 on idle cores)"
    )
    print(
        f"  load average {load_before:.1f} before the run, {os.getloadavg()[0]:.1f} after "
        "(other work on the machine)"
    )
    print(
        f"dask per-task overhead: {overhead_s * 1000:.0f} ms a task = {overhead_fraction:.1%} of "
        f"a {plain_task_cpu_s:.2f}-s task (target < {DASK_OVERHEAD_TARGET:.0%}): the task's "
        f"own thread {dask_task_cpu_s:.3f} s CPU in a Dask worker, {plain_task_cpu_s:.3f} s in "
        f"a plain process; the Dask worker's other threads {other_threads_cpu_s * 1000:.0f} ms "
        f"meanwhile; outside the task {in_worker_overhead_s * 1000:.0f} ms of wall time "
        f"(scheduling, transfer); medians of {len(pool_cpu)}. Wall-clock difference of the "
        "1-worker rates, for reference: "
        + ", ".join(f"{value * 1000:.0f}" for value in overhead_rounds)
        + " ms"
    )
    print(
        f"ingest: {messages:,} messages at the publisher's full rate, split over 1, 2, 4 lines; "
        f"one ingest per line; medians of {rounds} rounds"
    )
    for n in LINE_COUNTS:
        print(
            f"  {n} line(s)  {ingest_rates[n]:>8,.0f} msg/s  "
            f"x{ingest_rates[n] / ingest_rates[1]:.2f}"
            f"  ({ingest_cpu[n]:.1f} us CPU a message here)"
        )
    print(
        f"  4 lines / 1 line {ingest_ratio:.2f} (median; target >= {INGEST_TARGET}); rounds "
        + ", ".join(f"{value:.2f}" for value in ingest_rounds)
        + f"; lost {ingest_lost}, gaps {ingest_gaps} over all runs"
    )
    for curve in (stations, hours):
        ratios = curve.per_unit_ratios()
        print(f"simulation cost against {curve.unit} (CPU s; per-unit ratio vs linear = 1.0):")
        for size, cpu, ratio, parts, per_operation in zip(
            curve.sizes, curve.cpu_s, ratios, curve.parts, curve.us_per_operation(), strict=True
        ):
            print(
                f"  {size:>4}  {cpu:6.3f} s  x{ratio:.2f}  ({parts:,} parts shipped; "
                f"{per_operation:.0f} us a part a station)"
            )
    print(
        f"headline: worst target, normalised (1.0 = just met): {headline:.2f} "
        f"({', '.join(f'{k} {v:.2f}' for k, v in normalised.items())})"
    )
    if plot_path is not None:
        plot(plot_path, sweeps, ingest_rates, stations, hours)
        print(f"curves: {plot_path}")
    print(f"bench took {time.perf_counter() - begun:.0f} s")

    figures = {
        "benchmark": "scaling",
        "ratio": round(headline, 3),
        "target": 1.0,
        "met": all(passed.values()),
        "passed": passed,
        "normalised": {k: round(v, 3) for k, v in normalised.items()},
        "pool_speedup": round(sweeps[0].speedup, 3),
        "pool_speedup_rounds": [round(v, 3) for v in sweeps[0].speedup_rounds],
        "dask_speedup": round(sweeps[1].speedup, 3),
        "dask_speedup_rounds": [round(v, 3) for v in sweeps[1].speedup_rounds],
        "speedup_target": SPEEDUP_TARGET,
        "pool_runs_per_s": rounded(sweeps[0].rate),
        "dask_runs_per_s": rounded(sweeps[1].rate),
        "pool_sweep_speedup": round(sweeps[0].sweep_speedup, 3),
        "dask_startup_s": rounded(startup, 2),
        "task_s": round(task_s, 3),
        "task_s_two_workers": round(task_s_two, 3),
        "machine_parallelism": round(machine, 3),
        "machine_parallelism_rounds": [round(v, 3) for v in machine_rounds],
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "dask_overhead_per_task_s": round(overhead_s, 4),
        "dask_overhead_outside_task_s": round(in_worker_overhead_s, 4),
        "dask_overhead_in_worker_cpu_s": round(in_worker_cpu_s, 4),
        "task_cpu_s": {"plain": round(plain_task_cpu_s, 4), "dask": round(dask_task_cpu_s, 4)},
        "dask_other_threads_cpu_s": round(other_threads_cpu_s, 4),
        "dask_overhead_fraction": round(overhead_fraction, 4),
        "dask_overhead_target": DASK_OVERHEAD_TARGET,
        "ingest_msg_per_s": rounded(ingest_rates, 0),
        "ingest_cpu_us_per_msg": rounded(ingest_cpu, 2),
        "ingest_4_over_1": round(ingest_ratio, 3),
        "ingest_4_over_1_rounds": [round(v, 3) for v in ingest_rounds],
        "ingest_target": INGEST_TARGET,
        "ingest_lost": ingest_lost,
        "sim_cpu_s_by_stations": rounded(dict(zip(stations.sizes, stations.cpu_s, strict=True))),
        "sim_per_station_ratio": rounded(
            dict(zip(stations.sizes, stations.per_unit_ratios(), strict=True))
        ),
        "sim_us_per_station_part": rounded(
            dict(zip(stations.sizes, stations.us_per_operation(), strict=True)), 1
        ),
        "sim_cpu_s_by_hours": rounded(dict(zip(hours.sizes, hours.cpu_s, strict=True))),
        "sim_per_hour_ratio": rounded(dict(zip(hours.sizes, hours.per_unit_ratios(), strict=True))),
        "rounds": rounds,
        "seconds": round(time.perf_counter() - begun, 1),
    }
    emit("scaling", figures, quick=args.quick)
    update("scaling")
    return 0


if __name__ == "__main__":
    sys.exit(main())
