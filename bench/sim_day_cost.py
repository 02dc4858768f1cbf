"""What one simulated day of the default line costs, and so the largest what-if request.

A what-if request simulates at most ``twin.experiments.whatif.MAX_SIMULATED_S`` (horizon x
replications), and a request with changes runs the baseline as well, so twice
that. This runs the default line (``twin.experiments.experiment.run_once``, the plant a
what-if fork runs) for 10 simulated days, 3 times, and keeps the median CPU
seconds a simulated day (one core) and what the largest request would take at
that rate. Not a ratio against a baseline: ``ratio`` is the seconds a day.

Run: ``.venv/bin/python bench/sim_day_cost.py``: a few seconds.
Writes ``bench/results/sim_day_cost.json``.
"""

from __future__ import annotations

import statistics
import sys
import time

from _results import emit

from twin.config.line import load_config
from twin.experiments.experiment import run_once
from twin.experiments.whatif import MAX_SIMULATED_S

DAYS = 10
ROUNDS = 3


def main() -> int:
    config = load_config()
    per_day = []
    for round_index in range(ROUNDS):
        started = time.process_time()
        run_once(config, hours=24.0 * DAYS, seed=round_index + 1)
        per_day.append((time.process_time() - started) / DAYS)
    day_s = statistics.median(per_day)
    largest_days = 2 * MAX_SIMULATED_S / 86_400
    emit(
        "sim_day_cost",
        {
            "benchmark": "sim_day_cost",
            "ratio": round(day_s, 3),
            "target": None,
            "days": DAYS,
            "rounds": ROUNDS,
            "cpu_s_per_day": round(day_s, 3),
            "cpu_s_per_day_rounds": [round(value, 3) for value in per_day],
            "largest_request_days": largest_days,
            "largest_request_s": round(day_s * largest_days, 1),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
