"""History speed: the embedded store at 1M samples, and the InfluxDB sink against
a bare influxdb-client batching writer, each against its baseline in the same run.

Embedded store (SQLite): writes 1M samples (10 series: 5 stations x 2 sensor
fields, one sample each per 3 s: 3.5 days) through
``SqliteStore.write`` and reports samples per second until ``flush()`` returns
(on disk). Then a downsampled 1-hour range query (one station's field, 1-minute
windows, mean) through ``SqliteStore.query`` against a bare SQL query of the
same window on the same file (the same GROUP BY, series id known beforehand);
each runs many times over random hours, and the medians are compared.
Target: the store's query costs at most 2x the bare SQL.

InfluxDB sink: VictoriaMetrics (Debian ``victoria-metrics``, started here on a
free loopback port) speaks the InfluxDB v2 write API. The sink tails a store
holding N samples and writes them with influxdb-client's batching API until
its high-water mark reaches the end; the baseline is a bare influxdb-client
batching writer (the same batch size) writing the same samples as line
protocol, closed at the end (which flushes). Rates are samples per second;
the runs alternate, each pair gives a ratio, and the median of those counts,
printed with their range. Target: at least 0.8x.

Run: ``.venv/bin/python bench/store_speed.py [--quick]``.
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import platform
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from _results import emit

from twin.history.points import Point
from twin.history.store import SqliteStore

QUERY_TARGET = 2.0
WRITE_TARGET = 0.8
STATIONS = ("cutting", "machining", "welding", "painting", "assembly")
FIELDS = ("temperature_c", "power_kw")
TAGS = {"site": "plant-a", "area": "fab", "line": "line1", "origin": "live"}
START_MS = 1_800_000_000_000
STEP_MS = 3000
HOUR_MS = 3_600_000


def points(count: int, start_ms: int = START_MS) -> list[Point]:
    """``count`` samples: one point per (station, time) with both fields."""
    rng = random.Random(1)
    out = []
    per_time = len(STATIONS) * len(FIELDS)
    for step in range(count // per_time):
        time_ms = start_ms + step * STEP_MS
        for station in STATIONS:
            out.append(
                Point(
                    "telemetry",
                    {**TAGS, "station": station},
                    {"temperature_c": rng.uniform(20, 90), "power_kw": rng.uniform(0, 12)},
                    time_ms,
                )
            )
    return out


# -- the embedded store ------------------------------------------------------------------------
def store_writes(path: Path, data: list[Point]) -> tuple[float, int]:
    store = SqliteStore(path, retention_ms=None)
    try:
        samples = sum(len(point.fields) for point in data)
        started = time.perf_counter()
        for offset in range(0, len(data), 1000):  # as the ingest hands them over
            store.write(data[offset : offset + 1000])
        if not store.flush(600):
            raise TimeoutError("the store did not commit within 10 minutes")
        return samples / (time.perf_counter() - started), store.count()
    finally:
        store.close()


def query_costs(path: Path, span_ms: int, repeats: int) -> dict[str, float]:
    store = SqliteStore(path, retention_ms=None)
    bare = sqlite3.connect(path)
    try:
        rng = random.Random(2)
        (series_id,) = bare.execute(
            "SELECT id FROM series WHERE measurement = 'telemetry' AND field = 'temperature_c' "
            "AND tags LIKE '%\"machining\"%'"
        ).fetchone()
        sql = (
            "SELECT (t_ms - ?) / ? AS w, avg(value), count(*) FROM samples "
            "WHERE series = ? AND t_ms >= ? AND t_ms < ? GROUP BY w ORDER BY w"
        )
        ours, baseline = [], []
        for _ in range(repeats):
            start = START_MS + rng.randrange(0, span_ms - HOUR_MS, 60_000)
            end = start + HOUR_MS
            began = time.perf_counter()
            rows = bare.execute(sql, (start, 60_000, series_id, start, end)).fetchall()
            baseline.append(time.perf_counter() - began)
            began = time.perf_counter()
            result = store.query(
                "telemetry",
                "temperature_c",
                start,
                end,
                tags={"station": "machining"},
                every_ms=60_000,
                aggregate="mean",
            )
            ours.append(time.perf_counter() - began)
            if len(result) != 1 or len(result[0].windows) != len(rows):
                raise AssertionError("the store and the bare query disagree")
        return {
            "store_query_ms": statistics.median(ours) * 1000,
            "bare_query_ms": statistics.median(baseline) * 1000,
            "windows": len(rows),
            "samples_per_window": rows[0][2] if rows else 0,
        }
    finally:
        bare.close()
        store.close()


# -- InfluxDB (VictoriaMetrics) ----------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class VictoriaMetrics:
    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary, self.workdir, self.port = binary, workdir, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                f"-storageDataPath={self.workdir / 'vm-data'}",
                f"-httpListenAddr=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as answer:  # noqa: S310
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("VictoriaMetrics did not answer /health within 30 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def line_of(point: Point, field: str) -> str:
    tags = ",".join(f"{key}={value}" for key, value in sorted(point.tags.items()))
    return f"{point.measurement},{tags} {field}={point.fields[field]!r} {point.time_ms}"


def bare_writer_rate(url: str, data: list[Point]) -> float:
    """A bare influxdb-client batching writer: line protocol in, ``close()`` flushes."""
    from influxdb_client import InfluxDBClient, WriteOptions, WritePrecision

    started = time.perf_counter()
    lines = [line_of(point, field) for point in data for field in point.fields]
    # VictoriaMetrics takes any token.
    client = InfluxDBClient(url=url, token="bench", org="bench")  # noqa: S106
    api = client.write_api(write_options=WriteOptions(batch_size=5_000, flush_interval=1_000))
    api.write(bucket="bench", record=lines, write_precision=WritePrecision.MS)
    api.close()
    client.close()  # type: ignore[no-untyped-call]
    return len(lines) / (time.perf_counter() - started)


def sink_rate(url: str, data: list[Point], path: Path) -> float:
    """The project's sink tailing a store that holds ``data``, until its mark is at the end."""
    from twin.history.influx import InfluxSink
    from twin.history.influx_options import InfluxOptions

    store = SqliteStore(path, retention_ms=None)
    try:
        store.write(data)
        store.flush(600)
        end = store.last_position()
        started = time.perf_counter()
        sink = InfluxSink.from_config(
            url, "bench", "bench", "bench", store=store, options=InfluxOptions(batch_size=5_000)
        )
        deadline = time.monotonic() + 600
        while store.mark(sink.name) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sink did not deliver: {sink.health()}")
            time.sleep(0.002)
        elapsed = time.perf_counter() - started
        sink.close()
        return end / elapsed
    finally:
        store.close()


