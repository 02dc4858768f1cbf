"""What sharing a repair crew costs: the example site, one crew for both lines against one each.

``examples/sites/two_lines/site.yaml`` runs as a batch (``twin.sim.site_plant``, one
SimPy environment, the crew a shared resource) with its one shared technician,
and again with ``separate_crews()`` (a technician per line), on the same seeds:
5 simulated days, seeds 1 to 10. Per line, the means over the seeds of the
machine-hours down, the hours machines waited for the technician, the line's
availability (at its capacity constraint) and its good parts; and on how many
seeds the shared crew shipped fewer good parts than a crew of its own.

Run: ``.venv/bin/python bench/site_crew.py``: about a minute.
Writes ``bench/results/site_crew.json`` and the table in docs/site.md.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from _results import emit
from _tables import update

from twin.config.site import load_site
from twin.sim.site_plant import SitePlant

SITE = Path(__file__).resolve().parents[1] / "examples" / "sites" / "two_lines" / "site.yaml"
HOURS = 5 * 24.0
SEEDS = range(1, 11)


def main() -> int:
    begun = time.perf_counter()
    site = load_site(SITE)
    setups = {"shared": site, "own": site.separate_crews()}
    runs: dict[str, dict[str, list[dict[str, float]]]] = {name: {} for name in setups}
    for seed in SEEDS:
        for name, config in setups.items():
            plant = SitePlant(config, seed=seed)
            plant.run(until=HOURS * 3600.0)
            waits = plant.crew_waits()
            for line_id, report in plant.reports(HOURS).items():
                runs[name].setdefault(line_id, []).append(
                    {
                        "down_h": sum(s.kpis.down_time_s for s in report.stations) / 3600,
                        "wait_h": waits[line_id].wait_s / 3600 if line_id in waits else 0.0,
                        "availability": report.line_kpis.availability or 0.0,
                        "good": float(report.line_kpis.good),
                    }
                )
        print(f"seed {seed} done", flush=True)
    lines: dict[str, dict[str, object]] = {}
    for line_id in runs["shared"]:
        entry: dict[str, object] = {}
        for name in setups:
            entry[name] = {
                key: round(statistics.fmean(run[key] for run in runs[name][line_id]), 4)
                for key in ("down_h", "wait_h", "availability", "good")
            }
        entry["seeds_fewer_good_shared"] = sum(
            shared["good"] < own["good"]
            for shared, own in zip(runs["shared"][line_id], runs["own"][line_id], strict=True)
        )
        shared_good = entry["shared"]["good"]  # type: ignore[index]
        own_good = entry["own"]["good"]  # type: ignore[index]
        entry["good_change"] = round(shared_good / own_good - 1, 4)
        lines[line_id] = entry
    emit(
        "site_crew",
        {
            "benchmark": "site_crew",
            "site": "examples/sites/two_lines/site.yaml",
            "hours": HOURS,
            "seeds": list(SEEDS),
            "lines": lines,
            "seconds": round(time.perf_counter() - begun, 1),
        },
    )
    update("site-crew")
    return 0


if __name__ == "__main__":
    sys.exit(main())
