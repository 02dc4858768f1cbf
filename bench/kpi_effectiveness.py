"""Effectiveness above 1 by chance: the default line's inspection, as docs/kpis.md quotes it.

The vision inspection of the default line has Erlang-3 processing times (CV
1/sqrt(3), about 0.58) and no speed setpoint, so its rated time PRU is its mean
and its effectiveness (PRU x PQ / actual production time) exceeds 1 whenever
its parts happen to run short. What ``factory-twin simulate`` shows for it
(8 hours, seed 42, the command's defaults) and how many standard deviations of
chance that is (``(effectiveness - 1) / (CV / sqrt(PQ))``), and its mean over
seeds 1 to 40 of the same run.

Run: ``.venv/bin/python bench/kpi_effectiveness.py``: a few seconds.
Writes ``bench/results/kpi_effectiveness.json``.
"""

from __future__ import annotations

import math
import statistics
import sys
import time

from _results import emit

from twin.config.line import load_config
from twin.experiments.experiment import run_once

STATION = "inspection"
HOURS = 8.0
SEED = 42
SEEDS = range(1, 41)
CV = 1 / math.sqrt(3)  # Erlang-3


def inspection(seed: int) -> tuple[float, int]:
    report = run_once(load_config(), hours=HOURS, seed=seed)
    kpis = next(s for s in report.stations if s.id == STATION).kpis
    return float(kpis.effectiveness or 0.0), int(kpis.produced)


def main() -> int:
    begun = time.perf_counter()
    effectiveness, produced = inspection(SEED)
    sigmas = (effectiveness - 1) / (CV / math.sqrt(produced))
    over_seeds = [inspection(seed)[0] for seed in SEEDS]
    emit(
        "kpi_effectiveness",
        {
            "benchmark": "kpi_effectiveness",
            "ratio": round(effectiveness, 4),
            "target": None,
            "station": STATION,
            "hours": HOURS,
            "seed": SEED,
            "effectiveness": round(effectiveness, 4),
            "produced": produced,
            "standard_deviations": round(sigmas, 2),
            "seeds": len(SEEDS),
            "mean_over_seeds": round(statistics.fmean(over_seeds), 4),
            "above_one_seeds": sum(value > 1 for value in over_seeds),
            "seconds": round(time.perf_counter() - begun, 1),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
