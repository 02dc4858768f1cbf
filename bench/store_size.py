"""History size: bytes a sample in the embedded store, and what a week of the default line takes.

Backfills ``--days`` simulated days of the default line (``sensors.backfill``:
the plant, its publisher, the ingest and the recorder, as ``up`` does) into an
empty ``SqliteStore`` and closes it, then divides the size of its files (the
database and whatever write-ahead log is left) by the samples it holds. A week
of wall-clock time at a speed factor F holds 7 x F simulated days, so at the
measured samples a simulated day it takes 7 x F x samples/day x bytes/sample:
the figures ``FACTORY_TWIN_HISTORY_RETENTION_DAYS`` (default 7) is sized by, at
1x and at ``up``'s default 60x. This is a measurement, not a ratio against a
baseline: ``ratio`` is the measured bytes a sample, ``target`` none.

Run: ``.venv/bin/python bench/store_size.py [--days 1]``: about half a minute.
Writes ``bench/results/store_size.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _results import emit

from sensors.backfill import backfill
from sensors.topics import LineTopics
from twin.config.line import load_config
from twin.history.points import HistoryWriter
from twin.history.store import SqliteStore

SPEEDS = (1, 60)
END_MS = 1_800_000_000_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=1.0, help="simulated days to backfill")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if args.days <= 0:
        parser.error("--days must be > 0")
    begun = time.perf_counter()
    config = load_config()
    topics = LineTopics(config.line.site, config.line.area, config.line.id)
    with tempfile.TemporaryDirectory(prefix="bench-store-size-") as workdir:
        path = Path(workdir) / "history.sqlite3"
        store = SqliteStore(path, retention_ms=None)
        writer = HistoryWriter(store)
        backfill(config, writer, topics, end_ms=END_MS, span_s=args.days * 86_400, seed=args.seed)
        writer.flush(120)
        samples = store.count()
        store.close()
        size = sum(p.stat().st_size for p in Path(workdir).iterdir())
    per_sample = size / samples
    per_day = samples / args.days
    week = {
        str(speed): {
            "samples": round(7 * speed * per_day),
            "bytes": round(7 * speed * per_day * per_sample),
        }
        for speed in SPEEDS
    }
    print(
        f"{args.days:g} simulated day(s) of the default line: {samples:,} samples in "
        f"{size:,} bytes, {per_sample:.1f} B a sample"
    )
    for speed, figures in week.items():
        print(
            f"  a week at {speed}x: {figures['samples'] / 1e6:.1f}M samples, "
            f"{figures['bytes'] / 1e9:.2f} GB"
        )
    emit(
        "store_size",
        {
            "benchmark": "store_size",
            "ratio": round(per_sample, 1),
            "target": None,
            "line": config.line.id,
            "days": args.days,
            "seed": args.seed,
            "samples": samples,
            "bytes": size,
            "bytes_per_sample": round(per_sample, 1),
            "samples_per_day": round(per_day),
            "week": week,
            "week_60x_gb": round(week["60"]["bytes"] / 1e9, 1),
            "week_60x_million_samples": round(week["60"]["samples"] / 1e6),
            "week_1x_mb": round(week["1"]["bytes"] / 1e6),
            "seconds": round(time.perf_counter() - begun, 1),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
