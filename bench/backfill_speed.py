"""Time to ready: the default backfill (7 simulated days) before ``factory-twin up``
goes live, against the bare plant simulating the same span in the same run.

Subject: ``sensors.backfill.backfill`` for the default line into a fresh
embedded store, until the store has committed everything (what ``up`` waits
for before going live). It simulates in a child process, measures and encodes
every message with the publisher, decodes and applies it through an ingest,
and records it (see docs/storage.md).

Baseline: the same line config and span on a plain SimPy environment with no
sensors, no messages and no history: the cost of the simulation alone.

The figure is the backfill's wall time; the ratio is baseline / backfill (the
share of the time the simulation itself takes). The issue's target is an
absolute one: ready within about 30 s on 2 cores.

Run: ``.venv/bin/python bench/backfill_speed.py [--quick]``.
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import simpy

from sensors.backfill import backfill
from sensors.topics import LineTopics
from twin.config import load_config
from twin.history import HistoryWriter
from twin.plant import Plant
from twin.store import SqliteStore

TARGET_S = 30.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 simulated day, for a smoke test")
    args = parser.parse_args()
    days = 1.0 if args.quick else 7.0
    span_s = days * 86_400
    config = load_config()
    topics = LineTopics(config.line.site, config.line.area, config.line.id)

    started = time.perf_counter()
    Plant(config, env=simpy.Environment(), seed=43).run(until=span_s)
    bare_s = time.perf_counter() - started

    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as workdir:
        store = SqliteStore(Path(workdir) / "history.sqlite3", retention_ms=None)
        writer = HistoryWriter(store)
        started = time.perf_counter()
        result = backfill(
            config, writer, topics, end_ms=int(time.time() * 1000), span_s=span_s, seed=43
        )
        if not writer.flush(300):
            raise TimeoutError("the store did not commit the backfill within 5 minutes")
        ready_s = time.perf_counter() - started
        samples = store.count()
        writer.close()

    ratio = bare_s / ready_s
    print(f"default line, {days:g} simulated days")
    print(f"  bare plant     {bare_s:>8.2f} s")
    print(
        f"  backfill       {ready_s:>8.2f} s  ({result.messages:,} messages, {samples:,} samples "
        f"stored; {result.rejected} rejected)"
    )
    print(f"  ratio          {ratio:>8.2f}  (bare / backfill)")
    if not args.quick:
        print(f"  time to ready  {ready_s:>8.2f} s  (target about {TARGET_S:g} s on 2 cores)")
    print(
        json.dumps(
            {
                "benchmark": "backfill_speed",
                "ratio": round(ratio, 3),
                "target": None,
                "ready_s": round(ready_s, 2),
                "target_s": TARGET_S,
                "met": ready_s <= TARGET_S if not args.quick else None,
                "days": days,
                "bare_plant_s": round(bare_s, 2),
                "messages": result.messages,
                "samples": samples,
                "python": platform.python_version(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
