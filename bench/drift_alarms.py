"""The drift detector on injected faults and tool wear: the figures docs/anomaly.md quotes.

Runs exactly what tests/models/anomaly/test_anomaly.py measures (its ``measure``: the
default line at its default setpoints, 60 simulated hours, seed 11, through the
publisher, the ingest and the recorder into a SQLite store; the first 24 hours
train the detector, the next 36 hold 12 faults drawn with seed 5 and the
machining tool's wear) and keeps what the test asserts: faults and wear
episodes detected, false alarms a day, mean and longest delays, and the share
of clean training windows under the alarm score and of fault windows at or
above it. One run, one line, one seed: the figures rest on 12 faults and a
handful of wear episodes.

Run: ``.venv/bin/python bench/drift_alarms.py``: under a minute.
Writes ``bench/results/drift_alarms.json`` and the table in docs/anomaly.md.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _results import emit, load_test_module
from _tables import update

# The test's own code, so that the figures are the test's.
anomaly_test = load_test_module("anomaly_test", "models/anomaly/test_anomaly.py")

from models.anomaly.detector import fault_episodes  # noqa: E402


def main() -> int:
    begun = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as workdir:
        run = anomaly_test.measure(Path(workdir))
    evaluation = run.evaluation
    faults = {k: v for k, v in evaluation.by_kind.items() if k != "wear"}
    wear = evaluation.by_kind.get("wear", (0, 0))
    delays = {
        kind: [s for e, s in evaluation.delays_s.items() if (e.kind == "wear") == (kind == "wear")]
        for kind in ("fault", "wear")
    }
    clean = run.detector.score(run.clean)
    clean_share = float(np.mean(np.concatenate(list(clean.values())) < 1.0))
    scores = run.detector.score(run.test)
    inside = []
    for episode in fault_episodes(run.config, anomaly_test.START_MS):
        if episode.kind == "spike":
            continue  # a spike hits one sample in ten: many of its windows are clean
        windows = run.test[episode.station]
        during = (windows.end_ms - windows.window_ms >= episode.start_ms) & (
            windows.end_ms <= episode.end_ms
        )
        inside.append(scores[episode.station][during])
    fault_share = float(np.mean(np.concatenate(inside) >= 1.0))
    scored_h = anomaly_test.HOURS - anomaly_test.TRAIN_HOURS
    result = {
        "benchmark": "drift_alarms",
        "ratio": round(evaluation.detection_rate, 4),
        "target": anomaly_test.MIN_DETECTION_RATE,
        "hours": anomaly_test.HOURS,
        "scored_hours": scored_h,
        "seed": anomaly_test.SEED,
        "fault_seed": anomaly_test.FAULT_SEED,
        "faults_detected": sum(hit for hit, _ in faults.values()),
        "faults": sum(n for _, n in faults.values()),
        "by_kind": {k: list(v) for k, v in evaluation.by_kind.items()},
        "wear_detected": wear[0],
        "wear": wear[1],
        "false_alarms": len(evaluation.false),
        "false_alarms_per_day": round(evaluation.false_alarms_per_day, 2),
        "mean_fault_delay_min": round(statistics.fmean(delays["fault"]) / 60, 1),
        "max_fault_delay_min": round(max(delays["fault"]) / 60, 1),
        "mean_wear_delay_min": round(statistics.fmean(delays["wear"]) / 60, 1),
        "clean_under_threshold": round(clean_share, 4),
        "fault_windows_over_threshold": round(fault_share, 4),
        "seconds": round(time.perf_counter() - begun, 1),
    }
    emit("drift_alarms", result)
    update("drift-alarms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