def influx_runs(quick: bool) -> dict[str, Any] | None:
    binary = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
    if not Path(binary).exists():
        print("victoria-metrics not found: apt-get install victoria-metrics", file=sys.stderr)
        return None
    count = 50_000 if quick else 200_000
    repeats = 3 if quick else 5
    data = points(count, start_ms=int(time.time() * 1000) - count * STEP_MS // 10)
    with tempfile.TemporaryDirectory(prefix="bench-influx-") as workdir:
        server = VictoriaMetrics(binary, Path(workdir))
        server.start()
        try:
            sink, bare = [], []
            for repeat in range(repeats):
                bare.append(bare_writer_rate(server.url, data))
                sink.append(sink_rate(server.url, data, Path(workdir) / f"store-{repeat}.sqlite3"))
        finally:
            server.stop()
    return {
        "samples": sum(len(point.fields) for point in data),
        # Each repeat runs the bare writer and the sink back to back: a pair.
        "ratio_rounds": [s / b for s, b in zip(sink, bare, strict=True)],
        "sink_samples_per_s": statistics.median(sink),
        "bare_samples_per_s": statistics.median(bare),
        "sink_runs": [round(rate) for rate in sink],
        "bare_runs": [round(rate) for rate in bare],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k samples, for a smoke test")
    args = parser.parse_args()
    count = 100_000 if args.quick else 1_000_000
    data = points(count)
    span_ms = data[-1].time_ms - START_MS
    with tempfile.TemporaryDirectory(prefix="bench-store-") as workdir:
        path = Path(workdir) / "history.sqlite3"
        write_rate, stored = store_writes(path, data)
        queries = query_costs(path, span_ms, 50 if args.quick else 200)
    query_ratio = queries["store_query_ms"] / queries["bare_query_ms"]
    print(f"embedded store: {stored:,} samples, {span_ms / 86_400_000:.1f} days of 10 series")
    print(f"  writes      {write_rate:>12,.0f} samples/s (until on disk)")
    print(
        f"  1 h query   {queries['store_query_ms']:>10.3f} ms  against bare SQL "
        f"{queries['bare_query_ms']:.3f} ms: {query_ratio:.2f}x (target <= {QUERY_TARGET}); "
        f"{queries['windows']} windows of {queries['samples_per_window']} samples"
    )
    influx = influx_runs(args.quick)
    figures: dict[str, Any] = {
        "benchmark": "store_speed",
        "samples": stored,
        "store_writes_per_s": round(write_rate),
        "query_ratio": round(query_ratio, 3),
        "query_target": QUERY_TARGET,
        "store_query_ms": round(queries["store_query_ms"], 3),
        "bare_query_ms": round(queries["bare_query_ms"], 3),
    }
    if influx is None:
        figures.update(ratio=None, target=WRITE_TARGET, met=False)
    else:
        ratio = statistics.median(influx["ratio_rounds"])
        print(f"InfluxDB sink to VictoriaMetrics, {influx['samples']:,} samples, median of runs:")
        print(
            f"  sink        {influx['sink_samples_per_s']:>12,.0f} samples/s  "
            f"(runs {influx['sink_runs']})"
        )
        print(
            f"  bare client {influx['bare_samples_per_s']:>12,.0f} samples/s  "
            f"(runs {influx['bare_runs']})"
        )
        print(
            f"  ratio       {ratio:>12.2f}  median of the paired runs, "
            f"{min(influx['ratio_rounds']):.2f} to {max(influx['ratio_rounds']):.2f} "
            f"(target >= {WRITE_TARGET})"
        )
        figures.update(
            ratio=round(ratio, 3),
            target=WRITE_TARGET,
            met=ratio >= WRITE_TARGET and query_ratio <= QUERY_TARGET,
            ratio_rounds=[round(value, 3) for value in influx["ratio_rounds"]],
            sink_samples_per_s=round(influx["sink_samples_per_s"]),
            bare_samples_per_s=round(influx["bare_samples_per_s"]),
        )
    figures["python"] = platform.python_version()
    figures["sqlite"] = sqlite3.sqlite_version
    emit("store_speed", figures, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
