"""Simulator speed: the project's plant against raw SimPy, in the same run.

Baseline: a minimal SimPy model of a 5-station exponential tandem line, written
directly with ``simpy.Resource`` (one process per part, unlimited queues,
Poisson arrivals). Subject: the project's ``Plant`` configured as the same line
(open release, unlimited buffers, telemetry off: no listeners). Both simulate
the same hours with the same arrival and service rates; the figure is parts
completed per wall-clock second. A round runs the baseline and the plant back
to back, the order flipped every round; the ratio is the median of the rounds'
ratios, printed with their range (never the best run of either side: on a
shared machine the best runs of the two come from different states of it).
Target: the plant reaches at least 0.5x the raw-SimPy rate.

It also reports how the plant's wall time grows with the number of stations
(5, 10, 20, 40) and with simulated hours, which should both be linear.

Run: ``make bench`` or ``.venv/bin/python bench/sim_speed.py [--quick]``.
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import simpy
from _results import emit

from twin.config.line import LineConfig, parse_config
from twin.sim.plant import Plant

TARGET = 0.5
ARRIVAL_MEAN_S = 1.0
SERVICE_MEAN_S = 0.8  # utilisation 0.8 at every station


def raw_simpy(stations: int, horizon_s: float, seed: int) -> int:
    """Parts completed by a hand-written SimPy tandem line."""
    env = simpy.Environment()
    rng = random.Random(seed)
    resources = [simpy.Resource(env, capacity=1) for _ in range(stations)]
    done = [0]
    service_rate = 1.0 / SERVICE_MEAN_S
    arrival_rate = 1.0 / ARRIVAL_MEAN_S

    def part() -> Any:
        for resource in resources:
            with resource.request() as request:
                yield request
                yield env.timeout(rng.expovariate(service_rate))
        done[0] += 1

    def source() -> Any:
        while True:
            yield env.timeout(rng.expovariate(arrival_rate))
            env.process(part())

    env.process(source())
    env.run(until=horizon_s)
    return done[0]


def line_config(stations: int) -> LineConfig:
    return parse_config(
        {
            "line": {"id": "bench"},
            "release": {
                "policy": "open",
                "interarrival": {"distribution": "exponential", "mean_s": ARRIVAL_MEAN_S},
            },
            "stations": [
                {
                    "id": f"s{index}",
                    "processing_time": {"distribution": "exponential", "mean_s": SERVICE_MEAN_S},
                    "input_buffer_capacity": "unlimited",
                }
                for index in range(stations)
            ],
        },
        "benchmark line",
    )


def plant(stations: int, horizon_s: float, seed: int) -> int:
    subject = Plant(line_config(stations), seed=seed)
    subject.run(until=horizon_s)
    return subject.parts_shipped


def best_rate(run: Callable[[], int], repeats: int) -> tuple[float, int, float]:
    """(parts per wall second, parts, wall seconds) of the fastest repeat."""
    best: tuple[float, int, float] | None = None
    for _ in range(repeats):
        started = time.perf_counter()
        parts = run()
        wall = time.perf_counter() - started
        rate = parts / wall
        if best is None or rate > best[0]:
            best = (rate, parts, wall)
    assert best is not None  # noqa: S101 - repeats >= 1
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, for a smoke test")
    args = parser.parse_args()
    horizon = 20_000.0 if args.quick else 100_000.0
    rounds = 3 if args.quick else 5

    raw_rates, plant_rates = [], []
    for round_index in range(rounds):
        sides = [("raw", lambda: raw_simpy(5, horizon, 1)), ("plant", lambda: plant(5, horizon, 1))]
        for name, run in sides if round_index % 2 == 0 else sides[::-1]:
            rate, _, _ = best_rate(run, 1)
            (raw_rates if name == "raw" else plant_rates).append(rate)
    ratios = [p / r for p, r in zip(plant_rates, raw_rates, strict=True)]
    ratio = statistics.median(ratios)
    raw_rate, plant_rate = statistics.median(raw_rates), statistics.median(plant_rates)
    print(f"5-station exponential line, {horizon:,.0f} s simulated, {rounds} paired rounds")
    print(f"  raw SimPy  {raw_rate:>10,.0f} parts/s (median)")
    print(f"  plant      {plant_rate:>10,.0f} parts/s (median)")
    print(
        f"  ratio      {ratio:>10.2f}  median of the rounds, {min(ratios):.2f} to "
        f"{max(ratios):.2f} (target >= {TARGET})"
    )

    scale_horizon = horizon / 5
    by_stations = {}
    for stations in (5, 10, 20, 40):
        _, _, wall = best_rate(lambda n=stations: plant(n, scale_horizon, 2), 1)
        by_stations[stations] = wall
    base = by_stations[5]
    print(f"wall time by stations ({scale_horizon:,.0f} s simulated; linear = x1, x2, x4, x8):")
    for stations, wall in by_stations.items():
        print(f"  {stations:>3} stations  {wall:6.2f} s  x{wall / base:.1f}")

    by_hours = {}
    for factor in (1, 2, 4):
        _, _, wall = best_rate(lambda f=factor: plant(5, scale_horizon * f, 3), 1)
        by_hours[factor] = wall
    print("wall time by simulated span (linear = x1, x2, x4):")
    for factor, wall in by_hours.items():
        print(f"  x{factor}  {wall:6.2f} s  x{wall / by_hours[1]:.1f}")

    figures = {
        "benchmark": "sim_speed",
        "ratio": round(ratio, 3),
        "target": TARGET,
        "met": ratio >= TARGET,
        "ratio_rounds": [round(value, 3) for value in ratios],
        "raw_parts_per_s": round(raw_rate),
        "plant_parts_per_s": round(plant_rate),
        "wall_s_by_stations": {str(k): round(v, 3) for k, v in by_stations.items()},
        "wall_s_by_span": {f"x{k}": round(v, 3) for k, v in by_hours.items()},
        "python": platform.python_version(),
        "simpy": simpy.__version__,
    }
    emit("sim_speed", figures, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
